//! Between the WIT's values and OTLP's: arrays and maps cross as their protobuf encodings.

use crate::{AnyValue, KeyValue, ValueColumn, ValueKind};
use opentelemetry_proto::tonic::common::v1 as otlp;
use otlp::any_value::Value as V;
use prost::Message;

/// An OTLP value from a WIT one. An array or map that is not a valid encoding is a bug in the
/// plugin: it panics, as the host traps.
pub fn to_otlp(value: &AnyValue, method: &str) -> otlp::AnyValue {
    let value = match value {
        AnyValue::Str(s) => V::StringValue(s.clone()),
        AnyValue::Boolean(b) => V::BoolValue(*b),
        AnyValue::Int(i) => V::IntValue(*i),
        AnyValue::Double(d) => V::DoubleValue(*d),
        AnyValue::Bytes(b) => V::BytesValue(b.clone()),
        AnyValue::Array(b) => {
            V::ArrayValue(otlp::ArrayValue::decode(b.as_slice()).unwrap_or_else(|e| {
                panic!("{method}: an array value is not an encoded ArrayValue: {e}")
            }))
        }
        AnyValue::Kvlist(b) => V::KvlistValue(
            otlp::KeyValueList::decode(b.as_slice()).unwrap_or_else(|e| {
                panic!("{method}: a kvlist value is not an encoded KeyValueList: {e}")
            }),
        ),
    };
    otlp::AnyValue { value: Some(value) }
}

/// A WIT value from an OTLP one; an empty value reads as an empty string.
pub fn from_otlp(value: Option<&otlp::AnyValue>) -> AnyValue {
    match value.and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => AnyValue::Str(s.clone()),
        Some(V::BoolValue(b)) => AnyValue::Boolean(*b),
        Some(V::IntValue(i)) => AnyValue::Int(*i),
        Some(V::DoubleValue(d)) => AnyValue::Double(*d),
        Some(V::BytesValue(b)) => AnyValue::Bytes(b.clone()),
        Some(V::ArrayValue(a)) => AnyValue::Array(a.encode_to_vec()),
        Some(V::KvlistValue(m)) => AnyValue::Kvlist(m.encode_to_vec()),
        // A string-table index means something only inside a profile, which a batch is not.
        Some(V::StringValueStrindex(_)) | None => AnyValue::Str(String::new()),
    }
}

/// WIT attributes from OTLP ones.
pub fn attrs_from_otlp(attributes: &[otlp::KeyValue]) -> Vec<KeyValue> {
    let convert = |kv: &otlp::KeyValue| KeyValue {
        key: kv.key.clone(),
        value: from_otlp(kv.value.as_ref()),
    };
    attributes.iter().map(convert).collect()
}

/// OTLP attributes from WIT ones.
pub fn attrs_to_otlp(attributes: &[KeyValue], method: &str) -> Vec<otlp::KeyValue> {
    let convert = |kv: &KeyValue| otlp::KeyValue {
        key: kv.key.clone(),
        value: Some(to_otlp(&kv.value, method)),
        ..Default::default()
    };
    attributes.iter().map(convert).collect()
}

/// Sets `key` to `value`, overwriting the first entry with that key or appending one.
pub fn upsert(attributes: &mut Vec<otlp::KeyValue>, key: &str, value: otlp::AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => attributes.push(otlp::KeyValue {
            key: key.into(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

/// The attribute `key` of a list, if there.
pub fn find<'a>(attributes: &'a [otlp::KeyValue], key: &str) -> Option<&'a otlp::AnyValue> {
    attributes.iter().find(|kv| kv.key == key)?.value.as_ref()
}

/// Packs values into a column, as the host does.
pub fn pack<'a>(values: impl IntoIterator<Item = Option<&'a otlp::AnyValue>>) -> ValueColumn {
    let mut column = ValueColumn {
        kinds: Vec::new(),
        scalars: Vec::new(),
        bytes: Vec::new(),
        ends: Vec::new(),
    };
    for value in values {
        let (kind, scalar) = match value.and_then(|v| v.value.as_ref()) {
            Some(V::StringValueStrindex(_)) | None => (ValueKind::None, 0),
            Some(V::StringValue(s)) => (ValueKind::Str, push(&mut column, s.as_bytes())),
            Some(V::BoolValue(b)) => (ValueKind::Boolean, *b as i64),
            Some(V::IntValue(i)) => (ValueKind::Int, *i),
            Some(V::DoubleValue(d)) => (ValueKind::Double, d.to_bits() as i64),
            Some(V::BytesValue(b)) => (ValueKind::Bytes, push(&mut column, b)),
            Some(V::ArrayValue(a)) => (ValueKind::Array, push(&mut column, &a.encode_to_vec())),
            Some(V::KvlistValue(m)) => (ValueKind::Kvlist, push(&mut column, &m.encode_to_vec())),
        };
        column.kinds.push(kind);
        column.scalars.push(scalar);
        column.ends.push(column.bytes.len() as u32);
    }
    column
}

/// Appends bytes to a column's buffer; their entry's scalar is 0.
fn push(column: &mut ValueColumn, bytes: &[u8]) -> i64 {
    column.bytes.extend_from_slice(bytes);
    0
}

/// An int value, as the metric columns carry numbers.
pub fn int(i: i64) -> otlp::AnyValue {
    otlp::AnyValue {
        value: Some(V::IntValue(i)),
    }
}

/// A double value, as the metric columns carry numbers.
pub fn double(d: f64) -> otlp::AnyValue {
    otlp::AnyValue {
        value: Some(V::DoubleValue(d)),
    }
}

/// Appends an ID of `width` bytes, all zero when it is absent or of another length.
pub fn push_id(out: &mut Vec<u8>, id: &[u8], width: usize) {
    if id.len() == width {
        out.extend_from_slice(id);
    } else {
        out.resize(out.len() + width, 0);
    }
}
