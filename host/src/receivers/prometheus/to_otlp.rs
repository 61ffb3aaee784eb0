//! One scrape's samples as one OTLP metrics request, as the collector's prometheus receiver
//! v0.161.0 builds it (internal/transaction.go, metricfamily.go, metadata.go, prom_to_otlp.go):
//!
//! - a resource per (`job`, `instance`): `service.name`, `service.instance.id`,
//!   `server.address` (unless a loopback or unspecified host), `server.port`, `url.scheme`,
//!   the Kubernetes attributes of the discovery labels, and `target_info`'s labels;
//! - a scope per `otel_scope_*` label set, else the receiver's own name and version;
//! - families found by the exposition's metadata as the collector looks it up: counter →
//!   monotonic cumulative Sum, gauge and unknown → Gauge, histogram → cumulative Histogram,
//!   summary → Summary, info and stateset → non-monotonic Sum; `_created` → start timestamps;
//! - Prometheus' stale NaN → a point flagged "no recorded value"; a data point's attributes
//!   are its labels but `__name__`, `job`, `instance`, `__scheme__`, `__metrics_path__`,
//!   `le`/`quantile` and `otel_scope_*`. Feature gates keep v0.161's defaults
//!   (created-timestamp zero ingestion off, `otel_scope_info` a plain metric).

use super::relabel::Labels;
use crate::pdata::exposition::{Exemplar as PromExemplar, Metadata};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    self as otlp, AggregationTemporality, Metric, ResourceMetrics, ScopeMetrics, metric,
    number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::HashMap;

/// The scope name the collector gives scraped metrics.
pub const SCOPE_NAME: &str =
    "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver";

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is Prometheus' staleness marker (not any NaN).
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN
}

/// OTLP's "no recorded value" data point flag.
const NO_RECORDED_VALUE: u32 = 1;

/// Labels never copied to data point attributes.
const NOT_ATTRIBUTES: [&str; 5] = [
    "__metrics_path__",
    "__name__",
    "__scheme__",
    "instance",
    "job",
];

/// The metadata the scrape loop gives its own series.
pub fn internal_metadata(name: &str) -> Option<Metadata> {
    let (help, unit) = match name {
        "up" => ("The scraping was successful", ""),
        "scrape_duration_seconds" => ("Duration of the scrape", "seconds"),
        "scrape_samples_scraped" => ("The number of samples the target exposed", ""),
        "scrape_series_added" => ("The approximate number of new series in this scrape", ""),
        "scrape_samples_post_metric_relabeling" => (
            "The number of samples remaining after metric relabeling was applied",
            "",
        ),
        _ => return None,
    };
    Some(Metadata {
        kind: "gauge".into(),
        help: help.into(),
        unit: unit.into(),
    })
}

/// What a scrape's request is built from, besides its samples.
pub struct Target<'a> {
    /// The target's `job` and `instance`, for samples without them.
    pub job: &'a str,
    pub instance: &'a str,
    /// The target's labels before relabeling (`__scheme__`, `__meta_*`).
    pub discovered: &'a Labels,
    /// The exposition's metadata (kept from earlier scrapes too).
    pub metadata: &'a HashMap<String, Metadata>,
    /// The scope version: trailhead's.
    pub version: &'a str,
}

/// One scrape's samples on their way to a request.
pub struct Transaction<'a> {
    target: Target<'a>,
    resources: Vec<ResourceEntry>,
}

struct ResourceEntry {
    key: (String, String),
    attributes: Vec<KeyValue>,
    scopes: Vec<ScopeEntry>,
}

#[derive(PartialEq)]
struct ScopeId {
    name: String,
    version: String,
    schema_url: String,
    attributes: Vec<(String, String)>,
}

struct ScopeEntry {
    id: ScopeId,
    families: Vec<Family>,
    /// A family by the name it was stored under (the collector's map key).
    by_name: HashMap<String, usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Gauge,
    Sum { monotonic: bool },
    Histogram,
    Summary,
}

struct Family {
    name: String,
    /// The name the metadata was written for (`foo` of `foo_total` in OpenMetrics).
    metadata_name: String,
    metadata: Metadata,
    shape: Shape,
    groups: Vec<Group>,
    by_series: HashMap<Vec<(String, String)>, usize>,
}

