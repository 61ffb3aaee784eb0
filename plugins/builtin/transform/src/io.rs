//! Reading and writing each [`Field`] through the SDK 0.2 batch: one host call per field
//! and level for a read, one per distinct value (or per entry, for whole attribute maps) for
//! a write.

use crate::config::Field;
use std::collections::HashMap;
use std::rc::Rc;
use trailhead_ottl::{Map, Value, pb};
use trailhead_plugin::{
    AnyValue, Batch, Level, LogBatch, MetricBatch, SpanBatch, SpanKind, StatusCode, StringColumn,
    ValueColumn, ValueKind,
};

/// A signal's batch, as the transform reads and writes it.
pub trait Io {
    type B: Batch;
    fn batch(&self) -> &Self::B;
    /// A field of the signal's own (a span's kind, a record's body) for every entry of its
    /// level; `None` for a field the signal does not have.
    fn read_own(&self, field: &Field) -> Option<Vec<Value<'static>>>;
    /// Writes a field of the signal's own. `values` are checked to be of the field's type;
    /// `companion` is the current value of the field written alongside (a span's status
    /// message when its code is set, a record's severity text when its number is).
    fn write_own(
        &self,
        field: &Field,
        entries: &[u32],
        values: &[Value<'static>],
        companion: &[Value<'static>],
    );
    /// The attribute field number of the signal's items in OTLP, where every item's map is
    /// read faster from one `to_otlp` than from an `attrs` call per item.
    fn item_attributes_field(&self) -> Option<u64> {
        None
    }
}

/// Every item's attributes as maps from the encoded batch, in one host call.
fn item_maps<I: Io>(io: &I) -> Option<Vec<Value<'static>>> {
    let field = io.item_attributes_field()?;
    let b = io.batch();
    let maps = pb::item_attributes(&b.to_otlp(), field).ok()?;
    (maps.len() == b.count(Level::Item) as usize)
        .then(|| maps.into_iter().map(|m| Value::Map(Rc::new(m))).collect())
}

/// Every entry's attributes at `level`, one `attrs` call per entry.
fn read_maps<B: Batch>(b: &B, level: Level) -> Vec<Value<'static>> {
    (0..b.count(level))
        .map(|i| {
            let map: Map = b
                .attrs(level, i)
                .iter()
                .map(|kv| (kv.key.clone(), any_to_value(&kv.value)))
                .collect();
            Value::Map(Rc::new(map))
        })
        .collect()
}

/// The field written together with `field` by the same host call.
pub fn companion(field: &Field) -> Option<Field> {
    match field {
        Field::StatusCode => Some(Field::StatusMessage),
        Field::StatusMessage => Some(Field::StatusCode),
        Field::SeverityNumber => Some(Field::SeverityText),
        Field::SeverityText => Some(Field::SeverityNumber),
        _ => None,
    }
}

pub fn strings(c: StringColumn) -> Vec<Value<'static>> {
    c.iter().map(|s| Value::Str(s.to_string().into())).collect()
}

fn ints(v: impl IntoIterator<Item = i64>) -> Vec<Value<'static>> {
    v.into_iter().map(Value::Int).collect()
}

fn times(v: Vec<u64>, time: bool) -> Vec<Value<'static>> {
    v.into_iter()
        .map(|t| {
            if time {
                Value::Time(t as i64)
            } else {
                Value::Int(t as i64)
            }
        })
        .collect()
}

fn ids(packed: Vec<u8>, width: usize, hex: bool) -> Vec<Value<'static>> {
    packed
        .chunks_exact(width)
        .map(|id| {
            if hex {
                Value::Str(
                    id.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into(),
                )
            } else {
                Value::Bytes(id.to_vec().into())
            }
        })
        .collect()
}

/// One entry of a value column, maps and lists decoded.
pub fn value(c: &ValueColumn, i: usize) -> Value<'static> {
    let start = if i == 0 { 0 } else { c.ends[i - 1] as usize };
    let bytes = &c.bytes[start..c.ends[i] as usize];
    let scalar = c.scalars[i];
    match c.kinds[i] {
        ValueKind::None => Value::Nil,
        ValueKind::Str => Value::Str(String::from_utf8_lossy(bytes).into_owned().into()),
        ValueKind::Boolean => Value::Bool(scalar != 0),
        ValueKind::Int => Value::Int(scalar),
        ValueKind::Double => Value::Double(f64::from_bits(scalar as u64)),
        ValueKind::Bytes => Value::Bytes(bytes.to_vec().into()),
        ValueKind::Array => list(bytes),
        ValueKind::Kvlist => map(bytes),
    }
}

/// An encoded `ArrayValue` as a list, nil where it does not decode.
fn list(bytes: &[u8]) -> Value<'static> {
    pb::decode_list(bytes).map_or(Value::Nil, |l| Value::List(Rc::new(l)))
}

