//! Reading OTLP attributes as the collector's pdata does: the first value under a name, and a
//! value as text (`AsString`), which connectors use to key their series.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

/// The value of the first attribute named `name`.
pub fn find<'a>(attributes: &'a [KeyValue], name: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == name)
        .and_then(|kv| kv.value.as_ref())
}

/// A value as text: strings as they are, numbers and booleans printed, bytes in base64, arrays
/// and maps as JSON.
pub fn as_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => json(other).to_string().trim_matches('"').to_string(),
        None => String::new(),
    }
}

fn json(value: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        any_value::Value::StringValue(s) => Json::String(s.clone()),
        any_value::Value::BoolValue(b) => Json::Bool(*b),
        any_value::Value::IntValue(i) => Json::from(*i),
        any_value::Value::DoubleValue(d) => Json::from(*d),
        any_value::Value::BytesValue(b) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        any_value::Value::ArrayValue(array) => Json::Array(
            array
                .values
                .iter()
                .map(|v| v.value.as_ref().map_or(Json::Null, json))
                .collect(),
        ),
        any_value::Value::StringValueStrindex(index) => Json::from(*index),
        any_value::Value::KvlistValue(list) => Json::Object(
            list.values
                .iter()
                .map(|kv| {
                    let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), value.map_or(Json::Null, json))
                })
                .collect(),
        ),
    }
}
