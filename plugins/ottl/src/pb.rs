//! Maps and lists as the contract carries them: protobuf `KeyValueList` and `ArrayValue`
//! (WIT has no recursive types). Decoded into [`Value::Map`] and [`Value::List`] only when a
//! statement reads into them, and encoded back when one changes them.

use crate::{Map, Value};
use std::rc::Rc;

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// One field of a message: its number, wire type, varint or fixed value, and bytes.
type Field<'b> = (u64, u64, u64, &'b [u8]);

/// The fields of one message.
fn fields(bytes: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let tag = varint(bytes, &mut at)?;
        let (number, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((number, wire, varint(bytes, &mut at)?, &[][..])),
            1 => {
                let raw = bytes.get(at..at + 8).ok_or("truncated fixed64")?;
                at += 8;
                out.push((
                    number,
                    wire,
                    u64::from_le_bytes(raw.try_into().unwrap_or([0; 8])),
                    &[][..],
                ));
            }
            2 => {
                let len = varint(bytes, &mut at)? as usize;
                let raw = bytes.get(at..at + len).ok_or("truncated field")?;
                at += len;
                out.push((number, wire, 0, raw));
            }
            5 => {
                at += 4;
            }
            other => return Err(format!("unsupported wire type {other}")),
        }
    }
    Ok(out)
}

/// An `AnyValue`.
pub fn decode_any(bytes: &[u8]) -> Result<Value<'static>, String> {
    let mut value = Value::Nil;
    for (number, _, scalar, raw) in fields(bytes)? {
        value = match number {
            1 => Value::Str(String::from_utf8_lossy(raw).into_owned().into()),
            2 => Value::Bool(scalar != 0),
            3 => Value::Int(scalar as i64),
            4 => Value::Double(f64::from_bits(scalar)),
            5 => Value::List(Rc::new(decode_list(raw)?)),
            6 => Value::Map(Rc::new(decode_map(raw)?)),
            7 => Value::Bytes(raw.to_vec().into()),
            _ => continue,
        };
    }
    Ok(value)
}

/// A `KeyValueList`.
pub fn decode_map(bytes: &[u8]) -> Result<Map, String> {
    let mut map = Vec::new();
    for (number, _, _, raw) in fields(bytes)? {
        if number != 1 {
            continue;
        }
        let (key, value) = decode_key_value(raw)?;
        crate::edit::put(&mut map, &key, value);
    }
    Ok(map)
}

/// A `KeyValue`: its key and decoded value (nil when it has none).
fn decode_key_value(bytes: &[u8]) -> Result<(String, Value<'static>), String> {
    let (mut key, mut value) = (String::new(), Value::Nil);
    for (n, _, _, raw) in fields(bytes)? {
        match n {
            1 => key = String::from_utf8_lossy(raw).into_owned(),
            2 => value = decode_any(raw)?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// An `ArrayValue`.
pub fn decode_list(bytes: &[u8]) -> Result<Vec<Value<'static>>, String> {
    fields(bytes)?
        .into_iter()
        .filter(|(n, ..)| *n == 1)
        .map(|(_, _, _, raw)| decode_any(raw))
        .collect()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `AnyValue` (nil is an empty one).
pub fn encode_any(value: &Value<'_>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match value {
        Value::Nil => {}
        Value::Str(s) => put_bytes(&mut out, 1, s.as_bytes()),
        Value::Bool(b) => {
            put_varint(&mut out, 2 << 3);
            put_varint(&mut out, *b as u64);
        }
        Value::Int(i) => {
            put_varint(&mut out, 3 << 3);
            put_varint(&mut out, *i as u64);
        }
        Value::Double(d) => {
            put_varint(&mut out, 4 << 3 | 1);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::List(items) => put_bytes(&mut out, 5, &encode_list(items)?),
        Value::Map(map) => put_bytes(&mut out, 6, &encode_map(map)?),
        Value::Bytes(b) => put_bytes(&mut out, 7, b),
        other => {
            return Err(format!(
                "{} cannot be stored in a map or list",
                other.kind()
            ));
        }
    }
    Ok(out)
}

/// A `KeyValueList`.
pub fn encode_map(map: &Map) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (k, v) in map {
        let mut kv = Vec::new();
        put_bytes(&mut kv, 1, k.as_bytes());
        put_bytes(&mut kv, 2, &encode_any(v)?);
        put_bytes(&mut out, 1, &kv);
    }
    Ok(out)
}

/// An `ArrayValue`.
pub fn encode_list(items: &[Value<'_>]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for v in items {
        put_bytes(&mut out, 1, &encode_any(v)?);
    }
    Ok(out)
}

/// Calls `each` with every item of an encoded OTLP export request (spans of an
/// `ExportTraceServiceRequest`, records of an `ExportLogsServiceRequest`: both nest resource
/// → scope → item in field 1 → 2 → 2), in the batch's flat item order, stopping at the first
/// error.
fn for_each_item<'r>(
    request: &'r [u8],
    mut each: impl FnMut(&'r [u8]) -> Result<(), String>,
) -> Result<(), String> {
    for (n, _, _, resource) in fields(request)? {
        if n != 1 {
            continue;
        }
        for (n, _, _, scope) in fields(resource)? {
            if n != 2 {
                continue;
            }
            for (n, _, _, item) in fields(scope)? {
                if n == 2 {
                    each(item)?;
                }
            }
        }
    }
    Ok(())
}

/// The attributes of every item of an encoded OTLP export request (nested as for
/// [`for_each_item`]), in the batch's flat item order. `attributes` is the item's attribute
/// field number (9 for a span, 6 for a log record).
pub fn item_attributes(request: &[u8], attributes: u64) -> Result<Vec<Map>, String> {
    let mut out = Vec::new();
    for_each_item(request, |item| {
        let mut map = Vec::new();
        for (n, _, _, kv) in fields(item)? {
            if n != attributes {
                continue;
            }
            let (key, value) = decode_key_value(kv)?;
            crate::edit::put(&mut map, &key, value);
        }
        out.push(map);
        Ok(())
    })?;
    Ok(out)
}

/// A long string attribute: its item's index, its key and its value.
pub type LongString = (usize, String, String);

/// Every string attribute longer than `limit` bytes of every item of an encoded OTLP export
/// request (nested as for [`for_each_item`]): (item index, key, value), without decoding
/// anything else; and how many items there are.
pub fn long_strings(
    request: &[u8],
    attributes: u64,
    limit: usize,
) -> Result<(Vec<LongString>, usize), String> {
    let mut out = Vec::new();
    let mut items = 0;
    for_each_item(request, |item| {
        for (n, _, _, kv) in fields(item)? {
            if n != attributes || kv.len() <= limit {
                continue;
            }
            let (mut key, mut long) = (&[][..], None);
            for (n, _, _, raw) in fields(kv)? {
                match n {
                    1 => key = raw,
                    2 => {
                        long = fields(raw)?
                            .into_iter()
                            .find(|(n, w, ..)| *n == 1 && *w == 2)
                            .map(|(.., s)| s)
                            .filter(|s| s.len() > limit)
                    }
                    _ => {}
                }
            }
            if let Some(s) = long {
                out.push((
                    items,
                    String::from_utf8_lossy(key).into_owned(),
                    String::from_utf8_lossy(s).into_owned(),
                ));
            }
        }
        items += 1;
        Ok(())
    })?;
    Ok((out, items))
}
