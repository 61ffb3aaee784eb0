//! The 0.2 batch resources (0.2.1's `profile-batch` in `profiles`). Item columns are read from
//! the items' encodings; nested levels (events, links, points, exemplars) from the decoded
//! items. Every index and list length is checked first, and a bad one traps naming the method,
//! the level and the value.

mod profiles;

use super::bindings::mathtrail::trailhead::{batch, types};
use super::{from_wit, level, to_wit_kv, value_column};
use crate::pdata::wire::{self, Value};
use crate::processors::wasm::attr_edits::AttrOp;
use crate::processors::wasm::batch::{LogWork, MetricWork, Scope, SpanWork, Working, work};
use crate::processors::wasm::encoded;
use crate::processors::wasm::host::{PluginState, find};
use crate::processors::wasm::items::{self, Level, PointRef};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use types::{KeyValue, StringColumn, ValueColumn};
use wasmtime::Result;
use wasmtime::component::Resource;

/// Traps unless every index is an entry of `level`.
fn check<S: Scope>(
    work: &mut Working<S>,
    method: &str,
    level: Level,
    indexes: &[u32],
) -> Result<()> {
    let count = work.count(level);
    match indexes.iter().find(|&&i| i as usize >= count) {
        Some(bad) => Err(wasmtime::format_err!(
            "{method}: index {bad} is out of range: level `{}` has {count} entries in this batch",
            level.as_str()
        )),
        None => Ok(()),
    }
}

/// Traps unless there is one value per index, or one for all.
fn lengths(method: &str, indexes: usize, values: usize) -> Result<()> {
    if values == indexes || values == 1 {
        return Ok(());
    }
    Err(wasmtime::format_err!(
        "{method}: {values} values for {indexes} indexes (give one per index, or one for all)"
    ))
}

/// Value `i` of a list checked by [`lengths`].
fn nth<T>(values: &[T], i: usize) -> &T {
    if values.len() == 1 {
        &values[0]
    } else {
        &values[i]
    }
}

fn string_column<'a>(strings: impl Iterator<Item = &'a [u8]>) -> StringColumn {
    let mut column = StringColumn {
        bytes: Vec::new(),
        ends: Vec::new(),
    };
    for s in strings {
        column.bytes.extend_from_slice(s);
        column.ends.push(column.bytes.len() as u32);
    }
    column
}

/// Appends an ID of `width` bytes, all zero when it is absent or of another length.
fn push_id(out: &mut Vec<u8>, id: &[u8], width: usize) {
    if id.len() == width {
        out.extend_from_slice(id);
    } else {
        out.resize(out.len() + width, 0);
    }
}

/// One value per item, read from its encoding.
fn item_column<S: Scope + Send + 'static, T>(
    work: &mut Working<S>,
    value: impl Fn(&[u8]) -> T,
) -> Vec<T> {
    work.encoded_items().map(|(_, item)| value(item)).collect()
}

fn ids_column<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    number: u64,
    width: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(work.count(Level::Item) * width);
    for (_, item) in work.encoded_items() {
        push_id(&mut out, encoded::bytes(item, number), width);
    }
    out
}

fn strings_column<S: Scope + Send + 'static>(work: &mut Working<S>, number: u64) -> StringColumn {
    string_column(
        work.encoded_items()
            .map(|(_, item)| encoded::bytes(item, number)),
    )
}

/// Visits every entry of a nested level: its decoded item and its place within it.
fn for_each_nested<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    level: Level,
    mut visit: impl FnMut(&S::Item, usize),
) {
    let entries = work.nested(level).to_vec();
    for (flat, within) in entries {
        if let Some(item) = work.item(flat) {
            visit(item, within as usize);
        }
    }
}

/// One value per entry of a nested level, from the decoded items.
fn nested_column<S: Scope + Send + 'static, T>(
    work: &mut Working<S>,
    level: Level,
    value: impl Fn(&S::Item, usize) -> T,
) -> Vec<T> {
    let mut out = Vec::new();
    for_each_nested(work, level, |item, within| out.push(value(item, within)));
    out
}

/// A string of every entry of a nested level, copied once, into the column itself.
fn nested_strings<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    level: Level,
    value: impl Fn(&S::Item, usize) -> &str,
) -> StringColumn {
    let mut column = string_column(std::iter::empty());
    for_each_nested(work, level, |item, within| {
        column
            .bytes
            .extend_from_slice(value(item, within).as_bytes());
        column.ends.push(column.bytes.len() as u32);
    });
    column
}

