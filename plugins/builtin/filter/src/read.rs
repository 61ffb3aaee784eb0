//! Each [`Field`] read from the 0.2 batch: one host call per field and level (a packed
//! column), and per entry only for what the batch keeps per entry (whole attribute maps,
//! histogram buckets, quantiles). Metric `metadata`, which has no column, is the one field
//! read from the batch's OTLP encoding.
//!
//! Values follow the collector's getters: a data point's `value_int` is nil on a histogram and
//! 0 on a double gauge, `aggregation_temporality` is nil on a gauge, and so on.

use crate::paths::Field;
use crate::table::{Raw, owned_value};
use std::rc::Rc;
use trailhead_ottl::{Map, Value, pb};
use trailhead_plugin::{AnyValue, Batch, Level, LogBatch, MetricBatch, MetricType, SpanBatch};
use trailhead_plugin::{ExponentialBuckets, SpanKind, ValueKind};

/// A field every level has: attributes, dropped counts, schema URLs, scope names, the cache.
pub fn common<B: Batch>(b: &B, field: &Field, level: Level) -> Option<Raw> {
    Some(match field {
        Field::Attribute(key) => Raw::Values(b.attr_column(level, key)),
        Field::Attributes => Raw::Owned(maps(b, level)),
        Field::DroppedAttrs => ints(b.dropped_attrs_counts(level)),
        Field::SchemaUrl => Raw::Strings(b.schema_urls(level)),
        Field::ScopeName => Raw::Strings(b.scope_names()),
        Field::ScopeVersion => Raw::Strings(b.scope_versions()),
        Field::Cache => Raw::Owned(vec![Value::Map(Rc::default()); b.count(level) as usize]),
        _ => return None,
    })
}

/// Every entry's attributes as one map.
fn maps<B: Batch>(b: &B, level: Level) -> Vec<Value<'static>> {
    let map = |i| -> Map {
        let attrs = b.attrs(level, i).into_iter();
        attrs.map(|kv| (kv.key, any_value(kv.value))).collect()
    };
    (0..b.count(level))
        .map(|i| Value::Map(Rc::new(map(i))))
        .collect()
}

/// Every item's attributes from one `to_otlp` (`attributes` is the item's field number: 9
/// for a span, 6 for a log record), faster than an `attrs` call per item, as transform reads
/// them; per item where the encoding does not decode.
fn item_maps<B: Batch>(b: &B, attributes: u64) -> Raw {
    let items = b.count(Level::Item) as usize;
    match pb::item_attributes(&b.to_otlp(), attributes) {
        Ok(all) if all.len() == items => {
            Raw::Owned(all.into_iter().map(|m| Value::Map(Rc::new(m))).collect())
        }
        _ => Raw::Owned(maps(b, Level::Item)),
    }
}

fn any_value(v: AnyValue) -> Value<'static> {
    match v {
        AnyValue::Str(s) => Value::Str(s.into()),
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::Int(i) => Value::Int(i),
        AnyValue::Double(d) => Value::Double(d),
        AnyValue::Bytes(b) => Value::Bytes(b.into()),
        AnyValue::Array(b) => pb::decode_list(&b).map_or(Value::Nil, |l| Value::List(Rc::new(l))),
        AnyValue::Kvlist(b) => pb::decode_map(&b).map_or(Value::Nil, |m| Value::Map(Rc::new(m))),
    }
}

fn ints<T: Into<i64>>(v: Vec<T>) -> Raw {
    Raw::Ints(v.into_iter().map(Into::into).collect())
}

/// Times as nanoseconds (`…_unix_nano`, an int) or as a time (`start_time`).
fn times(v: Vec<u64>, time: bool) -> Raw {
    match time {
        true => Raw::Owned(v.into_iter().map(|t| Value::Time(t as i64)).collect()),
        false => Raw::times(v),
    }
}

/// Slices whose entries no condition can reach (the collector refuses `events[0]` too):
/// lists of that many opaque entries, so `Len(events)` counts them and `!= nil` holds; nil
/// where the entry has no such slice.
fn counted(counts: impl IntoIterator<Item = Option<usize>>, what: &'static str) -> Raw {
    let list = |n| Value::List(Rc::new(vec![Value::Composite(what); n]));
    Raw::Owned(
        counts
            .into_iter()
            .map(|n| n.map_or(Value::Nil, list))
            .collect(),
    )
}

