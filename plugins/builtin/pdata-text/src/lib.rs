//! Attribute values as the collector's pdata writes them as text: `Value.AsString()` (strings
//! as they are, numbers and booleans as Go formats them, bytes in standard base64, arrays and
//! maps as Go's `encoding/json` writes their raw form, keys sorted), Go's float formats, and
//! the decoded [`Tree`] those forms are computed from.
//!
//! The one idea to understand first: arrays and maps cross the WIT boundary as their protobuf
//! encoding ([`pb`]), so every text form of a nested value starts by decoding it into a
//! [`Tree`]; scalars are written straight from the borrowed [`Value`].

use trailhead_plugin::{AnyValue, Value};

/// An attribute value decoded all the way down (arrays and maps included).
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// An `AnyValue` with no arm set (only ever nested, or a missing body).
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

impl Tree {
    /// A value read from the host, decoded.
    pub fn from_value(value: &Value<'_>) -> Tree {
        match *value {
            Value::Str(s) => Tree::Str(s.to_string()),
            Value::Bool(b) => Tree::Bool(b),
            Value::Int(i) => Tree::Int(i),
            Value::Double(d) => Tree::Double(d),
            Value::Bytes(b) => Tree::Bytes(b.to_vec()),
            Value::Array(b) => Tree::Array(pb::array(b)),
            Value::Kvlist(b) => Tree::Map(pb::kvlist(b)),
        }
    }

    /// An owned value, decoded.
    pub fn from_any(value: &AnyValue) -> Tree {
        Tree::from_value(&borrow(value))
    }

    /// The value as it crosses the boundary. An empty value has no arm there, so it is written
    /// as an empty string (it is only ever nested, where its encoding is used instead).
    pub fn to_any_value(&self) -> AnyValue {
        match self {
            Tree::Empty => AnyValue::Str(String::new()),
            Tree::Str(s) => AnyValue::Str(s.clone()),
            Tree::Bool(b) => AnyValue::Boolean(*b),
            Tree::Int(i) => AnyValue::Int(*i),
            Tree::Double(d) => AnyValue::Double(*d),
            Tree::Bytes(b) => AnyValue::Bytes(b.clone()),
            Tree::Array(items) => AnyValue::Array(pb::array_value(items)),
            Tree::Map(entries) => AnyValue::Kvlist(pb::key_values(entries)),
        }
    }

    /// `Value.Str()`: the string, or empty for any other type.
    pub fn str(&self) -> &str {
        match self {
            Tree::Str(s) => s,
            _ => "",
        }
    }

    /// pdata's `AsString`.
    pub fn as_string(&self) -> String {
        match self {
            Tree::Empty => String::new(),
            Tree::Str(s) => s.clone(),
            Tree::Bool(b) => b.to_string(),
            Tree::Int(i) => i.to_string(),
            Tree::Double(d) => go_float(*d),
            Tree::Bytes(b) => base64(b),
            Tree::Array(_) | Tree::Map(_) => {
                let mut out = String::new();
                // Go's encoder fails on NaN and infinities, and AsString then gives "".
                if json(self, &mut out) {
                    out
                } else {
                    String::new()
                }
            }
        }
    }
}

/// [`Tree::as_string`] of a value read from the host, without decoding scalars.
pub fn as_string(value: &Value<'_>) -> String {
    match *value {
        Value::Str(s) => s.to_string(),
        _ => Tree::from_value(value).as_string(),
    }
}

/// [`as_string`] of an owned value.
pub fn any_as_string(value: &AnyValue) -> String {
    as_string(&borrow(value))
}

/// An owned value seen as a borrowed one.
pub fn borrow(value: &AnyValue) -> Value<'_> {
    match value {
        AnyValue::Str(s) => Value::Str(s),
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::Int(*i),
        AnyValue::Double(d) => Value::Double(*d),
        AnyValue::Bytes(b) => Value::Bytes(b),
        AnyValue::Array(b) => Value::Array(b),
        AnyValue::Kvlist(b) => Value::Kvlist(b),
    }
}