/// An encoded `KeyValueList` as a map, nil where it does not decode.
fn map(bytes: &[u8]) -> Value<'static> {
    pb::decode_map(bytes).map_or(Value::Nil, |m| Value::Map(Rc::new(m)))
}

fn values(c: ValueColumn) -> Vec<Value<'static>> {
    (0..c.kinds.len()).map(|i| value(&c, i)).collect()
}

/// An attribute value as the contract carries it.
pub fn any_value(v: &Value<'_>) -> Result<AnyValue, String> {
    Ok(match v {
        Value::Str(s) => AnyValue::Str(s.to_string()),
        Value::Int(i) => AnyValue::Int(*i),
        Value::Double(d) => AnyValue::Double(*d),
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::Bytes(b) => AnyValue::Bytes(b.to_vec()),
        Value::Map(m) => AnyValue::Kvlist(pb::encode_map(m)?),
        Value::List(l) => AnyValue::Array(pb::encode_list(l)?),
        other => return Err(format!("{} cannot be stored as a value", other.kind())),
    })
}

fn any_to_value(v: &AnyValue) -> Value<'static> {
    match v {
        AnyValue::Str(s) => Value::Str(s.clone().into()),
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::Int(*i),
        AnyValue::Double(d) => Value::Double(*d),
        AnyValue::Bytes(b) => Value::Bytes(b.clone().into()),
        AnyValue::Array(b) => list(b),
        AnyValue::Kvlist(b) => map(b),
    }
}

/// A field every signal has (attributes, scopes, resources), or the signal's own.
pub fn read<I: Io>(io: &I, field: &Field) -> Vec<Value<'static>> {
    let b = io.batch();
    match field {
        Field::Attr(level, key) => values(b.attr_column(*level, key)),
        Field::Attrs(Level::Item) => item_maps(io).unwrap_or_else(|| read_maps(b, Level::Item)),
        Field::Attrs(level) => read_maps(b, *level),
        Field::DroppedAttrs(level) => {
            ints(b.dropped_attrs_counts(*level).into_iter().map(i64::from))
        }
        Field::SchemaUrl(level) => strings(b.schema_urls(*level)),
        Field::ScopeName => strings(b.scope_names()),
        Field::ScopeVersion => strings(b.scope_versions()),
        own => io
            .read_own(own)
            .unwrap_or_else(|| vec![Value::Nil; b.count(own.level()) as usize]),
    }
}

/// Sets one attribute on entries, one host call per distinct value. Contract 0.2 has no
/// empty value to write, so nil (which the collector writes as an empty value) removes it.
pub fn write_attr<B: Batch>(b: &B, level: Level, key: &str, writes: &[(u32, Value<'static>)]) {
    let emptied: Vec<u32> = writes
        .iter()
        .filter(|(_, v)| matches!(v, Value::Nil))
        .map(|(e, _)| *e)
        .collect();
    if !emptied.is_empty() {
        b.remove_attrs(level, &emptied, &[key.to_string()]);
    }
    // Values are told apart by their encoding: `AnyValue` has no `Eq` (doubles).
    let storable = writes.iter().filter_map(|(entry, v)| {
        let any = any_value(v).ok()?;
        Some((*entry, pb::encode_any(v).unwrap_or_default(), any))
    });
    for (any, entries) in grouped_by(storable) {
        b.set_attr(level, &entries, key, &any);
    }
}

/// Replaces entries' attribute maps: removes the keys that went, sets the ones that changed.
pub fn write_attrs<B: Batch>(
    b: &B,
    level: Level,
    writes: &[(u32, Value<'static>, Value<'static>)],
) {
    for (entry, old, new) in writes {
        let (Value::Map(old), Value::Map(new)) = (old, new) else {
            continue;
        };
        let gone: Vec<String> = old
            .iter()
            .filter(|(k, _)| !new.iter().any(|(n, _)| n == k))
            .map(|(k, _)| k.clone())
            .collect();
        if !gone.is_empty() {
            b.remove_attrs(level, &[*entry], &gone);
        }
        let set: Vec<trailhead_plugin::KeyValue> = new
            .iter()
            .filter(|(k, v)| trailhead_ottl::edit::get_value(old, k) != Some(v))
            .filter_map(|(k, v)| Some(trailhead_plugin::kv(k.clone(), any_value(v).ok()?)))
            .collect();
        if !set.is_empty() {
            b.set_attrs(level, *entry, &set);
        }
    }
}

/// Groups `(entry, key, value)` by key in order of first appearance, each group with the
/// value its first entry brought, for host writes that take one value for many entries.
fn grouped_by<K: Eq + std::hash::Hash, V>(
    items: impl IntoIterator<Item = (u32, K, V)>,
) -> Vec<(V, Vec<u32>)> {
    let mut groups: Vec<(V, Vec<u32>)> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for (entry, key, value) in items {
        match index.get(&key) {
            Some(&at) => groups[at].1.push(entry),
            None => {
                index.insert(key, groups.len());
                groups.push((value, vec![entry]));
            }
        }
    }
    groups
}

/// [`grouped_by`] where the key is the value.
fn grouped<K: Eq + std::hash::Hash + Clone>(
    entries: &[u32],
    keys: impl Iterator<Item = K>,
) -> Vec<(K, Vec<u32>)> {
    grouped_by(entries.iter().zip(keys).map(|(e, k)| (*e, k.clone(), k)))
}

/// A number written with its text companion (a status code and message, a severity number
/// and text) as `(number, text)` pairs: `values` are the numbers when `numbers`, else the
/// texts, and `companion` the other.
fn number_texts<'v>(
    values: &'v [Value<'static>],
    companion: &'v [Value<'static>],
    numbers: bool,
) -> impl Iterator<Item = (i64, String)> + 'v {
    values.iter().zip(companion).map(move |(v, c)| {
        let (n, t) = if numbers { (v, c) } else { (c, v) };
        (int(n), text(t))
    })
}

