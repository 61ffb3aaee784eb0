//! `spanmetrics`: the collector's span metrics connector (contrib v0.161.0), traces in, metrics
//! out. Every span counts in a `calls` sum and a `duration` histogram (and each of its events
//! in an `events` sum), in series labelled `service.name`, `span.name`, `span.kind`,
//! `status.code`, `collector.instance.id` and the configured dimensions, grouped by the spans'
//! resource; every `metrics_flush_interval` the aggregate is sent on as one metrics request.
//!
//! As in the collector: a resource without `service.name` is skipped; a span sampled with an
//! OpenTelemetry threshold counts as the spans it stands for; a cumulative count is first sent
//! as 0; delta series start where their last flush ended; resources beyond
//! `resource_metrics_cache_size` are dropped least recently seen first (kept until the flush
//! after, and revived if seen again before it). The aggregate is decoded OTLP, not encoded
//! bytes: it is kept between requests, unlike a batch passing through.

mod adjusted;
pub mod config;
mod glob;
pub mod run;
mod series;
#[cfg(test)]
mod tests;

pub use config::SpanMetricsConfig;

use super::attributes::{as_text, find};
use super::exponential::Exponential;
use super::lru::Lru;
use config::{Dimension, RESERVED};
use glob::Glob;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, Histogram as OtlpHistogram, Metric,
    ResourceMetrics, ScopeMetrics, Sum, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;
use series::{Count, Histogram, HistogramPoint, Sample, SeriesMap};
use std::collections::HashMap;
use std::sync::Arc;

/// The connector type.
pub const KIND: &str = "spanmetrics";
/// The instrumentation scope of the metrics.
const SCOPE: &str = "spanmetricsconnector";
/// Separates the values in a series key.
const SEPARATOR: char = '\0';

/// The configured dimensions of one list: names (with defaults) and globs.
#[derive(Debug, Default)]
struct Dimensions {
    named: Vec<(String, Option<AnyValue>)>,
    globs: Vec<Glob>,
}

impl Dimensions {
    fn new(list: &[Dimension]) -> Self {
        let mut dimensions = Dimensions::default();
        for d in list {
            if d.glob.is_empty() {
                let default = d.default.clone().map(|text| AnyValue {
                    value: Some(any_value::Value::StringValue(text)),
                });
                dimensions.named.push((d.name.clone(), default));
            } else if let Ok(glob) = Glob::new(&d.glob) {
                dimensions.globs.push(glob);
            }
        }
        dimensions
    }

    /// Calls `found` with each dimension's name and value: a name from the span's attributes,
    /// then `others`, then its default; globs over the span's names (sorted), then the other
    /// names the span lacks.
    fn each<'a>(
        &'a self,
        span: &'a [KeyValue],
        others: &'a [KeyValue],
        mut found: impl FnMut(&'a str, &'a AnyValue),
    ) {
        for (name, default) in &self.named {
            let value = find(span, name)
                .or_else(|| find(others, name))
                .or(default.as_ref());
            if let Some(value) = value {
                found(name, value);
            }
        }
        if self.globs.is_empty() {
            return;
        }
        for (list, skip_in_span) in [(span, false), (others, true)] {
            let mut names: Vec<&KeyValue> = list.iter().collect();
            names.sort_by(|a, b| a.key.cmp(&b.key));
            for kv in names {
                if skip_in_span && find(span, &kv.key).is_some() {
                    continue;
                }
                if self.globs.iter().any(|g| g.is_match(&kv.key))
                    && let Some(value) = &kv.value
                {
                    found(&kv.key, value);
                }
            }
        }
    }
}

/// What one resource's spans add up to.
#[derive(Debug)]
struct ResourceAggregate {
    attributes: Vec<KeyValue>,
    calls: SeriesMap<Count>,
    durations: SeriesMap<Histogram>,
    events: SeriesMap<Count>,
    last_seen: u64,
}

/// What identifies a resource: its chosen attributes, encoded in name order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ResourceKey(Vec<u8>);

/// The resources aggregated, as the collector's cache holds them: least recently seen
/// dropped first beyond the size, kept aside until the next flush and revived if seen again.
#[derive(Debug)]
struct Resources {
    held: Lru<ResourceKey, ResourceAggregate>,
    evicted: HashMap<ResourceKey, ResourceAggregate>,
}