/// Sets a field on the given entries with `set(item, index within it or the item's own
/// place, value)` after checking indexes and lengths.
fn set_each<S: Scope + Send + 'static, T>(
    work: &mut Working<S>,
    method: &str,
    level: Level,
    indexes: &[u32],
    values: &[T],
    set: impl Fn(&mut S::Item, usize, &T),
) -> Result<()> {
    check(work, method, level, indexes)?;
    lengths(method, indexes.len(), values.len())?;
    for (i, &index) in indexes.iter().enumerate() {
        let (flat, within) = match level {
            Level::Item => (index, 0),
            nested => work.nested(nested)[index as usize],
        };
        if let Some(item) = work.item_mut(flat) {
            set(item, within as usize, nth(values, i));
        }
    }
    Ok(())
}

/// The attribute `key` of every entry of `level`.
fn attr_column<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    level: Level,
    key: &str,
) -> ValueColumn {
    if level == Level::Item {
        return value_column(encoded::pack(work.item_attribute(key)));
    }
    let mut packed = encoded::Packed::default();
    for index in 0..work.count(level) as u32 {
        let attributes = work.attributes(level, index);
        packed.push_decoded(find(attributes, key).and_then(|kv| kv.value.as_ref()));
    }
    value_column(packed)
}

fn set_attr<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    level: Level,
    indexes: &[u32],
    key: String,
    value: types::AnyValue,
) -> Result<()> {
    check(work, "set-attr", level, indexes)?;
    // Encoded once, shared by every entry.
    let op = AttrOp::set(key, &from_wit(value, "set-attr")?);
    for &index in indexes {
        work.edit_attributes(level, index, op.clone());
    }
    Ok(())
}

fn set_attrs<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    level: Level,
    index: u32,
    attrs: Vec<KeyValue>,
) -> Result<()> {
    check(work, "set-attrs", level, &[index])?;
    let mut ops = Vec::with_capacity(attrs.len());
    for kv in attrs {
        ops.push(AttrOp::set(kv.key, &from_wit(kv.value, "set-attrs")?));
    }
    for op in ops {
        work.edit_attributes(level, index, op);
    }
    Ok(())
}

fn remove_attrs<S: Scope + Send + 'static>(
    work: &mut Working<S>,
    level: Level,
    indexes: &[u32],
    keys: &[String],
) -> Result<()> {
    check(work, "remove-attrs", level, indexes)?;
    let op = AttrOp::remove(keys);
    for &index in indexes {
        work.edit_attributes(level, index, op.clone());
    }
    Ok(())
}

/// The methods every batch type has, the same for each.
macro_rules! common_methods {
    ($work:ty) => {
        fn count(&mut self, batch: Resource<$work>, l: types::Level) -> Result<u32> {
            Ok(work(&mut self.table, &batch).count(level(l)) as u32)
        }
        fn parents(&mut self, batch: Resource<$work>, l: types::Level) -> Result<Vec<u32>> {
            Ok(work(&mut self.table, &batch).parents(level(l)))
        }
        fn remove(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
            indexes: Vec<u32>,
        ) -> Result<()> {
            let work = work(&mut self.table, &batch);
            check(work, "remove", level(l), &indexes)?;
            work.remove(level(l), &indexes);
            Ok(())
        }
        fn attr_column(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
            key: String,
        ) -> Result<ValueColumn> {
            Ok(attr_column(work(&mut self.table, &batch), level(l), &key))
        }
        fn attrs(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
            index: u32,
        ) -> Result<Vec<KeyValue>> {
            let work = work(&mut self.table, &batch);
            check(work, "attrs", level(l), &[index])?;
            Ok(work
                .attributes(level(l), index)
                .iter()
                .map(to_wit_kv)
                .collect())
        }
        fn set_attr(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
            indexes: Vec<u32>,
            key: String,
            value: types::AnyValue,
        ) -> Result<()> {
            set_attr(
                work(&mut self.table, &batch),
                level(l),
                &indexes,
                key,
                value,
            )
        }
        fn set_attrs(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
            index: u32,
            attrs: Vec<KeyValue>,
        ) -> Result<()> {
            set_attrs(work(&mut self.table, &batch), level(l), index, attrs)
        }
        fn remove_attrs(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
            indexes: Vec<u32>,
            keys: Vec<String>,
        ) -> Result<()> {
            remove_attrs(work(&mut self.table, &batch), level(l), &indexes, &keys)
        }
        fn dropped_attrs_counts(
            &mut self,
            batch: Resource<$work>,
            l: types::Level,
        ) -> Result<Vec<u32>> {
            Ok(work(&mut self.table, &batch).dropped_attributes(level(l)))
        }
        fn schema_urls(&mut self, batch: Resource<$work>, l: types::Level) -> Result<StringColumn> {
            let work = work(&mut self.table, &batch);
            Ok(string_column(
                work.schema_urls(level(l)).into_iter().map(str::as_bytes),
            ))
        }
        fn scope_names(&mut self, batch: Resource<$work>) -> Result<StringColumn> {
            let scopes = work(&mut self.table, &batch).scope_names_and_versions();
            Ok(string_column(
                scopes.iter().map(|(name, _)| name.as_bytes()),
            ))
        }
        fn scope_versions(&mut self, batch: Resource<$work>) -> Result<StringColumn> {
            let scopes = work(&mut self.table, &batch).scope_names_and_versions();
            Ok(string_column(
                scopes.iter().map(|(_, version)| version.as_bytes()),
            ))
        }
        fn to_otlp(&mut self, batch: Resource<$work>) -> Result<Vec<u8>> {
            Ok(work(&mut self.table, &batch).encode().to_vec())
        }
        fn replace_from_otlp(
            &mut self,
            batch: Resource<$work>,
            otlp: Vec<u8>,
        ) -> Result<Result<(), String>> {
            Ok(work(&mut self.table, &batch).replace(otlp.into()))
        }
        fn drop(&mut self, _batch: Resource<$work>) -> Result<()> {
            // The host owns the batch and takes it back after the call.
            Ok(())
        }
    };
}

