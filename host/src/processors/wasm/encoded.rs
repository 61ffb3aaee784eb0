//! Reading OTLP items straight from their protobuf encoding: the columns plugins ask for
//! (names, kinds, one attribute of every item) without decoding whole items.
//!
//! Decoding a span allocates for every string and attribute it holds; reading one attribute
//! from the encoding walks the span's fields and allocates only for the value returned. The
//! field numbers below are those of `opentelemetry/proto/{trace,logs,metrics,common}/v1`.

use crate::pdata::wire::{self, Value};
use opentelemetry_proto::tonic::common::v1 as otlp;
use prost::Message;

pub const SPAN_NAME: u64 = 5;
pub const SPAN_KIND: u64 = 6;
pub const SPAN_ATTRIBUTES: u64 = 9;
pub const SPAN_STATUS: u64 = 15;
const STATUS_CODE: u64 = 3;
pub const LOG_SEVERITY_NUMBER: u64 = 2;
pub const LOG_BODY: u64 = 5;
pub const LOG_ATTRIBUTES: u64 = 6;
pub const METRIC_NAME: u64 = 1;
/// `KeyValue`'s fields.
const KEY: u64 = 1;
const VALUE: u64 = 2;
/// `AnyValue`'s arms.
const STRING_VALUE: u64 = 1;
const BOOL_VALUE: u64 = 2;
const INT_VALUE: u64 = 3;
const DOUBLE_VALUE: u64 = 4;
const ARRAY_VALUE: u64 = 5;
const KVLIST_VALUE: u64 = 6;
const BYTES_VALUE: u64 = 7;

/// A `value-column`'s kinds, as the WIT numbers them (not as `AnyValue` does: bytes come
/// before arrays and maps there).
mod kind {
    pub const NONE: u8 = 0;
    pub const STRING: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const INT: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const ARRAY: u8 = 6;
    pub const KVLIST: u8 = 7;
}

/// `Metric.data`'s arms by field number.
const METRIC_TYPES: [(u64, &str); 5] = [
    (5, "gauge"),
    (7, "sum"),
    (9, "histogram"),
    (10, "exponential-histogram"),
    (11, "summary"),
];

/// A string, bytes or message field as its bytes, empty when absent (proto3's default).
pub fn bytes(item: &[u8], number: u64) -> &[u8] {
    match wire::last(item, number) {
        Some(Value::Bytes(b)) => b,
        _ => &[],
    }
}

/// An integer field of any width or encoding (varint, fixed64, fixed32), 0 when absent.
pub fn uint(item: &[u8], number: u64) -> u64 {
    match wire::last(item, number) {
        Some(Value::Varint(v) | Value::Fixed64(v)) => v,
        Some(Value::Fixed32(v)) => v as u64,
        _ => 0,
    }
}

/// A string field, empty when absent (proto3's default); invalid UTF-8 is replaced.
pub fn string(item: &[u8], number: u64) -> String {
    String::from_utf8_lossy(bytes(item, number)).into_owned()
}

/// An enum or integer field, 0 when absent.
pub fn int32(item: &[u8], number: u64) -> i32 {
    match wire::last(item, number) {
        Some(Value::Varint(v)) => v as i32,
        _ => 0,
    }
}

pub fn span_status_code(span: &[u8]) -> i32 {
    match wire::last(span, SPAN_STATUS) {
        Some(Value::Bytes(status)) => int32(status, STATUS_CODE),
        _ => 0,
    }
}

/// Which arm of `Metric.data` a metric carries, or empty.
pub fn metric_type(metric: &[u8]) -> &'static str {
    wire::fields(metric)
        .filter_map(|(n, _, _)| METRIC_TYPES.iter().find(|(f, _)| *f == n))
        .last()
        .map_or("", |(_, name)| name)
}

/// The encoded `AnyValue` of the first attribute named `key` in field `attributes` of
/// `item`; `None` when no attribute has that key or it has no value.
pub fn attribute<'a>(item: &'a [u8], attributes: u64, key: &str) -> Option<&'a [u8]> {
    wire::values(item).find_map(|(number, value)| match value {
        Value::Bytes(kv) if number == attributes => value_if_key(kv, key.as_bytes()),
        _ => None,
    })
}

/// The encoded value of a `KeyValue` whose key is `key`.
fn value_if_key<'a>(kv: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    if let Some((k, value)) = wire::plain_key_value(kv) {
        return if k == key { value } else { None };
    }
    let (mut found, mut any) = (false, None);
    for (n, v) in wire::values(kv) {
        match (n, v) {
            (KEY, Value::Bytes(k)) => found = k == key,
            (VALUE, Value::Bytes(v)) => any = Some(v),
            _ => {}
        }
    }
    found.then_some(any).flatten()
}