impl Resources {
    fn get_mut(&mut self, key: &ResourceKey) -> Option<&mut ResourceAggregate> {
        if !self.held.contains(key)
            && let Some(revived) = self.evicted.remove(key)
        {
            self.insert(key.clone(), revived);
        }
        self.held.get_mut(key)
    }

    /// The resource's entry, held or evicted, without reading it as a use.
    fn peek(&self, key: &ResourceKey) -> Option<&ResourceAggregate> {
        self.held.peek(key).or_else(|| self.evicted.get(key))
    }

    fn insert(&mut self, key: ResourceKey, value: ResourceAggregate) {
        if let Some((old_key, old)) = self.held.insert(key, value) {
            self.evicted.insert(old_key, old);
        }
    }
}

/// The connector's state: fed spans, flushed into metrics.
#[derive(Debug)]
pub struct SpanMetrics {
    config: SpanMetricsConfig,
    instance_id: String,
    dimensions: Dimensions,
    calls_dimensions: Dimensions,
    duration_dimensions: Dimensions,
    event_dimensions: Dimensions,
    /// Explicit bounds, or `None` for exponential buckets.
    bounds: Option<Arc<[f64]>>,
    resources: Resources,
    /// Delta series: when each was last sent, the start of its next point.
    last_delta: Lru<String, u64>,
}

/// The names of the built-in attributes the series carry unless excluded.
struct Builtins {
    service: bool,
    name: bool,
    kind: bool,
    status: bool,
    instance: bool,
}

impl SpanMetrics {
    /// A connector for `config` (already checked), labelling series with `instance_id`.
    pub fn new(config: SpanMetricsConfig, instance_id: String) -> Self {
        let bounds = config.explicit_bounds().map(Arc::from);
        SpanMetrics {
            dimensions: Dimensions::new(&config.dimensions),
            calls_dimensions: Dimensions::new(&config.calls_dimensions),
            duration_dimensions: Dimensions::new(&config.histogram.dimensions),
            event_dimensions: Dimensions::new(&config.events.dimensions),
            bounds,
            resources: Resources {
                held: Lru::new(config.resource_metrics_cache_size.max(1) as usize),
                evicted: HashMap::new(),
            },
            last_delta: Lru::new(config.delta_timestamp_cache_size().max(1) as usize),
            instance_id,
            config,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SpanMetricsConfig {
        &self.config
    }

    fn builtins(&self) -> Builtins {
        let kept = |name: &str| !self.config.exclude_dimensions.iter().any(|e| e == name);
        Builtins {
            service: kept(RESERVED[0]),
            kind: kept(RESERVED[1]),
            status: kept(RESERVED[2]),
            name: kept(RESERVED[3]),
            instance: kept(RESERVED[4]),
        }
    }

    /// Adds the spans of `request`, seen at `now` (Unix nanoseconds).
    pub fn consume(&mut self, request: &ExportTraceServiceRequest, now: u64) {
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes[..]);
            let Some(service) = find(resource, "service.name") else {
                continue;
            };
            let service = match &service.value {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            };
            let key = self.resource_key(resource);
            self.ensure_resource(&key, resource, now);
            for scope_spans in &resource_spans.scope_spans {
                let scope = scope_spans.scope.as_ref();
                for span in &scope_spans.spans {
                    self.consume_span(&key, &service, resource, scope, span, now);
                }
            }
        }
    }

    /// The resource's entry, made if new; its last sighting is `now` when resources expire.
    fn ensure_resource(&mut self, key: &ResourceKey, attributes: &[KeyValue], now: u64) {
        if self.resources.get_mut(key).is_none() {
            let limit = self.config.aggregation_cardinality_limit as usize;
            let exemplars = self.config.exemplars.max_per_data_point.max(0) as usize;
            self.resources.insert(
                key.clone(),
                ResourceAggregate {
                    attributes: attributes.to_vec(),
                    calls: SeriesMap::new(limit, exemplars),
                    durations: SeriesMap::new(limit, exemplars),
                    events: SeriesMap::new(limit, exemplars),
                    last_seen: now,
                },
            );
        }
        if !self.config.metrics_expiration.is_zero()
            && let Some(resource) = self.resources.get_mut(key)
        {
            resource.last_seen = now;
        }
    }