/// Field numbers of `Span`, `Span.Event`, `Span.Link` and `Status` that `encoded` does not name.
mod span {
    pub const TRACE_ID: u64 = 1;
    pub const SPAN_ID: u64 = 2;
    pub const TRACE_STATE: u64 = 3;
    pub const PARENT_SPAN_ID: u64 = 4;
    pub const START: u64 = 7;
    pub const END: u64 = 8;
    pub const DROPPED_EVENTS: u64 = 12;
    pub const DROPPED_LINKS: u64 = 14;
    pub const FLAGS: u64 = 16;
    pub const STATUS_MESSAGE: u64 = 2;
}

fn span_kind(kind: u64) -> types::SpanKind {
    use types::SpanKind as K;
    [
        K::Unspecified,
        K::Internal,
        K::Server,
        K::Client,
        K::Producer,
        K::Consumer,
    ]
    .get(kind as usize)
    .copied()
    .unwrap_or(K::Unspecified)
}

fn status_code(code: i32) -> types::StatusCode {
    use types::StatusCode as C;
    [C::Unset, C::Ok, C::Error]
        .get(code as usize)
        .copied()
        .unwrap_or(C::Unset)
}

/// Traps unless `level` is the item level or one of `nested`.
fn item_or(method: &str, level: Level, nested: Level) -> Result<()> {
    if level == Level::Item || level == nested {
        return Ok(());
    }
    Err(wasmtime::format_err!(
        "{method}: level `{}` has no such field (use `item` or `{}`)",
        level.as_str(),
        nested.as_str()
    ))
}

/// The trace IDs (16 bytes each) or span IDs (8) of every link, packed into one list.
fn link_ids(work: &mut SpanWork, trace: bool) -> Vec<u8> {
    let width = if trace { 16 } else { 8 };
    let mut out = Vec::new();
    for_each_nested(work, Level::Link, |span: &Span, within| {
        let link = &span.links[within];
        push_id(
            &mut out,
            if trace { &link.trace_id } else { &link.span_id },
            width,
        );
    });
    out
}

impl batch::HostSpanBatch for PluginState {
    common_methods!(SpanWork);