fn text(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        _ => String::new(),
    }
}

fn int(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

fn texts(values: &[Value<'static>]) -> Vec<String> {
    values.iter().map(text).collect()
}

/// Times (or other unsigned numbers) to write; a value that is no integer writes 0.
fn u64s(values: &[Value<'static>]) -> Vec<u64> {
    values.iter().map(|v| int(v) as u64).collect()
}

/// Spans.
pub struct Spans<'b, B>(pub &'b B);

impl<B: SpanBatch> Io for Spans<'_, B> {
    type B = B;
    fn batch(&self) -> &B {
        self.0
    }

    fn item_attributes_field(&self) -> Option<u64> {
        Some(9)
    }

    fn read_own(&self, field: &Field) -> Option<Vec<Value<'static>>> {
        let b = self.0;
        Some(match field {
            Field::Name(level) => strings(b.names(*level)),
            Field::Kind => ints(b.kinds().into_iter().map(|k| k as i64)),
            Field::StatusCode => ints(b.status_codes().into_iter().map(|c| c as i64)),
            Field::StatusMessage => strings(b.status_messages()),
            Field::TraceId { hex } => ids(b.trace_ids(Level::Item), 16, *hex),
            Field::SpanId { hex } => ids(b.span_ids(Level::Item), 8, *hex),
            Field::ParentSpanId { hex } => ids(b.parent_span_ids(), 8, *hex),
            Field::TraceState => strings(b.trace_states(Level::Item)),
            Field::Start { time } => times(b.start_times(), *time),
            Field::End { time } => times(b.end_times(), *time),
            Field::DroppedEvents => ints(b.dropped_events_counts().into_iter().map(i64::from)),
            Field::DroppedLinks => ints(b.dropped_links_counts().into_iter().map(i64::from)),
            Field::EventTime { time } => times(b.event_times(), *time),
            _ => return None,
        })
    }

    fn write_own(
        &self,
        field: &Field,
        entries: &[u32],
        values: &[Value<'static>],
        companion: &[Value<'static>],
    ) {
        let b = self.0;
        match field {
            Field::Name(level) => b.set_names(*level, entries, &texts(values)),
            Field::TraceState => b.set_trace_states(Level::Item, entries, &texts(values)),
            Field::Start { .. } => b.set_start_times(entries, &u64s(values)),
            Field::End { .. } => b.set_end_times(entries, &u64s(values)),
            Field::Kind => {
                let kinds: Vec<SpanKind> = values.iter().map(|v| span_kind(int(v))).collect();
                b.set_kinds(entries, &kinds);
            }
            Field::StatusCode | Field::StatusMessage => {
                let pairs = number_texts(values, companion, matches!(field, Field::StatusCode));
                for ((code, message), e) in grouped(entries, pairs) {
                    b.set_status(&e, status_code(code), &message);
                }
            }
            _ => {}
        }
    }
}

fn span_kind(k: i64) -> SpanKind {
    match k {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

fn status_code(c: i64) -> StatusCode {
    match c {
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => StatusCode::Unset,
    }
}

/// Whether `v` is a value the collector's setter for `field` takes; the others it ignores.
pub fn accepts(field: &Field, v: &Value<'_>) -> bool {
    match field {
        Field::Attr(..) => !matches!(v, Value::Time(_) | Value::Duration(_) | Value::Composite(_)),
        Field::Body => !matches!(
            v,
            Value::Nil | Value::Time(_) | Value::Duration(_) | Value::Composite(_)
        ),
        Field::Attrs(_) => matches!(v, Value::Map(_)),
        Field::Kind => matches!(v, Value::Int(0..=5)),
        Field::StatusCode => matches!(v, Value::Int(0..=2)),
        Field::SeverityNumber => matches!(v, Value::Int(i) if i32::try_from(*i).is_ok()),
        Field::Start { .. } | Field::End { .. } | Field::LogTime { .. } => {
            matches!(v, Value::Int(_))
        }
        _ => matches!(v, Value::Str(_)),
    }
}

/// Log records.
pub struct Logs<'b, B>(pub &'b B);

impl<B: LogBatch> Io for Logs<'_, B> {
    type B = B;
    fn batch(&self) -> &B {
        self.0
    }

    fn item_attributes_field(&self) -> Option<u64> {
        Some(6)
    }

    fn read_own(&self, field: &Field) -> Option<Vec<Value<'static>>> {
        let b = self.0;
        Some(match field {
            Field::Body => values(b.bodies()),
            Field::SeverityNumber => ints(b.severity_numbers().into_iter().map(i64::from)),
            Field::SeverityText => strings(b.severity_texts()),
            Field::LogTime { time } => times(b.times(), *time),
            Field::ObservedTime { time } => times(b.observed_times(), *time),
            Field::LogTraceId { hex } => ids(b.trace_ids(), 16, *hex),
            Field::LogSpanId { hex } => ids(b.span_ids(), 8, *hex),
            Field::LogFlags => ints(b.flags().into_iter().map(i64::from)),
            Field::EventName => strings(b.event_names()),
            _ => return None,
        })
    }

    fn write_own(
        &self,
        field: &Field,
        entries: &[u32],
        values: &[Value<'static>],
        companion: &[Value<'static>],
    ) {
        let b = self.0;
        match field {
            Field::Body => {
                let bodies: Vec<AnyValue> =
                    values.iter().filter_map(|v| any_value(v).ok()).collect();
                if bodies.len() == entries.len() {
                    b.set_bodies(entries, &bodies);
                }
            }
            Field::LogTime { .. } => b.set_times(entries, &u64s(values)),
            Field::SeverityNumber | Field::SeverityText => {
                let numbers = matches!(field, Field::SeverityNumber);
                for ((number, text), e) in
                    grouped(entries, number_texts(values, companion, numbers))
                {
                    b.set_severity(&e, number as i32, &text);
                }
            }
            _ => {}
        }
    }
}

/// Metrics and their data points.
pub struct Metrics<'b, B>(pub &'b B);

impl<B: MetricBatch> Io for Metrics<'_, B> {
    type B = B;
    fn batch(&self) -> &B {
        self.0
    }

    fn read_own(&self, field: &Field) -> Option<Vec<Value<'static>>> {
        let b = self.0;
        let point_values = || values(b.values(Level::Point));
        Some(match field {
            Field::MetricName => strings(b.names()),
            Field::Unit => strings(b.units()),
            Field::Description => strings(b.descriptions()),
            // The host numbers metric types and temporalities as OTTL's enums do.
            Field::MetricType => ints(b.types().into_iter().map(|t| t as i64)),
            Field::Temporality => ints(b.temporalities().into_iter().map(|t| t as i64)),
            Field::Monotonic => b.monotonic().into_iter().map(Value::Bool).collect(),
            Field::PointInt => point_values()
                .into_iter()
                .map(|v| {
                    if let Value::Int(i) = v {
                        Value::Int(i)
                    } else {
                        Value::Int(0)
                    }
                })
                .collect(),
            Field::PointDouble => point_values()
                .into_iter()
                .map(|v| {
                    if let Value::Double(d) = v {
                        Value::Double(d)
                    } else {
                        Value::Double(0.0)
                    }
                })
                .collect(),
            Field::PointStart { time } => times(b.start_times(), *time),
            Field::PointTime { time } => times(b.times(Level::Point), *time),
            Field::PointCount => ints(b.counts().into_iter().map(|c| c as i64)),
            Field::PointSum => b
                .sums()
                .into_iter()
                .map(|s| Value::Double(s.unwrap_or(0.0)))
                .collect(),
            Field::PointFlags => ints(b.flags().into_iter().map(i64::from)),
            _ => return None,
        })
    }

    fn write_own(
        &self,
        field: &Field,
        entries: &[u32],
        values: &[Value<'static>],
        _: &[Value<'static>],
    ) {
        let b = self.0;
        match field {
            Field::MetricName => b.set_names(entries, &texts(values)),
            Field::Unit => b.set_units(entries, &texts(values)),
            Field::Description => b.set_descriptions(entries, &texts(values)),
            _ => {}
        }
    }
}
