//! Grouping an encoded metrics request by metric name or by data point stream (the
//! loadbalancing exporter's `routing_key: metric` and `streamID`), on the wire.
//!
//! The one idea: the unit that is routed is smaller than an item. [`route::group`] moves whole
//! items (metrics); a stream is one data point's series, so a metric is cut between its points:
//! each owner gets a copy of the metric's own fields (name, description, unit, metadata) and of
//! its data's own fields (temporality, monotonicity) around its share of the points, under
//! copies of the resource's and scope's own fields. A metric whose points all go to one owner
//! is copied whole, and a request wholly owned by one backend is passed on as it came.
//!
//! The keys group as the collector's do (contrib's `splitMetricsByMetricName` and
//! `splitMetricsByStreamID`): `metric` is the metric's name alone, whatever its resource; a
//! stream is the resource's attributes, the scope's name, version and attributes, the metric's
//! name, unit, type, monotonicity and temporality, and the point's attributes, attribute sets
//! compared as maps (in any order). Trailhead hashes these onto its own ring, so it need not
//! pick the collector's backend, only put together what the collector puts together.
//!
//! [`route::group`]: super::route::group

use super::payload::Payload;
use super::route::{self, RouteBy, own_fields};
use super::wire::{self, Value};
use super::{Signal, split::Piece};
use bytes::Bytes;
use std::collections::BTreeMap;

/// What a metrics request is grouped by, beyond the per-item keys of [`RouteBy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKey {
    /// The metric's name: every metric of one name, in any resource, has one owner.
    Name,
    /// The data point's stream: resource, scope, metric identity and point attributes.
    Stream,
}

/// Every routing key of the loadbalancing exporter: the per-item ones and the metrics' own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingKey {
    /// Each item (span, log record, metric) goes whole to its key's owner.
    Item(RouteBy),
    /// Metrics only: each metric (or each data point) goes to its key's owner.
    Metric(MetricKey),
}

impl RoutingKey {
    /// Splits `payload` (an export request of `signal` holding `items`) into one piece per
    /// owner; `owner` maps a key to the index of its owner.
    pub fn group(
        self,
        signal: Signal,
        payload: &Payload,
        items: usize,
        owner: impl FnMut(&[u8]) -> usize,
    ) -> BTreeMap<usize, Piece> {
        match self {
            RoutingKey::Item(by) => route::group(signal, payload, items, by, owner),
            RoutingKey::Metric(by) => group(payload, items, by, owner),
        }
    }
}

/// Per owner: the encoded fields written so far and the data points they hold.
type Owned = BTreeMap<usize, (Vec<u8>, usize)>;

/// The metric's fields holding its data: gauge, sum, histogram, exponential histogram, summary.
const DATA_KINDS: [u64; 5] = [5, 7, 9, 10, 11];

/// Splits an encoded metrics request by `by`. The request arrived checked, so a field that does
/// not parse is skipped by the walk rather than failing the request.
pub fn group(
    payload: &Payload,
    items: usize,
    by: MetricKey,
    mut owner: impl FnMut(&[u8]) -> usize,
) -> BTreeMap<usize, Piece> {
    let bytes = payload.to_bytes();
    let mut out = Owned::new();
    for (number, value, _) in wire::fields(&bytes) {
        if let (1, Value::Bytes(resource)) = (number, value) {
            split_resource(resource, by, &mut owner, &mut out);
        }
    }
    if out.len() == 1 {
        let first = *out.keys().next().expect("one owner");
        let piece = Piece {
            payload: payload.clone(),
            items,
        };
        return BTreeMap::from([(first, piece)]);
    }
    out.into_iter()
        .map(|(owner, (request, items))| {
            let payload = Payload::new(vec![Bytes::from(request)]);
            (owner, Piece { payload, items })
        })
        .collect()
}

/// Writes each owner's share of one `ResourceMetrics` into `out`, as a `resource_metrics` field.
fn split_resource(
    resource: &[u8],
    by: MetricKey,
    owner: &mut impl FnMut(&[u8]) -> usize,
    out: &mut Owned,
) {
    let mut prefix = Vec::new();
    if by == MetricKey::Stream {
        let attributes = bytes_field(resource, 1);
        put_attributes(&mut prefix, attributes, 1, &mut Vec::new());
    }
    let mut scopes = Owned::new();
    for (number, value, _) in wire::fields(resource) {
        if let (2, Value::Bytes(scope)) = (number, value) {
            split_scope(scope, &prefix, by, owner, &mut scopes);
        }
    }
    wrap(&own_fields(resource, &[2]), 1, scopes, out);
}

