//! The signal-specific batch methods over the in-memory request, with the host's checks.

use super::tree::{Item, PointRef, exemplars, points};
use super::{NativeBatch, State, convert, lengths, nth, otlp};
use crate::{
    AnyValue, ExponentialBuckets, Level, LogBatch, MetricBatch, MetricType, Quantile, SpanBatch,
    SpanEvent, SpanKind, SpanLink, StatusCode, StringColumn, Temporality, ValueColumn,
};
use otlp::common::v1::InstrumentationScope;
use otlp::logs::v1::LogRecord;
use otlp::metrics::v1::{Metric, metric::Data};
use otlp::trace::v1::{Span, span};

/// One string per scope (empty where the scope is absent).
pub(super) fn scope_column<I: Item>(
    state: &State<I>,
    field: impl Fn(&InstrumentationScope) -> &String,
) -> StringColumn {
    let scopes = state
        .index
        .scopes
        .iter()
        .map(|&(r, s)| &state.resources[r].scopes[s].scope);
    StringColumn::from_strs(scopes.map(|scope| scope.as_ref().map_or("", |s| field(s).as_str())))
}

/// The flat point index of every exemplar.
pub(super) fn exemplar_points<I: Item>(state: &State<I>) -> Vec<u32> {
    let mut first_point = vec![0; state.index.items.len()];
    for (point, &(flat, within)) in state.nested(Level::Point).iter().enumerate().rev() {
        if within == 0 {
            first_point[flat as usize] = point as u32;
        }
    }
    let exemplars = state.nested(Level::Exemplar).iter();
    exemplars
        .map(|&(flat, within)| {
            first_point[flat as usize] + state.item(flat).exemplar_point(within as usize) as u32
        })
        .collect()
}

/// One value per item.
fn item_column<I: Item, T>(batch: &NativeBatch<I>, value: impl Fn(&I) -> T) -> Vec<T> {
    let state = batch.state();
    (0..state.index.items.len() as u32)
        .map(|flat| value(state.item(flat)))
        .collect()
}

/// One value per entry of a nested level.
fn nested_column<I: Item, T>(
    batch: &NativeBatch<I>,
    level: Level,
    value: impl Fn(&I, usize) -> T,
) -> Vec<T> {
    let state = batch.state();
    state
        .nested(level)
        .iter()
        .map(|&(flat, within)| value(state.item(flat), within as usize))
        .collect()
}

/// Sets a field of the given entries after checking indexes and lengths: `set(item, index
/// within it, value)`, where the index is 0 at the item level.
fn set_each<I: Item, T>(
    batch: &NativeBatch<I>,
    method: &str,
    level: Level,
    indexes: &[u32],
    values: &[T],
    set: impl Fn(&mut I, usize, &T),
) {
    let mut state = batch.state_mut();
    state.check(method, level, indexes);
    lengths(method, indexes.len(), values.len());
    for (i, &index) in indexes.iter().enumerate() {
        let (flat, within) = match level {
            Level::Item => (index, 0),
            nested => state.nested(nested)[index as usize],
        };
        set(state.item_mut(flat), within as usize, nth(values, i));
    }
}

/// Panics, as the host traps, unless `level` is the item level or `nested`.
fn item_or(method: &str, level: Level, nested: Level) {
    if level != Level::Item && level != nested {
        panic!(
            "{method}: level `{}` has no such field (use `item` or `{}`)",
            level.as_str(),
            nested.as_str()
        );
    }
}

fn packed_ids<'a>(ids: impl Iterator<Item = &'a Vec<u8>>, width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    ids.for_each(|id| convert::push_id(&mut out, id, width));
    out
}

fn owned_strings(values: Vec<String>) -> StringColumn {
    StringColumn::from_strs(values.iter().map(String::as_str))
}

