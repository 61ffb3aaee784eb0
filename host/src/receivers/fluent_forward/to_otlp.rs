//! Fluent records to OTLP log records, as the collector's `fluent_forward` receiver maps them
//! (its `conversion.go`): the event time is the timestamp, the record's `message` or `log`
//! (the last of them; fluentd writes `message`, fluent-bit `log`) is the body, the tag is the
//! `fluent.tag` attribute, and every other key is an attribute of its msgpack type.
//!
//! Where trailhead differs, and why: text that is not UTF-8 (a `bin` value, a bad `str`) is
//! read lossily, as OTLP strings must be UTF-8; an extension value other than a timestamp is
//! written `&{TYPE [BYTES]}` as the collector prints it, and an EventTime value kept as an
//! attribute is written the same way (the collector prints a Go pointer dump there).

use super::protocol::FrameError;
use crate::pdata::{Batch, RequestContext, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rmpv::ValueRef;

/// The attribute holding an event's tag.
pub const TAG_ATTRIBUTE: &str = "fluent.tag";

/// The msgpack extension type of the protocol's EventTime.
const EVENT_TIME: i8 = 0;

/// Whether the tag attribute is written before the record's keys (Message mode: a record key
/// `fluent.tag` then replaces it) or after them (Forward modes: the tag replaces such a key).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TagOrder {
    First,
    Last,
}

/// One `[time, record]` entry as a log record tagged `tag`.
pub fn log_record(
    tag: &str,
    order: TagOrder,
    time: &ValueRef<'_>,
    record: &ValueRef<'_>,
) -> Result<LogRecord, FrameError> {
    let mut attributes = Attributes::default();
    if order == TagOrder::First {
        attributes.put(TAG_ATTRIBUTE.into(), Some(string(tag.to_string())));
    }
    let time_unix_nano = timestamp(time)?;
    let ValueRef::Map(pairs) = record else {
        return Err(FrameError::new("the record is not a map"));
    };
    let mut body = None;
    for (key, value) in pairs {
        let key = map_key(key).ok_or_else(|| FrameError::new("a record key is not a string"))?;
        let value = any_value(value)?;
        if key == "message" || key == "log" {
            // A nil body leaves the one before it, as the collector's does.
            if value.is_some() {
                body = value;
            }
        } else {
            attributes.put(key, value);
        }
    }
    if order == TagOrder::Last {
        attributes.put(TAG_ATTRIBUTE.into(), Some(string(tag.to_string())));
    }
    Ok(LogRecord {
        time_unix_nano,
        // Always written, empty when the record has no body, as pdata writes it.
        body: Some(AnyValue { value: body }),
        attributes: attributes.0,
        ..LogRecord::default()
    })
}

/// Log records as one encoded export request: one resource and one scope, both empty.
pub fn batch(log_records: Vec<LogRecord>, context: RequestContext) -> Batch {
    let items = log_records.len();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource::default()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope::default()),
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    Batch::from_encoded(Signal::Logs, request.encode_to_vec(), items, context)
}

/// An event time in nanoseconds since the epoch: whole seconds as an integer, or the
/// protocol's EventTime (seconds and nanoseconds, each a big-endian u32). Out-of-range seconds
/// wrap as Go's `time.Unix(s, 0).UnixNano()` does, so both gateways write the same number.
pub fn timestamp(time: &ValueRef<'_>) -> Result<u64, FrameError> {
    let (seconds, nanos) = match time {
        ValueRef::Integer(n) => {
            let seconds = n.as_i64().or(n.as_u64().map(|u| u as i64));
            (seconds.unwrap_or_default(), 0)
        }
        ValueRef::Ext(EVENT_TIME, data) if data.len() == 8 => {
            let seconds = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            (i64::from(seconds), i64::from(nanos))
        }
        ValueRef::Ext(EVENT_TIME, _) => {
            return Err(FrameError::new("an EventTime is not exactly 8 bytes"));
        }
        _ => {
            return Err(FrameError::new(
                "an event time is neither an integer nor an EventTime",
            ));
        }
    };
    Ok(seconds.wrapping_mul(1_000_000_000).wrapping_add(nanos) as u64)
}

/// A msgpack value as an OTLP value (`None` for nil). A map key that is not a string or bytes
/// is an error, as in the collector's msgpack reader.
pub fn any_value(value: &ValueRef<'_>) -> Result<Option<any_value::Value>, FrameError> {
    use any_value::Value;
    Ok(Some(match value {
        ValueRef::Nil => return Ok(None),
        ValueRef::Boolean(b) => Value::BoolValue(*b),
        ValueRef::Integer(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            // Above i64::MAX: the collector keeps the digits as a string.
            None => string(n.to_string()),
        },
        ValueRef::F32(f) => Value::DoubleValue(f64::from(*f)),
        ValueRef::F64(f) => Value::DoubleValue(*f),
        ValueRef::String(s) => string(lossy(s.as_bytes())),
        ValueRef::Binary(b) => string(lossy(b)),
        ValueRef::Array(items) => {
            let values = items
                .iter()
                .map(|item| any_value(item).map(|value| AnyValue { value }))
                .collect::<Result<_, _>>()?;
            Value::ArrayValue(ArrayValue { values })
        }
        ValueRef::Map(pairs) => {
            let mut attributes = Attributes::default();
            for (key, value) in pairs {
                let key =
                    map_key(key).ok_or_else(|| FrameError::new("a map key is not a string"))?;
                attributes.put(key, any_value(value)?);
            }
            Value::KvlistValue(KeyValueList {
                values: attributes.0,
            })
        }
        ValueRef::Ext(kind, data) => string(go_raw_extension(*kind, data)),
    }))
}

/// A map key: a string, or bytes (some senders write keys as `bin`).
fn map_key(key: &ValueRef<'_>) -> Option<String> {
    match key {
        ValueRef::String(s) => Some(lossy(s.as_bytes())),
        ValueRef::Binary(b) => Some(lossy(b)),
        _ => None,
    }
}

fn string(text: String) -> any_value::Value {
    any_value::Value::StringValue(text)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An extension value as Go's `fmt.Sprintf("%v", &msgp.RawExtension{...})` prints it.
fn go_raw_extension(kind: i8, data: &[u8]) -> String {
    let bytes: Vec<String> = data.iter().map(u8::to_string).collect();
    format!("&{{{kind} [{}]}}", bytes.join(" "))
}

/// Attributes in the order first written; writing a key again replaces its value in place
/// (pdata's `PutEmpty` on an existing key).
#[derive(Default)]
struct Attributes(Vec<KeyValue>);

impl Attributes {
    fn put(&mut self, key: String, value: Option<any_value::Value>) {
        let value = Some(AnyValue { value });
        match self.0.iter_mut().find(|kv| kv.key == key) {
            Some(existing) => existing.value = value,
            None => self.0.push(KeyValue {
                key,
                value,
                ..KeyValue::default()
            }),
        }
    }
}
