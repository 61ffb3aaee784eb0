//! `periodic` metric readers: trailhead's own metrics pushed over OTLP every `interval`, with the
//! resource. Counters become monotonic cumulative sums (named without `_total`, as the
//! collector names its own), gauges gauges, histograms explicit-bucket histograms.
//!
//! The points are read from the registry's Prometheus text, the one place that reads every
//! series (`prometheus-client` hands its values to an encoder only), so a push and a scrape
//! at the same moment say the same. The text is read by the prometheus receiver's parser,
//! [`crate::pdata::exposition`].

use super::metrics::Registry;
use super::traces::SpanSink;
use crate::pdata::exposition::{self, Exposition, Metadata, Sample};
use crate::pdata::{Batch, RequestContext, Signal};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The registry's metrics as OTLP metrics; cumulative ones count from `start`.
pub fn metrics(text: &str, start: SystemTime, now: SystemTime) -> Vec<Metric> {
    let (start, now) = (nanos(start), nanos(now));
    // The registry writes text it can always read back: anything else is a bug worth seeing.
    let exposition = exposition::parse(text, false).unwrap_or_else(|e| {
        tracing::warn!("trailhead's own metrics text did not parse: {e}");
        Exposition::default()
    });
    let mut families: Vec<(&str, &str, Vec<Sample>)> = Vec::new();
    for sample in exposition.samples {
        let Some((name, metadata)) = family(&sample.name, &exposition.metadata) else {
            continue;
        };
        match families.iter_mut().find(|(family, ..)| *family == name) {
            Some((.., samples)) => samples.push(sample),
            None => families.push((name, &metadata.kind, vec![sample])),
        }
    }
    let metrics = families.into_iter();
    metrics
        .filter_map(|(name, kind, samples)| metric(name, kind, samples, start, now))
        .collect()
}

/// The family a sample line belongs to: the one named as the line is, or as it is without
/// its series suffix (a histogram's `_bucket`, `_sum`, `_count`; a counter's `_total`).
fn family<'m>(
    sample: &str,
    metadata: &'m HashMap<String, Metadata>,
) -> Option<(&'m str, &'m Metadata)> {
    let bare = ["_bucket", "_sum", "_count", "_total"]
        .iter()
        .filter_map(|suffix| sample.strip_suffix(suffix));
    std::iter::once(sample)
        .chain(bare)
        .find_map(|name| metadata.get_key_value(name))
        .map(|(name, metadata)| (name.as_str(), metadata))
}