#[derive(Default)]
struct Group {
    timestamp_ms: i64,
    labels: Labels,
    count: Option<f64>,
    sum: Option<f64>,
    created_seconds: f64,
    value: Option<f64>,
    /// (boundary, cumulative value) of buckets or quantiles.
    points: Vec<(f64, f64)>,
    exemplars: Vec<otlp::Exemplar>,
}

impl<'a> Transaction<'a> {
    pub fn new(target: Target<'a>) -> Self {
        Transaction {
            target,
            resources: Vec::new(),
        }
    }

    /// Adds one sample: its labels include `__name__`.
    pub fn append(
        &mut self,
        labels: Labels,
        timestamp_ms: i64,
        value: f64,
        exemplar: Option<&PromExemplar>,
    ) -> Result<(), String> {
        let name = labels
            .get("__name__")
            .cloned()
            .ok_or("a sample has no name")?;
        let resource = self.resource(&labels);
        if name == "target_info" {
            for (key, value) in &labels {
                if !matches!(key.as_str(), "job" | "instance" | "__name__") {
                    put(&mut self.resources[resource].attributes, key, value);
                }
            }
            return Ok(());
        }
        let metadata = self.target.metadata;
        let scopes = &mut self.resources[resource].scopes;
        let scope = scope_of(scopes, &labels);
        let family = family_for(&mut scopes[scope], &name, metadata);
        family.add(&name, labels, timestamp_ms, value, exemplar)
    }

    /// The request, and how many data points it holds.
    pub fn finish(self) -> (ExportMetricsServiceRequest, usize) {
        let mut points = 0;
        let mut resource_metrics = Vec::new();
        for resource in self.resources {
            let mut scope_metrics = Vec::new();
            for scope in resource.scopes {
                let metrics: Vec<Metric> = scope
                    .families
                    .into_iter()
                    .filter_map(Family::into_metric)
                    .collect();
                points += metrics.iter().map(count_points).sum::<usize>();
                if metrics.is_empty() {
                    continue;
                }
                scope_metrics.push(scope_metrics_of(scope.id, metrics, self.target.version));
            }
            if scope_metrics.is_empty() {
                continue;
            }
            resource_metrics.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource.attributes,
                    ..Default::default()
                }),
                scope_metrics,
                schema_url: String::new(),
            });
        }
        (ExportMetricsServiceRequest { resource_metrics }, points)
    }

    /// The resource of a sample's `job` and `instance` (the target's when it has none).
    fn resource(&mut self, labels: &Labels) -> usize {
        let label = |name: &str, fallback: &str| {
            labels
                .get(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| fallback.to_string(), Clone::clone)
        };
        let key = (
            label("job", self.target.job),
            label("instance", self.target.instance),
        );
        if let Some(at) = self.resources.iter().position(|r| r.key == key) {
            return at;
        }
        let attributes = resource_attributes(&key.0, &key.1, self.target.discovered);
        self.resources.push(ResourceEntry {
            key,
            attributes,
            scopes: Vec::new(),
        });
        self.resources.len() - 1
    }
}

