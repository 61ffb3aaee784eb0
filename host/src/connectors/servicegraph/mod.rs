//! `servicegraph`: the collector's service graph connector (contrib), traces in, metrics out.
//! A client (or producer) span and the server (or consumer) span whose parent it is make one
//! request between two services; each request counts in `traces_service_graph_request_total`
//! (and `_failed_total` when either side failed) and its two latencies in the
//! `traces_service_graph_request_server` and `_client` histograms (seconds), labelled `client`,
//! `server`, `connection_type`, `failed` and the configured dimensions. All cumulative, from
//! the connector's start.
//!
//! A client span with a database name attribute is a request to that database at once. A
//! client span left unpaired past `store.ttl` becomes a request to a virtual node named by its
//! first peer attribute (`unknown` without one); a root server span left unpaired, a request
//! from `user`. The collector v0.161.0 peer does not include this connector, so it is checked
//! against the contrib sources and tests, not side by side.

pub mod config;
pub mod run;
mod store;
#[cfg(test)]
mod tests;

pub use config::ServiceGraphConfig;

use super::attributes::{as_text, find};
use super::exponential::Exponential;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use std::collections::BTreeMap;
use store::{Edge, Outcome, Store};

/// The connector type.
pub const KIND: &str = "servicegraph";
/// Series not updated for this long are dropped by the cache loop.
const STALE_NANOS: u64 = 15 * 60 * 1_000_000_000;

/// A latency histogram of one series.
#[derive(Debug)]
enum Latency {
    Explicit {
        buckets: Vec<u64>,
        count: u64,
        sum: f64,
    },
    Exponential(Exponential),
}

/// One edge series: its labels, counts and latencies.
#[derive(Debug)]
struct Series {
    attributes: Vec<KeyValue>,
    total: i64,
    failed: i64,
    server: Latency,
    client: Latency,
    last_updated: u64,
}

/// What the connector counts about itself (the collector's `connector_servicegraph_*`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub dropped_spans: u64,
    pub total_edges: u64,
    pub expired_edges: u64,
}

/// The connector's state: fed spans, flushed into metrics.
pub struct ServiceGraph {
    config: ServiceGraphConfig,
    bounds: Option<Vec<f64>>,
    peer_attributes: Vec<String>,
    database_attributes: Vec<String>,
    store: Store,
    series: BTreeMap<String, Series>,
    start: u64,
    pub counts: Counts,
}