    fn names(&mut self, batch: Resource<SpanWork>, l: types::Level) -> Result<StringColumn> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("names", l, Level::Event)?;
        if l == Level::Item {
            return Ok(strings_column(work, encoded::SPAN_NAME));
        }
        Ok(nested_strings(work, l, |s: &Span, w| &s.events[w].name))
    }
    fn set_names(
        &mut self,
        batch: Resource<SpanWork>,
        l: types::Level,
        indexes: Vec<u32>,
        names: Vec<String>,
    ) -> Result<()> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("set-names", l, Level::Event)?;
        set_each(
            work,
            "set-names",
            l,
            &indexes,
            &names,
            |s: &mut Span, w, name| match l {
                Level::Item => s.name = name.clone(),
                _ => s.events[w].name = name.clone(),
            },
        )
    }
    fn trace_ids(&mut self, batch: Resource<SpanWork>, l: types::Level) -> Result<Vec<u8>> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("trace-ids", l, Level::Link)?;
        if l == Level::Item {
            return Ok(ids_column(work, span::TRACE_ID, 16));
        }
        Ok(link_ids(work, true))
    }
    fn span_ids(&mut self, batch: Resource<SpanWork>, l: types::Level) -> Result<Vec<u8>> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("span-ids", l, Level::Link)?;
        if l == Level::Item {
            return Ok(ids_column(work, span::SPAN_ID, 8));
        }
        Ok(link_ids(work, false))
    }
    fn parent_span_ids(&mut self, batch: Resource<SpanWork>) -> Result<Vec<u8>> {
        Ok(ids_column(
            work(&mut self.table, &batch),
            span::PARENT_SPAN_ID,
            8,
        ))
    }
    fn trace_states(&mut self, batch: Resource<SpanWork>, l: types::Level) -> Result<StringColumn> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("trace-states", l, Level::Link)?;
        if l == Level::Item {
            return Ok(strings_column(work, span::TRACE_STATE));
        }
        Ok(nested_strings(work, l, |s: &Span, w| {
            &s.links[w].trace_state
        }))
    }
    fn set_trace_states(
        &mut self,
        batch: Resource<SpanWork>,
        l: types::Level,
        indexes: Vec<u32>,
        states: Vec<String>,
    ) -> Result<()> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("set-trace-states", l, Level::Link)?;
        set_each(
            work,
            "set-trace-states",
            l,
            &indexes,
            &states,
            |s: &mut Span, w, state| match l {
                Level::Item => s.trace_state = state.clone(),
                _ => s.links[w].trace_state = state.clone(),
            },
        )
    }
    fn flags(&mut self, batch: Resource<SpanWork>, l: types::Level) -> Result<Vec<u32>> {
        let (work, l) = (work(&mut self.table, &batch), level(l));
        item_or("flags", l, Level::Link)?;
        if l == Level::Item {
            return Ok(item_column(work, |s| encoded::uint(s, span::FLAGS) as u32));
        }
        Ok(nested_column(work, l, |s: &Span, w| s.links[w].flags))
    }
    fn kinds(&mut self, batch: Resource<SpanWork>) -> Result<Vec<types::SpanKind>> {
        Ok(item_column(work(&mut self.table, &batch), |s| {
            span_kind(encoded::uint(s, encoded::SPAN_KIND))
        }))
    }
    fn set_kinds(
        &mut self,
        batch: Resource<SpanWork>,
        indexes: Vec<u32>,
        kinds: Vec<types::SpanKind>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-kinds",
            Level::Item,
            &indexes,
            &kinds,
            |s: &mut Span, _, kind| s.kind = *kind as i32,
        )
    }
    fn start_times(&mut self, batch: Resource<SpanWork>) -> Result<Vec<u64>> {
        Ok(item_column(work(&mut self.table, &batch), |s| {
            encoded::uint(s, span::START)
        }))
    }
    fn end_times(&mut self, batch: Resource<SpanWork>) -> Result<Vec<u64>> {
        Ok(item_column(work(&mut self.table, &batch), |s| {
            encoded::uint(s, span::END)
        }))
    }
    fn set_start_times(
        &mut self,
        batch: Resource<SpanWork>,
        indexes: Vec<u32>,
        times: Vec<u64>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-start-times",
            Level::Item,
            &indexes,
            &times,
            |s: &mut Span, _, t| s.start_time_unix_nano = *t,
        )
    }
    fn set_end_times(
        &mut self,
        batch: Resource<SpanWork>,
        indexes: Vec<u32>,
        times: Vec<u64>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-end-times",
            Level::Item,
            &indexes,
            &times,
            |s: &mut Span, _, t| s.end_time_unix_nano = *t,
        )
    }
    fn status_codes(&mut self, batch: Resource<SpanWork>) -> Result<Vec<types::StatusCode>> {
        Ok(item_column(work(&mut self.table, &batch), |s| {
            status_code(encoded::span_status_code(s))
        }))
    }
    fn status_messages(&mut self, batch: Resource<SpanWork>) -> Result<StringColumn> {
        let work = work(&mut self.table, &batch);
        Ok(string_column(work.encoded_items().map(|(_, s)| {
            encoded::bytes(
                encoded::bytes(s, encoded::SPAN_STATUS),
                span::STATUS_MESSAGE,
            )
        })))
    }
    fn set_status(
        &mut self,
        batch: Resource<SpanWork>,
        indexes: Vec<u32>,
        code: types::StatusCode,
        message: String,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-status",
            Level::Item,
            &indexes,
            &[()],
            |s: &mut Span, _, ()| {
                let status = s.status.get_or_insert_default();
                status.code = code as i32;
                status.message = message.clone();
            },
        )
    }
    fn dropped_events_counts(&mut self, batch: Resource<SpanWork>) -> Result<Vec<u32>> {
        Ok(item_column(work(&mut self.table, &batch), |s| {
            encoded::uint(s, span::DROPPED_EVENTS) as u32
        }))
    }
    fn dropped_links_counts(&mut self, batch: Resource<SpanWork>) -> Result<Vec<u32>> {
        Ok(item_column(work(&mut self.table, &batch), |s| {
            encoded::uint(s, span::DROPPED_LINKS) as u32
        }))
    }
    fn event_times(&mut self, batch: Resource<SpanWork>) -> Result<Vec<u64>> {
        let work = work(&mut self.table, &batch);
        Ok(nested_column(work, Level::Event, |s: &Span, w| {
            s.events[w].time_unix_nano
        }))
    }
    fn add_event(
        &mut self,
        batch: Resource<SpanWork>,
        index: u32,
        event: types::SpanEvent,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        check(work, "add-event", Level::Item, &[index])?;
        let attributes = wit_attributes(event.attributes, "add-event")?;
        work.add_nested(Level::Event, index, |s| {
            s.events
                .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                    time_unix_nano: event.time_unix_nano,
                    name: event.name,
                    attributes,
                    dropped_attributes_count: 0,
                });
            s.events.len() - 1
        });
        Ok(())
    }
    fn add_link(
        &mut self,
        batch: Resource<SpanWork>,
        index: u32,
        link: types::SpanLink,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        check(work, "add-link", Level::Item, &[index])?;
        if link.trace_id.len() != 16 || link.span_id.len() != 8 {
            return Err(wasmtime::format_err!(
                "add-link: a link needs a 16-byte trace ID and an 8-byte span ID, not {} and {}",
                link.trace_id.len(),
                link.span_id.len()
            ));
        }
        let attributes = wit_attributes(link.attributes, "add-link")?;
        work.add_nested(Level::Link, index, |s| {
            s.links
                .push(opentelemetry_proto::tonic::trace::v1::span::Link {
                    trace_id: link.trace_id,
                    span_id: link.span_id,
                    trace_state: link.trace_state,
                    attributes,
                    dropped_attributes_count: 0,
                    flags: link.flags,
                });
            s.links.len() - 1
        });
        Ok(())
    }
}