/// How many children (`parents` lists each child's parent) each of `count` parents has.
fn children(parents: &[u32], count: u32) -> Vec<Option<usize>> {
    let mut counts = vec![0; count as usize];
    for &p in parents {
        counts[p as usize] += 1;
    }
    counts.into_iter().map(Some).collect()
}

/// A span's (`item`) or span event's (`event`) own field.
pub fn span<B: SpanBatch>(b: &B, field: &Field, level: Level) -> Raw {
    if level == Level::Item && *field == Field::Attributes {
        return item_maps(b, 9);
    }
    if let Some(raw) = common(b, field, level) {
        return raw;
    }
    let spans = b.count(Level::Item);
    match field {
        Field::Name => Raw::Strings(b.names(level)),
        Field::Kind => Raw::Ints(b.kinds().into_iter().map(|k| k as i64).collect()),
        Field::KindText { deprecated } => {
            let text = |k| Value::Str(kind_text(k, *deprecated).into());
            Raw::Owned(b.kinds().into_iter().map(text).collect())
        }
        Field::Status => Raw::Owned(vec![Value::Composite("a span status"); spans as usize]),
        Field::StatusCode => Raw::Ints(b.status_codes().into_iter().map(|c| c as i64).collect()),
        Field::StatusMessage => Raw::Strings(b.status_messages()),
        Field::Start { time } => times(b.start_times(), *time),
        Field::End { time } => times(b.end_times(), *time),
        Field::Time { time } => times(b.event_times(), *time),
        Field::TraceId { hex } => Raw::ids(b.trace_ids(level), 16, *hex),
        Field::SpanId { hex } => Raw::ids(b.span_ids(level), 8, *hex),
        Field::ParentSpanId { hex } => Raw::ids(b.parent_span_ids(), 8, *hex),
        Field::TraceState => Raw::Strings(b.trace_states(Level::Item)),
        Field::TraceStateKey(key) => {
            let states = b.trace_states(Level::Item);
            let member = |s| {
                crate::tracestate::get(s, key)
                    .map_or(Value::Nil, |v| Value::Str(v.to_string().into()))
            };
            Raw::Owned(states.iter().map(member).collect())
        }
        Field::Flags => ints(b.flags(Level::Item)),
        Field::DroppedEvents => ints(b.dropped_events_counts()),
        Field::DroppedLinks => ints(b.dropped_links_counts()),
        Field::Events => counted(children(&b.parents(Level::Event), spans), "a span event"),
        Field::Links => counted(children(&b.parents(Level::Link), spans), "a span link"),
        Field::IsRootSpan => {
            let parents = b.parent_span_ids();
            let root = |id: &[u8]| Value::Bool(id.iter().all(|&byte| byte == 0));
            Raw::Owned(parents.chunks(8).map(root).collect())
        }
        _ => Raw::Nil,
    }
}

/// pdata's `SpanKind.String()`, or the traceutil name `kind.deprecated_string` reads.
fn kind_text(kind: SpanKind, deprecated: bool) -> &'static str {
    let (short, long) = match kind {
        SpanKind::Unspecified => ("Unspecified", "SPAN_KIND_UNSPECIFIED"),
        SpanKind::Internal => ("Internal", "SPAN_KIND_INTERNAL"),
        SpanKind::Server => ("Server", "SPAN_KIND_SERVER"),
        SpanKind::Client => ("Client", "SPAN_KIND_CLIENT"),
        SpanKind::Producer => ("Producer", "SPAN_KIND_PRODUCER"),
        SpanKind::Consumer => ("Consumer", "SPAN_KIND_CONSUMER"),
    };
    if deprecated { long } else { short }
}

