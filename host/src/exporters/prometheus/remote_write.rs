//! The `prometheusremotewrite` exporter: Prometheus Remote Write 1.0 (a protobuf
//! `WriteRequest`, snappy-compressed, POSTed) to Mimir, Prometheus, Thanos or Cortex, with
//! the keys and translation of the collector's exporter (contrib v0.161.0): series named and
//! labelled as [`super`] says, `external_labels`, `target_info`, exponential histograms as
//! native histograms, and requests split so that each stays under `max_batch_size_bytes`.
//!
//! Delta sums and histograms are dropped, as the collector drops them (Remote Write holds
//! cumulative series). Answers: 2xx delivered; 5xx (and transport errors) retried with
//! `retry_on_failure`; any other status, 429 included, is permanent (logged and counted as
//! failed by the queue), as the collector has it unless its alpha `RetryOn429` gate is on.
//!
//! The HTTP client (pool, TLS files, headers, authenticator, their rotation) is the
//! `otlp_http` exporter's.

use super::{NameKind, ResourceToTelemetry, TranslationStrategy, label_name, metric_name};
use crate::auth::{AuthConfig, ClientAuthConfig};
use crate::config::values;
use crate::exporters::otlp::{BuildError, TlsClientConfig};
use crate::exporters::otlp_http::{Body, Connection, OtlpHttpExporterConfig};
use crate::exporters::queue::{BatchPolicy, ExporterSpec, QueueSettings, RetrySettings};
use crate::exporters::{ExportError, Payload, SendOutcome, Sink};
use crate::pdata::Signal;
use crate::secrets::{Rotating, Secret, Secrets};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::HeaderValue;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, ExponentialHistogramDataPoint, Metric,
    exemplar, metric::Data, number_data_point,
};
use prost::Message;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `exporters: prometheusremotewrite:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteExporterConfig {
    /// The remote write URL, e.g. `http://mimir:9009/api/v1/push`.
    pub endpoint: String,
    /// HTTP headers sent with every request, e.g. `X-Scope-OrgID`.
    pub headers: BTreeMap<String, Secret>,
    /// A client authenticator extension (`bearertokenauth`, `basicauth`, `oidc`...).
    pub auth: Option<AuthConfig>,
    /// TLS for `https://` endpoints, as the `otlp_http` exporter takes it.
    pub tls: TlsClientConfig,
    /// Deadline of one request; 5s by default, `0` for none.
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// `snappy`, the only compression Remote Write has (and the default).
    pub compression: Option<String>,
    /// Backoff for 5xx answers and transport errors; the first wait is 50ms.
    pub retry_on_failure: RetrySettings,
    /// The queue in front of the exporter.
    pub remote_write_queue: RemoteWriteQueue,
    /// Resource attributes as labels of every series.
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// Labels added to every series, unless the series has the label already.
    pub external_labels: BTreeMap<String, String>,
    /// Prefixed to every metric name, with `_`.
    pub namespace: String,
    /// Whether a `target_info` series carries each resource's attributes.
    pub target_info: TargetInfo,
    /// The largest uncompressed request; bigger ones are split by series. 3000000 by default.
    pub max_batch_size_bytes: i64,
    /// How many of a split request's parts are sent at once; `num_consumers` when unset.
    pub max_batch_request_parallelism: Option<i64>,
    /// Add unit and type suffixes (`_seconds`, `_total`); true by default. Deprecated by the
    /// collector for `translation_strategy`, which wins when set.
    pub add_metric_suffixes: bool,
    /// `UnderscoreEscapingWithSuffixes` or `UnderscoreEscapingWithoutSuffixes`.
    pub translation_strategy: Option<TranslationStrategy>,
    /// Leave out the `otel_scope_name`, `otel_scope_version` and scope attribute labels.
    pub disable_scope_info: bool,
    /// Metric metadata in each request: not supported, only `false` is accepted.
    pub send_metadata: bool,
}

/// `remote_write_queue:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteQueue {
    /// Queue requests in memory; off, each export waits for its send.
    pub enabled: bool,
    /// How many requests the queue holds; 10000 by default.
    pub queue_size: i64,
    /// How many parts of a split request are sent at once; 5 by default.
    pub num_consumers: i64,
}