fn wit_attributes(
    attrs: Vec<KeyValue>,
    method: &str,
) -> Result<Vec<opentelemetry_proto::tonic::common::v1::KeyValue>> {
    attrs
        .into_iter()
        .map(|kv| {
            Ok(opentelemetry_proto::tonic::common::v1::KeyValue {
                key: kv.key,
                value: Some(from_wit(kv.value, method)?),
                ..Default::default()
            })
        })
        .collect()
}

/// Field numbers of `LogRecord` that `encoded` does not name.
mod log {
    pub const TIME: u64 = 1;
    pub const SEVERITY_TEXT: u64 = 3;
    pub const FLAGS: u64 = 8;
    pub const TRACE_ID: u64 = 9;
    pub const SPAN_ID: u64 = 10;
    pub const OBSERVED_TIME: u64 = 11;
    pub const EVENT_NAME: u64 = 12;
}

impl batch::HostLogBatch for PluginState {
    common_methods!(LogWork);

    fn times(&mut self, batch: Resource<LogWork>) -> Result<Vec<u64>> {
        Ok(item_column(work(&mut self.table, &batch), |r| {
            encoded::uint(r, log::TIME)
        }))
    }
    fn observed_times(&mut self, batch: Resource<LogWork>) -> Result<Vec<u64>> {
        Ok(item_column(work(&mut self.table, &batch), |r| {
            encoded::uint(r, log::OBSERVED_TIME)
        }))
    }
    fn set_times(
        &mut self,
        batch: Resource<LogWork>,
        indexes: Vec<u32>,
        times: Vec<u64>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-times",
            Level::Item,
            &indexes,
            &times,
            |r, _, t| r.time_unix_nano = *t,
        )
    }
    fn severity_numbers(&mut self, batch: Resource<LogWork>) -> Result<Vec<i32>> {
        Ok(item_column(work(&mut self.table, &batch), |r| {
            encoded::uint(r, encoded::LOG_SEVERITY_NUMBER) as i32
        }))
    }
    fn severity_texts(&mut self, batch: Resource<LogWork>) -> Result<StringColumn> {
        Ok(strings_column(
            work(&mut self.table, &batch),
            log::SEVERITY_TEXT,
        ))
    }
    fn set_severity(
        &mut self,
        batch: Resource<LogWork>,
        indexes: Vec<u32>,
        number: i32,
        text: String,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-severity",
            Level::Item,
            &indexes,
            &[()],
            |r, _, ()| {
                r.severity_number = number;
                r.severity_text = text.clone();
            },
        )
    }
    fn bodies(&mut self, batch: Resource<LogWork>) -> Result<ValueColumn> {
        let work = work(&mut self.table, &batch);
        let bodies = work
            .encoded_items()
            .map(|(_, r)| match wire::last(r, encoded::LOG_BODY) {
                Some(Value::Bytes(body)) => Some(body),
                _ => None,
            });
        Ok(value_column(encoded::pack(bodies)))
    }
    fn set_bodies(
        &mut self,
        batch: Resource<LogWork>,
        indexes: Vec<u32>,
        bodies: Vec<types::AnyValue>,
    ) -> Result<()> {
        let bodies = bodies
            .into_iter()
            .map(|b| from_wit(b, "set-bodies"))
            .collect::<Result<Vec<_>>>()?;
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-bodies",
            Level::Item,
            &indexes,
            &bodies,
            |r, _, body| r.body = Some(body.clone()),
        )
    }
    fn event_names(&mut self, batch: Resource<LogWork>) -> Result<StringColumn> {
        Ok(strings_column(
            work(&mut self.table, &batch),
            log::EVENT_NAME,
        ))
    }
    fn trace_ids(&mut self, batch: Resource<LogWork>) -> Result<Vec<u8>> {
        Ok(ids_column(work(&mut self.table, &batch), log::TRACE_ID, 16))
    }
    fn span_ids(&mut self, batch: Resource<LogWork>) -> Result<Vec<u8>> {
        Ok(ids_column(work(&mut self.table, &batch), log::SPAN_ID, 8))
    }
    fn flags(&mut self, batch: Resource<LogWork>) -> Result<Vec<u32>> {
        Ok(item_column(work(&mut self.table, &batch), |r| {
            encoded::uint(r, log::FLAGS) as u32
        }))
    }
}

