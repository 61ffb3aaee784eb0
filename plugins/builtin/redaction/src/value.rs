//! Attribute values and log bodies decoded into a tree ([`Raw`]) the redaction walks and
//! changes, encoded back as the contract's `any-value` (arrays and maps as their protobuf), and
//! written as the collector's `Value.AsString()` does: strings as they are, numbers and
//! booleans as Go formats them, bytes in base64, arrays and maps as Go's `encoding/json`
//! writes their raw form (map keys sorted).

use trailhead_plugin::{AnyValue, Value};

/// A decoded `AnyValue`; `Null` is an empty one.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    Null,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Raw>),
    Map(Vec<(String, Raw)>),
}

impl Raw {
    pub fn from_value(value: Option<Value>) -> Raw {
        match value {
            None => Raw::Null,
            Some(Value::Str(s)) => Raw::Str(s.into()),
            Some(Value::Bool(b)) => Raw::Bool(b),
            Some(Value::Int(i)) => Raw::Int(i),
            Some(Value::Double(d)) => Raw::Double(d),
            Some(Value::Bytes(b)) => Raw::Bytes(b.into()),
            Some(Value::Array(b)) => decode_array(b),
            Some(Value::Kvlist(b)) => decode_kvlist(b),
        }
    }

    pub fn from_any(value: &AnyValue) -> Raw {
        match value {
            AnyValue::Str(s) => Raw::Str(s.clone()),
            AnyValue::Boolean(b) => Raw::Bool(*b),
            AnyValue::Int(i) => Raw::Int(*i),
            AnyValue::Double(d) => Raw::Double(*d),
            AnyValue::Bytes(b) => Raw::Bytes(b.clone()),
            AnyValue::Array(b) => decode_array(b),
            AnyValue::Kvlist(b) => decode_kvlist(b),
        }
    }