/// Writes each owner's share of one `ScopeMetrics` into `scopes`, as a `scope_metrics` field.
fn split_scope(
    scope: &[u8],
    prefix: &[u8],
    by: MetricKey,
    owner: &mut impl FnMut(&[u8]) -> usize,
    scopes: &mut Owned,
) {
    let mut key = prefix.to_vec();
    if by == MetricKey::Stream {
        // InstrumentationScope: name 1, version 2, attributes 3.
        let identity = bytes_field(scope, 1);
        put_part(&mut key, bytes_field(identity, 1));
        put_part(&mut key, bytes_field(identity, 2));
        put_attributes(&mut key, identity, 3, &mut Vec::new());
    }
    let mut metrics = Owned::new();
    for (number, value, whole) in wire::fields(scope) {
        let (2, Value::Bytes(metric)) = (number, value) else {
            continue;
        };
        match by {
            MetricKey::Name => {
                let name = bytes_field(metric, 1);
                add(&mut metrics, owner(name), whole, count(metric));
            }
            MetricKey::Stream => split_metric(metric, whole, &key, owner, &mut metrics),
        }
    }
    wrap(&own_fields(scope, &[2]), 2, metrics, scopes);
}

/// Writes each owner's share of one `Metric` (`whole`: its field's encoding) into `metrics`, by
/// the stream of each data point.
fn split_metric(
    metric: &[u8],
    whole: &[u8],
    prefix: &[u8],
    owner: &mut impl FnMut(&[u8]) -> usize,
    metrics: &mut Owned,
) {
    let mut key = prefix.to_vec();
    put_part(&mut key, bytes_field(metric, 1));
    put_part(&mut key, bytes_field(metric, 3));
    let mut parts = Owned::new();
    for (kind, value, _) in wire::fields(metric) {
        let Value::Bytes(data) = value else { continue };
        if !DATA_KINDS.contains(&kind) {
            continue;
        }
        let mut points = Owned::new();
        let metric_key = data_key(&key, kind, data);
        // Reused for every point: a stream's key costs no allocation once they have grown.
        let (mut stream, mut scratch) = (Vec::new(), Vec::new());
        for (number, value, point_whole) in wire::fields(data) {
            let (1, Value::Bytes(point)) = (number, value) else {
                continue;
            };
            stream.clear();
            stream.extend_from_slice(&metric_key);
            put_attributes(&mut stream, point, point_attributes(kind), &mut scratch);
            add(&mut points, owner(&stream), point_whole, 1);
        }
        wrap(&own_fields(data, &[1]), kind, points, &mut parts);
    }
    if parts.len() <= 1 {
        // One stream owner (or no points: the metric's identity decides), so no cut.
        let at = parts.keys().next().copied().unwrap_or_else(|| owner(&key));
        add(metrics, at, whole, count(metric));
        return;
    }
    wrap(&own_fields(metric, &DATA_KINDS), 2, parts, metrics);
}

/// The metric identity's part of a stream key from its data field `kind`: the type, then the
/// temporality and monotonicity as the collector's identity takes them (histograms count as
/// monotonic; gauges and summaries have neither).
fn data_key(key: &[u8], kind: u64, data: &[u8]) -> Vec<u8> {
    let varint = |number| match wire::last(data, number) {
        Some(Value::Varint(v)) => v,
        _ => 0,
    };
    let (monotonic, temporality) = match kind {
        7 => (u64::from(varint(3) != 0), varint(2)),
        9 | 10 => (1, varint(2)),
        _ => (0, 0),
    };
    let mut key = key.to_vec();
    for part in [kind, monotonic, temporality] {
        wire::put_varint(&mut key, part);
    }
    key
}

/// A data point's attributes field: 7 on number and summary points, 9 on histogram points,
/// 1 on exponential histogram points.
fn point_attributes(kind: u64) -> u64 {
    match kind {
        9 => 9,
        10 => 1,
        _ => 7,
    }
}

