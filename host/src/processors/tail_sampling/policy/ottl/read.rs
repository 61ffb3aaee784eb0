//! A held trace as columns for the OTTL evaluator: its spans (or span events) in arrival
//! order, each field read from the encoding in place, as pdata's getters give it (a missing
//! attribute is nil, a missing scalar 0, an ID its fixed width).
//!
//! The one idea: a walk over the encoding collects, per item, the bodies it reads from (its
//! `ResourceSpans`, `ScopeSpans`, span and event), so a column is one pass over the items
//! and a string value borrows from the trace.

use super::paths::{Common, EventField, Field, ScopeField, SpanField};
use crate::pdata::wire::{self, Value as Wire};
use crate::processors::tail_sampling::policy::trace_state_lookup;
use crate::processors::tail_sampling::trace::TraceData;
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use trailhead_ottl::{Columns, Map, Path, Value, pb};

/// One span or span event, by the encoded messages it is read from.
pub struct Item<'a> {
    resource: &'a [u8],
    scope: &'a [u8],
    span: &'a [u8],
    /// The event's body (empty for a span).
    event: &'a [u8],
    /// The index of the span that holds it (its own for a span).
    pub span_index: usize,
}

/// A trace's spans and, when asked for, their events, in the collector's walk order.
pub struct Walk<'a> {
    pub spans: Vec<Item<'a>>,
    pub events: Vec<Item<'a>>,
}

impl<'a> Walk<'a> {
    pub fn new(trace: &'a TraceData, with_events: bool) -> Walk<'a> {
        let mut walk = Walk {
            spans: Vec::with_capacity(trace.span_count.max(0) as usize),
            events: Vec::new(),
        };
        for resource in messages(trace.encoded(), 1) {
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

/// The last varint or fixed value of field `number` (protobuf: the last one wins).
fn scalar(message: &[u8], number: u64) -> u64 {
    wire::values(message).fold(0, |found, (n, value)| match value {
        Wire::Varint(v) | Wire::Fixed64(v) if n == number => v,
        Wire::Fixed32(v) if n == number => u64::from(v),
        _ => found,
    })
}

/// The last string field `number`, borrowed unless it is not UTF-8.
fn text(message: &[u8], number: u64) -> Cow<'_, str> {
    String::from_utf8_lossy(messages(message, number).last().unwrap_or_default())
}

/// One field of one item.
fn read<'a>(field: &Field, item: &Item<'a>) -> Value<'a> {
    match field {
        Field::Span(f) => span(f, item.span),
        Field::Event(EventField::Name) => Value::Str(text(item.event, 2)),
        Field::Event(EventField::Time { time }) => nanos(scalar(item.event, 1), *time),
        Field::Event(EventField::Common(c)) => merged(c, &[item.event], 3, 4),
        // Merged `resource` messages: attributes 1, dropped count 2; schema_url is the
        // ResourceSpans' field 3.
        Field::Resource(Common::SchemaUrl) => Value::Str(text(item.resource, 3)),
        Field::Resource(c) => {
            let parts: Vec<&[u8]> = messages(item.resource, 1).collect();
            merged(c, &parts, 1, 2)
        }
        Field::Scope(ScopeField::Common(Common::SchemaUrl)) => Value::Str(text(item.scope, 3)),
        Field::Scope(f) => {
            let parts: Vec<&[u8]> = messages(item.scope, 1).collect();
            match f {
                ScopeField::Name => Value::Str(last_text(&parts, 1)),
                ScopeField::Version => Value::Str(last_text(&parts, 2)),
                ScopeField::Common(c) => merged(c, &parts, 3, 4),
            }
        }
        Field::Cache => Value::Map(Rc::default()),
    }
}

/// A string field of a message sent in parts (which protobuf merges): the last one wins.
fn last_text<'a>(parts: &[&'a [u8]], number: u64) -> Cow<'a, str> {
    let last = parts.iter().rev().find_map(|p| messages(p, number).last());
    String::from_utf8_lossy(last.unwrap_or_default())
}

/// A common field of a message sent in parts (one part for a span or event): attributes
/// in field `attributes` concatenate, the dropped count in field `dropped`: the last wins.
fn merged<'a>(field: &Common, parts: &[&'a [u8]], attributes: u64, dropped: u64) -> Value<'a> {
    match field {
        Common::DroppedAttrs => {
            let last = parts.iter().rev().find(|p| has_field(p, dropped));
            Value::Int(last.map_or(0, |p| scalar(p, dropped) as u32 as i64))
        }
        _ => {
            let kvs = parts.iter().flat_map(|p| messages(p, attributes));
            attribute_value(field, kvs)
        }
    }
}