/// A log record's own field.
pub fn log<B: LogBatch>(b: &B, field: &Field) -> Raw {
    if *field == Field::Attributes {
        return item_maps(b, 6);
    }
    if let Some(raw) = common(b, field, Level::Item) {
        return raw;
    }
    match field {
        Field::SeverityNumber => ints(b.severity_numbers()),
        Field::SeverityText => Raw::Strings(b.severity_texts()),
        Field::Body => Raw::Values(b.bodies()),
        Field::BodyIndexed => {
            // The collector indexes only map and list bodies: an empty one fails too.
            let bodies = b.bodies();
            let body = |i| match owned_value(&bodies, i) {
                Value::Nil => Value::Composite("an empty body"),
                v => v,
            };
            Raw::Owned((0..bodies.kinds.len()).map(body).collect())
        }
        Field::BodyString => {
            let bodies = b.bodies();
            let text = |i| Value::Str(crate::text::as_string(&owned_value(&bodies, i)).into());
            Raw::Owned((0..bodies.kinds.len()).map(text).collect())
        }
        Field::Time { time } => times(b.times(), *time),
        Field::ObservedTime { time } => times(b.observed_times(), *time),
        Field::TraceId { hex } => Raw::ids(b.trace_ids(), 16, *hex),
        Field::SpanId { hex } => Raw::ids(b.span_ids(), 8, *hex),
        Field::Flags => ints(b.flags()),
        Field::EventName => Raw::Strings(b.event_names()),
        _ => Raw::Nil,
    }
}

/// A metric's (`item`) or data point's (`point`) own field.
pub fn metric<B: MetricBatch>(b: &B, field: &Field, level: Level) -> Raw {
    if let Some(raw) = common(b, field, level) {
        return raw;
    }
    use MetricType::*;
    let types = b.types();
    let by_type = |values: Vec<Value<'static>>, has: fn(MetricType) -> bool| {
        let each = types.iter().zip(values);
        Raw::Owned(
            each.map(|(t, v)| if has(*t) { v } else { Value::Nil })
                .collect(),
        )
    };
    match field {
        Field::Name => Raw::Strings(b.names()),
        Field::Description => Raw::Strings(b.descriptions()),
        Field::Unit => Raw::Strings(b.units()),
        // The host numbers metric types and temporalities as OTTL's enums do.
        Field::Type => Raw::Ints(types.iter().map(|t| *t as i64).collect()),
        Field::Temporality => {
            let t = b.temporalities().into_iter().map(|t| Value::Int(t as i64));
            by_type(t.collect(), |t| {
                matches!(t, Sum | Histogram | ExponentialHistogram)
            })
        }
        Field::Monotonic => by_type(b.monotonic().into_iter().map(Value::Bool).collect(), |t| {
            t == Sum
        }),
        Field::DataPoints => {
            let counts = children(&b.parents(Level::Point), b.count(Level::Item));
            let counts = types
                .iter()
                .zip(counts)
                .map(|(t, n)| n.filter(|_| *t != Empty));
            counted(counts.collect::<Vec<_>>(), "a data point")
        }
        Field::Metadata => metadata(b),
        Field::PointAttr { key, value } => point_attr(b, key, value.as_deref(), &types),
        _ => point(b, field, &types),
    }
}

/// `HasAttr(Key)OnDatapoint` for every metric. As the collector's loop does, the first data
/// point that has `key` decides alone (a later one with the expected value does not count),
/// and its value is compared as pdata's `Str()` gives it: "" unless it is a string. A metric
/// with no data type is nil where the collector fails ("unknown metric type").
fn point_attr<B: MetricBatch>(
    b: &B,
    key: &str,
    expected: Option<&str>,
    types: &[MetricType],
) -> Raw {
    let attrs = b.attr_column(Level::Point, key);
    let mut decided: Vec<Option<bool>> = vec![None; types.len()];
    for (point, metric) in b.parents(Level::Point).into_iter().enumerate() {
        let first = &mut decided[metric as usize];
        if first.is_some() || attrs.kinds[point] == ValueKind::None {
            continue;
        }
        *first = Some(match (expected, owned_value(&attrs, point)) {
            (None, _) => true,
            (Some(want), Value::Str(s)) => s == want,
            (Some(want), _) => want.is_empty(),
        });
    }
    let each = types.iter().zip(decided);
    let has = |(t, d): (&MetricType, Option<bool>)| match t {
        MetricType::Empty => Value::Nil,
        _ => Value::Bool(d.unwrap_or(false)),
    };
    Raw::Owned(each.map(has).collect())
}

/// Every metric's `metadata`, which has no column: decoded from the batch's OTLP encoding
/// (field 12 of a `Metric`, nested as spans and log records are).
fn metadata<B: MetricBatch>(b: &B) -> Raw {
    let maps = pb::item_attributes(&b.to_otlp(), 12).unwrap_or_default();
    let mut values: Vec<Value<'static>> =
        maps.into_iter().map(|m| Value::Map(Rc::new(m))).collect();
    values.resize(b.count(Level::Item) as usize, Value::Map(Rc::default()));
    Raw::Owned(values)
}

