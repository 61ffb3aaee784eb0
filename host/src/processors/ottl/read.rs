//! An encoded export request as columns for the OTTL evaluator: its resources, or its spans
//! (or span events) in arrival order, each field read from the encoding in place, as pdata's getters give it (a missing
//! attribute is nil, a missing scalar 0, an ID its fixed width).
//!
//! The one idea: a walk over the encoding collects, per item, the bodies it reads from (its
//! `ResourceSpans`, `ScopeSpans`, span and event), so a column is one pass over the items
//! and a string value borrows from the trace.

use super::paths::{Common, EventField, Field, ScopeField, SpanField};
use super::trace_state_lookup;
use crate::pdata::wire::{self, Value as Wire};
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use trailhead_ottl::{Columns, Map, Path, Value, pb};

/// One resource, span or span event, by the encoded messages it is read from.
pub struct Item<'a> {
    resource: &'a [u8],
    scope: &'a [u8],
    span: &'a [u8],
    /// The event's body (empty for a span).
    event: &'a [u8],
    /// The index of the span that holds it (its own for a span; a resource's own index).
    pub span_index: usize,
}

/// A request's spans and, when asked for, their events, in the collector's walk order.
pub struct Walk<'a> {
    pub spans: Vec<Item<'a>>,
    pub events: Vec<Item<'a>>,
}

impl<'a> Walk<'a> {
    /// The spans of an encoded `ExportTraceServiceRequest` (`spans`: how many, a hint).
    pub fn new(encoded: &'a [u8], spans: usize, with_events: bool) -> Walk<'a> {
        let mut walk = Walk {
            spans: Vec::with_capacity(spans),
            events: Vec::new(),
        };
        for resource in messages(encoded, 1) {
            for scope in messages(resource, 2) {
                for span in messages(scope, 2) {
                    let span_index = walk.spans.len();
                    let item = |event| Item {
                        resource,
                        scope,
                        span,
                        event,
                        span_index,
                    };
                    if with_events {
                        walk.events.extend(messages(span, 11).map(item));
                    }
                    walk.spans.push(item(&[]));
                }
            }
        }
        walk
    }
}

/// The resources of an encoded export request of any signal, in order: each signal's
/// `Resource…` message has its resource in field 1 and its `schema_url` in field 3.
pub fn resources(encoded: &[u8]) -> Vec<Item<'_>> {
    let item = |(index, resource)| Item {
        resource,
        scope: &[],
        span: &[],
        event: &[],
        span_index: index,
    };
    messages(encoded, 1).enumerate().map(item).collect()
}

/// The columns of one condition over a walk's spans or events.
pub struct ItemColumns<'w, 'a> {
    pub items: &'w [Item<'a>],
    pub fields: &'w HashMap<Path, Field>,
}

impl<'a> Columns<'a> for ItemColumns<'_, 'a> {
    fn item_count(&self) -> usize {
        self.items.len()
    }

    fn column(&mut self, path: &Path) -> Rc<[Value<'a>]> {
        let Some(field) = self.fields.get(path) else {
            return vec![Value::Nil; self.items.len()].into();
        };
        self.items.iter().map(|item| read(field, item)).collect()
    }
}

/// The bodies of the length-delimited fields `number` of a message, in order.
fn messages(message: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    wire::values(message).filter_map(move |(n, value)| match value {
        Wire::Bytes(body) if n == number => Some(body),
        _ => None,
    })
}