/// `target_info:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetInfo {
    /// Send a `target_info` series per resource; true by default.
    pub enabled: bool,
}

impl Default for RemoteWriteQueue {
    fn default() -> Self {
        RemoteWriteQueue {
            enabled: true,
            queue_size: 10_000,
            num_consumers: 5,
        }
    }
}

impl Default for TargetInfo {
    fn default() -> Self {
        TargetInfo { enabled: true }
    }
}

impl Default for RemoteWriteExporterConfig {
    fn default() -> Self {
        RemoteWriteExporterConfig {
            endpoint: String::new(),
            headers: BTreeMap::new(),
            auth: None,
            tls: TlsClientConfig::default(),
            timeout: Duration::from_secs(5),
            compression: None,
            retry_on_failure: RetrySettings {
                initial_interval: Duration::from_millis(50),
                ..RetrySettings::default()
            },
            remote_write_queue: RemoteWriteQueue::default(),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            external_labels: BTreeMap::new(),
            namespace: String::new(),
            target_info: TargetInfo::default(),
            max_batch_size_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_batch_request_parallelism: None,
            add_metric_suffixes: true,
            translation_strategy: None,
            disable_scope_info: false,
            send_metadata: false,
        }
    }
}

const DEFAULT_MAX_BATCH_BYTES: i64 = 3_000_000;

impl RemoteWriteExporterConfig {
    /// What the collector refuses in it (and what trailhead does not support), as (key, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut problem = |key, why: &str| problems.push((key, why.to_string()));
        match self.endpoint.parse::<http::Uri>() {
            _ if self.endpoint.is_empty() => {
                problem("endpoint", "the remote write URL must be set")
            }
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => problem(
                "endpoint",
                "must be a URL starting with http:// or https://",
            ),
        }
        let queue = &self.remote_write_queue;
        if queue.queue_size < 0 {
            problem(
                "remote_write_queue",
                "remote write queue size can't be negative",
            );
        }
        if queue.enabled && queue.queue_size == 0 {
            problem(
                "remote_write_queue",
                "a 0 size queue will drop all the data",
            );
        }
        if queue.num_consumers < 0 {
            problem(
                "remote_write_queue",
                "remote write consumer number can't be negative",
            );
        }
        if self.max_batch_size_bytes < 0 {
            problem(
                "max_batch_size_bytes",
                "max_batch_size_bytes must be greater than 0",
            );
        }
        if self.max_batch_request_parallelism.is_some_and(|p| p < 1) {
            problem(
                "max_batch_request_parallelism",
                "max_batch_request_parallelism can't be set to below 1",
            );
        }
        if self
            .compression
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c != "snappy")
        {
            problem("compression", "compression type must be snappy");
        }
        if self.send_metadata {
            problem(
                "send_metadata",
                "metric metadata is not sent by trailhead; remove the key (series are sent alike)",
            );
        }
        if let Some(why) = self
            .translation_strategy
            .and_then(TranslationStrategy::problem)
        {
            problems.push(("translation_strategy", why));
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(("headers", format!("`{name}` is not a valid header name")));
            }
        }
        let plaintext = self.endpoint.starts_with("http://");
        problems.extend(self.tls.problems(false, plaintext));
        problems.extend(
            crate::exporters::sending_problems(&None, &self.queue(), &self.retry_on_failure)
                .into_iter(),
        );
        problems
    }

    /// The queue the collector builds from `remote_write_queue`: one consumer (parts of a
    /// request are sent in parallel instead), `queue_size` requests.
    fn queue(&self) -> QueueSettings {
        QueueSettings {
            enabled: self.remote_write_queue.enabled,
            num_consumers: 1,
            queue_size: self.remote_write_queue.queue_size.max(1) as usize,
            ..QueueSettings::default()
        }
    }

    /// The exporter, connecting lazily; the TLS and token files are watched through
    /// `secrets`, as for `otlp_http`.
    pub fn build(
        &self,
        id: &str,
        resolve: impl Fn(&PathBuf) -> PathBuf,
        token: Option<ClientAuthConfig>,
        secrets: &Secrets,
    ) -> Result<ExporterSpec, BuildError> {
        let uri = self
            .endpoint
            .parse::<http::Uri>()
            .map_err(|e| BuildError::Endpoint {
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let mut client = OtlpHttpExporterConfig {
            endpoint: Some(self.endpoint.clone()),
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            timeout: self.timeout,
            ..OtlpHttpExporterConfig::default()
        };
        for path in [
            &mut client.tls.ca_file,
            &mut client.tls.cert_file,
            &mut client.tls.key_file,
        ] {
            *path = path.as_ref().map(&resolve);
        }
        let token = token.map(|t| t.resolved(&|p| resolve(&p.to_path_buf())));
        let mut files: Vec<PathBuf> = [
            &client.tls.ca_file,
            &client.tls.cert_file,
            &client.tls.key_file,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        files.extend(token.iter().flat_map(ClientAuthConfig::files));
        let https = uri.scheme_str() == Some("https");
        let what = format!("exporter {id}/metrics");
        let connection =
            secrets.watch(what, files, move || client.connect(token.as_ref(), https))?;
        let parallel = self
            .max_batch_request_parallelism
            .unwrap_or(self.remote_write_queue.num_consumers)
            .max(1) as usize;
        let max_bytes = match self.max_batch_size_bytes {
            0 => DEFAULT_MAX_BATCH_BYTES,
            n => n,
        } as usize;
        let sink = RemoteWriteSink {
            connection,
            uri,
            timeout: self.timeout,
            translation: Translation::of(self),
            max_bytes,
            parallel,
        };
        Ok(ExporterSpec {
            id: id.to_string(),
            signal: Signal::Metrics,
            sink: Arc::new(sink),
            queue: self.queue(),
            batch: BatchPolicy::UNBATCHED,
            retry: self.retry_on_failure.clone(),
        })
    }
}

/// prompb's messages (prometheus `prompb/remote.proto` and `types.proto`), the parts
/// Remote Write 1.0 sends.
pub mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// A native histogram (integer counts: what OTLP exponential histograms have).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub count_int: u64,
        #[prost(double, tag = "3")]
        pub sum: f64,
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "6")]
        pub zero_count_int: u64,
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }
}