/// Field numbers of `Metric` and its data arms.
mod metric {
    pub const DESCRIPTION: u64 = 2;
    pub const UNIT: u64 = 3;
    pub const SUM: u64 = 7;
    pub const TEMPORALITY: u64 = 2;
    pub const MONOTONIC: u64 = 3;
}

/// Whichever data arm the metric carries, with its field number.
fn data_arm(metric: &[u8]) -> Option<(u64, &[u8])> {
    wire::fields(metric)
        .filter_map(|(n, v, _)| match (n, v) {
            (5 | 7 | 9 | 10 | 11, Value::Bytes(b)) => Some((n, b)),
            _ => None,
        })
        .last()
}

fn metric_type(metric: &[u8]) -> types::MetricType {
    use types::MetricType as T;
    match data_arm(metric) {
        Some((5, _)) => T::Gauge,
        Some((7, _)) => T::Sum,
        Some((9, _)) => T::Histogram,
        Some((10, _)) => T::ExponentialHistogram,
        Some((11, _)) => T::Summary,
        _ => T::Empty,
    }
}

fn temporality(metric: &[u8]) -> types::Temporality {
    use types::Temporality as T;
    match data_arm(metric) {
        Some((7 | 9 | 10, data)) => match encoded::uint(data, metric::TEMPORALITY) {
            1 => T::Delta,
            2 => T::Cumulative,
            _ => T::Unspecified,
        },
        _ => T::Unspecified,
    }
}