/// A message read in place: whole, or a sub-message sent in parts (field `number` of a
/// parent, possibly repeated), which protobuf merges as if the parts were concatenated.
#[derive(Clone, Copy)]
enum Msg<'a> {
    Whole(&'a [u8]),
    Parts(&'a [u8], u64),
}

impl<'a> Msg<'a> {
    /// The message's fields in order, across its parts.
    fn fields(self) -> impl Iterator<Item = (u64, Wire<'a>)> {
        let (whole, parts) = match self {
            Msg::Whole(m) => (Some(wire::values(m)), None),
            Msg::Parts(parent, n) => (None, Some(messages(parent, n).flat_map(wire::values))),
        };
        whole
            .into_iter()
            .flatten()
            .chain(parts.into_iter().flatten())
    }

    /// The bodies of its length-delimited fields `number`, in order.
    fn bodies(self, number: u64) -> impl Iterator<Item = &'a [u8]> {
        self.fields().filter_map(move |(n, value)| match value {
            Wire::Bytes(body) if n == number => Some(body),
            _ => None,
        })
    }

    /// The last varint or fixed value of field `number` (the last one wins), if any.
    fn scalar(self, number: u64) -> Option<u64> {
        self.fields().fold(None, |found, (n, value)| match value {
            Wire::Varint(v) | Wire::Fixed64(v) if n == number => Some(v),
            Wire::Fixed32(v) if n == number => Some(u64::from(v)),
            _ => found,
        })
    }

    /// The last string field `number` (empty when absent), borrowed unless not UTF-8.
    fn text(self, number: u64) -> Cow<'a, str> {
        String::from_utf8_lossy(self.bodies(number).last().unwrap_or_default())
    }

    /// A 32-bit count in field `number`, as pdata's `uint32`.
    fn count(self, number: u64) -> Value<'a> {
        Value::Int(self.scalar(number).unwrap_or(0) as u32 as i64)
    }
}

/// One field of one item.
fn read<'a>(field: &Field, item: &Item<'a>) -> Value<'a> {
    let event = Msg::Whole(item.event);
    match field {
        Field::Span(f) => span(f, item.span),
        Field::Event(EventField::Name) => Value::Str(event.text(2)),
        Field::Event(EventField::Time { time }) => nanos(event.scalar(1), *time),
        Field::Event(EventField::Common(c)) => common(c, event, 3, 4),
        // schema_url is the ResourceSpans' (ScopeSpans') own field 3.
        Field::Resource(Common::SchemaUrl) => Value::Str(Msg::Whole(item.resource).text(3)),
        Field::Resource(c) => common(c, Msg::Parts(item.resource, 1), 1, 2),
        Field::Scope(ScopeField::Common(Common::SchemaUrl)) => {
            Value::Str(Msg::Whole(item.scope).text(3))
        }
        Field::Scope(f) => {
            let scope = Msg::Parts(item.scope, 1);
            match f {
                ScopeField::Name => Value::Str(scope.text(1)),
                ScopeField::Version => Value::Str(scope.text(2)),
                ScopeField::Common(c) => common(c, scope, 3, 4),
            }
        }
        Field::Cache => Value::Map(Rc::default()),
    }
}

/// Attributes (field `attributes`) or the dropped attributes count (field `dropped`).
fn common<'a>(field: &Common, message: Msg<'a>, attributes: u64, dropped: u64) -> Value<'a> {
    let mut kvs = message.bodies(attributes);
    match field {
        Common::DroppedAttrs => message.count(dropped),
        // Read from the `ResourceSpans` or `ScopeSpans` in `read`; not a field of the message.
        Common::SchemaUrl => Value::Nil,
        // The first with that key, as pdata's `Get` finds it.
        Common::Attribute(key) => kvs
            .find(|kv| kv_key(kv) == key.as_bytes())
            .map_or(Value::Nil, kv_value),
        Common::Attributes => {
            let mut map: Map = Vec::new();
            for kv in kvs {
                let key = String::from_utf8_lossy(kv_key(kv));
                trailhead_ottl::edit::put(&mut map, &key, kv_value(kv).into_owned());
            }
            Value::Map(Rc::new(map))
        }
    }
}

/// A `KeyValue`'s key (the last `key` field).
fn kv_key(kv: &[u8]) -> &[u8] {
    match wire::plain_key_value(kv) {
        Some((key, _)) => key,
        None => messages(kv, 1).last().unwrap_or_default(),
    }
}

/// A `KeyValue`'s value, every `value` field merged.
fn kv_value(kv: &[u8]) -> Value<'_> {
    match wire::plain_key_value(kv) {
        Some((_, Some(value))) => any_value(Msg::Whole(value)),
        Some((_, None)) => Value::Nil,
        None => any_value(Msg::Parts(kv, 2)),
    }
}