/// prom_to_otlp.go's CreateResource.
fn resource_attributes(job: &str, instance: &str, discovered: &Labels) -> Vec<KeyValue> {
    let (host, port) = split_host_port(instance).unwrap_or((instance, ""));
    let mut attributes = Vec::new();
    put(&mut attributes, "service.name", job);
    if is_discernible_host(host) {
        put(&mut attributes, "server.address", host);
    }
    put(&mut attributes, "service.instance.id", instance);
    put(&mut attributes, "server.port", port);
    let scheme = discovered.get("__scheme__").map_or("", String::as_str);
    put(&mut attributes, "url.scheme", scheme);
    const KUBERNETES: [(&str, &str); 7] = [
        ("__meta_kubernetes_pod_name", "k8s.pod.name"),
        ("__meta_kubernetes_pod_uid", "k8s.pod.uid"),
        ("__meta_kubernetes_pod_container_name", "k8s.container.name"),
        ("__meta_kubernetes_namespace", "k8s.namespace.name"),
        ("__meta_kubernetes_pod_node_name", "k8s.node.name"),
        ("__meta_kubernetes_node_name", "k8s.node.name"),
        ("__meta_kubernetes_endpoint_node_name", "k8s.node.name"),
    ];
    for (label, key) in KUBERNETES {
        if let Some(value) = discovered.get(label).filter(|v| !v.is_empty()) {
            put(&mut attributes, key, value);
        }
    }
    let controller = |l: &str| discovered.get(l).filter(|v| !v.is_empty());
    let kind = controller("__meta_kubernetes_pod_controller_kind");
    if let (Some(kind), Some(name)) = (kind, controller("__meta_kubernetes_pod_controller_name")) {
        let key = match kind.as_str() {
            "ReplicaSet" => Some("k8s.replicaset.name"),
            "DaemonSet" => Some("k8s.daemonset.name"),
            "StatefulSet" => Some("k8s.statefulset.name"),
            "Job" => Some("k8s.job.name"),
            "CronJob" => Some("k8s.cronjob.name"),
            _ => None,
        };
        if let Some(key) = key {
            put(&mut attributes, key, name);
        }
    }
    attributes
}

/// Go's net.SplitHostPort, for `host:port` and `[v6]:port`.
fn split_host_port(address: &str) -> Option<(&str, &str)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port));
    }
    let (host, port) = address.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

/// Neither a loopback address, the unspecified address nor `localhost`.
fn is_discernible_host(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        Err(_) => host != "localhost",
    }
}

/// Sets a string attribute, replacing one of the same key.
fn put(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
    let value = Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    });
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(existing) => existing.value = value,
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
    }
}

/// The scope of a sample's `otel_scope_*` labels, created on first use.
fn scope_of(scopes: &mut Vec<ScopeEntry>, labels: &Labels) -> usize {
    let mut id = ScopeId {
        name: String::new(),
        version: String::new(),
        schema_url: String::new(),
        attributes: Vec::new(),
    };
    for (key, value) in labels {
        match key.as_str() {
            "otel_scope_name" => id.name = value.clone(),
            "otel_scope_version" => id.version = value.clone(),
            "otel_scope_schema_url" => id.schema_url = value.clone(),
            other => {
                if let Some(attribute) = other.strip_prefix("otel_scope_") {
                    id.attributes.push((attribute.to_string(), value.clone()));
                }
            }
        }
    }
    if let Some(at) = scopes.iter().position(|s| s.id == id) {
        return at;
    }
    scopes.push(ScopeEntry {
        id,
        families: Vec::new(),
        by_name: HashMap::new(),
    });
    scopes.len() - 1
}

fn scope_metrics_of(id: ScopeId, metrics: Vec<Metric>, version: &str) -> ScopeMetrics {
    let own = id.name.is_empty() && id.version.is_empty() && id.schema_url.is_empty();
    let own = own && id.attributes.is_empty();
    let mut attributes = Vec::new();
    for (key, value) in &id.attributes {
        put(&mut attributes, key, value);
    }
    let (name, version) = match own {
        true => (SCOPE_NAME.to_string(), version.to_string()),
        false => (id.name, id.version),
    };
    ScopeMetrics {
        scope: Some(InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count: 0,
        }),
        metrics,
        schema_url: id.schema_url,
    }
}

/// The suffixes the collector strips to find a family's name.
const SUFFIXES: [&str; 6] = ["_bucket", "_count", "_sum", "_total", "_info", "_created"];

/// metricfamily.go's normalizeMetricName: the first suffix found is stripped.
fn normalize(name: &str) -> &str {
    for suffix in SUFFIXES {
        if name != suffix
            && let Some(base) = name.strip_suffix(suffix)
        {
            return base;
        }
    }
    name
}