/// One value per data point (or exemplar), in order, from the decoded metrics.
fn point_column<T>(work: &mut MetricWork, value: impl Fn(PointRef<'_>) -> T) -> Vec<T> {
    let mut out = Vec::new();
    work.for_each_decoded(|_, m| out.extend(items::points(m).into_iter().map(&value)));
    out
}

fn exemplar_column<T>(
    work: &mut MetricWork,
    value: impl Fn(&opentelemetry_proto::tonic::metrics::v1::Exemplar) -> T,
) -> Vec<T> {
    let mut out = Vec::new();
    work.for_each_decoded(|_, m| out.extend(items::exemplars(m).map(|(_, e)| value(e))));
    out
}

/// The trace IDs (16 bytes each) or span IDs (8) of every exemplar, packed into one list.
fn exemplar_ids(work: &mut MetricWork, trace: bool) -> Vec<u8> {
    let width = if trace { 16 } else { 8 };
    let mut out = Vec::new();
    work.for_each_decoded(|_, metric| {
        for (_, exemplar) in items::exemplars(metric) {
            let id = if trace {
                &exemplar.trace_id
            } else {
                &exemplar.span_id
            };
            push_id(&mut out, id, width);
        }
    });
    out
}

/// One point of the metric batch, checked.
fn point<T>(
    work: &mut MetricWork,
    method: &str,
    index: u32,
    read: impl Fn(PointRef<'_>) -> T,
) -> Result<T> {
    check(work, method, Level::Point, &[index])?;
    let (flat, within) = work.nested(Level::Point)[index as usize];
    let metric = work.item(flat).expect("a counted point's metric decodes");
    Ok(read(items::points(metric)[within as usize]))
}

fn number_value(point: PointRef<'_>, packed: &mut encoded::Packed) {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as V;
    let value = match point {
        PointRef::Number(p) => p.value.map(|v| match v {
            V::AsInt(i) => otlp_int(i),
            V::AsDouble(d) => otlp_double(d),
        }),
        _ => None,
    };
    packed.push_decoded(value.as_ref());
}

fn otlp_int(i: i64) -> opentelemetry_proto::tonic::common::v1::AnyValue {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    opentelemetry_proto::tonic::common::v1::AnyValue {
        value: Some(Value::IntValue(i)),
    }
}

fn otlp_double(d: f64) -> opentelemetry_proto::tonic::common::v1::AnyValue {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    opentelemetry_proto::tonic::common::v1::AnyValue {
        value: Some(Value::DoubleValue(d)),
    }
}

impl batch::HostMetricBatch for PluginState {
    common_methods!(MetricWork);

    fn names(&mut self, batch: Resource<MetricWork>) -> Result<StringColumn> {
        Ok(strings_column(
            work(&mut self.table, &batch),
            encoded::METRIC_NAME,
        ))
    }
    fn descriptions(&mut self, batch: Resource<MetricWork>) -> Result<StringColumn> {
        Ok(strings_column(
            work(&mut self.table, &batch),
            metric::DESCRIPTION,
        ))
    }
    fn units(&mut self, batch: Resource<MetricWork>) -> Result<StringColumn> {
        Ok(strings_column(work(&mut self.table, &batch), metric::UNIT))
    }
    fn set_names(
        &mut self,
        batch: Resource<MetricWork>,
        indexes: Vec<u32>,
        names: Vec<String>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-names",
            Level::Item,
            &indexes,
            &names,
            |m: &mut Metric, _, v| m.name = v.clone(),
        )
    }
    fn set_descriptions(
        &mut self,
        batch: Resource<MetricWork>,
        indexes: Vec<u32>,
        values: Vec<String>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-descriptions",
            Level::Item,
            &indexes,
            &values,
            |m: &mut Metric, _, v| m.description = v.clone(),
        )
    }
    fn set_units(
        &mut self,
        batch: Resource<MetricWork>,
        indexes: Vec<u32>,
        values: Vec<String>,
    ) -> Result<()> {
        let work = work(&mut self.table, &batch);
        set_each(
            work,
            "set-units",
            Level::Item,
            &indexes,
            &values,
            |m: &mut Metric, _, v| m.unit = v.clone(),
        )
    }
    fn types(&mut self, batch: Resource<MetricWork>) -> Result<Vec<types::MetricType>> {
        Ok(item_column(work(&mut self.table, &batch), metric_type))
    }
    fn temporalities(&mut self, batch: Resource<MetricWork>) -> Result<Vec<types::Temporality>> {
        Ok(item_column(work(&mut self.table, &batch), temporality))
    }
    fn monotonic(&mut self, batch: Resource<MetricWork>) -> Result<Vec<bool>> {
        Ok(item_column(
            work(&mut self.table, &batch),
            |m| match data_arm(m) {
                Some((metric::SUM, sum)) => encoded::uint(sum, metric::MONOTONIC) != 0,
                _ => false,
            },
        ))
    }
    fn start_times(&mut self, batch: Resource<MetricWork>) -> Result<Vec<u64>> {
        Ok(point_column(work(&mut self.table, &batch), |p| {
            p.start_time()
        }))
    }
    fn times(&mut self, batch: Resource<MetricWork>, l: types::Level) -> Result<Vec<u64>> {
        let work = work(&mut self.table, &batch);
        match level(l) {
            Level::Point => Ok(point_column(work, |p| p.time())),
            Level::Exemplar => Ok(exemplar_column(work, |e| e.time_unix_nano)),
            other => Err(no_field("times", other)),
        }
    }
    fn values(&mut self, batch: Resource<MetricWork>, l: types::Level) -> Result<ValueColumn> {
        use opentelemetry_proto::tonic::metrics::v1::exemplar::Value as E;
        let work = work(&mut self.table, &batch);
        let mut packed = encoded::Packed::default();
        match level(l) {
            Level::Point => {
                work.for_each_decoded(|_, m| {
                    items::points(m)
                        .into_iter()
                        .for_each(|p| number_value(p, &mut packed))
                });
            }
            Level::Exemplar => {
                for value in exemplar_column(work, |e| e.value) {
                    let value = value.map(|v| match v {
                        E::AsInt(i) => otlp_int(i),
                        E::AsDouble(d) => otlp_double(d),
                    });
                    packed.push_decoded(value.as_ref());
                }
            }
            other => return Err(no_field("values", other)),
        }
        Ok(value_column(packed))
    }
    fn counts(&mut self, batch: Resource<MetricWork>) -> Result<Vec<u64>> {
        Ok(point_column(work(&mut self.table, &batch), |p| p.count()))
    }
    fn sums(&mut self, batch: Resource<MetricWork>) -> Result<Vec<Option<f64>>> {
        Ok(point_column(work(&mut self.table, &batch), |p| p.sum()))
    }
    fn mins(&mut self, batch: Resource<MetricWork>) -> Result<Vec<Option<f64>>> {
        Ok(point_column(work(&mut self.table, &batch), |p| p.min()))
    }
    fn maxes(&mut self, batch: Resource<MetricWork>) -> Result<Vec<Option<f64>>> {
        Ok(point_column(work(&mut self.table, &batch), |p| p.max()))
    }
    fn flags(&mut self, batch: Resource<MetricWork>) -> Result<Vec<u32>> {
        Ok(point_column(work(&mut self.table, &batch), |p| p.flags()))
    }
    fn bucket_counts(&mut self, batch: Resource<MetricWork>, index: u32) -> Result<Vec<u64>> {
        point(
            work(&mut self.table, &batch),
            "bucket-counts",
            index,
            |p| match p {
                PointRef::Histogram(h) => h.bucket_counts.clone(),
                _ => Vec::new(),
            },
        )
    }
    fn explicit_bounds(&mut self, batch: Resource<MetricWork>, index: u32) -> Result<Vec<f64>> {
        point(
            work(&mut self.table, &batch),
            "explicit-bounds",
            index,
            |p| match p {
                PointRef::Histogram(h) => h.explicit_bounds.clone(),
                _ => Vec::new(),
            },
        )
    }
    fn exponential_buckets(
        &mut self,
        batch: Resource<MetricWork>,
        index: u32,
    ) -> Result<Option<types::ExponentialBuckets>> {
        point(
            work(&mut self.table, &batch),
            "exponential-buckets",
            index,
            |p| match p {
                PointRef::Exponential(e) => {
                    let side = |b: &Option<_>| {
                        let b: Option<&opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets> = b.as_ref();
                        types::Buckets {
                            offset: b.map_or(0, |b| b.offset),
                            counts: b.map_or_else(Vec::new, |b| b.bucket_counts.clone()),
                        }
                    };
                    Some(types::ExponentialBuckets {
                        scale: e.scale,
                        zero_count: e.zero_count,
                        zero_threshold: e.zero_threshold,
                        positive: side(&e.positive),
                        negative: side(&e.negative),
                    })
                }
                _ => None,
            },
        )
    }
    fn quantiles(
        &mut self,
        batch: Resource<MetricWork>,
        index: u32,
    ) -> Result<Vec<types::Quantile>> {
        point(
            work(&mut self.table, &batch),
            "quantiles",
            index,
            |p| match p {
                PointRef::Summary(s) => s
                    .quantile_values
                    .iter()
                    .map(|q| types::Quantile {
                        quantile: q.quantile,
                        value: q.value,
                    })
                    .collect(),
                _ => Vec::new(),
            },
        )
    }
    fn exemplar_trace_ids(&mut self, batch: Resource<MetricWork>) -> Result<Vec<u8>> {
        Ok(exemplar_ids(work(&mut self.table, &batch), true))
    }
    fn exemplar_span_ids(&mut self, batch: Resource<MetricWork>) -> Result<Vec<u8>> {
        Ok(exemplar_ids(work(&mut self.table, &batch), false))
    }
}

fn no_field(method: &str, level: Level) -> wasmtime::Error {
    wasmtime::format_err!(
        "{method}: level `{}` has no such field (use `point` or `exemplar`)",
        level.as_str()
    )
}
