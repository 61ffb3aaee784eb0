//! Attribute values as the collector's pdata sees them: a typed value from the config and
//! equality; the string a value reads as (`AsString`) and the protobuf encoding come from
//! [`pdata_text`], re-exported here for the attributes and resource plugins.

use serde_json::Value as Json;
use trailhead_plugin::Value;

pub use pdata_text::{Tree, any_as_string, as_string, borrow, go_float_fixed};

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
        Json::Array(items) => Tree::Array(items.iter().map(from_json).collect()),
        Json::Object(map) => {
            Tree::Map(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
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
            let (x, y) = (pdata_text::sorted(x), pdata_text::sorted(y));
            x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|((k, p), (l, q))| k == l && same_tree(p, q))
        }
        _ => a == b,
    }
}