/// metadata.go's metadataForMetric: the metadata and the family name of a sample name.
fn metadata_for(name: &str, metadata: &HashMap<String, Metadata>) -> (Metadata, String, String) {
    if let Some(own) = internal_metadata(name) {
        return (own, name.to_string(), name.to_string());
    }
    if let Some(found) = metadata.get(name) {
        return (found.clone(), name.to_string(), name.to_string());
    }
    let base = normalize(name);
    if let Some(found) = metadata.get(base) {
        let family = match (found.kind.as_str(), name.ends_with("_created")) {
            ("counter", true) => format!("{base}_total"),
            ("counter", false) => name.to_string(),
            _ => base.to_string(),
        };
        return (found.clone(), family, base.to_string());
    }
    (Metadata::default(), name.to_string(), name.to_string())
}

/// transaction.go's getOrCreateMetricFamily.
fn family_for<'s>(
    scope: &'s mut ScopeEntry,
    name: &str,
    metadata: &HashMap<String, Metadata>,
) -> &'s mut Family {
    let existing = scope.by_name.get(name).copied().or_else(|| {
        let mut stored = name.to_string();
        if !metadata.contains_key(name) {
            let base = normalize(name);
            stored = base.to_string();
            let counter = metadata.get(base).is_some_and(|m| m.kind == "counter");
            if name.ends_with("_created") && counter {
                stored.push_str("_total");
            }
        }
        let at = *scope.by_name.get(&stored)?;
        scope.families[at].includes(name).then_some(at)
    });
    let at = existing.unwrap_or_else(|| {
        let family = Family::new(name, metadata);
        scope
            .by_name
            .insert(family.name.clone(), scope.families.len());
        scope.families.push(family);
        scope.families.len() - 1
    });
    &mut scope.families[at]
}

impl Family {
    fn new(name: &str, metadata: &HashMap<String, Metadata>) -> Family {
        let (metadata, family_name, metadata_name) = metadata_for(name, metadata);
        let shape = match metadata.kind.as_str() {
            "counter" => Shape::Sum { monotonic: true },
            "histogram" => Shape::Histogram,
            "summary" => Shape::Summary,
            "info" | "stateset" => Shape::Sum { monotonic: false },
            _ => Shape::Gauge,
        };
        Family {
            name: family_name,
            metadata_name,
            metadata,
            shape,
            groups: Vec::new(),
            by_series: HashMap::new(),
        }
    }

    /// metricfamily.go's includesMetric.
    fn includes(&self, name: &str) -> bool {
        match self.shape {
            Shape::Sum { .. } => normalize(name) == self.metadata_name,
            Shape::Gauge => name == self.name,
            _ => normalize(name) == self.name,
        }
    }

