//! `body.string`: a value written out as pdata's `Value.AsString` writes it.

use trailhead_ottl::{Value, base64, double, json};

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