/// A map's entries by key (bytewise), the last of duplicates winning, as Go's `AsRaw` builds a
/// map and `encoding/json` writes it.
pub fn sorted(entries: &[(String, Tree)]) -> Vec<(&String, &Tree)> {
    let mut map = std::collections::BTreeMap::new();
    for (k, v) in entries {
        map.insert(k, v);
    }
    map.into_iter().collect()
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back, never an
/// exponent, which Rust's `Display` for f64 writes too; only infinities are spelt apart.
pub fn go_float_fixed(f: f64) -> String {
    match f {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        f => f.to_string(),
    }
}

/// How pdata prints a double (`float64AsString`, the ES6 rules Go's JSON encoder uses):
/// fixed notation, except exponents below 1e-6 and from 1e21.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e-7` and `1.5e21`; Go writes `1e-07` → cleaned to `1e-7`, and `1.5e+21`.
        let s = format!("{f:e}");
        let (mantissa, exponent) = s.split_once('e').expect("an exponent");
        return match exponent.strip_prefix('-') {
            Some(digits) => format!("{mantissa}e-{digits}"),
            None => format!("{mantissa}e+{exponent}"),
        };
    }
    f.to_string()
}

/// Standard base64 with padding, as Go's `base64.StdEncoding`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `encoding/json` output for a value's raw form; false where Go's encoder fails (NaN or
/// an infinity anywhere inside).
fn json(tree: &Tree, out: &mut String) -> bool {
    match tree {
        Tree::Empty => out.push_str("null"),
        Tree::Str(s) => json_string(s, out),
        Tree::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Tree::Int(i) => out.push_str(&i.to_string()),
        Tree::Double(d) if !d.is_finite() => return false,
        Tree::Double(d) => out.push_str(&go_float(*d)),
        Tree::Bytes(b) => {
            out.push('"');
            out.push_str(&base64(b));
            out.push('"');
        }
        Tree::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !json(item, out) {
                    return false;
                }
            }
            out.push(']');
        }
        Tree::Map(entries) => {
            out.push('{');
            for (i, (key, value)) in sorted(entries).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(key, out);
                out.push(':');
                if !json(value, out) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    true
}

/// A JSON string as Go writes it with HTML escaping off: `\b \f \n \r \t`, other control
/// characters as `\u00xx`, and U+2028, U+2029 escaped.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The protobuf encodings of `AnyValue`, `ArrayValue` and `KeyValueList`: just enough to read
/// and write what the host hands over. A field of an unexpected wire type is skipped.
pub mod pb {
    use super::Tree;

    /// A field's wire value.
    enum Wire<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
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

    /// The fields of a message, (number, wire value), up to the first malformed one.
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

    /// An `AnyValue` message; the last arm set wins, as in protobuf.
    pub fn value(b: &[u8]) -> Tree {
        let mut tree = Tree::Empty;
        for (field, wire) in fields(b) {
            tree = match (field, wire) {
                (1, Wire::Bytes(s)) => Tree::Str(String::from_utf8_lossy(s).into_owned()),
                (2, Wire::Varint(v)) => Tree::Bool(v != 0),
                (3, Wire::Varint(v)) => Tree::Int(v as i64),
                (4, Wire::Fixed64(v)) => Tree::Double(f64::from_bits(v)),
                (5, Wire::Bytes(a)) => Tree::Array(array(a)),
                (6, Wire::Bytes(m)) => Tree::Map(kvlist(m)),
                (7, Wire::Bytes(bytes)) => Tree::Bytes(bytes.to_vec()),
                _ => continue,
            };
        }
        tree
    }

    /// An `ArrayValue` message's values.
    pub fn array(b: &[u8]) -> Vec<Tree> {
        fields(b)
            .into_iter()
            .filter_map(|(f, w)| match (f, w) {
                (1, Wire::Bytes(v)) => Some(value(v)),
                _ => None,
            })
            .collect()
    }