    /// metricfamily.go's addSeries.
    fn add(
        &mut self,
        name: &str,
        labels: Labels,
        timestamp_ms: i64,
        value: f64,
        exemplar: Option<&PromExemplar>,
    ) -> Result<(), String> {
        let boundary_label = match self.shape {
            Shape::Histogram => Some("le"),
            Shape::Summary => Some("quantile"),
            _ => None,
        };
        let series: Vec<(String, String)> = labels
            .iter()
            .filter(|(k, _)| !NOT_ATTRIBUTES.contains(&k.as_str()))
            .filter(|(k, _)| Some(k.as_str()) != boundary_label && !k.starts_with("otel_scope_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let created = format!("{}_created", self.metadata_name);
        let at = match self.by_series.get(&series) {
            Some(at) => *at,
            None => {
                self.by_series.insert(series, self.groups.len());
                self.groups.push(Group {
                    timestamp_ms,
                    labels: labels.clone(),
                    ..Group::default()
                });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[at];
        if group.timestamp_ms != timestamp_ms {
            return Err(format!(
                "inconsistent timestamps on metric points for metric {name}"
            ));
        }
        match (self.shape, boundary_label) {
            (_, Some(boundary)) => {
                if name.ends_with("_sum") {
                    group.sum = Some(value);
                } else if name.ends_with("_count") {
                    group.count = Some(value);
                } else if name == created {
                    group.created_seconds = value;
                } else {
                    let text = labels
                        .get(boundary)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            format!("'{boundary}' label on {name} is missing or empty")
                        })?;
                    let bound = text
                        .parse::<f64>()
                        .map_err(|_| format!("invalid {boundary} {text:?} on {name}"))?;
                    group.points.push((bound, value));
                }
            }
            (Shape::Sum { .. }, None) if name == created => group.created_seconds = value,
            _ => group.value = Some(value),
        }
        if let Some(exemplar) = exemplar {
            group.exemplars.push(exemplar_of(exemplar, timestamp_ms));
        }
        Ok(())
    }

    /// metricfamily.go's appendMetric: `None` when no group made a point.
    fn into_metric(self) -> Option<Metric> {
        let attributes = |group: &Group, skip: Option<&str>| {
            let mut attributes = Vec::new();
            for (key, value) in &group.labels {
                let skipped = NOT_ATTRIBUTES.contains(&key.as_str())
                    || Some(key.as_str()) == skip
                    || key.starts_with("otel_scope_")
                    || value.is_empty();
                if !skipped {
                    put(&mut attributes, key, value);
                }
            }
            attributes
        };
        let data = match self.shape {
            Shape::Gauge | Shape::Sum { .. } => {
                let sum = matches!(self.shape, Shape::Sum { .. });
                let points: Vec<_> = self
                    .groups
                    .into_iter()
                    .filter_map(|g| number_point(g, sum, &attributes))
                    .collect();
                match self.shape {
                    Shape::Sum { monotonic } => metric::Data::Sum(otlp::Sum {
                        data_points: points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: monotonic,
                    }),
                    _ => metric::Data::Gauge(otlp::Gauge {
                        data_points: points,
                    }),
                }
            }
            Shape::Histogram => metric::Data::Histogram(otlp::Histogram {
                data_points: self
                    .groups
                    .into_iter()
                    .filter_map(|g| histogram_point(g, &attributes))
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
            Shape::Summary => metric::Data::Summary(otlp::Summary {
                data_points: self
                    .groups
                    .into_iter()
                    .filter_map(|g| summary_point(g, &attributes))
                    .collect(),
            }),
        };
        let kind = match self.metadata.kind.as_str() {
            "" => "unknown",
            kind => kind,
        };
        let metric = Metric {
            name: self.name,
            description: self.metadata.help,
            unit: unit_to_ucum(&self.metadata.unit),
            metadata: Vec::new(),
            data: Some(data),
        };
        let mut metric = metric;
        put(&mut metric.metadata, "prometheus.type", kind);
        (count_points(&metric) > 0).then_some(metric)
    }
}

type AttributesOf<'f> = &'f dyn Fn(&Group, Option<&str>) -> Vec<KeyValue>;

fn number_point(
    group: Group,
    sum: bool,
    attributes: AttributesOf<'_>,
) -> Option<otlp::NumberDataPoint> {
    let value = group.value?;
    let stale = is_stale(value);
    Some(otlp::NumberDataPoint {
        attributes: attributes(&group, None),
        start_time_unix_nano: match sum {
            true => seconds_to_nanos(group.created_seconds),
            false => 0,
        },
        time_unix_nano: millis_to_nanos(group.timestamp_ms),
        exemplars: group.exemplars,
        flags: if stale { NO_RECORDED_VALUE } else { 0 },
        value: (!stale).then_some(number_data_point::Value::AsDouble(value)),
    })
}

fn histogram_point(
    mut group: Group,
    attributes: AttributesOf<'_>,
) -> Option<otlp::HistogramDataPoint> {
    let count = group.count?;
    let stale = is_stale(count) || group.sum.is_some_and(is_stale);
    group.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut buckets = group.points.len() + 1;
    if buckets > 1 && group.points[buckets - 2].0 == f64::INFINITY {
        buckets -= 1;
    }
    let bounds: Vec<f64> = group.points[..buckets - 1].iter().map(|p| p.0).collect();
    let mut counts = Vec::with_capacity(buckets);
    for i in 0..buckets - 1 {
        let previous = if i == 0 { 0.0 } else { group.points[i - 1].1 };
        counts.push(if stale {
            0
        } else {
            (group.points[i].1 - previous) as u64
        });
    }
    let below = if buckets > 1 {
        group.points[buckets - 2].1
    } else {
        0.0
    };
    counts.push(if stale { 0 } else { (count - below) as u64 });
    Some(otlp::HistogramDataPoint {
        attributes: attributes(&group, Some("le")),
        start_time_unix_nano: seconds_to_nanos(group.created_seconds),
        time_unix_nano: millis_to_nanos(group.timestamp_ms),
        count: if stale { 0 } else { count as u64 },
        sum: if stale { None } else { group.sum },
        bucket_counts: counts,
        explicit_bounds: bounds,
        exemplars: std::mem::take(&mut group.exemplars),
        flags: if stale { NO_RECORDED_VALUE } else { 0 },
        min: None,
        max: None,
    })
}

fn summary_point(mut group: Group, attributes: AttributesOf<'_>) -> Option<otlp::SummaryDataPoint> {
    let count = group.count?;
    let stale = is_stale(count) || group.sum.is_some_and(is_stale);
    group.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantile_values = group
        .points
        .iter()
        .map(|(quantile, value)| summary_data_point::ValueAtQuantile {
            quantile: *quantile,
            value: if stale { 0.0 } else { *value },
        })
        .collect();
    Some(otlp::SummaryDataPoint {
        attributes: attributes(&group, Some("quantile")),
        start_time_unix_nano: seconds_to_nanos(group.created_seconds),
        time_unix_nano: millis_to_nanos(group.timestamp_ms),
        count: if stale { 0 } else { count as u64 },
        sum: if stale { 0.0 } else { group.sum.unwrap_or(0.0) },
        quantile_values,
        flags: if stale { NO_RECORDED_VALUE } else { 0 },
    })
}

/// metricfamily.go's convertExemplar: hex `trace_id`/`span_id` of the right length become
/// the ids, other labels filtered attributes.
fn exemplar_of(exemplar: &PromExemplar, sample_ms: i64) -> otlp::Exemplar {
    let mut out = otlp::Exemplar {
        time_unix_nano: millis_to_nanos(exemplar.timestamp_ms.unwrap_or(sample_ms)),
        value: Some(otlp::exemplar::Value::AsDouble(exemplar.value)),
        ..Default::default()
    };
    for (key, value) in &exemplar.labels {
        if value.is_empty() && matches!(key.to_ascii_lowercase().as_str(), "trace_id" | "span_id") {
            continue;
        }
        let id = match key.to_ascii_lowercase().as_str() {
            "trace_id" => hex_id::<16>(value).map(|id| out.trace_id = id),
            "span_id" => hex_id::<8>(value).map(|id| out.span_id = id),
            _ => None,
        };
        if id.is_none() {
            put(&mut out.filtered_attributes, key, value);
        }
    }
    out
}

/// A non-zero id of `N` bytes written as hex.
fn hex_id<const N: usize>(text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text).ok().filter(|b| b.len() == N)?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

fn millis_to_nanos(ms: i64) -> u64 {
    (ms as u64).wrapping_mul(1_000_000)
}

/// util.go's timestampFromFloat64; zero stays zero (no start time).
fn seconds_to_nanos(seconds: f64) -> u64 {
    if seconds == 0.0 {
        return 0;
    }
    let whole = seconds as i64;
    let nanos = ((seconds - whole as f64) * 1e9) as i64;
    (whole * 1_000_000_000 + nanos) as u64
}

/// pkg/translator/prometheus' UnitWordToUCUM.
pub fn unit_to_ucum(unit: &str) -> String {
    const WORDS: [(&str, &str); 26] = [
        ("days", "d"),
        ("hours", "h"),
        ("minutes", "min"),
        ("seconds", "s"),
        ("milliseconds", "ms"),
        ("microseconds", "us"),
        ("nanoseconds", "ns"),
        ("bytes", "By"),
        ("kibibytes", "KiBy"),
        ("mebibytes", "MiBy"),
        ("gibibytes", "GiBy"),
        ("tibibytes", "TiBy"),
        ("kilobytes", "KBy"),
        ("megabytes", "MBy"),
        ("gigabytes", "GBy"),
        ("terabytes", "TBy"),
        ("meters", "m"),
        ("volts", "V"),
        ("amperes", "A"),
        ("joules", "J"),
        ("watts", "W"),
        ("grams", "g"),
        ("celsius", "Cel"),
        ("hertz", "Hz"),
        ("ratio", "1"),
        ("percent", "%"),
    ];
    const PER: [(&str, &str); 7] = [
        ("second", "s"),
        ("minute", "m"),
        ("hour", "h"),
        ("day", "d"),
        ("week", "w"),
        ("month", "mo"),
        ("year", "y"),
    ];
    let lookup = |table: &[(&str, &str)], word: &str| {
        table
            .iter()
            .find(|(w, _)| *w == word)
            .map_or(word.to_string(), |(_, ucum)| ucum.to_string())
    };
    match unit.split_once("_per_") {
        Some((word, per)) if !per.is_empty() => {
            format!("{}/{}", lookup(&WORDS, word), lookup(&PER, per))
        }
        Some((word, _)) => lookup(&WORDS, word),
        None => lookup(&WORDS, unit),
    }
}

fn count_points(metric: &Metric) -> usize {
    match &metric.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::exposition::parse;

    /// Builds the request of one exposition scraped at 1000 ms from job `j`, instance
    /// `10.0.0.1:9100`, with no relabeling.
    fn scrape(text: &str, openmetrics: bool) -> ExportMetricsServiceRequest {
        let exposition = parse(text, openmetrics).unwrap();
        let discovered: Labels = [("__scheme__".to_string(), "http".to_string())].into();
        let mut tx = Transaction::new(Target {
            job: "j",
            instance: "10.0.0.1:9100",
            discovered: &discovered,
            metadata: &exposition.metadata,
            version: "v",
        });
        for sample in &exposition.samples {
            let mut labels: Labels = sample.labels.iter().cloned().collect();
            labels.insert("__name__".into(), sample.name.clone());
            labels.insert("job".into(), "j".into());
            labels.insert("instance".into(), "10.0.0.1:9100".into());
            let ts = sample.timestamp_ms.unwrap_or(1000);
            tx.append(labels, ts, sample.value, sample.exemplar.as_ref())
                .unwrap();
        }
        tx.finish().0
    }

    fn metrics(request: &ExportMetricsServiceRequest) -> &[Metric] {
        &request.resource_metrics[0].scope_metrics[0].metrics
    }

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
        let kv = attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn resource_and_scope_follow_the_collector() {
        let request = scrape("x 1\n", false);
        let resource = request.resource_metrics[0].resource.as_ref().unwrap();
        let attrs = &resource.attributes;
        assert_eq!(attribute(attrs, "service.name"), Some("j"));
        assert_eq!(
            attribute(attrs, "service.instance.id"),
            Some("10.0.0.1:9100")
        );
        assert_eq!(attribute(attrs, "server.address"), Some("10.0.0.1"));
        assert_eq!(attribute(attrs, "server.port"), Some("9100"));
        assert_eq!(attribute(attrs, "url.scheme"), Some("http"));
        let scope = request.resource_metrics[0].scope_metrics[0]
            .scope
            .as_ref()
            .unwrap();
        assert_eq!(scope.name, SCOPE_NAME);
        assert_eq!(scope.version, "v");
        let loopback = resource_attributes("j", "127.0.0.1:1", &Labels::new());
        assert_eq!(attribute(&loopback, "server.address"), None);
    }

    #[test]
    fn text_counter_gauge_and_untyped() {
        let text = "# HELP c_total C.\n# TYPE c_total counter\nc_total{a=\"1\"} 5\nc_created{a=\"1\"} 10.5\n# TYPE g gauge\ng 2\nu 3\n";
        let request = scrape(text, false);
        let m = metrics(&request);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        // In text, `c_created` finds no metadata (it is written for `c_total`): a gauge.
        assert_eq!(names, ["c_total", "c_created", "g", "u"]);
        let Some(metric::Data::Sum(sum)) = &m[0].data else {
            panic!("a sum")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let point = &sum.data_points[0];
        assert_eq!(point.value, Some(number_data_point::Value::AsDouble(5.0)));
        assert_eq!(point.time_unix_nano, 1_000_000_000);
        assert_eq!(attribute(&point.attributes, "a"), Some("1"));
        assert_eq!(
            point.attributes.len(),
            1,
            "job and instance are not attributes"
        );
        assert_eq!(m[0].description, "C.");
        assert!(matches!(m[3].data, Some(metric::Data::Gauge(_))));
        assert_eq!(
            attribute(&m[3].metadata, "prometheus.type"),
            Some("unknown")
        );
    }

    #[test]
    fn openmetrics_counter_takes_its_created_as_start() {
        let text = "# TYPE c counter\n# UNIT c seconds\nc_total 5 # {trace_id=\"0102030405060708090a0b0c0d0e0f10\",x=\"y\"} 1\nc_created 10.5\n# EOF\n";
        let request = scrape(text, true);
        let m = metrics(&request);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "c_total");
        assert_eq!(m[0].unit, "s");
        let Some(metric::Data::Sum(sum)) = &m[0].data else {
            panic!("a sum")
        };
        let point = &sum.data_points[0];
        assert_eq!(point.start_time_unix_nano, 10_500_000_000);
        let exemplar = &point.exemplars[0];
        assert_eq!(exemplar.trace_id, (1u8..=16).collect::<Vec<_>>());
        assert_eq!(attribute(&exemplar.filtered_attributes, "x"), Some("y"));
    }

    #[test]
    fn histogram_buckets_become_deltas() {
        let text = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"5\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_sum 9\nh_count 4\nh_created 7\n";
        let request = scrape(text, false);
        let m = metrics(&request);
        assert_eq!(m.len(), 1);
        let Some(metric::Data::Histogram(h)) = &m[0].data else {
            panic!("a histogram")
        };
        let point = &h.data_points[0];
        assert_eq!(point.explicit_bounds, [1.0, 5.0]);
        assert_eq!(point.bucket_counts, [2u64, 1, 1]);
        assert_eq!(point.count, 4);
        assert_eq!(point.sum, Some(9.0));
        assert_eq!(point.start_time_unix_nano, 7_000_000_000);
        assert!(point.attributes.is_empty(), "le is not an attribute");
    }

    #[test]
    fn summary_quantiles_are_sorted() {
        let text =
            "# TYPE s summary\ns{quantile=\"0.9\"} 3\ns{quantile=\"0.5\"} 1\ns_sum 10\ns_count 4\n";
        let request = scrape(text, false);
        let Some(metric::Data::Summary(s)) = &metrics(&request)[0].data else {
            panic!()
        };
        let point = &s.data_points[0];
        let quantiles: Vec<(f64, f64)> = point
            .quantile_values
            .iter()
            .map(|q| (q.quantile, q.value))
            .collect();
        assert_eq!(quantiles, [(0.5, 1.0), (0.9, 3.0)]);
        assert_eq!((point.count, point.sum), (4, 10.0));
    }

    #[test]
    fn stale_markers_flag_points_and_plain_nan_does_not() {
        let exposition = parse("# TYPE g gauge\ng 1\n", false).unwrap();
        let discovered = Labels::new();
        let mut tx = Transaction::new(Target {
            job: "j",
            instance: "h:1",
            discovered: &discovered,
            metadata: &exposition.metadata,
            version: "v",
        });
        let labels = |name: &str| -> Labels { [("__name__".to_string(), name.to_string())].into() };
        tx.append(labels("g"), 5, f64::from_bits(STALE_NAN), None)
            .unwrap();
        tx.append(labels("n"), 5, f64::NAN, None).unwrap();
        let (request, points) = tx.finish();
        assert_eq!(points, 2);
        let m = metrics(&request);
        let Some(metric::Data::Gauge(g)) = &m[0].data else {
            panic!()
        };
        assert_eq!(g.data_points[0].flags, NO_RECORDED_VALUE);
        assert_eq!(g.data_points[0].value, None);
        let Some(metric::Data::Gauge(n)) = &m[1].data else {
            panic!()
        };
        assert_eq!(n.data_points[0].flags, 0);
    }

    #[test]
    fn units_map_to_ucum() {
        assert_eq!(unit_to_ucum("bytes_per_second"), "By/s");
        assert_eq!(unit_to_ucum("seconds"), "s");
        assert_eq!(unit_to_ucum("widgets"), "widgets");
        assert_eq!(unit_to_ucum(""), "");
    }
}