/// An `AnyValue` as pdata reads it: the last oneof field set wins; none set is nil.
fn any_value(any: Msg<'_>) -> Value<'_> {
    let mut value = Value::Nil;
    for (number, field) in any.fields() {
        value = match (number, field) {
            (1, Wire::Bytes(s)) => Value::Str(String::from_utf8_lossy(s)),
            (2, Wire::Varint(b)) => Value::Bool(b != 0),
            (3, Wire::Varint(i)) => Value::Int(i as i64),
            (4, Wire::Fixed64(d)) => Value::Double(f64::from_bits(d)),
            (5, Wire::Bytes(b)) => {
                pb::decode_list(b).map_or(Value::Nil, |l| Value::List(Rc::new(l)))
            }
            (6, Wire::Bytes(b)) => pb::decode_map(b).map_or(Value::Nil, |m| Value::Map(Rc::new(m))),
            (7, Wire::Bytes(b)) => Value::Bytes(Cow::Borrowed(b)),
            _ => continue,
        };
    }
    value
}

/// Nanoseconds as an int (`…_unix_nano`) or as a time (`start_time`); 0 when absent.
fn nanos<'a>(n: Option<u64>, time: bool) -> Value<'a> {
    let n = n.unwrap_or(0) as i64;
    match time {
        true => Value::Time(n),
        false => Value::Int(n),
    }
}

/// An ID at its fixed width (pdata keeps an array: a short one is zero-padded), as bytes or
/// as lowercase hex.
fn id<'a>(raw: &'a [u8], width: usize, hex: bool) -> Value<'a> {
    let fixed: Cow<'a, [u8]> = match raw.len() == width {
        true => Cow::Borrowed(raw),
        false => {
            let mut id = vec![0; width];
            let n = raw.len().min(width);
            id[..n].copy_from_slice(&raw[..n]);
            Cow::Owned(id)
        }
    };
    match hex {
        true => Value::Str(Cow::Owned(::hex::encode(&fixed))),
        false => Value::Bytes(fixed),
    }
}

/// One of the span's own fields.
fn span<'a>(field: &SpanField, body: &'a [u8]) -> Value<'a> {
    use SpanField::*;
    let span = Msg::Whole(body);
    let bytes = |number| span.bodies(number).last().unwrap_or_default();
    let kind = || span.scalar(6).unwrap_or(0);
    let status = Msg::Parts(body, 15);
    match field {
        Name => Value::Str(span.text(5)),
        Kind => Value::Int(kind() as i32 as i64),
        KindText { deprecated } => Value::Str(kind_text(kind(), *deprecated).into()),
        Status => Value::Composite("a span status"),
        StatusCode => Value::Int(status.scalar(3).unwrap_or(0) as i32 as i64),
        StatusMessage => Value::Str(status.text(2)),
        Start { time } => nanos(span.scalar(7), *time),
        End { time } => nanos(span.scalar(8), *time),
        TraceId { hex } => id(bytes(1), 16, *hex),
        SpanId { hex } => id(bytes(2), 8, *hex),
        ParentSpanId { hex } => id(bytes(4), 8, *hex),
        TraceState => Value::Str(span.text(3)),
        TraceStateKey(key) => {
            let state = std::str::from_utf8(bytes(3)).unwrap_or_default();
            match trace_state_lookup(state, key) {
                // Go's `TraceState.Get` gives "" for a key it lacks.
                Some(found) => Value::Str(Cow::Borrowed(found.unwrap_or_default())),
                None => Value::Nil,
            }
        }
        Flags => span.count(16),
        Events => opaque(span.bodies(11).count(), "a span event"),
        Links => opaque(span.bodies(13).count(), "a span link"),
        DroppedEvents => span.count(12),
        DroppedLinks => span.count(14),
        IsRoot => Value::Bool(bytes(4).iter().all(|b| *b == 0)),
        Common(c) => common(c, span, 9, 10),
    }
}

/// A slice no condition can reach into (the collector refuses `events[0]` too): a list of
/// that many opaque entries, so `Len(events)` counts them.
fn opaque(n: usize, what: &'static str) -> Value<'static> {
    Value::List(Rc::new(vec![Value::Composite(what); n]))
}

/// pdata's `SpanKind.String()`, or the name `kind.deprecated_string` reads.
fn kind_text(kind: u64, deprecated: bool) -> &'static str {
    let (short, long) = match kind {
        0 => ("Unspecified", "SPAN_KIND_UNSPECIFIED"),
        1 => ("Internal", "SPAN_KIND_INTERNAL"),
        2 => ("Server", "SPAN_KIND_SERVER"),
        3 => ("Client", "SPAN_KIND_CLIENT"),
        4 => ("Producer", "SPAN_KIND_PRODUCER"),
        5 => ("Consumer", "SPAN_KIND_CONSUMER"),
        _ => ("", ""),
    };
    if deprecated { long } else { short }
}
