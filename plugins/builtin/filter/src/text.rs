//! `body.string`: a value written out as pdata's `Value.AsString` writes it.

use trailhead_ottl::{Value, double, json};

/// Empty for no value, the text itself for a string, JSON for maps and lists, standard
/// base64 for bytes.
pub fn as_string(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => double(*d),
        Value::Bytes(b) => base64(b),
        Value::Map(_) | Value::List(_) => json(v),
        _ => String::new(),
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let sextet = (n >> (18 - 6 * i)) & 63;
            out.push(if i <= chunk.len() {
                ALPHABET[sextet as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