impl ServiceGraph {
    /// A connector for `config` (already checked), started at `now` (Unix nanoseconds).
    pub fn new(config: ServiceGraphConfig, now: u64) -> Self {
        ServiceGraph {
            bounds: config.bounds(),
            peer_attributes: config.peer_attributes(),
            database_attributes: config.database_attributes(),
            store: Store::new(config.store.ttl, config.store.max_items),
            series: BTreeMap::new(),
            start: now,
            counts: Counts::default(),
            config,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServiceGraphConfig {
        &self.config
    }

    /// Pairs the spans of `request`, seen at `now`.
    pub fn consume(&mut self, request: &ExportTraceServiceRequest, now: u64) {
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes[..]);
            let Some(service) = find(resource, "service.name").map(as_text) else {
                continue;
            };
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                self.consume_span(&service, resource, span, now);
            }
        }
        self.settle(now);
    }

    fn consume_span(&mut self, service: &str, resource: &[KeyValue], span: &Span, now: u64) {
        let kind = span::SpanKind::try_from(span.kind).unwrap_or(span::SpanKind::Unspecified);
        let (client_side, connection_type) = match kind {
            span::SpanKind::Producer => (true, "messaging_system"),
            span::SpanKind::Client => (true, ""),
            span::SpanKind::Consumer => (false, "messaging_system"),
            span::SpanKind::Server => (false, ""),
            _ => return,
        };
        let failed = span
            .status
            .as_ref()
            .is_some_and(|s| s.code == status::StatusCode::Error as i32);
        let latency = duration_seconds(span);
        let dimensions: Vec<(String, String)> = self
            .config
            .dimensions
            .iter()
            .filter_map(|d| {
                let value = find(resource, d).or_else(|| find(&span.attributes, d))?;
                let side = if client_side { "client" } else { "server" };
                Some((format!("{side}_{d}"), as_text(value)))
            })
            .collect();
        let result = if client_side {
            let peer = self
                .peer_attributes
                .iter()
                .find_map(|name| find(&span.attributes, name).map(|v| (name.clone(), as_text(v))));
            let database = self.database_attributes.iter().find_map(|name| {
                find(resource, name)
                    .or_else(|| find(&span.attributes, name))
                    .map(as_text)
            });
            let key = (span.trace_id.clone(), span.span_id.clone());
            self.store.upsert(key, now, |edge| {
                edge.connection_type = connection_type;
                edge.client = service.to_string();
                edge.client_latency = latency;
                edge.failed |= failed;
                for (name, value) in dimensions {
                    Edge::put(&mut edge.dimensions, name, value);
                }
                if let Some((name, value)) = peer {
                    Edge::put(&mut edge.peer, name, value);
                }
                if let Some(database) = database {
                    edge.connection_type = "database";
                    edge.server = database;
                    edge.server_latency = latency;
                }
            })
        } else {
            let key = (span.trace_id.clone(), span.parent_span_id.clone());
            self.store.upsert(key, now, |edge| {
                edge.connection_type = connection_type;
                edge.server = service.to_string();
                edge.server_latency = latency;
                edge.failed |= failed;
                for (name, value) in dimensions {
                    Edge::put(&mut edge.dimensions, name, value);
                }
            })
        };
        match result {
            Ok(true) => self.counts.total_edges += 1,
            Ok(false) => {}
            Err(_) => self.counts.dropped_spans += 1,
        }
    }

    /// Expires the edges past their time (the collector's store expiration loop).
    pub fn expire(&mut self, now: u64) {
        self.store.expire(now);
        self.settle(now);
    }

    /// Drops the series not updated for 15 minutes (the collector's cache loop).
    pub fn clean(&mut self, now: u64) {
        self.series
            .retain(|_, s| s.last_updated.saturating_add(STALE_NANOS) >= now);
    }

    /// How many edges wait for their other span.
    pub fn waiting(&self) -> usize {
        self.store.waiting()
    }

    /// Counts the edges the store let go of: complete ones, and expired ones that a virtual
    /// node completes.
    fn settle(&mut self, now: u64) {
        for outcome in std::mem::take(&mut self.store.outcomes) {
            match outcome {
                Outcome::Complete(edge) => self.record(&edge, now),
                Outcome::Expired(edge) => {
                    self.counts.expired_edges += 1;
                    self.complete_virtually(edge, now);
                }
            }
        }
    }

    /// An expired edge, completed by a virtual node when peer attributes are configured: a root
    /// server span's client is `user`; a client span's server is its peer (or `unknown`).
    fn complete_virtually(&mut self, mut edge: Edge, now: u64) {
        if self.peer_attributes.is_empty() {
            return;
        }
        edge.connection_type = "virtual_node";
        let root = edge.key.1.iter().all(|b| *b == 0);
        if edge.client.is_empty() && root {
            edge.client = "user".into();
            edge.virtual_node = "client";
            self.record(&edge, now);
        }
        if edge.server.is_empty() {
            edge.server = self
                .peer_attributes
                .iter()
                .find_map(|name| edge.peer.iter().find(|(n, _)| n == name))
                .map_or_else(|| "unknown".to_string(), |(_, v)| v.clone());
            edge.virtual_node = "server";
            self.record(&edge, now);
        }
    }

    /// Adds a complete edge to its series.
    fn record(&mut self, edge: &Edge, now: u64) {
        let key = self.series_key(edge);
        let attributes = self.series_attributes(edge);
        let new_latency = || match &self.bounds {
            Some(bounds) => Latency::Explicit {
                buckets: vec![0; bounds.len() + 1],
                count: 0,
                sum: 0.0,
            },
            None => {
                Latency::Exponential(Exponential::new(self.config.exponential_histogram_max_size))
            }
        };
        let series = self.series.entry(key).or_insert_with(|| Series {
            attributes: Vec::new(),
            total: 0,
            failed: 0,
            server: new_latency(),
            client: new_latency(),
            last_updated: now,
        });
        // The labels of the latest edge win, as in the collector.
        series.attributes = attributes;
        series.last_updated = now;
        series.total += 1;
        series.failed += i64::from(edge.failed);
        let bounds = self.bounds.as_deref().unwrap_or(&[]);
        observe(&mut series.server, bounds, edge.server_latency);
        observe(&mut series.client, bounds, edge.client_latency);
    }

    /// client, server, connection type, failed, then each dimension's client and server values.
    fn series_key(&self, edge: &Edge) -> String {
        let mut key = [edge.client.as_str(), &edge.server, edge.connection_type].join("\0")
            + "\0"
            + if edge.failed { "true" } else { "false" };
        for dimension in &self.config.dimensions {
            for side in ["client", "server"] {
                let name = format!("{side}_{dimension}");
                if let Some((_, value)) = edge.dimensions.iter().find(|(n, _)| *n == name) {
                    key.push('\0');
                    key.push_str(&format!("{name}_{value}"));
                }
            }
        }
        key
    }

    fn series_attributes(&self, edge: &Edge) -> Vec<KeyValue> {
        let mut attributes = vec![
            text("client", &edge.client),
            text("server", &edge.server),
            text("connection_type", edge.connection_type),
            KeyValue {
                key: "failed".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(edge.failed)),
                }),
                ..Default::default()
            },
        ];
        attributes.extend(edge.dimensions.iter().map(|(k, v)| text(k, v)));
        if self.config.virtual_node_extra_label {
            attributes.push(text("virtual_node", edge.virtual_node));
        }
        attributes
    }

    /// The metrics so far, stamped `now` less the configured offset; `None` when there are none.
    pub fn flush(&self, now: u64) -> Option<ExportMetricsServiceRequest> {
        let time = now.saturating_sub(self.config.metrics_timestamp_offset.as_nanos() as u64);
        let cumulative = AggregationTemporality::Cumulative as i32;
        let mut metrics = Vec::new();
        let counter = |name: &str, value: fn(&Series) -> i64| {
            let points: Vec<NumberDataPoint> = self
                .series
                .values()
                .filter(|s| value(s) > 0)
                .map(|s| NumberDataPoint {
                    attributes: s.attributes.clone(),
                    start_time_unix_nano: self.start,
                    time_unix_nano: time,
                    value: Some(number_data_point::Value::AsInt(value(s))),
                    ..Default::default()
                })
                .collect();
            (!points.is_empty()).then(|| Metric {
                name: name.into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: points,
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                })),
                ..Default::default()
            })
        };
        metrics.extend(counter("traces_service_graph_request_total", |s| s.total));
        metrics.extend(counter("traces_service_graph_request_failed_total", |s| {
            s.failed
        }));
        for (name, side) in [
            (
                "traces_service_graph_request_server",
                (|s| &s.server) as fn(&Series) -> &Latency,
            ),
            ("traces_service_graph_request_client", |s| &s.client),
        ] {
            metrics.extend(self.latency_metric(name, side, time));
        }
        if metrics.is_empty() {
            return None;
        }
        Some(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Default::default()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "traces_service_graph".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }

    /// A latency histogram metric: explicit ones only when there are series; exponential ones
    /// always, as the collector sends them.
    fn latency_metric(
        &self,
        name: &str,
        side: fn(&Series) -> &Latency,
        time: u64,
    ) -> Option<Metric> {
        let cumulative = AggregationTemporality::Cumulative as i32;
        let data = match &self.bounds {
            Some(bounds) => {
                let points: Vec<HistogramDataPoint> = self
                    .series
                    .values()
                    .filter_map(|s| match side(s) {
                        Latency::Explicit {
                            buckets,
                            count,
                            sum,
                        } => Some(HistogramDataPoint {
                            attributes: s.attributes.clone(),
                            start_time_unix_nano: self.start,
                            time_unix_nano: time,
                            count: *count,
                            sum: Some(*sum),
                            bucket_counts: buckets.clone(),
                            explicit_bounds: bounds.clone(),
                            ..Default::default()
                        }),
                        Latency::Exponential(_) => None,
                    })
                    .collect();
                if points.is_empty() {
                    return None;
                }
                metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: cumulative,
                })
            }
            None => metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: self
                    .series
                    .values()
                    .filter_map(|s| match side(s) {
                        Latency::Exponential(h) => Some(ExponentialHistogramDataPoint {
                            attributes: s.attributes.clone(),
                            start_time_unix_nano: self.start,
                            time_unix_nano: time,
                            ..h.point()
                        }),
                        Latency::Explicit { .. } => None,
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            }),
        };
        Some(Metric {
            name: name.into(),
            unit: "s".into(),
            data: Some(data),
            ..Default::default()
        })
    }
}

fn observe(latency: &mut Latency, bounds: &[f64], value: f64) {
    match latency {
        Latency::Explicit {
            buckets,
            count,
            sum,
        } => {
            buckets[bounds.partition_point(|b| *b < value)] += 1;
            *count += 1;
            *sum += value;
        }
        Latency::Exponential(histogram) => histogram.record(value, 1),
    }
}

/// A span's duration in seconds; an end before the start wraps, as the collector's unsigned
/// subtraction does.
fn duration_seconds(span: &Span) -> f64 {
    span.end_time_unix_nano
        .wrapping_sub(span.start_time_unix_nano) as f64
        / 1e9
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}