/// A data point's own field; `metric_types` are the metrics', by metric index.
fn point<B: MetricBatch>(b: &B, field: &Field, metric_types: &[MetricType]) -> Raw {
    use MetricType::*;
    let types: Vec<MetricType> = b
        .parents(Level::Point)
        .into_iter()
        .map(|m| metric_types[m as usize])
        .collect();
    let by_type = |has: fn(MetricType) -> bool, value: &dyn Fn(usize) -> Value<'static>| {
        let each = types.iter().enumerate();
        Raw::Owned(
            each.map(|(i, t)| if has(*t) { value(i) } else { Value::Nil })
                .collect(),
        )
    };
    let number = |t| matches!(t, Gauge | Sum);
    let histograms = |t| matches!(t, Histogram | ExponentialHistogram | Summary);
    match field {
        Field::Start { time } => times(b.start_times(), *time),
        Field::Time { time } => times(b.times(Level::Point), *time),
        Field::Flags => ints(b.flags()),
        Field::ValueInt | Field::ValueDouble => {
            let values = b.values(Level::Point);
            let int = matches!(field, Field::ValueInt);
            by_type(number, &|i| number_value(owned_value(&values, i), int))
        }
        Field::Count => {
            let counts = b.counts();
            by_type(histograms, &|i| Value::Int(counts[i] as i64))
        }
        Field::Sum => {
            let sums = b.sums();
            by_type(histograms, &|i| Value::Double(sums[i].unwrap_or(0.0)))
        }
        Field::Exemplars => {
            let counts = children(&b.parents(Level::Exemplar), b.count(Level::Point));
            let counts = types
                .iter()
                .zip(counts)
                .map(|(t, n)| n.filter(|_| *t != Summary));
            counted(counts.collect::<Vec<_>>(), "an exemplar")
        }
        _ => buckets(b, field, &types),
    }
}

/// pdata's `IntValue()` / `DoubleValue()`: the value if it is of that type, else 0.
fn number_value(v: Value<'static>, int: bool) -> Value<'static> {
    match (v, int) {
        (Value::Int(i), true) => Value::Int(i),
        (_, true) => Value::Int(0),
        (Value::Double(d), false) => Value::Double(d),
        (_, false) => Value::Double(0.0),
    }
}

/// Histogram buckets, exponential histogram buckets and summary quantiles: read per point,
/// only for the points of the type that has them.
fn buckets<B: MetricBatch>(b: &B, field: &Field, types: &[MetricType]) -> Raw {
    use MetricType::*;
    let per_point = |of: MetricType, value: &dyn Fn(u32) -> Value<'static>| {
        let each = types.iter().enumerate();
        let v = each.map(|(i, t)| {
            if *t == of {
                value(i as u32)
            } else {
                Value::Nil
            }
        });
        Raw::Owned(v.collect())
    };
    let opaque = |n: usize, what| Value::List(Rc::new(vec![Value::Composite(what); n]));
    let exponential = |value: &dyn Fn(ExponentialBuckets) -> Value<'static>| {
        per_point(ExponentialHistogram, &|p| {
            b.exponential_buckets(p).map_or(Value::Nil, value)
        })
    };
    let side = |e: &ExponentialBuckets, positive: bool| match positive {
        true => e.positive.clone(),
        false => e.negative.clone(),
    };
    match field {
        Field::BucketCounts => per_point(Histogram, &|p| {
            opaque(b.bucket_counts(p).len(), "a bucket count")
        }),
        Field::ExplicitBounds => per_point(Histogram, &|p| {
            opaque(b.explicit_bounds(p).len(), "a bound")
        }),
        Field::QuantileValues => {
            per_point(Summary, &|p| opaque(b.quantiles(p).len(), "a quantile"))
        }
        Field::Scale => exponential(&|e| Value::Int(i64::from(e.scale))),
        Field::ZeroCount => exponential(&|e| Value::Int(e.zero_count as i64)),
        Field::Buckets { .. } => {
            exponential(&|_| Value::Composite("exponential histogram buckets"))
        }
        Field::BucketsOffset { positive } => {
            exponential(&|e| Value::Int(i64::from(side(&e, *positive).offset)))
        }
        Field::BucketsCounts { positive } => {
            exponential(&|e| opaque(side(&e, *positive).counts.len(), "a bucket count"))
        }
        _ => Raw::Nil,
    }
}