/// Whether a message has field `number` at all.
fn has_field(message: &[u8], number: u64) -> bool {
    wire::values(message).any(|(n, _)| n == number)
}

/// `attributes["k"]` (the first with that key, as pdata's `Get`) or the whole map.
fn attribute_value<'a>(field: &Common, kvs: impl Iterator<Item = &'a [u8]>) -> Value<'a> {
    match field {
        Common::Attribute(key) => kvs
            .map(key_value)
            .find(|(k, _)| *k == key.as_bytes())
            .map_or(Value::Nil, |(_, v)| any_value(v)),
        _ => {
            let mut map: Map = Vec::new();
            for (key, value) in kvs.map(key_value) {
                let key = String::from_utf8_lossy(key);
                trailhead_ottl::edit::put(&mut map, &key, any_value(value).into_owned());
            }
            Value::Map(Rc::new(map))
        }
    }
}

/// A `KeyValue`'s key and the bodies of its `value` fields (which protobuf merges).
fn key_value(kv: &[u8]) -> (&[u8], Vec<&[u8]>) {
    if let Some((key, value)) = wire::plain_key_value(kv) {
        return (key, value.into_iter().collect());
    }
    let key = messages(kv, 1).last().unwrap_or_default();
    (key, messages(kv, 2).collect())
}

/// An `AnyValue` sent in parts, as pdata reads it: the last oneof field set wins; none is nil.
fn any_value(parts: Vec<&[u8]>) -> Value<'_> {
    let mut value = Value::Nil;
    for part in parts {
        for (number, field) in wire::values(part) {
            value = match (number, field) {
                (1, Wire::Bytes(s)) => Value::Str(String::from_utf8_lossy(s)),
                (2, Wire::Varint(b)) => Value::Bool(b != 0),
                (3, Wire::Varint(i)) => Value::Int(i as i64),
                (4, Wire::Fixed64(d)) => Value::Double(f64::from_bits(d)),
                (5, Wire::Bytes(b)) => {
                    pb::decode_list(b).map_or(Value::Nil, |l| Value::List(Rc::new(l)))
                }
                (6, Wire::Bytes(b)) => {
                    pb::decode_map(b).map_or(Value::Nil, |m| Value::Map(Rc::new(m)))
                }
                (7, Wire::Bytes(b)) => Value::Bytes(Cow::Borrowed(b)),
                _ => continue,
            };
        }
    }
    value
}

/// Nanoseconds as an int (`…_unix_nano`) or as a time (`start_time`).
fn nanos<'a>(n: u64, time: bool) -> Value<'a> {
    match time {
        true => Value::Time(n as i64),
        false => Value::Int(n as i64),
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
    let bytes = |number| messages(body, number).last().unwrap_or_default();
    match field {
        Name => Value::Str(text(body, 5)),
        Kind => Value::Int(scalar(body, 6) as i32 as i64),
        KindText { deprecated } => Value::Str(kind_text(scalar(body, 6), *deprecated).into()),
        Status => Value::Composite("a span status"),
        StatusCode => {
            let code = messages(body, 15).fold(0, |c, s| match has_field(s, 3) {
                true => scalar(s, 3) as i32 as i64,
                false => c,
            });
            Value::Int(code)
        }
        StatusMessage => {
            let parts: Vec<&[u8]> = messages(body, 15).collect();
            Value::Str(last_text(&parts, 2))
        }
        Start { time } => nanos(scalar(body, 7), *time),
        End { time } => nanos(scalar(body, 8), *time),
        TraceId { hex } => id(bytes(1), 16, *hex),
        SpanId { hex } => id(bytes(2), 8, *hex),
        ParentSpanId { hex } => id(bytes(4), 8, *hex),
        TraceState => Value::Str(text(body, 3)),
        TraceStateKey(key) => {
            let state = std::str::from_utf8(bytes(3)).unwrap_or_default();
            match trace_state_lookup(state, key) {
                // Go's `TraceState.Get` gives "" for a key it lacks.
                Some(found) => Value::Str(Cow::Borrowed(found.unwrap_or_default())),
                None => Value::Nil,
            }
        }
        Flags => Value::Int(scalar(body, 16) as u32 as i64),
        Events => opaque(messages(body, 11).count(), "a span event"),
        Links => opaque(messages(body, 13).count(), "a span link"),
        DroppedEvents => Value::Int(scalar(body, 12) as u32 as i64),
        DroppedLinks => Value::Int(scalar(body, 14) as u32 as i64),
        IsRoot => Value::Bool(bytes(4).iter().all(|b| *b == 0)),
        Common(c) => merged(c, &[body], 9, 10),
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