use prompb::{Label, Sample, TimeSeries, WriteRequest};

/// Prometheus' staleness marker: the value of a sample whose series ended.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
const NO_RECORDED_VALUE: u32 = 1;
/// The zero bucket's width when a point gives none (the translator's default).
const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// The settings the conversion reads.
#[derive(Debug, Clone)]
pub struct Translation {
    namespace: String,
    suffixes: bool,
    external_labels: BTreeMap<String, String>,
    target_info: bool,
    scope_info: bool,
    resource_to_telemetry: ResourceToTelemetry,
}

impl Translation {
    fn of(config: &RemoteWriteExporterConfig) -> Self {
        Translation {
            namespace: config.namespace.clone(),
            suffixes: super::with_suffixes(config.translation_strategy, config.add_metric_suffixes),
            external_labels: config.external_labels.clone(),
            target_info: config.target_info.enabled,
            scope_info: !config.disable_scope_info,
            resource_to_telemetry: config.resource_to_telemetry_conversion,
        }
    }
}

/// Series keyed by their (sorted) labels: points of one series in a request become samples
/// of one `TimeSeries`, as in the collector.
type SeriesMap = BTreeMap<Vec<Label>, TimeSeries>;

/// The request's metrics as Remote Write series, and how many metrics were dropped (delta
/// temporality, names with nothing valid left).
pub fn convert(request: ExportMetricsServiceRequest, t: &Translation) -> (Vec<TimeSeries>, usize) {
    let mut series = SeriesMap::new();
    let mut dropped = 0;
    for resource_metrics in request.resource_metrics {
        let resource = resource_metrics.resource.unwrap_or_default().attributes;
        let mut latest = 0u64;
        for scope_metrics in resource_metrics.scope_metrics {
            let scope = scope_metrics.scope.unwrap_or_default();
            let scope_labels = scope_labels(&scope, t);
            for metric in scope_metrics.metrics {
                latest = latest.max(latest_time(&metric));
                let name = NameKind::of(&metric).and_then(|kind| {
                    metric_name(&metric.name, &metric.unit, kind, &t.namespace, t.suffixes)
                });
                let Some(name) = name.filter(|_| cumulative(&metric)) else {
                    dropped += 1;
                    continue;
                };
                let base = |attributes: &[KeyValue]| {
                    let joined = t.resource_to_telemetry.join(&resource, attributes);
                    labels(&joined, &resource, &scope_labels, t)
                };
                add_metric(&mut series, metric, &name, &base);
            }
        }
        if t.target_info && latest > 0 {
            add_target_info(&mut series, &resource, latest, t);
        }
    }
    (series.into_values().collect(), dropped)
}