/// The arm an encoded `AnyValue` has set (the last, by protobuf's oneof rule).
fn arm(any: &[u8]) -> Option<(u64, Value<'_>)> {
    wire::fields(any).last().map(|(n, v, _)| (n, v))
}

/// An attribute value read in place: strings, bytes, arrays and maps borrow the encoding.
/// Each contract version turns it into its own `any-value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Any<'a> {
    /// UTF-8 unchecked; readers replace what is invalid.
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An encoded `ArrayValue`.
    Array(&'a [u8]),
    /// An encoded `KeyValueList`.
    Kvlist(&'a [u8]),
}

/// An encoded `AnyValue`; one with no arm set reads as the empty string, as the decoded path
/// gives.
pub fn any(encoded: &[u8]) -> Any<'_> {
    match arm(encoded) {
        Some((STRING_VALUE, Value::Bytes(s))) => Any::Str(s),
        Some((BOOL_VALUE, Value::Varint(b))) => Any::Bool(b != 0),
        Some((INT_VALUE, Value::Varint(i))) => Any::Int(i as i64),
        Some((DOUBLE_VALUE, Value::Fixed64(d))) => Any::Double(f64::from_bits(d)),
        Some((ARRAY_VALUE, Value::Bytes(a))) => Any::Array(a),
        Some((KVLIST_VALUE, Value::Bytes(k))) => Any::Kvlist(k),
        Some((BYTES_VALUE, Value::Bytes(b))) => Any::Bytes(b),
        _ => Any::Str(&[]),
    }
}

/// A column of values packed as the WIT's `value-column` (kinds as the WIT numbers them).
#[derive(Default, Debug)]
pub struct Packed {
    pub kinds: Vec<u8>,
    pub scalars: Vec<i64>,
    pub bytes: Vec<u8>,
    pub ends: Vec<u32>,
}

impl Packed {
    fn push_raw(&mut self, kind: u8, scalar: i64, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.kinds.push(kind);
        self.scalars.push(scalar);
        self.ends.push(self.bytes.len() as u32);
    }

    /// Appends an encoded `AnyValue`, or an entry without one.
    pub fn push_encoded(&mut self, value: Option<&[u8]>) {
        let (kind, scalar, bytes): (u8, i64, &[u8]) = match value.and_then(arm) {
            Some((STRING_VALUE, Value::Bytes(s))) => (kind::STRING, 0, s),
            Some((BOOL_VALUE, Value::Varint(b))) => (kind::BOOL, (b != 0) as i64, &[]),
            Some((INT_VALUE, Value::Varint(i))) => (kind::INT, i as i64, &[]),
            Some((DOUBLE_VALUE, Value::Fixed64(bits))) => (kind::DOUBLE, bits as i64, &[]),
            Some((BYTES_VALUE, Value::Bytes(b))) => (kind::BYTES, 0, b),
            Some((ARRAY_VALUE, Value::Bytes(a))) => (kind::ARRAY, 0, a),
            Some((KVLIST_VALUE, Value::Bytes(k))) => (kind::KVLIST, 0, k),
            _ => (kind::NONE, 0, &[]),
        };
        self.push_raw(kind, scalar, bytes)
    }

    /// Appends a decoded `AnyValue`, or an entry without one.
    pub fn push_decoded(&mut self, value: Option<&otlp::AnyValue>) {
        use otlp::any_value::Value as V;
        match value.and_then(|v| v.value.as_ref()) {
            Some(V::StringValue(s)) => self.push_raw(kind::STRING, 0, s.as_bytes()),
            Some(V::BoolValue(b)) => self.push_raw(kind::BOOL, *b as i64, &[]),
            Some(V::IntValue(i)) => self.push_raw(kind::INT, *i, &[]),
            Some(V::DoubleValue(d)) => self.push_raw(kind::DOUBLE, d.to_bits() as i64, &[]),
            Some(V::BytesValue(b)) => self.push_raw(kind::BYTES, 0, b),
            Some(V::ArrayValue(a)) => self.push_raw(kind::ARRAY, 0, &a.encode_to_vec()),
            Some(V::KvlistValue(k)) => self.push_raw(kind::KVLIST, 0, &k.encode_to_vec()),
            // Dictionary references (profiles only) never reach a plugin.
            _ => self.push_raw(kind::NONE, 0, &[]),
        }
    }
}

