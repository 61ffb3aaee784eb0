//! The `prometheus` exporter: keeps the last value of every series that arrives and serves
//! them at `http://<endpoint>/metrics` in the Prometheus text exposition format 0.0.4, as the
//! collector's exporter does (contrib v0.161.0): the same names, labels (`otel_scope_*`,
//! `job`, `instance`, `const_labels`), `target_info`, and accumulation (delta monotonic sums
//! and delta histograms added up into cumulative ones, non-monotonic delta sums dropped,
//! series expired after `metric_expiration` without an update).
//!
//! The text is written here rather than with prometheus-client's encoder: that crate writes
//! OpenMetrics 1.0 only, appends `_total` to counters itself (which `add_metric_suffixes:
//! false` must not get) and has no exposition of const, externally named series. Exponential
//! histograms are native histograms in the collector, which the text format 0.0.4 shows as
//! their `_sum`, `_count` and a single `+Inf` bucket; so does trailhead.

use super::{
    NameKind, ResourceToTelemetry, TranslationStrategy, go_float, label_name, metric_name,
};
use crate::config::values;
use crate::exporters::otlp::BuildError;
use crate::exporters::queue::{BatchPolicy, ExporterSpec, QueueSettings, RetrySettings};
use crate::exporters::{ExportError, Payload, SendOutcome, Sink};
use crate::pdata::Signal;
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint, metric::Data, number_data_point,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `exporters: prometheus:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusExporterConfig {
    /// Where the scrape endpoint listens, `host:port`; metrics are served at `/metrics`.
    pub endpoint: String,
    /// Prefixed to every metric name, with `_`.
    pub namespace: String,
    /// Labels added to every series but `target_info`.
    pub const_labels: BTreeMap<String, String>,
    /// Write each sample's own timestamp (in milliseconds) after its value.
    pub send_timestamps: bool,
    /// How long a series is served after its last update; 5m by default.
    #[serde(deserialize_with = "values::duration")]
    pub metric_expiration: Duration,
    /// Resource attributes as labels of every series.
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// OpenMetrics for scrapers that ask for it: not supported, only `false` is accepted.
    pub enable_open_metrics: bool,
    /// Ignored, as by the collector since its `DisableAddMetricSuffixes` gate went beta
    /// (v0.132): suffixes are added unless `translation_strategy` says otherwise.
    pub add_metric_suffixes: bool,
    /// `UnderscoreEscapingWithSuffixes` or `UnderscoreEscapingWithoutSuffixes`.
    pub translation_strategy: Option<TranslationStrategy>,
    /// Leave out the `otel_scope_*` labels.
    pub without_scope_info: bool,
    /// The collector's queue in front of the exporter.
    pub sending_queue: QueueSettings,
}

impl Default for PrometheusExporterConfig {
    fn default() -> Self {
        PrometheusExporterConfig {
            endpoint: String::new(),
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            send_timestamps: false,
            metric_expiration: Duration::from_secs(300),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            enable_open_metrics: false,
            add_metric_suffixes: true,
            translation_strategy: None,
            without_scope_info: false,
            sending_queue: QueueSettings::default(),
        }
    }
}

impl PrometheusExporterConfig {
    /// What trailhead refuses in it, as (key, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.endpoint.is_empty() {
            problems.push((
                "endpoint",
                "the address to serve metrics on must be set".into(),
            ));
        } else if let Err(why) = values::parse_listen_address(&self.endpoint) {
            problems.push(("endpoint", why));
        }
        if self.enable_open_metrics {
            problems.push((
                "enable_open_metrics",
                "trailhead serves the text format 0.0.4 only, which Prometheus and every \
                 scraper read; remove the key"
                    .into(),
            ));
        }
        if let Some(why) = self
            .translation_strategy
            .and_then(TranslationStrategy::problem)
        {
            problems.push(("translation_strategy", why));
        }
        for name in self.const_labels.keys() {
            if label_name(name, false).as_deref() != Some(name) {
                problems.push((
                    "const_labels",
                    format!("`{name}` is not a valid label name"),
                ));
            }
        }
        problems.extend(
            self.sending_queue
                .problems()
                .into_iter()
                .map(|why| ("sending_queue", why)),
        );
        problems
    }

    /// Starts serving (the listener is bound now, so a taken port fails the start) and
    /// returns the exporter that feeds what is served; dropping it stops the server.
    pub fn build(&self, id: &str) -> Result<ExporterSpec, BuildError> {
        let failed = |reason: String| BuildError::Endpoint {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let address = values::parse_listen_address(&self.endpoint).map_err(failed)?;
        if !self.add_metric_suffixes && self.translation_strategy.is_none() {
            tracing::warn!(
                exporter = %id,
                "add_metric_suffixes is ignored, as by the collector: use \
                 translation_strategy: UnderscoreEscapingWithoutSuffixes"
            );
        }
        let listener = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| failed(format!("cannot listen: {e}")))?;
        let state = Arc::new(Served {
            settings: self.clone(),
            series: Mutex::new(HashMap::new()),
        });
        let stop = tokio_util::sync::CancellationToken::new();
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .with_state(state.clone());
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(stopped);
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the prometheus exporter's endpoint failed");
            }
        });
        Ok(ExporterSpec {
            id: id.to_string(),
            signal: Signal::Metrics,
            sink: Arc::new(PullSink {
                state,
                _stop: stop.drop_guard(),
            }),
            queue: self.sending_queue.clone(),
            batch: BatchPolicy::UNBATCHED,
            retry: RetrySettings {
                enabled: false,
                ..RetrySettings::default()
            },
        })
    }
}

/// What the endpoint serves: the last point of each series, by signature.
struct Served {
    settings: PrometheusExporterConfig,
    series: Mutex<HashMap<String, Entry>>,
}

/// One series' last point with what its labels are made of.
struct Entry {
    meta: Meta,
    point: Point,
    attributes: Vec<KeyValue>,
    resource: Arc<Vec<KeyValue>>,
    scope: Arc<Scope>,
    updated: Instant,
}

#[derive(Clone)]
struct Meta {
    name: String,
    description: String,
    unit: String,
    kind: NameKind,
    /// The Prometheus receiver marked it `unknown`: served untyped.
    untyped: bool,
    /// A delta sum or histogram, added up into a cumulative one.
    delta: bool,
}

struct Scope {
    name: String,
    version: String,
    schema_url: String,
    attributes: Vec<KeyValue>,
}

enum Point {
    Number(NumberDataPoint),
    Histogram(HistogramDataPoint),
    Exponential(ExponentialHistogramDataPoint),
    Summary(SummaryDataPoint),
}

impl Point {
    fn time(&self) -> u64 {
        match self {
            Point::Number(p) => p.time_unix_nano,
            Point::Histogram(p) => p.time_unix_nano,
            Point::Exponential(p) => p.time_unix_nano,
            Point::Summary(p) => p.time_unix_nano,
        }
    }
}

/// OTLP's "no recorded value" flag: the series is gone.
const NO_RECORDED_VALUE: u32 = 1;

struct PullSink {
    state: Arc<Served>,
    _stop: tokio_util::sync::DropGuard,
}

impl Sink for PullSink {
    fn send(&self, payload: Payload, _: usize) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        let result = <ExportMetricsServiceRequest as prost::Message>::decode(payload.to_bytes())
            .map(|request| self.state.accumulate(request, Instant::now()))
            .map(|()| SendOutcome::default())
            .map_err(|e| ExportError::Permanent {
                message: format!("decoding metrics: {e}"),
            });
        Box::pin(async move { result })
    }
}

impl Served {
    fn accumulate(&self, request: ExportMetricsServiceRequest, now: Instant) {
        let convert = self.settings.resource_to_telemetry_conversion;
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for resource_metrics in request.resource_metrics {
            let resource = Arc::new(resource_metrics.resource.unwrap_or_default().attributes);
            for scope_metrics in resource_metrics.scope_metrics {
                let scope = scope_metrics.scope.unwrap_or_default();
                let scope = Arc::new(Scope {
                    name: scope.name,
                    version: scope.version,
                    schema_url: scope_metrics.schema_url,
                    attributes: scope.attributes,
                });
                for metric in scope_metrics.metrics {
                    let Some(meta) = meta(&metric) else { continue };
                    for (point, attributes) in points(metric) {
                        let attributes: Vec<KeyValue> = convert
                            .join(&resource, &attributes)
                            .into_iter()
                            .cloned()
                            .collect();
                        let key = signature(&meta, &scope, &attributes, &resource);
                        let entry = Entry {
                            meta: meta.clone(),
                            point,
                            attributes,
                            resource: resource.clone(),
                            scope: scope.clone(),
                            updated: now,
                        };
                        update(&mut series, key, entry);
                    }
                }
            }
        }
    }
}

fn meta(metric: &Metric) -> Option<Meta> {
    let untyped = metric
        .metadata
        .iter()
        .any(|kv| kv.key == "prometheus.type" && super::value_text(kv.value.as_ref()) == "unknown");
    let delta = AggregationTemporality::Delta as i32;
    let delta = match &metric.data {
        Some(Data::Sum(s)) => s.aggregation_temporality == delta,
        Some(Data::Histogram(h)) => h.aggregation_temporality == delta,
        Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality == delta,
        _ => false,
    };
    Some(Meta {
        delta,
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        kind: NameKind::of(metric)?,
        untyped,
    })
}

/// The points of a metric the collector accumulates, with their attributes: sums of
/// unspecified temporality and non-monotonic delta sums are dropped, as it drops them.
fn points(metric: Metric) -> Vec<(Point, Vec<KeyValue>)> {
    let delta = AggregationTemporality::Delta as i32;
    let unspecified = AggregationTemporality::Unspecified as i32;
    match metric.data {
        Some(Data::Gauge(g)) => g
            .data_points
            .into_iter()
            .map(|p| {
                let attributes = p.attributes.clone();
                (Point::Number(p), attributes)
            })
            .collect(),
        Some(Data::Sum(s)) => {
            let t = s.aggregation_temporality;
            if t == unspecified || (t == delta && !s.is_monotonic) {
                return Vec::new();
            }
            s.data_points
                .into_iter()
                .map(|p| {
                    let attributes = p.attributes.clone();
                    (Point::Number(p), attributes)
                })
                .collect()
        }
        Some(Data::Histogram(h)) => h
            .data_points
            .into_iter()
            .map(|p| {
                let attributes = p.attributes.clone();
                (Point::Histogram(p), attributes)
            })
            .collect(),
        Some(Data::ExponentialHistogram(h)) => h
            .data_points
            .into_iter()
            .map(|p| {
                let attributes = p.attributes.clone();
                (Point::Exponential(p), attributes)
            })
            .collect(),
        Some(Data::Summary(s)) => s
            .data_points
            .into_iter()
            .map(|p| {
                let attributes = p.attributes.clone();
                (Point::Summary(p), attributes)
            })
            .collect(),
        None => Vec::new(),
    }
}

/// What identifies a series, as the collector's `timeseriesSignature` builds it.
fn signature(meta: &Meta, scope: &Scope, attributes: &[KeyValue], resource: &[KeyValue]) -> String {
    let pairs = |attributes: &[KeyValue]| {
        let mut pairs: Vec<String> = attributes
            .iter()
            .map(|kv| format!("{}*{}", kv.key, super::value_text(kv.value.as_ref())))
            .collect();
        pairs.sort();
        pairs.join("*")
    };
    let mut key = format!(
        "{:?}*{}*{}*{}*{}*{}*{}",
        meta.kind,
        scope.name,
        scope.version,
        scope.schema_url,
        pairs(&scope.attributes),
        meta.name,
        pairs(attributes)
    );
    if let Some(job) = super::job(resource) {
        let _ = write!(key, "*job*{job}");
    }
    if let Some(instance) = super::instance(resource) {
        let _ = write!(key, "*instance*{instance}");
    }
    key
}

fn flags(point: &Point) -> u32 {
    match point {
        Point::Number(p) => p.flags,
        Point::Histogram(p) => p.flags,
        Point::Exponential(p) => p.flags,
        Point::Summary(p) => p.flags,
    }
}

/// Stores `entry` as its series' last point: a point with no recorded value removes the
/// series, an older point is ignored, and a delta point that starts where the last one ended
/// is added to it (the collector's delta-to-cumulative; a delta histogram that starts before
/// the last one ended is dropped, one that starts after it is a restart).
fn update(series: &mut HashMap<String, Entry>, key: String, mut entry: Entry) {
    if flags(&entry.point) & NO_RECORDED_VALUE != 0 {
        series.remove(&key);
        return;
    }
    let Some(last) = series.get(&key) else {
        series.insert(key, entry);
        return;
    };
    let delta = entry.meta.delta;
    match (&mut entry.point, &last.point) {
        (Point::Histogram(new), Point::Histogram(old)) if delta => {
            if new.start_time_unix_nano == old.time_unix_nano {
                add_histograms(new, old);
            } else if new.start_time_unix_nano <= old.time_unix_nano {
                return;
            }
        }
        (new, old) if new.time() < old.time() => return,
        (Point::Number(new), Point::Number(old))
            if delta && new.start_time_unix_nano == old.time_unix_nano =>
        {
            new.start_time_unix_nano = old.start_time_unix_nano;
            new.value = add_values(new.value.take(), old.value.as_ref());
        }
        _ => {}
    }
    series.insert(key, entry);
}

/// `new` plus the window before it, `old` (bucket counts added when the bounds agree).
fn add_histograms(new: &mut HistogramDataPoint, old: &HistogramDataPoint) {
    new.start_time_unix_nano = old.start_time_unix_nano;
    new.count += old.count;
    new.sum = Some(new.sum.unwrap_or(0.0) + old.sum.unwrap_or(0.0));
    if new.explicit_bounds == old.explicit_bounds {
        for (n, o) in new.bucket_counts.iter_mut().zip(&old.bucket_counts) {
            *n += o;
        }
    }
}

fn add_values(
    new: Option<number_data_point::Value>,
    old: Option<&number_data_point::Value>,
) -> Option<number_data_point::Value> {
    use number_data_point::Value::{AsDouble, AsInt};
    match (new, old) {
        (Some(AsInt(n)), Some(AsInt(o))) => Some(AsInt(n.wrapping_add(*o))),
        (Some(AsDouble(n)), Some(AsDouble(o))) => Some(AsDouble(n + o)),
        (new, _) => new,
    }
}

/// `GET /metrics`: the exposition of every series not expired.
async fn scrape(
    axum::extract::State(state): axum::extract::State<Arc<Served>>,
) -> impl axum::response::IntoResponse {
    let text = state.render(Instant::now());
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// A metric family's type in the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyType {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

impl FamilyType {
    fn word(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Untyped => "untyped",
            FamilyType::Histogram => "histogram",
            FamilyType::Summary => "summary",
        }
    }
}

/// One family: its help, type and sample lines (each series' lines kept together).
struct Family {
    help: String,
    kind: FamilyType,
    series: Vec<(Vec<(String, String)>, String)>,
}

type Labels = Vec<(String, String)>;

impl Served {
    /// The exposition text, families by name, after dropping the series that expired.
    fn render(&self, now: Instant) -> String {
        let settings = &self.settings;
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|_, e| now.duration_since(e.updated) <= settings.metric_expiration);
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        self.target_info(series.values(), &mut families);
        for entry in series.values() {
            let Some((name, kind, labels)) = self.describe(entry) else {
                continue;
            };
            let family = families.entry(name.clone()).or_insert_with(|| Family {
                help: entry.meta.description.clone(),
                kind,
                series: Vec::new(),
            });
            if family.kind != kind {
                tracing::debug!(metric = %name, "type conflict: the series is dropped");
                continue;
            }
            let lines = self.lines(&name, &labels, entry);
            family.series.push((labels, lines));
        }
        drop(series);
        let mut text = String::new();
        for (name, mut family) in families {
            family.series.sort();
            let _ = writeln!(text, "# HELP {name} {}", escape_help(&family.help));
            let _ = writeln!(text, "# TYPE {name} {}", family.kind.word());
            for (_, lines) in family.series {
                text.push_str(&lines);
            }
        }
        text
    }

    /// Its name, type and labels (sorted, `const_labels` included), or `None` when the
    /// collector would fail to convert it.
    fn describe(&self, entry: &Entry) -> Option<(String, FamilyType, Labels)> {
        let settings = &self.settings;
        let suffixes = super::with_suffixes(settings.translation_strategy, true);
        let meta = &entry.meta;
        let name = metric_name(
            &meta.name,
            &meta.unit,
            meta.kind,
            &settings.namespace,
            suffixes,
        )?;
        let kind = match (meta.kind, &entry.point) {
            (NameKind::MonotonicCounter, _) => FamilyType::Counter,
            (NameKind::Gauge, _) if meta.untyped => FamilyType::Untyped,
            (_, Point::Number(_)) => FamilyType::Gauge,
            (_, Point::Summary(_)) => FamilyType::Summary,
            _ => FamilyType::Histogram,
        };
        let mut labels: Labels = Vec::new();
        for kv in &entry.attributes {
            labels.push((
                label_name(&kv.key, false)?,
                super::value_text(kv.value.as_ref()),
            ));
        }
        if !settings.without_scope_info {
            let scope = &entry.scope;
            for kv in &scope.attributes {
                if matches!(kv.key.as_str(), "name" | "version" | "schema_url") {
                    continue;
                }
                let key = label_name(&format!("otel_scope_{}", kv.key), false)?;
                labels.push((key, super::value_text(kv.value.as_ref())));
            }
            labels.push(("otel_scope_name".into(), scope.name.clone()));
            labels.push(("otel_scope_version".into(), scope.version.clone()));
            labels.push(("otel_scope_schema_url".into(), scope.schema_url.clone()));
        }
        labels.extend(super::job(&entry.resource).map(|j| ("job".to_string(), j)));
        labels.extend(super::instance(&entry.resource).map(|i| ("instance".to_string(), i)));
        labels.extend(settings.const_labels.clone());
        labels.sort();
        // Two labels of one name make the collector's description invalid: it drops the series.
        if labels.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some((name, kind, labels))
    }

    /// The sample lines of one series.
    fn lines(&self, name: &str, labels: &Labels, entry: &Entry) -> String {
        let stamp = match self.settings.send_timestamps {
            true => format!(" {}", entry.point.time() / 1_000_000),
            false => String::new(),
        };
        let mut text = String::new();
        let mut line = |suffix: &str, extra: Option<(&str, f64)>, value: f64| {
            let _ = writeln!(
                text,
                "{name}{suffix}{} {}{stamp}",
                label_set(labels, extra),
                go_float(value)
            );
        };
        match &entry.point {
            Point::Number(p) => line("", None, number(p)),
            Point::Histogram(p) => {
                for (bound, count) in cumulative_buckets(p) {
                    line("_bucket", Some(("le", bound)), count as f64);
                }
                line("_bucket", Some(("le", f64::INFINITY)), p.count as f64);
                line("_sum", None, p.sum.unwrap_or(0.0));
                line("_count", None, p.count as f64);
            }
            Point::Exponential(p) => {
                line("_bucket", Some(("le", f64::INFINITY)), p.count as f64);
                line("_sum", None, p.sum.unwrap_or(0.0));
                line("_count", None, p.count as f64);
            }
            Point::Summary(p) => {
                let mut quantiles: Vec<(f64, f64)> = p
                    .quantile_values
                    .iter()
                    .map(|q| (q.quantile, q.value))
                    .collect();
                quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
                quantiles.dedup_by(|a, b| a.0 == b.0);
                for (quantile, value) in quantiles {
                    line("", Some(("quantile", quantile)), value);
                }
                line("_sum", None, p.sum);
                line("_count", None, p.count as f64);
            }
        }
        text
    }

    /// One `target_info` per distinct `job` and `instance` (a resource without both has
    /// none): the resource's other attributes as labels, as the collector serves it.
    fn target_info<'a>(
        &self,
        entries: impl Iterator<Item = &'a Entry>,
        families: &mut BTreeMap<String, Family>,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        let mut series = Vec::new();
        for entry in entries {
            let resource = &entry.resource;
            let (Some(job), Some(instance)) = (super::job(resource), super::instance(resource))
            else {
                continue;
            };
            if !seen.insert((job.clone(), instance.clone())) {
                continue;
            }
            let mut labels: BTreeMap<String, String> = BTreeMap::new();
            for kv in resource.iter() {
                if super::SERVICE_KEYS.contains(&kv.key.as_str()) {
                    continue;
                }
                let Some(key) = label_name(&kv.key, false) else {
                    continue;
                };
                let value = super::value_text(kv.value.as_ref());
                labels
                    .entry(key)
                    .and_modify(|v| *v = format!("{v};{value}"))
                    .or_insert(value);
            }
            labels.insert("job".into(), job);
            labels.insert("instance".into(), instance);
            series.push(labels.into_iter().collect::<Labels>());
        }
        if series.is_empty() {
            return;
        }
        let name = match self.settings.namespace.as_str() {
            "" => "target_info".to_string(),
            ns => format!("{}_target_info", label_name(ns, false).unwrap_or_default()),
        };
        let series = series
            .into_iter()
            .map(|labels| {
                let line = format!("{name}{} 1\n", label_set(&labels, None));
                (labels, line)
            })
            .collect();
        families.insert(
            name,
            Family {
                help: "Target metadata".into(),
                kind: FamilyType::Gauge,
                series,
            },
        );
    }
}

fn number(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        Some(number_data_point::Value::AsDouble(d)) => d,
        None => 0.0,
    }
}

/// The explicit buckets as (upper bound, cumulative count), sorted, each bound once (the
/// first of equal bounds counts, as the collector's map of bounds keeps it).
pub(super) fn cumulative_buckets(point: &HistogramDataPoint) -> Vec<(f64, u64)> {
    let mut first_index: Vec<(f64, usize)> = Vec::new();
    for (index, bound) in point.explicit_bounds.iter().enumerate() {
        if !first_index.iter().any(|(b, _)| b == bound) {
            first_index.push((*bound, index));
        }
    }
    first_index.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0u64;
    first_index
        .into_iter()
        .filter(|(bound, _)| !bound.is_infinite() || *bound < 0.0)
        .map(|(bound, index)| {
            total += point.bucket_counts.get(index).copied().unwrap_or(0);
            (bound, total)
        })
        .collect()
}

/// `{a="1",b="2"}` with an extra `le` or `quantile` last; nothing for no labels.
fn label_set(labels: &Labels, extra: Option<(&str, f64)>) -> String {
    if labels.is_empty() && extra.is_none() {
        return String::new();
    }
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if let Some((key, value)) = extra {
        pairs.push(format!("{key}=\"{}\"", go_float(value)));
    }
    format!("{{{}}}", pairs.join(","))
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::metrics::v1::{Histogram, ResourceMetrics, ScopeMetrics, Sum};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use crate::pdata::testing::string_kv as kv;

    fn request(metric: Metric) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "svc"),
                        kv("service.instance.id", "i-1"),
                        kv("host.name", "h"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    metrics: vec![metric],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn sum(delta: bool, start: u64, time: u64, value: i64) -> Metric {
        let temporality = match delta {
            true => AggregationTemporality::Delta,
            false => AggregationTemporality::Cumulative,
        };
        Metric {
            name: "http.requests".into(),
            unit: "1".into(),
            description: "requests\nserved".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: vec![kv("http.method", "GET")],
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    value: Some(number_data_point::Value::AsInt(value)),
                    ..Default::default()
                }],
                aggregation_temporality: temporality as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }

    fn served(yaml: &str) -> Served {
        Served {
            settings: crate::config::tree::from_str(yaml).unwrap(),
            series: Mutex::new(HashMap::new()),
        }
    }

    // A counter gets `_total`, the scope, job and instance labels, and target_info the
    // resource's other attributes; delta points that follow each other are added up.
    #[test]
    fn counters_and_target_info() {
        let state = served("endpoint: 127.0.0.1:0\nconst_labels: {env: prod}");
        let now = Instant::now();
        state.accumulate(request(sum(true, 1, 2_000_000, 3)), now);
        state.accumulate(request(sum(true, 2_000_000, 3_000_000, 4)), now);
        let text = state.render(now);
        assert!(
            text.contains("# HELP http_requests_total requests\\nserved\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE http_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "http_requests_total{env=\"prod\",http_method=\"GET\",instance=\"i-1\",job=\"svc\",otel_scope_name=\"lib\",otel_scope_schema_url=\"\",otel_scope_version=\"\"} 7\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("target_info{host_name=\"h\",instance=\"i-1\",job=\"svc\"} 1\n"),
            "{text}"
        );
        // A delta point that does not follow the last one replaces it.
        state.accumulate(request(sum(true, 9_000_000, 10_000_000, 5)), now);
        assert!(state.render(now).contains("} 5\n"));
    }

    // Without suffixes the name stays; series expire after metric_expiration.
    #[test]
    fn suffixes_off_and_expiry() {
        let state = served(
            "endpoint: 127.0.0.1:0\ntranslation_strategy: UnderscoreEscapingWithoutSuffixes\nmetric_expiration: 1m",
        );
        let then = Instant::now();
        state.accumulate(request(sum(false, 1, 2, 3)), then);
        assert!(state.render(then).contains("\nhttp_requests{"));
        assert!(
            !state
                .render(then + Duration::from_secs(61))
                .contains("http_requests")
        );
    }

    // Histogram buckets are cumulative, `+Inf` is the count.
    #[test]
    fn histograms() {
        let state = served("endpoint: 127.0.0.1:0\nsend_timestamps: true");
        let metric = Metric {
            name: "latency".into(),
            unit: "ms".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 5_000_000,
                    count: 6,
                    sum: Some(12.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![1.0, 1e6],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
        state.accumulate(request(metric), Instant::now());
        let text = state.render(Instant::now());
        assert!(text.contains("latency_milliseconds_bucket{instance=\"i-1\",job=\"svc\",otel_scope_name=\"lib\",otel_scope_schema_url=\"\",otel_scope_version=\"\",le=\"1e+06\"} 3 5\n"), "{text}");
        assert!(text.contains(",le=\"+Inf\"} 6 5\n"), "{text}");
        assert!(text.contains("latency_milliseconds_sum{"), "{text}");
    }

    #[test]
    fn refusals() {
        let problems = |yaml: &str| {
            crate::config::tree::from_str::<PrometheusExporterConfig>(yaml)
                .unwrap()
                .problems()
        };
        assert_eq!(problems("{}")[0].0, "endpoint");
        assert_eq!(
            problems("endpoint: ':8889'\nenable_open_metrics: true")[0].0,
            "enable_open_metrics"
        );
        assert!(problems("endpoint: ':8889'").is_empty());
        assert!(
            crate::config::tree::from_str::<PrometheusExporterConfig>("endpoint: x\ntls: {}")
                .is_err()
        );
    }
}