/// Whether Remote Write can hold it: sums and histograms must be cumulative.
fn cumulative(metric: &Metric) -> bool {
    let cumulative = AggregationTemporality::Cumulative as i32;
    match &metric.data {
        Some(Data::Sum(s)) => s.aggregation_temporality == cumulative,
        Some(Data::Histogram(h)) => h.aggregation_temporality == cumulative,
        Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality == cumulative,
        Some(_) => true,
        None => false,
    }
}

fn latest_time(metric: &Metric) -> u64 {
    let times: Vec<u64> = match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(Data::Summary(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        None => Vec::new(),
    };
    times.into_iter().max().unwrap_or(0)
}

fn millis(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// A sample, or the staleness marker when the point has no recorded value.
fn sample(value: f64, time: u64, flags: u32) -> Sample {
    let value = match flags & NO_RECORDED_VALUE {
        0 => value,
        _ => f64::from_bits(STALE_NAN),
    };
    Sample {
        value,
        timestamp: millis(time),
    }
}

/// The `otel_scope_*` labels of a scope, when scope info is on.
fn scope_labels(
    scope: &opentelemetry_proto::tonic::common::v1::InstrumentationScope,
    t: &Translation,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if !t.scope_info {
        return labels;
    }
    if !scope.name.is_empty() {
        labels.insert("otel_scope_name".into(), scope.name.clone());
    }
    if !scope.version.is_empty() {
        labels.insert("otel_scope_version".into(), scope.version.clone());
    }
    for kv in &scope.attributes {
        if matches!(kv.key.as_str(), "name" | "version" | "schema_url") {
            continue;
        }
        if let Some(key) = label_name(&format!("otel_scope_{}", kv.key), true) {
            labels.insert(key, super::value_text(kv.value.as_ref()));
        }
    }
    labels
}

/// A point's labels as the collector's `createAttributes` makes them: attributes (empty
/// values left out, names that clash joined with `;`), `job`, `instance`, external labels
/// the series lacks, then the scope's.
fn labels(
    attributes: &[&KeyValue],
    resource: &[KeyValue],
    scope: &BTreeMap<String, String>,
    t: &Translation,
) -> BTreeMap<String, String> {
    let mut sorted: Vec<(&str, String)> = attributes
        .iter()
        .map(|kv| (kv.key.as_str(), super::value_text(kv.value.as_ref())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in sorted {
        let Some(key) = label_name(key, true) else {
            continue;
        };
        match labels.get_mut(&key) {
            Some(existing) if *existing != value => *existing = format!("{existing};{value}"),
            Some(_) => {}
            None => {
                labels.insert(key, value);
            }
        }
    }
    if let Some(job) = super::job(resource).filter(|j| !j.is_empty()) {
        labels.insert("job".into(), job);
    }
    if let Some(instance) = super::instance(resource).filter(|i| !i.is_empty()) {
        labels.insert("instance".into(), instance);
    }
    for (key, value) in &t.external_labels {
        labels.entry(key.clone()).or_insert_with(|| value.clone());
    }
    labels.extend(scope.clone());
    labels
}

/// The series' label list: `labels` plus `__name__` and an extra (`le`, `quantile`).
fn series_labels(
    base: &BTreeMap<String, String>,
    name: &str,
    extra: Option<(&str, String)>,
) -> Vec<Label> {
    let mut labels = base.clone();
    labels.insert("__name__".into(), name.into());
    if let Some((key, value)) = extra {
        labels.insert(key.into(), value);
    }
    labels
        .into_iter()
        .map(|(name, value)| Label { name, value })
        .collect()
}

fn push(series: &mut SeriesMap, labels: Vec<Label>, sample: Sample) -> &mut TimeSeries {
    let entry = series.entry(labels.clone()).or_insert_with(|| TimeSeries {
        labels,
        ..TimeSeries::default()
    });
    entry.samples.push(sample);
    entry
}

/// A bound as the translator writes `le` and `quantile`: Go's shortest `'f'` form.
fn bound_text(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    format!("{value}")
}

fn add_metric(
    series: &mut SeriesMap,
    metric: Metric,
    name: &str,
    base: &dyn Fn(&[KeyValue]) -> BTreeMap<String, String>,
) {
    use number_data_point::Value::{AsDouble, AsInt};
    let numbers = match metric.data {
        Some(Data::Gauge(g)) => g.data_points,
        Some(Data::Sum(s)) => s.data_points,
        Some(Data::Histogram(h)) => {
            for p in h.data_points {
                let labels = base(&p.attributes);
                let at = |value| sample(value, p.time_unix_nano, p.flags);
                if let Some(sum) = p.sum {
                    push(
                        series,
                        series_labels(&labels, &format!("{name}_sum"), None),
                        at(sum),
                    );
                }
                let count = p.count as f64;
                push(
                    series,
                    series_labels(&labels, &format!("{name}_count"), None),
                    at(count),
                );
                let mut buckets = Vec::new();
                let mut total = 0u64;
                for (bound, n) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
                    total += n;
                    buckets.push((*bound, total as f64));
                }
                buckets.push((f64::INFINITY, count));
                let bucket_name = format!("{name}_bucket");
                let mut exemplars = exemplars(&p.exemplars);
                for (bound, cumulative) in buckets {
                    let le = Some(("le", bound_text(bound)));
                    let ts = push(
                        series,
                        series_labels(&labels, &bucket_name, le),
                        at(cumulative),
                    );
                    // Each exemplar goes to the first bucket that holds its value.
                    let (mine, rest): (Vec<_>, Vec<_>) =
                        exemplars.into_iter().partition(|e| e.value <= bound);
                    ts.exemplars.extend(mine);
                    exemplars = rest;
                }
            }
            return;
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in h.data_points {
                let Some(histogram) = native_histogram(&p) else {
                    continue;
                };
                let labels = series_labels(&base(&p.attributes), name, None);
                let entry = series.entry(labels.clone()).or_insert_with(|| TimeSeries {
                    labels,
                    ..TimeSeries::default()
                });
                entry.histograms.push(histogram);
                entry.exemplars.extend(exemplars(&p.exemplars));
            }
            return;
        }
        Some(Data::Summary(s)) => {
            for p in s.data_points {
                let labels = base(&p.attributes);
                let at = |value| sample(value, p.time_unix_nano, p.flags);
                push(
                    series,
                    series_labels(&labels, &format!("{name}_sum"), None),
                    at(p.sum),
                );
                let count = p.count as f64;
                push(
                    series,
                    series_labels(&labels, &format!("{name}_count"), None),
                    at(count),
                );
                for q in &p.quantile_values {
                    let quantile = Some(("quantile", bound_text(q.quantile)));
                    push(series, series_labels(&labels, name, quantile), at(q.value));
                }
            }
            return;
        }
        None => return,
    };
    for p in numbers {
        let value = match p.value {
            Some(AsInt(i)) => i as f64,
            Some(AsDouble(d)) => d,
            None => 0.0,
        };
        let labels = series_labels(&base(&p.attributes), name, None);
        let ts = push(series, labels, sample(value, p.time_unix_nano, p.flags));
        ts.exemplars.extend(exemplars(&p.exemplars));
    }
}

/// Exemplars with their trace and span ids as labels.
fn exemplars(exemplars: &[OtlpExemplar]) -> Vec<prompb::Exemplar> {
    exemplars
        .iter()
        .map(|e| {
            let mut labels = Vec::new();
            if !e.trace_id.is_empty() && e.trace_id.iter().any(|b| *b != 0) {
                labels.push(Label {
                    name: "trace_id".into(),
                    value: hex::encode(&e.trace_id),
                });
            }
            if !e.span_id.is_empty() && e.span_id.iter().any(|b| *b != 0) {
                labels.push(Label {
                    name: "span_id".into(),
                    value: hex::encode(&e.span_id),
                });
            }
            let value = match e.value {
                Some(exemplar::Value::AsInt(i)) => i as f64,
                Some(exemplar::Value::AsDouble(d)) => d,
                None => 0.0,
            };
            prompb::Exemplar {
                labels,
                value,
                timestamp: millis(e.time_unix_nano),
            }
        })
        .collect()
}

/// An exponential histogram as a native one, scale above 8 merged down to 8; `None` below
/// -4, which Prometheus cannot hold.
fn native_histogram(p: &ExponentialHistogramDataPoint) -> Option<prompb::Histogram> {
    if p.scale < -4 {
        return None;
    }
    let scale_down = (p.scale - 8).max(0);
    let (positive_spans, positive_deltas) = spans_and_deltas(p.positive.as_ref(), scale_down);
    let (negative_spans, negative_deltas) = spans_and_deltas(p.negative.as_ref(), scale_down);
    let stale = p.flags & NO_RECORDED_VALUE != 0;
    Some(prompb::Histogram {
        count_int: if stale { STALE_NAN } else { p.count },
        sum: if stale {
            f64::from_bits(STALE_NAN)
        } else {
            p.sum.unwrap_or(0.0)
        },
        schema: p.scale.min(8),
        zero_threshold: match p.zero_threshold {
            0.0 => DEFAULT_ZERO_THRESHOLD,
            z => z,
        },
        zero_count_int: p.zero_count,
        negative_spans,
        negative_deltas,
        positive_spans,
        positive_deltas,
        timestamp: millis(p.time_unix_nano),
    })
}

/// The translator's `convertBucketsLayout`: OTLP bucket `i` is Prometheus bucket
/// `((offset + i) >> scale_down) + 1`; gaps of up to two buckets are filled with zeros,
/// longer ones start a new span.
fn spans_and_deltas(
    buckets: Option<&Buckets>,
    scale_down: i32,
) -> (Vec<prompb::BucketSpan>, Vec<i64>) {
    let Some(buckets) = buckets.filter(|b| !b.bucket_counts.is_empty()) else {
        return (Vec::new(), Vec::new());
    };
    let counts = &buckets.bucket_counts;
    let mut spans = vec![prompb::BucketSpan {
        offset: (buckets.offset >> scale_down) + 1,
        length: 0,
    }];
    let mut deltas = Vec::new();
    let mut previous = 0i64;
    let mut append = |spans: &mut Vec<prompb::BucketSpan>, count: i64| {
        if let Some(last) = spans.last_mut() {
            last.length += 1;
        }
        deltas.push(count - previous);
        previous = count;
    };
    let mut index = spans[0].offset;
    let mut count = 0i64;
    for (i, n) in counts.iter().enumerate() {
        let next = ((i as i32 + buckets.offset) >> scale_down) + 1;
        if index == next {
            count += *n as i64;
            continue;
        }
        if count == 0 {
            count = *n as i64;
            continue;
        }
        fill_gap(&mut spans, &mut append, next - index - 1);
        append(&mut spans, count);
        count = *n as i64;
        index = next;
    }
    let gap = ((counts.len() as i32 + buckets.offset - 1) >> scale_down) + 1 - index;
    fill_gap(&mut spans, &mut append, gap);
    append(&mut spans, count);
    (spans, deltas)
}

fn fill_gap(
    spans: &mut Vec<prompb::BucketSpan>,
    append: &mut impl FnMut(&mut Vec<prompb::BucketSpan>, i64),
    gap: i32,
) {
    if gap > 2 {
        spans.push(prompb::BucketSpan {
            offset: gap,
            length: 0,
        });
    } else {
        for _ in 0..gap.max(0) {
            append(spans, 0);
        }
    }
}

/// `target_info` of a resource with attributes besides `service.*` and a job or instance:
/// those attributes as labels, value 1, at the resource's latest point.
fn add_target_info(series: &mut SeriesMap, resource: &[KeyValue], latest: u64, t: &Translation) {
    let others: Vec<&KeyValue> = resource
        .iter()
        .filter(|kv| !super::SERVICE_KEYS.contains(&kv.key.as_str()))
        .collect();
    if others.is_empty() {
        return;
    }
    let labels = labels(&others, resource, &BTreeMap::new(), t);
    if !labels.contains_key("job") && !labels.contains_key("instance") {
        return;
    }
    let name = match t.namespace.as_str() {
        "" => "target_info".to_string(),
        ns => format!("{ns}_target_info"),
    };
    push(
        series,
        series_labels(&labels, &name, None),
        sample(1.0, latest, 0),
    );
}

/// Requests of the series, each under `max_bytes` uncompressed (a series larger than that
/// alone is sent alone), as the collector's `batchTimeSeries` cuts them.
pub fn batches(series: Vec<TimeSeries>, max_bytes: usize) -> Vec<WriteRequest> {
    let mut requests = Vec::new();
    let mut current = WriteRequest::default();
    let mut size = 0;
    for ts in series {
        let len = ts.encoded_len();
        if size + len >= max_bytes && !current.timeseries.is_empty() {
            requests.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.timeseries.push(ts);
    }
    if !current.timeseries.is_empty() {
        requests.push(current);
    }
    requests
}

struct RemoteWriteSink {
    connection: Arc<Rotating<Connection>>,
    uri: http::Uri,
    timeout: Duration,
    translation: Translation,
    max_bytes: usize,
    parallel: usize,
}

const USER_AGENT_VALUE: &str = concat!("trailhead/", env!("CARGO_PKG_VERSION"));

impl Sink for RemoteWriteSink {
    fn send(&self, payload: Payload, _: usize) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async move {
            let request = ExportMetricsServiceRequest::decode(payload.to_bytes()).map_err(|e| {
                ExportError::Permanent {
                    message: format!("decoding metrics: {e}"),
                }
            })?;
            let (series, dropped) = convert(request, &self.translation);
            if dropped > 0 {
                tracing::debug!(dropped, "metrics Remote Write cannot hold were dropped");
            }
            let requests = batches(series, self.max_bytes);
            let results: Vec<Result<(), ExportError>> = futures::stream::iter(requests)
                .map(|request| self.post_within_timeout(request))
                .buffer_unordered(self.parallel)
                .collect()
                .await;
            // A retryable failure wins, so the queue retries; else the first permanent one.
            let mut failure = None;
            for error in results.into_iter().filter_map(Result::err) {
                match (&failure, &error) {
                    (None, _)
                    | (Some(ExportError::Permanent { .. }), ExportError::Retryable { .. }) => {
                        failure = Some(error)
                    }
                    _ => {}
                }
            }
            failure.map_or(Ok(SendOutcome::default()), Err)
        })
    }
}

impl RemoteWriteSink {
    async fn post_within_timeout(&self, request: WriteRequest) -> Result<(), ExportError> {
        if self.timeout.is_zero() {
            return self.post(request).await;
        }
        match tokio::time::timeout(self.timeout, self.post(request)).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::Retryable {
                message: format!("POST {}: no answer within {:?}", self.uri, self.timeout),
                retry_after: None,
            }),
        }
    }

    async fn post(&self, request: WriteRequest) -> Result<(), ExportError> {
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|e| ExportError::Permanent {
                message: format!("snappy: {e}"),
            })?;
        let connection = self.connection.load_full();
        let mut post = http::Request::new(Body::new(vec![Bytes::from(compressed)]));
        *post.method_mut() = http::Method::POST;
        *post.uri_mut() = self.uri.clone();
        let headers = post.headers_mut();
        for (name, value) in &connection.headers {
            headers.insert(name.clone(), value.clone());
        }
        // The protocol's own headers win over configured ones, as the collector sets them last.
        let fixed = [
            (http::header::CONTENT_ENCODING, "snappy"),
            (http::header::CONTENT_TYPE, "application/x-protobuf"),
            (http::header::USER_AGENT, USER_AGENT_VALUE),
        ];
        for (name, value) in fixed {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.insert(
            "x-prometheus-remote-write-version",
            HeaderValue::from_static("0.1.0"),
        );
        let answer = connection
            .client
            .request(post)
            .await
            .map_err(|e| ExportError::Retryable {
                message: format!("Post \"{}\": {e}", self.uri),
                retry_after: None,
            })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let head = String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
        let message = format!("remote write returned HTTP status {status}; err = {head}");
        match status.as_u16() {
            500..=599 => Err(ExportError::Retryable {
                message,
                retry_after: None,
            }),
            _ => Err(ExportError::Permanent { message }),
        }
    }
}

#[cfg(test)]
mod tests;
