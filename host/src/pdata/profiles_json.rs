//! OTLP/JSON for profiles, brought to the shape the `opentelemetry-proto` crate's serde types
//! read. The crate's profiles types (0.33) follow the proto3 JSON mapping only in part: most of
//! their messages have no `#[serde(default)]`, so a field a sender leaves out (proto3 JSON leaves
//! out every default) is an error; 64-bit integers must be numbers, where senders write decimal
//! strings; `Link` ids are byte arrays, not hex, and `original_payload` is not base64.
//!
//! [`normalize`] walks the request along the profiles schema below and fixes exactly those:
//! fills in absent fields with their defaults, turns decimal strings into numbers, and hex
//! and base64 into byte arrays. Everything else is left for the crate to read and check.

use base64::Engine;
use serde_json::{Map, Value};

/// How a field is read.
#[derive(Clone, Copy)]
enum Kind {
    /// An optional message: absent stays absent (`None`).
    Message(Schema),
    /// A repeated message.
    Messages(Schema),
    /// A (64-bit or smaller) integer: a decimal string becomes a number.
    Int,
    /// A repeated integer.
    Ints,
    /// A string.
    Text,
    /// A repeated string.
    Texts,
    /// Bytes the crate reads as hex itself (`profile_id`).
    HexText,
    /// Bytes as hex in OTLP/JSON, read by the crate as a byte array (`Link` ids).
    HexBytes,
    /// Bytes as base64 (proto3 JSON), read by the crate as a byte array.
    Base64Bytes,
    /// A field of a shared type the crate reads in full (`Resource`, `AnyValue`...).
    Shared,
}

type Schema = &'static [(&'static str, Kind)];

const REQUEST: Schema = &[
    ("resourceProfiles", Kind::Messages(RESOURCE_PROFILES)),
    ("dictionary", Kind::Message(DICTIONARY)),
];
const RESOURCE_PROFILES: Schema = &[
    ("resource", Kind::Shared),
    ("scopeProfiles", Kind::Messages(SCOPE_PROFILES)),
    ("schemaUrl", Kind::Text),
];
const SCOPE_PROFILES: Schema = &[
    ("scope", Kind::Shared),
    ("profiles", Kind::Messages(PROFILE)),
    ("schemaUrl", Kind::Text),
];
const PROFILE: Schema = &[
    ("sampleType", Kind::Message(VALUE_TYPE)),
    ("samples", Kind::Messages(SAMPLE)),
    ("timeUnixNano", Kind::Int),
    ("durationNano", Kind::Int),
    ("periodType", Kind::Message(VALUE_TYPE)),
    ("period", Kind::Int),
    ("profileId", Kind::HexText),
    ("droppedAttributesCount", Kind::Int),
    ("originalPayloadFormat", Kind::Text),
    ("originalPayload", Kind::Base64Bytes),
    ("attributeIndices", Kind::Ints),
];
const VALUE_TYPE: Schema = &[("typeStrindex", Kind::Int), ("unitStrindex", Kind::Int)];
const SAMPLE: Schema = &[
    ("stackIndex", Kind::Int),
    ("attributeIndices", Kind::Ints),
    ("linkIndex", Kind::Int),
    ("values", Kind::Ints),
    ("timestampsUnixNano", Kind::Ints),
];
const DICTIONARY: Schema = &[
    ("mappingTable", Kind::Messages(MAPPING)),
    ("locationTable", Kind::Messages(LOCATION)),
    ("functionTable", Kind::Messages(FUNCTION)),
    ("linkTable", Kind::Messages(LINK)),
    ("stringTable", Kind::Texts),
    ("attributeTable", Kind::Messages(KEY_VALUE_AND_UNIT)),
    ("stackTable", Kind::Messages(STACK)),
];
const MAPPING: Schema = &[
    ("memoryStart", Kind::Int),
    ("memoryLimit", Kind::Int),
    ("fileOffset", Kind::Int),
    ("filenameStrindex", Kind::Int),
    ("attributeIndices", Kind::Ints),
];
const LOCATION: Schema = &[
    ("mappingIndex", Kind::Int),
    ("address", Kind::Int),
    ("lines", Kind::Messages(LINE)),
    ("attributeIndices", Kind::Ints),
];
const LINE: Schema = &[
    ("functionIndex", Kind::Int),
    ("line", Kind::Int),
    ("column", Kind::Int),
];
const FUNCTION: Schema = &[
    ("nameStrindex", Kind::Int),
    ("systemNameStrindex", Kind::Int),
    ("filenameStrindex", Kind::Int),
    ("startLine", Kind::Int),
];
const LINK: Schema = &[("traceId", Kind::HexBytes), ("spanId", Kind::HexBytes)];
const STACK: Schema = &[("locationIndices", Kind::Ints)];
const KEY_VALUE_AND_UNIT: Schema = &[
    ("keyStrindex", Kind::Int),
    ("value", Kind::Shared),
    ("unitStrindex", Kind::Int),
];