    fn consume_span(
        &mut self,
        resource_key: &ResourceKey,
        service: &str,
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
        span: &Span,
        now: u64,
    ) {
        let unit = self.config.histogram.unit.nanos();
        let duration = if span.end_time_unix_nano > span.start_time_unix_nano {
            (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / unit
        } else {
            0.0
        };
        let (count, adjusted) = adjusted::adjusted_count(&span.trace_state);
        let ids = (self.config.exemplars.enabled && span.trace_id.iter().any(|b| *b != 0))
            .then_some((&span.trace_id[..], &span.span_id[..]));
        let sample = Sample {
            value: duration,
            count,
            now,
            ids,
        };
        let label = Labeller {
            meter: self,
            service,
            span,
            scope,
            adjusted,
        };
        // Attributes are built only for a series not seen yet, as the collector builds them.
        let existing = self.resources.peek(resource_key);
        let calls_key = label.key(&self.calls_dimensions, resource);
        let calls_attributes = || label.attributes(&self.calls_dimensions, resource);
        let calls_new = existing.is_none_or(|r| !r.calls.contains(&calls_key));
        let durations_key = label.key(&self.duration_dimensions, resource);
        let duration_attributes = || label.attributes(&self.duration_dimensions, resource);
        let durations_new = existing.is_none_or(|r| !r.durations.contains(&durations_key));
        let events = match self.config.events.enabled {
            true => label.events(&self.event_dimensions, resource),
            false => Vec::new(),
        };
        let bounds = self.bounds.clone();
        let max_size = self
            .config
            .histogram
            .exponential
            .as_ref()
            .map_or(0, |e| e.max_size);
        let new_histogram = move || match bounds {
            Some(bounds) => Histogram::Explicit {
                buckets: vec![0; bounds.len() + 1],
                bounds,
                count: 0,
                sum: 0.0,
            },
            None => Histogram::Exponential(Exponential::new(max_size)),
        };
        let with_histogram = !self.config.histogram.disable;
        let calls_attributes = calls_new.then(calls_attributes).unwrap_or_default();
        let duration_attributes = (with_histogram && durations_new).then(duration_attributes);
        let Some(metrics) = self.resources.get_mut(resource_key) else {
            return;
        };
        metrics
            .calls
            .record(&calls_key, || calls_attributes, Count::default, sample);
        if with_histogram {
            let attributes = || duration_attributes.unwrap_or_default();
            metrics
                .durations
                .record(&durations_key, attributes, new_histogram, sample);
        }
        for (key, attributes) in events {
            metrics
                .events
                .record(&key, || attributes, Count::default, sample);
        }
    }

    /// What identifies a resource: its attributes (only the key attributes, when configured),
    /// in name order.
    fn resource_key(&self, attributes: &[KeyValue]) -> ResourceKey {
        let keys = &self.config.resource_metrics_key_attributes;
        let mut chosen: Vec<&KeyValue> = attributes
            .iter()
            .filter(|kv| keys.is_empty() || keys.contains(&kv.key))
            .collect();
        chosen.sort_by(|a, b| a.key.cmp(&b.key));
        let mut key = Vec::new();
        for kv in chosen {
            kv.encode_length_delimited(&mut key).ok();
        }
        ResourceKey(key)
    }

    /// The metrics aggregated so far, stamped `now`, then the state a flush leaves: delta
    /// starts afresh; cumulative drops evicted resources, exemplars and expired series and
    /// resources. `None` when there is nothing to send.
    pub fn flush(&mut self, now: u64) -> Option<ExportMetricsServiceRequest> {
        let built = self.build(now);
        self.reset(now);
        (!built.is_empty()).then_some(ExportMetricsServiceRequest {
            resource_metrics: built,
        })
    }

    fn metric_name(&self, name: &str) -> String {
        match self.config.namespace.as_str() {
            "" => name.to_string(),
            namespace => format!("{namespace}.{name}"),
        }
    }

    fn build(&mut self, now: u64) -> Vec<ResourceMetrics> {
        let delta = self.config.is_delta();
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let names = [
            self.metric_name("calls"),
            self.metric_name("duration"),
            self.metric_name("events"),
        ];
        let unit = self.config.histogram.unit.as_str();
        let (histogram_on, events_on) =
            (!self.config.histogram.disable, self.config.events.enabled);
        let exponential = self.bounds.is_none();
        let mut sent_delta = Vec::new();
        let last_delta = &mut self.last_delta;
        let mut start_of = |key: &String, created: u64| {
            if !delta {
                return created;
            }
            sent_delta.push(key.clone());
            last_delta.get_mut(key).map_or(created, |t| *t)
        };
        let mut out = Vec::new();
        let resources = &mut self.resources;
        let mut keys = resources.held.keys();
        keys.extend(resources.evicted.keys().cloned());
        for key in keys {
            // Oldest first, so reading each keeps their order (as the collector's walk does).
            let Some(resource) = (match resources.held.contains(&key) {
                true => resources.held.get_mut(&key),
                false => resources.evicted.get_mut(&key),
            }) else {
                continue;
            };
            let mut metrics = Vec::new();
            let points = resource
                .calls
                .iter_mut()
                .map(|(k, s)| s.point(start_of(k, s.start), now, !delta))
                .collect();
            metrics.push(sum(&names[0], points, temporality));
            if histogram_on {
                let points: Vec<HistogramPoint> = resource
                    .durations
                    .iter_mut()
                    .map(|(k, s)| s.point(start_of(k, s.start), now))
                    .collect();
                metrics.push(histogram(&names[1], unit, points, exponential, temporality));
            }
            if events_on {
                let points = resource
                    .events
                    .iter_mut()
                    .map(|(k, s)| s.point(start_of(k, s.start), now, !delta))
                    .collect();
                metrics.push(sum(&names[2], points, temporality));
            }
            out.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource.attributes.clone(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: SCOPE.into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        for key in sent_delta {
            self.last_delta.insert(key, now);
        }
        out
    }

    fn reset(&mut self, now: u64) {
        let resources = &mut self.resources;
        if self.config.is_delta() {
            resources.held.clear();
            resources.evicted.clear();
            return;
        }
        resources.evicted.clear();
        let series_expiration = self.config.series_expiration.as_nanos() as u64;
        let expiration = self.config.metrics_expiration.as_nanos() as u64;
        let mut expired = Vec::new();
        for (key, resource) in resources.held.iter_mut() {
            if self.config.exemplars.enabled {
                resource.calls.clear_exemplars();
                resource.durations.clear_exemplars();
                resource.events.clear_exemplars();
            }
            if series_expiration > 0 {
                resource.calls.expire(now, series_expiration);
                resource.durations.expire(now, series_expiration);
                resource.events.expire(now, series_expiration);
            }
            if expiration > 0 && now.saturating_sub(resource.last_seen) >= expiration {
                expired.push(key.clone());
            }
        }
        for key in expired {
            resources.held.remove(&key);
        }
    }
}

/// Builds a span's series keys and attributes.
struct Labeller<'a> {
    meter: &'a SpanMetrics,
    service: &'a str,
    span: &'a Span,
    scope: Option<&'a InstrumentationScope>,
    adjusted: bool,
}

impl Labeller<'_> {
    /// Each span event's `events` key and attributes: the event's attributes over the
    /// resource's, as the dimensions' second source.
    fn events(&self, extra: &Dimensions, resource: &[KeyValue]) -> Vec<(String, Vec<KeyValue>)> {
        let mut out = Vec::new();
        for event in &self.span.events {
            let mut merged = resource.to_vec();
            for kv in &event.attributes {
                match merged.iter_mut().find(|m| m.key == kv.key) {
                    Some(existing) => existing.value = kv.value.clone(),
                    None => merged.push(kv.clone()),
                }
            }
            out.push((self.key(extra, &merged), self.attributes(extra, &merged)));
        }
        out
    }

    /// The built-in attribute values, in the collector's order, with their names.
    fn builtins(&self) -> Vec<(&'static str, String)> {
        let on = self.meter.builtins();
        let mut values = Vec::with_capacity(5);
        if on.service {
            values.push((RESERVED[0], self.service.to_string()));
        }
        if on.name {
            values.push((RESERVED[3], self.span.name.clone()));
        }
        if on.kind {
            values.push((RESERVED[1], kind_text(self.span.kind).to_string()));
        }
        if on.status {
            let code = self.span.status.as_ref().map_or(0, |s| s.code);
            values.push((RESERVED[2], status_text(code).to_string()));
        }
        if on.instance {
            values.push((RESERVED[4], self.meter.instance_id.clone()));
        }
        values
    }

    fn sampling_method(&self) -> &'static str {
        if self.adjusted {
            "extrapolated"
        } else {
            "counted"
        }
    }