/// Packs encoded attribute values into a `value-column`.
pub fn pack<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> Packed {
    let mut packed = Packed::default();
    for value in values {
        packed.push_encoded(value);
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::wasm::v0_1::{from_encoded, to_wit as decoded_to_wit};
    use opentelemetry_proto::tonic::common::v1::{self as otlp, any_value::Value as V};
    use opentelemetry_proto::tonic::metrics::v1::{Histogram, Metric, metric};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use prost::Message;

    fn kv(key: &str, value: Option<V>) -> otlp::KeyValue {
        otlp::KeyValue {
            key: key.into(),
            value: Some(otlp::AnyValue { value }),
            ..Default::default()
        }
    }

    // Every arm of `AnyValue` reads from the encoding as the decoded span gives it, the first
    // of two equal keys wins, and a key with no value reads as absent.
    #[test]
    fn reads_match_the_decoded_span() {
        let array = otlp::ArrayValue {
            values: vec![otlp::AnyValue {
                value: Some(V::IntValue(1)),
            }],
        };
        let mut span = Span {
            name: "GET /lessons".into(),
            kind: 2,
            status: Some(Status {
                code: 2,
                ..Default::default()
            }),
            attributes: vec![
                kv("s", Some(V::StringValue("x".into()))),
                kv("s", Some(V::StringValue("second".into()))),
                kv("b", Some(V::BoolValue(true))),
                kv("i", Some(V::IntValue(-7))),
                kv("d", Some(V::DoubleValue(2.5))),
                kv("y", Some(V::BytesValue(vec![0, 1]))),
                kv("a", Some(V::ArrayValue(array))),
                kv("e", None),
                // A value longer than 127 bytes (two-byte length), and a key that long.
                kv("long", Some(V::StringValue("v".repeat(300)))),
                kv(&"k".repeat(130), Some(V::IntValue(9))),
            ],
            ..Default::default()
        };
        span.attributes.push(otlp::KeyValue {
            key: "novalue".into(),
            value: None,
            ..Default::default()
        });
        let bytes = span.encode_to_vec();
        assert_eq!(string(&bytes, SPAN_NAME), "GET /lessons");
        assert_eq!(int32(&bytes, SPAN_KIND), 2);
        assert_eq!(span_status_code(&bytes), 2);
        let long_key = "k".repeat(130);
        let keys = [
            "s", "b", "i", "d", "y", "a", "e", "novalue", "missing", "long", &long_key,
        ];
        for key in keys {
            let decoded = span
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_ref())
                .map(decoded_to_wit);
            let read = attribute(&bytes, SPAN_ATTRIBUTES, key).map(from_encoded);
            assert_eq!(format!("{read:?}"), format!("{decoded:?}"), "{key}");
        }
        let keys = ["s", "b", "i", "d", "y", "a", "missing"];
        let packed = pack(keys.iter().map(|k| attribute(&bytes, SPAN_ATTRIBUTES, k)));
        assert_eq!(packed.kinds, [1, 2, 3, 4, 5, 6, 0]);
        assert_eq!(packed.scalars, [0, 1, -7, 2.5f64.to_bits() as i64, 0, 0, 0]);
        assert_eq!(&packed.bytes[..1], b"x");
    }

    // A `KeyValue` in another shape than key-then-value (value first, a repeated key) reads by
    // protobuf's rules, not the fast path's.
    #[test]
    fn unusual_key_value_shapes() {
        let any = otlp::AnyValue {
            value: Some(V::IntValue(5)),
        }
        .encode_to_vec();
        let field = |number: u64, body: &[u8]| {
            let mut out = Vec::new();
            wire::put_bytes_field(&mut out, number, body);
            out
        };
        let value_first = [field(2, &any), field(1, b"k")].concat();
        let renamed = [field(1, b"k"), field(2, &any), field(1, b"other")].concat();
        let span = [
            field(SPAN_ATTRIBUTES, &value_first),
            field(SPAN_ATTRIBUTES, &renamed),
        ]
        .concat();
        assert_eq!(attribute(&span, SPAN_ATTRIBUTES, "k"), Some(&any[..]));
        assert_eq!(attribute(&span, SPAN_ATTRIBUTES, "other"), Some(&any[..]));
    }

    #[test]
    fn metric_names_and_types() {
        let metric = Metric {
            name: "http.server.duration".into(),
            data: Some(metric::Data::Histogram(Histogram::default())),
            ..Default::default()
        };
        let bytes = metric.encode_to_vec();
        assert_eq!(string(&bytes, METRIC_NAME), "http.server.duration");
        assert_eq!(metric_type(&bytes), "histogram");
        assert_eq!(metric_type(&Metric::default().encode_to_vec()), "");
    }
}