/// Brings an `ExportProfilesServiceRequest` in OTLP/JSON to the crate's shape (see the module
/// header). A value of the wrong JSON type is left as it is, for the crate to refuse by path.
pub fn normalize(request: &mut Value) {
    message(request, REQUEST);
}

fn message(value: &mut Value, schema: Schema) {
    let Value::Object(fields) = value else {
        return;
    };
    for (name, kind) in schema.iter() {
        field(fields, name, *kind);
    }
}

fn field(fields: &mut Map<String, Value>, name: &str, kind: Kind) {
    let Some(value) = fields.get_mut(name).filter(|v| !v.is_null()) else {
        if let Some(default) = default(kind) {
            fields.insert(name.to_string(), default);
        }
        return;
    };
    match (kind, value) {
        (Kind::Message(schema), v) => message(v, schema),
        (Kind::Messages(schema), Value::Array(items)) => {
            items.iter_mut().for_each(|item| message(item, schema));
        }
        (Kind::Int, v) => integer(v),
        (Kind::Ints, Value::Array(items)) => items.iter_mut().for_each(integer),
        (Kind::HexBytes, v) => decoded(v, |text| hex::decode(text).ok()),
        (Kind::Base64Bytes, v) => decoded(v, |text| {
            base64::engine::general_purpose::STANDARD.decode(text).ok()
        }),
        _ => {}
    }
}

/// What an absent field reads as; `None` for those the crate reads absent (optional messages
/// and the shared types).
fn default(kind: Kind) -> Option<Value> {
    match kind {
        Kind::Message(_) | Kind::Shared => None,
        Kind::Int => Some(Value::from(0)),
        Kind::Text | Kind::HexText => Some(Value::from("")),
        _ => Some(Value::Array(Vec::new())),
    }
}

/// A decimal string (proto3 JSON's 64-bit integers) as a number.
fn integer(value: &mut Value) {
    let Value::String(text) = value else {
        return;
    };
    if let Ok(n) = text.parse::<i64>() {
        *value = Value::from(n);
    } else if let Ok(n) = text.parse::<u64>() {
        *value = Value::from(n);
    }
}

/// Encoded bytes as the array of numbers the crate reads; left as they are if they do not
/// decode, so the crate names the field.
fn decoded(value: &mut Value, decode: impl Fn(&str) -> Option<Vec<u8>>) {
    let Value::String(text) = value else {
        return;
    };
    if let Some(bytes) = decode(text) {
        *value = Value::Array(bytes.into_iter().map(Value::from).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;

    // Proto3 JSON as SDKs write it: defaults left out, 64-bit integers as strings, ids in hex,
    // the original payload in base64. It reads after normalizing.
    #[test]
    fn reads_proto3_json() {
        let mut json = serde_json::json!({
            "resourceProfiles": [{"scopeProfiles": [{"profiles": [{
                "samples": [{"values": ["1000000"], "timestampsUnixNano": ["1700000000000000000"]}],
                "timeUnixNano": "1700000000000000000",
                "profileId": "000102030405060708090a0b0c0d0e0f",
                "originalPayload": "AAE="
            }]}]}],
            "dictionary": {"stringTable": ["", "cpu"], "linkTable": [{"traceId": "0102", "spanId": "03"}]}
        });
        normalize(&mut json);
        let request: ExportProfilesServiceRequest = serde_json::from_value(json).unwrap();
        let profile = &request.resource_profiles[0].scope_profiles[0].profiles[0];
        assert_eq!(profile.samples[0].values, vec![1_000_000]);
        assert_eq!(profile.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(profile.profile_id, (0..16).collect::<Vec<u8>>());
        assert_eq!(profile.original_payload, vec![0, 1]);
        let dictionary = request.dictionary.unwrap();
        assert_eq!(dictionary.link_table[0].trace_id, vec![1, 2]);
    }

    // A value of the wrong type is left for the crate to refuse.
    #[test]
    fn wrong_types_still_fail() {
        let mut json = serde_json::json!({"resourceProfiles": [{"scopeProfiles": [{"profiles": [
            {"samples": [{"values": ["ten"]}]}]}]}]});
        normalize(&mut json);
        assert!(serde_json::from_value::<ExportProfilesServiceRequest>(json).is_err());
    }
}