    /// The series key: the built-in values (not the instance id, which never changes), then
    /// each dimension as `name:value`, separated by NUL.
    fn key(&self, extra: &Dimensions, others: &[KeyValue]) -> String {
        let mut key = String::new();
        for (i, (name, value)) in self.builtins().into_iter().enumerate() {
            if name == RESERVED[4] {
                continue;
            }
            if i > 0 {
                key.push(SEPARATOR);
            }
            key.push_str(&value);
        }
        let mut add = |name: &str, value: &AnyValue| {
            key.push(SEPARATOR);
            key.push_str(name);
            key.push(':');
            key.push_str(&as_text(value));
        };
        self.meter
            .dimensions
            .each(&self.span.attributes, others, &mut add);
        extra.each(&self.span.attributes, others, &mut add);
        if self.meter.config.enable_metrics_sampling_method {
            key.push(SEPARATOR);
            key.push_str(self.sampling_method());
        }
        key
    }

    /// The series attributes, in the collector's order.
    fn attributes(&self, extra: &Dimensions, others: &[KeyValue]) -> Vec<KeyValue> {
        let mut attributes: Vec<KeyValue> = self
            .builtins()
            .into_iter()
            .map(|(name, value)| text(name, value))
            .collect();
        let config = &self.meter.config;
        if let Some(scope) = self.scope
            && !scope.name.is_empty()
            && config.include_instrumentation_scope.contains(&scope.name)
        {
            attributes.push(text("span.instrumentation.scope.name", scope.name.clone()));
            if !scope.version.is_empty() {
                attributes.push(text(
                    "span.instrumentation.scope.version",
                    scope.version.clone(),
                ));
            }
        }
        if config.enable_metrics_sampling_method {
            attributes.push(text("sampling.method", self.sampling_method().into()));
        }
        let mut put = |name: &str, value: &AnyValue| {
            let kv = KeyValue {
                key: name.to_string(),
                value: Some(value.clone()),
                ..Default::default()
            };
            match attributes.iter_mut().find(|a| a.key == name) {
                Some(existing) => *existing = kv,
                None => attributes.push(kv),
            }
        };
        self.meter
            .dimensions
            .each(&self.span.attributes, others, &mut put);
        extra.each(&self.span.attributes, others, &mut put);
        attributes
    }
}

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// The collector's names of span kinds.
fn kind_text(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Unspecified) => "SPAN_KIND_UNSPECIFIED",
        Ok(span::SpanKind::Internal) => "SPAN_KIND_INTERNAL",
        Ok(span::SpanKind::Server) => "SPAN_KIND_SERVER",
        Ok(span::SpanKind::Client) => "SPAN_KIND_CLIENT",
        Ok(span::SpanKind::Producer) => "SPAN_KIND_PRODUCER",
        Ok(span::SpanKind::Consumer) => "SPAN_KIND_CONSUMER",
        Err(_) => "",
    }
}