    /// A `KeyValueList` message's entries, in their order, duplicates kept.
    pub fn kvlist(b: &[u8]) -> Vec<(String, Tree)> {
        fields(b)
            .into_iter()
            .filter_map(|(f, w)| match (f, w) {
                (1, Wire::Bytes(kv)) => Some(key_value(kv)),
                _ => None,
            })
            .collect()
    }

    /// A `KeyValue` message: its key and value, the last of each field, as protobuf reads it.
    fn key_value(kv: &[u8]) -> (String, Tree) {
        let mut key = String::new();
        let mut val = Tree::Empty;
        for (f, w) in fields(kv) {
            match (f, w) {
                (1, Wire::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
                (2, Wire::Bytes(v)) => val = value(v),
                _ => {}
            }
        }
        (key, val)
    }

    /// Every item's attributes (field `attributes` of a span, log record, …), in item order,
    /// from an encoded export request (resource → scope → item, fields 1, 2, 2 in every
    /// signal); `None` when it does not decode. One `to-otlp` read this way costs a plugin
    /// less than an `attrs` call per item, which lifts each pair across the boundary.
    pub fn item_attributes(request: &[u8], attributes: u64) -> Option<Vec<Vec<(String, Tree)>>> {
        let mut out = Vec::new();
        each(request, 1, &mut |resource| {
            each(resource, 2, &mut |scope| {
                each(scope, 2, &mut |item| {
                    let mut attrs = Vec::new();
                    each(item, attributes, &mut |kv| {
                        attrs.push(key_value(kv));
                        Some(())
                    })?;
                    out.push(attrs);
                    Some(())
                })
            })
        })?;
        Some(out)
    }

    /// Calls `visit` with every length-delimited field numbered `number`, building no list
    /// (it runs for every attribute of a batch); `None` when the message or `visit` fails.
    fn each<'a>(
        mut b: &'a [u8],
        number: u64,
        visit: &mut dyn FnMut(&'a [u8]) -> Option<()>,
    ) -> Option<()> {
        while !b.is_empty() {
            let tag = varint(&mut b)?;
            let skip = match tag & 7 {
                0 => {
                    varint(&mut b)?;
                    0
                }
                1 => 8,
                5 => 4,
                2 => {
                    let len = usize::try_from(varint(&mut b)?).ok()?;
                    let (field, rest) = b.split_at_checked(len)?;
                    b = rest;
                    if tag >> 3 == number {
                        visit(field)?;
                    }
                    0
                }
                _ => return None,
            };
            b = b.get(skip..)?;
        }
        Some(())
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A length-delimited field.
    pub fn message(out: &mut Vec<u8>, number: u64, body: &[u8]) {
        put_varint(out, (number << 3) | 2);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    /// An `AnyValue` message.
    pub fn any_value(tree: &Tree) -> Vec<u8> {
        let mut out = Vec::new();
        match tree {
            Tree::Empty => {}
            Tree::Str(s) => message(&mut out, 1, s.as_bytes()),
            Tree::Bool(b) => {
                put_varint(&mut out, 2 << 3);
                put_varint(&mut out, u64::from(*b));
            }
            Tree::Int(i) => {
                put_varint(&mut out, 3 << 3);
                put_varint(&mut out, *i as u64);
            }
            Tree::Double(d) => {
                put_varint(&mut out, (4 << 3) | 1);
                out.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            Tree::Array(items) => message(&mut out, 5, &array_value(items)),
            Tree::Map(entries) => message(&mut out, 6, &key_values(entries)),
            Tree::Bytes(b) => message(&mut out, 7, b),
        }
        out
    }

    /// An `ArrayValue` message.
    pub fn array_value(items: &[Tree]) -> Vec<u8> {
        let mut out = Vec::new();
        for item in items {
            message(&mut out, 1, &any_value(item));
        }
        out
    }

    /// A `KeyValueList` message.
    pub fn key_values(entries: &[(String, Tree)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in entries {
            let mut kv = Vec::new();
            message(&mut kv, 1, key.as_bytes());
            message(&mut kv, 2, &any_value(value));
            message(&mut out, 1, &kv);
        }
        out
    }
}

#[cfg(test)]
mod tests;