/// Appends the `KeyValue`s in field `number` of `message` to `key` sorted by key, so two
/// encodings of one attribute set in different orders give one key (a map, as the collector
/// hashes it). Values are compared by their encoding. `scratch` is a reusable buffer.
fn put_attributes<'a>(
    key: &mut Vec<u8>,
    message: &'a [u8],
    number: u64,
    scratch: &mut Vec<(&'a [u8], &'a [u8])>,
) {
    scratch.clear();
    for (n, value) in wire::values(message) {
        let Value::Bytes(kv) = value else { continue };
        if n != number {
            continue;
        }
        scratch.push(match wire::plain_key_value(kv) {
            Some((name, value)) => (name, value.unwrap_or_default()),
            None => (bytes_field(kv, 1), bytes_field(kv, 2)),
        });
    }
    scratch.sort_by(|a, b| a.0.cmp(b.0));
    wire::put_varint(key, scratch.len() as u64);
    for (name, value) in scratch.iter() {
        put_part(key, name);
        put_part(key, value);
    }
}

/// Appends `part` with its length, so no two sequences of parts give one key.
fn put_part(key: &mut Vec<u8>, part: &[u8]) {
    wire::put_varint(key, part.len() as u64);
    key.extend_from_slice(part);
}

/// The body of length-delimited field `number` (a string, or a message), empty when absent:
/// an absent string or message reads as an empty one.
fn bytes_field(message: &[u8], number: u64) -> &[u8] {
    match wire::last(message, number) {
        Some(Value::Bytes(bytes)) => bytes,
        _ => &[],
    }
}

/// The data points one encoded `Metric` holds.
fn count(metric: &[u8]) -> usize {
    wire::count_item(Signal::Metrics, metric)
}

/// Appends an encoded field holding `points` data points to `owner`'s share.
fn add(owned: &mut Owned, owner: usize, field: &[u8], points: usize) {
    let entry = owned.entry(owner).or_default();
    entry.0.extend_from_slice(field);
    entry.1 += points;
}

