//! Attribute values as the collector's pdata sees them: a typed value from the config, the
//! string a value reads as (`AsString`, also the JSON of maps and lists), equality, and the
//! protobuf encoding in which arrays and maps cross the WIT boundary.

use serde_json::Value as Json;
use trailhead_plugin::{AnyValue, Value};

/// An attribute value decoded all the way down (arrays and maps included).
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// An `AnyValue` with no arm set.
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
    /// A value of the config as pdata's `FromRaw` makes it: YAML's integers, floats, booleans and
    /// strings keep their type; lists and maps become arrays and maps; `null` is an empty value.
    pub fn from_json(json: &Json) -> Tree {
        match json {
            Json::Null => Tree::Empty,
            Json::Bool(b) => Tree::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Tree::Int(i),
                // Go's int64(uint64) wraps.
                (None, Some(u), _) => Tree::Int(u as i64),
                (_, _, Some(f)) => Tree::Double(f),
                _ => Tree::Empty,
            },
            Json::String(s) => Tree::Str(s.clone()),
            Json::Array(items) => Tree::Array(items.iter().map(Tree::from_json).collect()),
            Json::Object(map) => Tree::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Tree::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value as it crosses the boundary. An empty value has no arm there; it never comes
    /// from the config at the top level (a `null` value is no value).
    pub fn to_any_value(&self) -> AnyValue {
        match self {
            Tree::Empty => AnyValue::Str(String::new()),
            Tree::Str(s) => AnyValue::Str(s.clone()),
            Tree::Bool(b) => AnyValue::Boolean(*b),
            Tree::Int(i) => AnyValue::Int(*i),
            Tree::Double(d) => AnyValue::Double(*d),
            Tree::Bytes(b) => AnyValue::Bytes(b.clone()),
            Tree::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    pb::message(&mut out, 1, &pb::any_value(item));
                }
                AnyValue::Array(out)
            }
            Tree::Map(entries) => AnyValue::Kvlist(pb::key_values(entries)),
        }
    }

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

    /// pdata's `AsString`: strings as they are, numbers and booleans as Go prints them,
    /// bytes in standard base64, maps and arrays as JSON (keys sorted, no HTML escaping).
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

/// Whether two values are the same: same type and value; arrays and maps by content, a map's
/// keys in any order (as pdata's value hash compares them).
pub fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Double(x), Value::Double(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Array(x), Value::Array(y)) | (Value::Kvlist(x), Value::Kvlist(y)) => {
            x == y || same_tree(&Tree::from_value(a), &Tree::from_value(b))
        }
        _ => false,
    }
}

fn same_tree(a: &Tree, b: &Tree) -> bool {
    match (a, b) {
        (Tree::Array(x), Tree::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_tree(p, q))
        }
        (Tree::Map(x), Tree::Map(y)) => {
            let (x, y) = (sorted(x), sorted(y));
            x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|((k, p), (l, q))| k == l && same_tree(p, q))
        }
        _ => a == b,
    }
}

/// A map's entries by key, the last of duplicates winning (as Go's `AsRaw` builds a map).
fn sorted(entries: &[(String, Tree)]) -> Vec<(&String, &Tree)> {
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
/// and write what the host hands over.
pub(crate) mod pb {
    use super::Tree;

    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The fields of a message: (number, wire type, varint or fixed value, length-delimited bytes).
    fn fields(bytes: &[u8]) -> Vec<(u64, u64, u64, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let Some(tag) = varint(bytes, &mut at) else {
                break;
            };
            let (number, wire) = (tag >> 3, tag & 7);
            match wire {
                0 => match varint(bytes, &mut at) {
                    Some(v) => out.push((number, wire, v, &[][..])),
                    None => break,
                },
                1 => match bytes.get(at..at + 8) {
                    Some(b) => {
                        at += 8;
                        out.push((
                            number,
                            wire,
                            u64::from_le_bytes(b.try_into().unwrap()),
                            &[][..],
                        ));
                    }
                    None => break,
                },
                2 => {
                    let Some(len) = varint(bytes, &mut at) else {
                        break;
                    };
                    let Some(b) = bytes.get(at..at + len as usize) else {
                        break;
                    };
                    at += len as usize;
                    out.push((number, wire, 0, b));
                }
                5 => at += 4,
                _ => break,
            }
        }
        out
    }

    pub fn value(bytes: &[u8]) -> Tree {
        let mut tree = Tree::Empty;
        for (number, _, scalar, b) in fields(bytes) {
            tree = match number {
                1 => Tree::Str(String::from_utf8_lossy(b).into_owned()),
                2 => Tree::Bool(scalar != 0),
                3 => Tree::Int(scalar as i64),
                4 => Tree::Double(f64::from_bits(scalar)),
                5 => Tree::Array(array(b)),
                6 => Tree::Map(kvlist(b)),
                7 => Tree::Bytes(b.to_vec()),
                _ => continue,
            };
        }
        tree
    }

    pub fn array(bytes: &[u8]) -> Vec<Tree> {
        fields(bytes)
            .into_iter()
            .filter(|f| f.0 == 1 && f.1 == 2)
            .map(|f| value(f.3))
            .collect()
    }

    pub fn kvlist(bytes: &[u8]) -> Vec<(String, Tree)> {
        let entries = fields(bytes).into_iter().filter(|f| f.0 == 1 && f.1 == 2);
        entries
            .map(|f| {
                let mut key = String::new();
                let mut val = Tree::Empty;
                for (number, wire, _, b) in fields(f.3) {
                    match (number, wire) {
                        (1, 2) => key = String::from_utf8_lossy(b).into_owned(),
                        (2, 2) => val = value(b),
                        _ => {}
                    }
                }
                (key, val)
            })
            .collect()
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn message(out: &mut Vec<u8>, number: u64, body: &[u8]) {
        put_varint(out, (number << 3) | 2);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

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
            Tree::Array(items) => {
                let mut body = Vec::new();
                for item in items {
                    message(&mut body, 1, &any_value(item));
                }
                message(&mut out, 5, &body);
            }
            Tree::Map(entries) => message(&mut out, 6, &key_values(entries)),
            Tree::Bytes(b) => message(&mut out, 7, b),
        }
        out
    }

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