/// One family's OTLP metric, when it has points.
fn metric(name: &str, kind: &str, samples: Vec<Sample>, start: u64, now: u64) -> Option<Metric> {
    let number = |s: &Sample, start| NumberDataPoint {
        attributes: attributes(&s.labels),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(match s.value.fract() == 0.0 && s.value.abs() < 9e15 {
            true => number_data_point::Value::AsInt(s.value as i64),
            false => number_data_point::Value::AsDouble(s.value),
        }),
        ..NumberDataPoint::default()
    };
    let (name, data) = match kind {
        "counter" => (
            name.strip_suffix("_total").unwrap_or(name),
            metric::Data::Sum(Sum {
                data_points: samples.iter().map(|s| number(s, start)).collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
        ),
        "gauge" => (
            name,
            metric::Data::Gauge(Gauge {
                data_points: samples.iter().map(|s| number(s, 0)).collect(),
            }),
        ),
        "histogram" => (
            name,
            metric::Data::Histogram(Histogram {
                data_points: histogram_points(name, samples, start, now),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        ),
        _ => return None,
    };
    Some(Metric {
        name: name.to_string(),
        data: Some(data),
        ..Metric::default()
    })
}

/// A histogram's series from its `_bucket` (cumulative, by `le`), `_sum` and `_count` lines.
fn histogram_points(
    name: &str,
    samples: Vec<Sample>,
    start: u64,
    now: u64,
) -> Vec<HistogramDataPoint> {
    let mut series: BTreeMap<Vec<(String, String)>, HistogramDataPoint> = BTreeMap::new();
    let mut cumulative: BTreeMap<Vec<(String, String)>, Vec<(f64, u64)>> = BTreeMap::new();
    for mut s in samples {
        let suffix = s.name.strip_prefix(name).unwrap_or_default().to_string();
        let le = s
            .labels
            .iter()
            .position(|(k, _)| k == "le")
            .map(|i| s.labels.remove(i).1);
        let point = series
            .entry(s.labels.clone())
            .or_insert_with(|| HistogramDataPoint {
                attributes: attributes(&s.labels),
                start_time_unix_nano: start,
                time_unix_nano: now,
                ..HistogramDataPoint::default()
            });
        match (suffix.as_str(), le) {
            ("_sum", _) => point.sum = Some(s.value),
            ("_count", _) => point.count = s.value as u64,
            ("_bucket", Some(le)) => {
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                cumulative
                    .entry(s.labels)
                    .or_default()
                    .push((bound, s.value as u64));
            }
            _ => {}
        }
    }
    for (labels, mut buckets) in cumulative {
        let Some(point) = series.get_mut(&labels) else {
            continue;
        };
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut below = 0;
        for (bound, count) in buckets {
            if bound.is_finite() {
                point.explicit_bounds.push(bound);
            }
            point.bucket_counts.push(count.saturating_sub(below));
            below = count;
        }
    }
    series.into_values().collect()
}

fn attributes(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| key_value(k, any_value::Value::StringValue(v.clone())))
        .collect()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One periodic reader: pushes the registry every `interval` to `exporter` until `stop`, and
/// once more then. A push the exporter's queue cannot take is dropped, its points counted as
/// the exporter's failed items (`trailhead_exporter_send_failed_items_total`).
pub struct MetricPusher {
    /// The exporter's id: points it cannot take count as its failed items.
    pub id: String,
    pub registry: Arc<Registry>,
    pub exporter: Box<dyn SpanSink>,
    pub resource: Vec<KeyValue>,
    pub interval: Duration,
}

impl MetricPusher {
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let values = [self.id.as_str(), Signal::Metrics.as_str()];
        let dropped = self
            .registry
            .counter(&super::catalog::EXPORTER_FAILED, &values);
        let start = SystemTime::now();
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(self.interval) => false,
                () = stop.cancelled() => true,
            };
            let metrics = metrics(&self.registry.render(), start, SystemTime::now());
            let request = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: self.resource.clone(),
                        ..Resource::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(super::traces::scope()),
                        metrics,
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                }],
            };
            let batch = Batch::from_message(
                Signal::Metrics,
                &request,
                RequestContext::internal("self-metrics"),
            );
            let points = batch.items as u64;
            if !self.exporter.offer(batch).await {
                dropped.add(points);
            }
            if stopping {
                return;
            }
        }
    }
}

pub fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::catalog::{Kind, Metric as Declared};

    // A counter, a gauge and a histogram read back from the registry's own text: names,
    // attributes, values and buckets as a scrape shows them.
    #[test]
    fn the_registry_becomes_otlp() {
        const ITEMS: Declared = Declared {
            name: "t_items_total",
            kind: Kind::Counter,
            labels: &["receiver"],
            help: "Items.",
        };
        const QUEUE: Declared = Declared {
            name: "t_queue",
            kind: Kind::Gauge,
            labels: &[],
            help: "Queue.",
        };
        const BATCH: Declared = Declared {
            name: "t_batch",
            kind: Kind::Histogram,
            labels: &["e"],
            help: "Batch.",
        };
        let registry = Registry::default();
        registry.counter(&ITEMS, &["ot\"lp"]).add(3);
        registry.gauge_fn(&QUEUE, &[], || 7.5);
        let h = registry.histogram(&BATCH, &["x"], &[10.0, 100.0]);
        h.observe(5.0);
        h.observe(50.0);
        h.observe(500.0);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        let found = metrics(&registry.render(), start, SystemTime::now());
        let named = |n: &str| {
            found
                .iter()
                .find(|m| m.name == n)
                .unwrap_or_else(|| panic!("{n} in {found:?}"))
        };
        let Some(metric::Data::Sum(sum)) = &named("t_items").data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(3))
        );
        assert_eq!(sum.data_points[0].start_time_unix_nano, 1_000_000_000);
        let label = format!("{:?}", sum.data_points[0].attributes[0]);
        assert!(
            label.contains("receiver") && label.contains("ot\\\"lp"),
            "{label}"
        );
        let Some(metric::Data::Gauge(gauge)) = &named("t_queue").data else {
            panic!()
        };
        assert_eq!(
            gauge.data_points[0].value,
            Some(number_data_point::Value::AsDouble(7.5))
        );
        let Some(metric::Data::Histogram(histogram)) = &named("t_batch").data else {
            panic!()
        };
        let point = &histogram.data_points[0];
        assert_eq!(point.explicit_bounds, vec![10.0, 100.0]);
        assert_eq!(point.bucket_counts, vec![1, 1, 1]);
        assert_eq!((point.count, point.sum), (3, Some(555.0)));
    }
}