/// Writes each owner's `inner` fields as field `number` of `into`, after a copy of `own` (the
/// enclosing message's own fields).
fn wrap(own: &[u8], number: u64, inner: Owned, into: &mut Owned) {
    for (owner, (body, points)) in inner {
        let entry = into.entry(owner).or_default();
        wire::put_bytes_field(&mut entry.0, number, &[own, &body].concat());
        entry.1 += points;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
        metric::Data,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    use std::collections::{HashMap, HashSet};
    use std::hash::{DefaultHasher, Hash, Hasher};

    fn attributes(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
        let value = |v: &str| any_value::Value::StringValue(v.into());
        pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).into(),
                value: Some(AnyValue {
                    value: Some(value(v)),
                }),
                ..Default::default()
            })
            .collect()
    }

    /// The five kinds of metric, `name` each, with one point per attribute set; each point's
    /// time is `*time`, counted up, so every point is told apart after the split.
    fn metrics(prefix: &str, sets: &[Vec<KeyValue>], time: &mut u64) -> Vec<Metric> {
        let mut next = || {
            *time += 1;
            *time
        };
        let mut number = |a: &Vec<KeyValue>| NumberDataPoint {
            attributes: a.clone(),
            time_unix_nano: next(),
            ..Default::default()
        };
        let gauge = Data::Gauge(Gauge {
            data_points: sets.iter().map(&mut number).collect(),
        });
        let sum = Data::Sum(Sum {
            data_points: sets.iter().map(&mut number).collect(),
            aggregation_temporality: 2,
            is_monotonic: true,
        });
        let histogram = Data::Histogram(Histogram {
            data_points: (sets.iter())
                .map(|a| HistogramDataPoint {
                    attributes: a.clone(),
                    time_unix_nano: next(),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: 1,
        });
        let exponential = Data::ExponentialHistogram(ExponentialHistogram {
            data_points: (sets.iter())
                .map(|a| ExponentialHistogramDataPoint {
                    attributes: a.clone(),
                    time_unix_nano: next(),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: 2,
        });
        let summary = Data::Summary(Summary {
            data_points: (sets.iter())
                .map(|a| SummaryDataPoint {
                    attributes: a.clone(),
                    time_unix_nano: next(),
                    ..Default::default()
                })
                .collect(),
        });
        [gauge, sum, histogram, exponential, summary]
            .into_iter()
            .enumerate()
            .map(|(i, data)| Metric {
                name: format!("{prefix}{i}"),
                description: "d".into(),
                unit: "ms".into(),
                data: Some(data),
                ..Default::default()
            })
            .collect()
    }

    fn resource(service: &str, metrics: Vec<Metric>) -> ResourceMetrics {
        ResourceMetrics {
            resource: Some(Resource {
                attributes: attributes(&[("service.name", service)]),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: "scope-schema".into(),
            }],
            schema_url: "resource-schema".into(),
        }
    }

    /// Two resources sharing metric names, four attribute sets (one written in two orders).
    fn request() -> (Payload, usize) {
        let sets = [
            attributes(&[("a", "1"), ("b", "1")]),
            attributes(&[("b", "1"), ("a", "1")]),
            attributes(&[("a", "2")]),
            attributes(&[("a", "3")]),
            Vec::new(),
        ];
        let mut time = 0;
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![
                resource("x", metrics("m", &sets, &mut time)),
                resource("y", metrics("m", &sets, &mut time)),
            ],
        };
        let bytes = request.encode_to_vec();
        let items = wire::count_items(Signal::Metrics, &bytes).unwrap();
        (Payload::new(vec![Bytes::from(bytes)]), items)
    }

    /// One of three owners, from a hash of the key.
    fn three(key: &[u8]) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % 3) as usize
    }

    /// Every point as (owner, service, scope, metric name, sorted attributes, time), checking
    /// on the way that each piece kept its resource's, scope's and metric's own fields.
    fn points(groups: &BTreeMap<usize, Piece>) -> Vec<(usize, String, Vec<String>, u64)> {
        let mut all = Vec::new();
        for (owner, piece) in groups {
            let request = ExportMetricsServiceRequest::decode(piece.payload.to_bytes()).unwrap();
            let mut count = 0;
            for rm in &request.resource_metrics {
                assert_eq!(rm.schema_url, "resource-schema");
                let resource = rm.resource.as_ref().unwrap();
                let service = format!("{:?}", resource.attributes[0].value);
                for sm in &rm.scope_metrics {
                    assert_eq!(sm.schema_url, "scope-schema");
                    let scope = sm.scope.as_ref().unwrap();
                    assert_eq!((scope.name.as_str(), scope.version.as_str()), ("lib", "1"));
                    for m in &sm.metrics {
                        assert_eq!((m.description.as_str(), m.unit.as_str()), ("d", "ms"));
                        for (attrs, time) in data_points(m) {
                            let id = format!("{service}/{}", m.name);
                            all.push((*owner, id, attrs, time));
                            count += 1;
                        }
                    }
                }
            }
            assert_eq!(piece.items, count, "the piece counts its points");
        }
        all
    }

    /// A metric's points as (sorted attribute keys and values, time), checking its data's
    /// own fields survived the cut.
    fn data_points(m: &Metric) -> Vec<(Vec<String>, u64)> {
        let set = |a: &[KeyValue]| {
            let mut s: Vec<String> = a.iter().map(|kv| format!("{kv:?}")).collect();
            s.sort();
            s
        };
        match m.data.as_ref().unwrap() {
            Data::Gauge(g) => (g.data_points.iter())
                .map(|p| (set(&p.attributes), p.time_unix_nano))
                .collect(),
            Data::Sum(s) => {
                assert_eq!((s.aggregation_temporality, s.is_monotonic), (2, true));
                (s.data_points.iter())
                    .map(|p| (set(&p.attributes), p.time_unix_nano))
                    .collect()
            }
            Data::Histogram(h) => {
                assert_eq!(h.aggregation_temporality, 1);
                (h.data_points.iter())
                    .map(|p| (set(&p.attributes), p.time_unix_nano))
                    .collect()
            }
            Data::ExponentialHistogram(h) => {
                assert_eq!(h.aggregation_temporality, 2);
                (h.data_points.iter())
                    .map(|p| (set(&p.attributes), p.time_unix_nano))
                    .collect()
            }
            Data::Summary(s) => (s.data_points.iter())
                .map(|p| (set(&p.attributes), p.time_unix_nano))
                .collect(),
        }
    }

    /// Each point exactly once, in all: times 1..=items, none twice.
    fn assert_whole(all: &[(usize, String, Vec<String>, u64)], items: usize) {
        let times: HashSet<u64> = all.iter().map(|p| p.3).collect();
        assert_eq!(
            (all.len(), times.len()),
            (items, items),
            "nothing lost, nothing twice"
        );
        assert_eq!(times, (1..=items as u64).collect());
    }

    // `metric`: every point of a name (in either resource, of each of the five kinds) goes to
    // one owner, each with its resource, scope, metric and data fields; nothing lost or doubled.
    #[test]
    fn by_name_keeps_each_name_on_one_owner() {
        let (payload, items) = request();
        let groups = group(&payload, items, MetricKey::Name, three);
        assert!(groups.len() > 1, "the five names spread over owners");
        let all = points(&groups);
        assert_whole(&all, items);
        let mut owner_of: HashMap<String, HashSet<usize>> = HashMap::new();
        for (owner, id, _, _) in &all {
            let name = id.rsplit('/').next().unwrap().to_string();
            owner_of.entry(name).or_default().insert(*owner);
        }
        assert_eq!(owner_of.len(), 5);
        assert!(owner_of.values().all(|o| o.len() == 1), "{owner_of:?}");
    }

    // `streamID`: the points of one stream go to one owner, attribute order aside; a metric is
    // cut between owners with its own fields on each side; nothing lost or doubled.
    #[test]
    fn by_stream_keeps_each_stream_on_one_owner() {
        let (payload, items) = request();
        let groups = group(&payload, items, MetricKey::Stream, three);
        assert_eq!(
            groups.len(),
            3,
            "the 40 streams spread over the three owners"
        );
        let all = points(&groups);
        assert_whole(&all, items);
        let mut owner_of: HashMap<(String, Vec<String>), HashSet<usize>> = HashMap::new();
        for (owner, id, attrs, _) in all {
            owner_of.entry((id, attrs)).or_default().insert(owner);
        }
        assert_eq!(
            owner_of.len(),
            40,
            "2 resources x 5 metrics x 4 attribute sets"
        );
        assert!(owner_of.values().all(|o| o.len() == 1), "{owner_of:?}");
        let per_metric: HashSet<String> = owner_of.keys().map(|k| k.0.clone()).collect();
        let cut = per_metric.iter().any(|m| {
            let owners: HashSet<usize> = (owner_of.iter())
                .filter(|(k, _)| &k.0 == m)
                .flat_map(|(_, o)| o.iter().copied())
                .collect();
            owners.len() > 1
        });
        assert!(cut, "some metric's streams were cut between owners");
    }

    // A stream's key is its attributes as a map, and it changes with the resource, the scope,
    // the metric's name and its type: what the collector's stream identity holds.
    #[test]
    fn stream_keys_are_the_collectors_identity() {
        let (payload, items) = request();
        let mut keys = Vec::new();
        group(&payload, items, MetricKey::Stream, |k| {
            keys.push(k.to_vec());
            0
        });
        assert_eq!(keys.len(), items);
        assert_eq!(keys[0], keys[1], "one attribute set written in two orders");
        let distinct: HashSet<&Vec<u8>> = keys.iter().collect();
        assert_eq!(distinct.len(), 40);
    }

    // A request wholly owned by one backend is passed on as it came, without a copy, and a
    // metric without points is kept (with the owner of its identity).
    #[test]
    fn one_owner_keeps_the_request_and_empty_metrics() {
        let (payload, items) = request();
        let groups = group(&payload, items, MetricKey::Stream, |_| 2);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[&2].items, items);
        assert_eq!(
            groups[&2].payload.parts()[0].as_ptr(),
            payload.parts()[0].as_ptr()
        );
        let empty = Metric {
            name: "empty".into(),
            data: Some(Data::Gauge(Gauge::default())),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![resource("x", vec![empty.clone()])],
        };
        let payload = Payload::new(vec![Bytes::from(request.encode_to_vec())]);
        for by in [MetricKey::Name, MetricKey::Stream] {
            let groups = group(&payload, 0, by, three);
            assert_eq!(groups.len(), 1, "{by:?}");
        }
    }

    // The routing key dispatches: item keys to the per-item grouping, metric keys here.
    #[test]
    fn routing_key_dispatches() {
        let (payload, items) = request();
        let by_service =
            RoutingKey::Item(RouteBy::Service).group(Signal::Metrics, &payload, items, three);
        let services = points(&by_service);
        assert_whole(&services, items);
        let mut owner_of: HashMap<String, HashSet<usize>> = HashMap::new();
        for (owner, id, _, _) in services {
            let service = id.split('/').next().unwrap().to_string();
            owner_of.entry(service).or_default().insert(owner);
        }
        assert!(owner_of.values().all(|o| o.len() == 1));
        let by_name =
            RoutingKey::Metric(MetricKey::Name).group(Signal::Metrics, &payload, items, three);
        assert_eq!(
            by_name.len(),
            group(&payload, items, MetricKey::Name, three).len()
        );
    }
}