    /// The value for a write; an empty value (only ever nested) is an empty string there.
    pub fn to_any(&self) -> AnyValue {
        match self {
            Raw::Null => AnyValue::Str(String::new()),
            Raw::Str(s) => AnyValue::Str(s.clone()),
            Raw::Bool(b) => AnyValue::Boolean(*b),
            Raw::Int(i) => AnyValue::Int(*i),
            Raw::Double(d) => AnyValue::Double(*d),
            Raw::Bytes(b) => AnyValue::Bytes(b.clone()),
            Raw::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    put_message(&mut out, 1, &encode_any(item));
                }
                AnyValue::Array(out)
            }
            Raw::Map(entries) => AnyValue::Kvlist(encode_kvlist(entries)),
        }
    }

    /// `Value.Str()`: the string, or empty for any other type.
    pub fn str(&self) -> &str {
        match self {
            Raw::Str(s) => s,
            _ => "",
        }
    }

    /// `Value.AsString()`.
    pub fn as_string(&self) -> String {
        match self {
            Raw::Null => String::new(),
            Raw::Str(s) => s.clone(),
            Raw::Bool(b) => b.to_string(),
            Raw::Int(i) => i.to_string(),
            Raw::Double(d) => float(*d, false).unwrap_or_default(),
            Raw::Bytes(b) => base64(b),
            Raw::Array(_) | Raw::Map(_) => json(self).unwrap_or_default(),
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_message(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_any(raw: &Raw) -> Vec<u8> {
    let mut out = Vec::new();
    match raw {
        Raw::Null => {}
        Raw::Str(s) => put_message(&mut out, 1, s.as_bytes()),
        Raw::Bool(b) => {
            put_varint(&mut out, 2 << 3);
            put_varint(&mut out, u64::from(*b));
        }
        Raw::Int(i) => {
            put_varint(&mut out, 3 << 3);
            put_varint(&mut out, *i as u64);
        }
        Raw::Double(d) => {
            put_varint(&mut out, (4 << 3) | 1);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Raw::Array(_) => {
            let AnyValue::Array(bytes) = raw.to_any() else {
                unreachable!()
            };
            put_message(&mut out, 5, &bytes);
        }
        Raw::Map(entries) => put_message(&mut out, 6, &encode_kvlist(entries)),
        Raw::Bytes(b) => put_message(&mut out, 7, b),
    }
    out
}

fn encode_kvlist(entries: &[(String, Raw)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entries {
        let mut kv = Vec::new();
        put_message(&mut kv, 1, key.as_bytes());
        put_message(&mut kv, 2, &encode_any(value));
        put_message(&mut out, 1, &kv);
    }
    out
}

/// Go's float formatting: ES6 style for `AsString`, and the same digits (without the `NaN` and
/// infinity spellings, which `encoding/json` refuses) in JSON.
fn float(f: f64, in_json: bool) -> Option<String> {
    if f.is_nan() {
        return (!in_json).then(|| "NaN".into());
    }
    if f.is_infinite() {
        return (!in_json).then(|| if f > 0.0 { "Infinity" } else { "-Infinity" }.into());
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').expect("{:e} writes an exponent");
        let sign = if exp.starts_with('-') { "" } else { "+" };
        return Some(format!("{mantissa}e{sign}{exp}"));
    }
    Some(format!("{f}"))
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json(raw: &Raw) -> Option<String> {
    let mut out = String::new();
    write_json(raw, &mut out).then_some(out)
}

fn write_json(raw: &Raw, out: &mut String) -> bool {
    match raw {
        Raw::Null => out.push_str("null"),
        Raw::Str(s) => json_string(s, out),
        Raw::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Raw::Int(i) => out.push_str(&i.to_string()),
        Raw::Double(d) => match float(*d, true) {
            Some(text) => out.push_str(&text),
            None => return false,
        },
        Raw::Bytes(b) => {
            out.push('"');
            out.push_str(&base64(b));
            out.push('"');
        }
        Raw::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_json(item, out) {
                    return false;
                }
            }
            out.push(']');
        }
        Raw::Map(entries) => {
            // A Go map: the last value of a repeated key wins, and keys come out sorted.
            let mut sorted: Vec<&(String, Raw)> = Vec::new();
            for entry in entries {
                sorted.retain(|e| e.0 != entry.0);
                sorted.push(entry);
            }
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().map(|e| (&e.0, &e.1)).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                if !write_json(v, out) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    true
}

/// A JSON string as Go's encoder writes it without HTML escaping.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Protobuf fields: (field number, wire value).
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

fn fields(mut b: &[u8]) -> Vec<(u64, Wire<'_>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(tag) = varint(&mut b) else { break };
        let wire = match tag & 7 {
            0 => match varint(&mut b) {
                Some(v) => Wire::Varint(v),
                None => break,
            },
            1 if b.len() >= 8 => {
                let v = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
                b = &b[8..];
                Wire::Fixed64(v)
            }
            2 => match varint(&mut b) {
                Some(len) if (len as usize) <= b.len() => {
                    let (v, rest) = b.split_at(len as usize);
                    b = rest;
                    Wire::Bytes(v)
                }
                _ => break,
            },
            5 if b.len() >= 4 => {
                b = &b[4..];
                continue;
            }
            _ => break,
        };
        out.push((tag >> 3, wire));
    }
    out
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn decode_any(b: &[u8]) -> Raw {
    let mut raw = Raw::Null;
    for (field, wire) in fields(b) {
        raw = match (field, wire) {
            (1, Wire::Bytes(s)) => Raw::Str(String::from_utf8_lossy(s).into_owned()),
            (2, Wire::Varint(v)) => Raw::Bool(v != 0),
            (3, Wire::Varint(v)) => Raw::Int(v as i64),
            (4, Wire::Fixed64(v)) => Raw::Double(f64::from_bits(v)),
            (5, Wire::Bytes(a)) => decode_array(a),
            (6, Wire::Bytes(m)) => decode_kvlist(m),
            (7, Wire::Bytes(bytes)) => Raw::Bytes(bytes.to_vec()),
            _ => continue,
        };
    }
    raw
}

fn decode_array(b: &[u8]) -> Raw {
    Raw::Array(
        fields(b)
            .into_iter()
            .filter_map(|(f, w)| match (f, w) {
                (1, Wire::Bytes(v)) => Some(decode_any(v)),
                _ => None,
            })
            .collect(),
    )
}

fn decode_kvlist(b: &[u8]) -> Raw {
    let entries = fields(b)
        .into_iter()
        .filter_map(|(f, w)| match (f, w) {
            (1, Wire::Bytes(kv)) => {
                let mut key = String::new();
                let mut value = Raw::Null;
                for (f, w) in fields(kv) {
                    match (f, w) {
                        (1, Wire::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
                        (2, Wire::Bytes(v)) => value = decode_any(v),
                        _ => {}
                    }
                }
                Some((key, value))
            }
            _ => None,
        })
        .collect();
    Raw::Map(entries)
}