/// The collector's names of status codes.
fn status_text(code: i32) -> &'static str {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Unset) => "STATUS_CODE_UNSET",
        Ok(status::StatusCode::Ok) => "STATUS_CODE_OK",
        Ok(status::StatusCode::Error) => "STATUS_CODE_ERROR",
        Err(_) => "",
    }
}

fn sum(
    name: &str,
    data_points: Vec<opentelemetry_proto::tonic::metrics::v1::NumberDataPoint>,
    temporality: i32,
) -> Metric {
    Metric {
        name: name.to_string(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: temporality,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn histogram(
    name: &str,
    unit: &str,
    points: Vec<HistogramPoint>,
    exponential: bool,
    temporality: i32,
) -> Metric {
    let data = if exponential {
        metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: points
                .into_iter()
                .filter_map(|p| match p {
                    HistogramPoint::Exponential(p) => Some(p),
                    HistogramPoint::Explicit(_) => None,
                })
                .collect(),
            aggregation_temporality: temporality,
        })
    } else {
        metric::Data::Histogram(OtlpHistogram {
            data_points: points
                .into_iter()
                .filter_map(|p| match p {
                    HistogramPoint::Explicit(p) => Some(p),
                    HistogramPoint::Exponential(_) => None,
                })
                .collect(),
            aggregation_temporality: temporality,
        })
    };
    Metric {
        name: name.to_string(),
        unit: unit.to_string(),
        data: Some(data),
        ..Default::default()
    }
}