fn span_kind(kind: i32) -> SpanKind {
    use SpanKind as K;
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

fn status_code(code: i32) -> StatusCode {
    [StatusCode::Unset, StatusCode::Ok, StatusCode::Error]
        .get(code as usize)
        .copied()
        .unwrap_or(StatusCode::Unset)
}

impl SpanBatch for NativeBatch<Span> {
    fn names(&self, level: Level) -> StringColumn {
        item_or("names", level, Level::Event);
        match level {
            Level::Item => owned_strings(item_column(self, |s| s.name.clone())),
            _ => owned_strings(nested_column(self, level, |s, w| s.events[w].name.clone())),
        }
    }
    fn set_names(&self, level: Level, indexes: &[u32], names: &[String]) {
        item_or("set-names", level, Level::Event);
        set_each(
            self,
            "set-names",
            level,
            indexes,
            names,
            |s, w, name| match level {
                Level::Item => s.name = name.clone(),
                _ => s.events[w].name = name.clone(),
            },
        )
    }
    fn trace_ids(&self, level: Level) -> Vec<u8> {
        item_or("trace-ids", level, Level::Link);
        match level {
            Level::Item => packed_ids(item_column(self, |s| s.trace_id.clone()).iter(), 16),
            _ => packed_ids(
                nested_column(self, level, |s, w| s.links[w].trace_id.clone()).iter(),
                16,
            ),
        }
    }
    fn span_ids(&self, level: Level) -> Vec<u8> {
        item_or("span-ids", level, Level::Link);
        match level {
            Level::Item => packed_ids(item_column(self, |s| s.span_id.clone()).iter(), 8),
            _ => packed_ids(
                nested_column(self, level, |s, w| s.links[w].span_id.clone()).iter(),
                8,
            ),
        }
    }
    fn parent_span_ids(&self) -> Vec<u8> {
        packed_ids(item_column(self, |s| s.parent_span_id.clone()).iter(), 8)
    }
    fn trace_states(&self, level: Level) -> StringColumn {
        item_or("trace-states", level, Level::Link);
        match level {
            Level::Item => owned_strings(item_column(self, |s| s.trace_state.clone())),
            _ => owned_strings(nested_column(self, level, |s, w| {
                s.links[w].trace_state.clone()
            })),
        }
    }
    fn set_trace_states(&self, level: Level, indexes: &[u32], states: &[String]) {
        item_or("set-trace-states", level, Level::Link);
        set_each(
            self,
            "set-trace-states",
            level,
            indexes,
            states,
            |s, w, state| match level {
                Level::Item => s.trace_state = state.clone(),
                _ => s.links[w].trace_state = state.clone(),
            },
        )
    }
    fn flags(&self, level: Level) -> Vec<u32> {
        item_or("flags", level, Level::Link);
        match level {
            Level::Item => item_column(self, |s| s.flags),
            _ => nested_column(self, level, |s, w| s.links[w].flags),
        }
    }
    fn kinds(&self) -> Vec<SpanKind> {
        item_column(self, |s| span_kind(s.kind))
    }
    fn set_kinds(&self, indexes: &[u32], kinds: &[SpanKind]) {
        set_each(self, "set-kinds", Level::Item, indexes, kinds, |s, _, k| {
            s.kind = *k as i32
        })
    }
    fn start_times(&self) -> Vec<u64> {
        item_column(self, |s| s.start_time_unix_nano)
    }
    fn end_times(&self) -> Vec<u64> {
        item_column(self, |s| s.end_time_unix_nano)
    }
    fn set_start_times(&self, indexes: &[u32], times: &[u64]) {
        set_each(
            self,
            "set-start-times",
            Level::Item,
            indexes,
            times,
            |s, _, t| s.start_time_unix_nano = *t,
        )
    }
    fn set_end_times(&self, indexes: &[u32], times: &[u64]) {
        set_each(
            self,
            "set-end-times",
            Level::Item,
            indexes,
            times,
            |s, _, t| s.end_time_unix_nano = *t,
        )
    }
    fn status_codes(&self) -> Vec<StatusCode> {
        item_column(self, |s| {
            status_code(s.status.as_ref().map_or(0, |st| st.code))
        })
    }
    fn status_messages(&self) -> StringColumn {
        owned_strings(item_column(self, |s| {
            s.status
                .as_ref()
                .map(|st| st.message.clone())
                .unwrap_or_default()
        }))
    }
    fn set_status(&self, indexes: &[u32], code: StatusCode, message: &str) {
        set_each(
            self,
            "set-status",
            Level::Item,
            indexes,
            &[()],
            |s, _, ()| {
                let status = s.status.get_or_insert_default();
                status.code = code as i32;
                status.message = message.into();
            },
        )
    }
    fn dropped_events_counts(&self) -> Vec<u32> {
        item_column(self, |s| s.dropped_events_count)
    }
    fn dropped_links_counts(&self) -> Vec<u32> {
        item_column(self, |s| s.dropped_links_count)
    }
    fn event_times(&self) -> Vec<u64> {
        nested_column(self, Level::Event, |s, w| s.events[w].time_unix_nano)
    }
    fn add_event(&self, index: u32, event: &SpanEvent) {
        let attributes = convert::attrs_to_otlp(&event.attributes, "add-event");
        let mut state = self.state_mut();
        state.check("add-event", Level::Item, &[index]);
        let span = state.item_mut(index);
        span.events.push(span::Event {
            time_unix_nano: event.time_unix_nano,
            name: event.name.clone(),
            attributes,
            dropped_attributes_count: 0,
        });
        let within = span.events.len() as u32 - 1;
        state.index.nested[0].push((index, within));
    }
    fn add_link(&self, index: u32, link: &SpanLink) {
        if link.trace_id.len() != 16 || link.span_id.len() != 8 {
            panic!(
                "add-link: a link needs a 16-byte trace ID and an 8-byte span ID, not {} and {}",
                link.trace_id.len(),
                link.span_id.len()
            );
        }
        let attributes = convert::attrs_to_otlp(&link.attributes, "add-link");
        let mut state = self.state_mut();
        state.check("add-link", Level::Item, &[index]);
        let span = state.item_mut(index);
        span.links.push(span::Link {
            trace_id: link.trace_id.clone(),
            span_id: link.span_id.clone(),
            trace_state: link.trace_state.clone(),
            attributes,
            dropped_attributes_count: 0,
            flags: link.flags,
        });
        let within = span.links.len() as u32 - 1;
        state.index.nested[1].push((index, within));
    }
}

impl LogBatch for NativeBatch<LogRecord> {
    fn times(&self) -> Vec<u64> {
        item_column(self, |r| r.time_unix_nano)
    }
    fn observed_times(&self) -> Vec<u64> {
        item_column(self, |r| r.observed_time_unix_nano)
    }
    fn set_times(&self, indexes: &[u32], times: &[u64]) {
        set_each(self, "set-times", Level::Item, indexes, times, |r, _, t| {
            r.time_unix_nano = *t
        })
    }
    fn severity_numbers(&self) -> Vec<i32> {
        item_column(self, |r| r.severity_number)
    }
    fn severity_texts(&self) -> StringColumn {
        owned_strings(item_column(self, |r| r.severity_text.clone()))
    }
    fn set_severity(&self, indexes: &[u32], number: i32, text: &str) {
        set_each(
            self,
            "set-severity",
            Level::Item,
            indexes,
            &[()],
            |r, _, ()| {
                r.severity_number = number;
                r.severity_text = text.into();
            },
        )
    }
    fn bodies(&self) -> ValueColumn {
        let bodies = item_column(self, |r| r.body.clone());
        convert::pack(bodies.iter().map(Option::as_ref))
    }
    fn set_bodies(&self, indexes: &[u32], bodies: &[AnyValue]) {
        let bodies: Vec<_> = bodies
            .iter()
            .map(|b| convert::to_otlp(b, "set-bodies"))
            .collect();
        set_each(
            self,
            "set-bodies",
            Level::Item,
            indexes,
            &bodies,
            |r, _, body| r.body = Some(body.clone()),
        )
    }
    fn event_names(&self) -> StringColumn {
        owned_strings(item_column(self, |r| r.event_name.clone()))
    }
    fn trace_ids(&self) -> Vec<u8> {
        packed_ids(item_column(self, |r| r.trace_id.clone()).iter(), 16)
    }
    fn span_ids(&self) -> Vec<u8> {
        packed_ids(item_column(self, |r| r.span_id.clone()).iter(), 8)
    }
    fn flags(&self) -> Vec<u32> {
        item_column(self, |r| r.flags)
    }
}

/// One value per data point, in order.
fn point_column<T>(batch: &NativeBatch<Metric>, value: impl Fn(PointRef<'_>) -> T) -> Vec<T> {
    let per_metric = item_column(batch, |m| {
        points(m).into_iter().map(&value).collect::<Vec<_>>()
    });
    per_metric.into_iter().flatten().collect()
}

/// One value per exemplar, in order.
fn exemplar_column<T>(
    batch: &NativeBatch<Metric>,
    value: impl Fn(&otlp::metrics::v1::Exemplar) -> T,
) -> Vec<T> {
    let per_metric = item_column(batch, |m| {
        exemplars(m).map(|(_, e)| value(e)).collect::<Vec<_>>()
    });
    per_metric.into_iter().flatten().collect()
}

/// Reads one point, checked.
fn point<T>(
    batch: &NativeBatch<Metric>,
    method: &str,
    index: u32,
    read: impl Fn(PointRef<'_>) -> T,
) -> T {
    let state = batch.state();
    state.check(method, Level::Point, &[index]);
    let (flat, within) = state.nested(Level::Point)[index as usize];
    read(points(state.item(flat))[within as usize])
}

fn no_point_field(method: &str, level: Level) -> ! {
    panic!(
        "{method}: level `{}` has no such field (use `point` or `exemplar`)",
        level.as_str()
    )
}

/// A point's common fields, whatever its type.
macro_rules! each_point {
    ($point:expr, $p:ident => $body:expr) => {
        match $point {
            PointRef::Number($p) => $body,
            PointRef::Histogram($p) => $body,
            PointRef::Exponential($p) => $body,
            PointRef::Summary($p) => $body,
        }
    };
}

fn metric_type(metric: &Metric) -> MetricType {
    match metric.data {
        Some(Data::Gauge(_)) => MetricType::Gauge,
        Some(Data::Sum(_)) => MetricType::Sum,
        Some(Data::Histogram(_)) => MetricType::Histogram,
        Some(Data::ExponentialHistogram(_)) => MetricType::ExponentialHistogram,
        Some(Data::Summary(_)) => MetricType::Summary,
        None => MetricType::Empty,
    }
}

fn temporality(metric: &Metric) -> Temporality {
    let value = match &metric.data {
        Some(Data::Sum(d)) => d.aggregation_temporality,
        Some(Data::Histogram(d)) => d.aggregation_temporality,
        Some(Data::ExponentialHistogram(d)) => d.aggregation_temporality,
        _ => 0,
    };
    match value {
        1 => Temporality::Delta,
        2 => Temporality::Cumulative,
        _ => Temporality::Unspecified,
    }
}

fn set_metric_field(
    batch: &NativeBatch<Metric>,
    method: &str,
    indexes: &[u32],
    values: &[String],
    field: fn(&mut Metric) -> &mut String,
) {
    set_each(batch, method, Level::Item, indexes, values, |m, _, v| {
        *field(m) = v.clone()
    })
}

fn number_value(point: PointRef<'_>) -> Option<otlp::common::v1::AnyValue> {
    use otlp::metrics::v1::number_data_point::Value as V;
    match point {
        PointRef::Number(p) => p.value.map(|v| match v {
            V::AsInt(i) => convert::int(i),
            V::AsDouble(d) => convert::double(d),
        }),
        _ => None,
    }
}

impl MetricBatch for NativeBatch<Metric> {
    fn names(&self) -> StringColumn {
        owned_strings(item_column(self, |m| m.name.clone()))
    }
    fn descriptions(&self) -> StringColumn {
        owned_strings(item_column(self, |m| m.description.clone()))
    }
    fn units(&self) -> StringColumn {
        owned_strings(item_column(self, |m| m.unit.clone()))
    }
    fn set_names(&self, indexes: &[u32], names: &[String]) {
        set_metric_field(self, "set-names", indexes, names, |m| &mut m.name)
    }
    fn set_descriptions(&self, indexes: &[u32], descriptions: &[String]) {
        set_metric_field(self, "set-descriptions", indexes, descriptions, |m| {
            &mut m.description
        })
    }
    fn set_units(&self, indexes: &[u32], units: &[String]) {
        set_metric_field(self, "set-units", indexes, units, |m| &mut m.unit)
    }
    fn types(&self) -> Vec<MetricType> {
        item_column(self, metric_type)
    }
    fn temporalities(&self) -> Vec<Temporality> {
        item_column(self, temporality)
    }
    fn monotonic(&self) -> Vec<bool> {
        item_column(
            self,
            |m| matches!(&m.data, Some(Data::Sum(s)) if s.is_monotonic),
        )
    }
    fn start_times(&self) -> Vec<u64> {
        point_column(self, |p| each_point!(p, p => p.start_time_unix_nano))
    }
    fn times(&self, level: Level) -> Vec<u64> {
        match level {
            Level::Point => point_column(self, |p| each_point!(p, p => p.time_unix_nano)),
            Level::Exemplar => exemplar_column(self, |e| e.time_unix_nano),
            other => no_point_field("times", other),
        }
    }
    fn values(&self, level: Level) -> ValueColumn {
        use otlp::metrics::v1::exemplar::Value as E;
        let values = match level {
            Level::Point => point_column(self, number_value),
            Level::Exemplar => exemplar_column(self, |e| {
                e.value.map(|v| match v {
                    E::AsInt(i) => convert::int(i),
                    E::AsDouble(d) => convert::double(d),
                })
            }),
            other => no_point_field("values", other),
        };
        convert::pack(values.iter().map(Option::as_ref))
    }
    fn counts(&self) -> Vec<u64> {
        point_column(self, |p| match p {
            PointRef::Number(_) => 0,
            PointRef::Histogram(h) => h.count,
            PointRef::Exponential(e) => e.count,
            PointRef::Summary(s) => s.count,
        })
    }
    fn sums(&self) -> Vec<Option<f64>> {
        point_column(self, |p| match p {
            PointRef::Number(_) => None,
            PointRef::Histogram(h) => h.sum,
            PointRef::Exponential(e) => e.sum,
            PointRef::Summary(s) => Some(s.sum),
        })
    }
    fn mins(&self) -> Vec<Option<f64>> {
        point_column(self, |p| match p {
            PointRef::Histogram(h) => h.min,
            PointRef::Exponential(e) => e.min,
            _ => None,
        })
    }
    fn maxes(&self) -> Vec<Option<f64>> {
        point_column(self, |p| match p {
            PointRef::Histogram(h) => h.max,
            PointRef::Exponential(e) => e.max,
            _ => None,
        })
    }
    fn flags(&self) -> Vec<u32> {
        point_column(self, |p| each_point!(p, p => p.flags))
    }
    fn bucket_counts(&self, index: u32) -> Vec<u64> {
        point(self, "bucket-counts", index, |p| match p {
            PointRef::Histogram(h) => h.bucket_counts.clone(),
            _ => Vec::new(),
        })
    }
    fn explicit_bounds(&self, index: u32) -> Vec<f64> {
        point(self, "explicit-bounds", index, |p| match p {
            PointRef::Histogram(h) => h.explicit_bounds.clone(),
            _ => Vec::new(),
        })
    }
    fn exponential_buckets(&self, index: u32) -> Option<ExponentialBuckets> {
        use otlp::metrics::v1::exponential_histogram_data_point::Buckets;
        let side = |b: &Option<Buckets>| crate::Buckets {
            offset: b.as_ref().map_or(0, |b| b.offset),
            counts: b
                .as_ref()
                .map_or_else(Vec::new, |b| b.bucket_counts.clone()),
        };
        point(self, "exponential-buckets", index, |p| match p {
            PointRef::Exponential(e) => Some(ExponentialBuckets {
                scale: e.scale,
                zero_count: e.zero_count,
                zero_threshold: e.zero_threshold,
                positive: side(&e.positive),
                negative: side(&e.negative),
            }),
            _ => None,
        })
    }
    fn quantiles(&self, index: u32) -> Vec<Quantile> {
        point(self, "quantiles", index, |p| match p {
            PointRef::Summary(s) => s
                .quantile_values
                .iter()
                .map(|q| Quantile {
                    quantile: q.quantile,
                    value: q.value,
                })
                .collect(),
            _ => Vec::new(),
        })
    }
    fn exemplar_trace_ids(&self) -> Vec<u8> {
        packed_ids(exemplar_column(self, |e| e.trace_id.clone()).iter(), 16)
    }
    fn exemplar_span_ids(&self) -> Vec<u8> {
        packed_ids(exemplar_column(self, |e| e.span_id.clone()).iter(), 8)
    }
}
