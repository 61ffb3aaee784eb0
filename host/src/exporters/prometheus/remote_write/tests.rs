use super::*;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::pdata::testing::string_kv as kv;

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc"), kv("k8s.pod.name", "p")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn number(value: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![kv("http.method", "GET"), kv("empty", "")],
        time_unix_nano: 1_700_000_000_123_456_789,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn counter(temporality: AggregationTemporality) -> Metric {
    Metric {
        name: "http.requests".into(),
        unit: "1".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![number(3)],
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn translation(yaml: &str) -> Translation {
    let config: RemoteWriteExporterConfig = crate::config::tree::from_str(yaml).unwrap();
    Translation::of(&config)
}

fn text(labels: &[Label]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={}", l.name, l.value))
        .collect();
    pairs.join(",")
}

// A cumulative counter: `_total`, attributes (the empty one left out), job, scope and
// external labels; target_info carries the resource's other attributes at the same time.
#[test]
fn counters_and_target_info() {
    let t = translation("endpoint: http://m/push\nexternal_labels: {cluster: c1, job: ignored}");
    let (series, dropped) = convert(
        request(vec![counter(AggregationTemporality::Cumulative)]),
        &t,
    );
    assert_eq!(dropped, 0);
    let texts: Vec<String> = series.iter().map(|s| text(&s.labels)).collect();
    assert_eq!(
        texts,
        [
            "__name__=http_requests_total,cluster=c1,http_method=GET,job=svc,otel_scope_name=lib,otel_scope_version=1.0",
            "__name__=target_info,cluster=c1,job=svc,k8s_pod_name=p",
        ]
    );
    assert_eq!(series[0].samples[0].value, 3.0);
    assert_eq!(series[0].samples[0].timestamp, 1_700_000_000_123);
    assert_eq!(series[1].samples[0].timestamp, 1_700_000_000_123);
}

// Delta sums are dropped; `add_metric_suffixes: false` keeps the name; target_info can be off.
#[test]
fn delta_dropped_and_settings() {
    let t = translation(
        "endpoint: http://m/push\nadd_metric_suffixes: false\ntarget_info: {enabled: false}\ndisable_scope_info: true",
    );
    let gauge = Metric {
        name: "queue.size".into(),
        unit: "1".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![number(7)],
        })),
        ..Default::default()
    };
    let (series, dropped) = convert(
        request(vec![counter(AggregationTemporality::Delta), gauge]),
        &t,
    );
    assert_eq!(dropped, 1);
    assert_eq!(series.len(), 1);
    assert_eq!(
        text(&series[0].labels),
        "__name__=queue_size,http_method=GET,job=svc"
    );
}

// Exponential buckets become native spans and deltas, gaps of more than two buckets a new span.
#[test]
fn native_histograms() {
    let point = ExponentialHistogramDataPoint {
        scale: 2,
        count: 7,
        sum: Some(3.5),
        zero_count: 1,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1, 2, 0, 0, 0, 0, 3],
        }),
        time_unix_nano: 2_000_000,
        ..Default::default()
    };
    let h = native_histogram(&point).unwrap();
    assert_eq!(h.schema, 2);
    assert_eq!(h.zero_threshold, DEFAULT_ZERO_THRESHOLD);
    let spans: Vec<(i32, u32)> = h
        .positive_spans
        .iter()
        .map(|s| (s.offset, s.length))
        .collect();
    assert_eq!(spans, [(1, 2), (4, 1)]);
    assert_eq!(h.positive_deltas, [1, 1, 1]);
    let metric = Metric {
        name: "latency".into(),
        unit: "s".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![point],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let (series, _) = convert(
        request(vec![metric]),
        &translation("endpoint: http://m/push"),
    );
    assert_eq!(series[0].labels[0].value, "latency_seconds");
    assert_eq!(series[0].histograms.len(), 1);
}

// Requests are cut so that each stays under the byte bound.
#[test]
fn batches_stay_under_the_bound() {
    let series: Vec<TimeSeries> = (0..100)
        .map(|i| TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: format!("m{i}"),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1,
            }],
            ..TimeSeries::default()
        })
        .collect();
    let one = series[0].encoded_len();
    let requests = batches(series, one * 10);
    assert_eq!(requests.len(), 12);
    assert!(
        requests
            .iter()
            .all(|r| r.timeseries.iter().map(Message::encoded_len).sum::<usize>() < one * 10)
    );
    assert_eq!(
        requests.iter().map(|r| r.timeseries.len()).sum::<usize>(),
        100
    );
}

#[test]
fn refusals() {
    let problems = |yaml: &str| {
        crate::config::tree::from_str::<RemoteWriteExporterConfig>(yaml)
            .unwrap()
            .problems()
            .into_iter()
            .map(|(key, _)| key)
            .collect::<Vec<_>>()
    };
    assert_eq!(problems("{}"), ["endpoint"]);
    assert!(problems("endpoint: http://m/push").is_empty());
    assert_eq!(
        problems("endpoint: http://m/push\nmax_batch_size_bytes: -1"),
        ["max_batch_size_bytes"]
    );
    assert_eq!(
        problems("endpoint: http://m/push\ncompression: gzip"),
        ["compression"]
    );
    assert_eq!(
        problems("endpoint: http://m/push\nremote_write_queue: {queue_size: 0}"),
        ["remote_write_queue"]
    );
    assert_eq!(
        problems("endpoint: http://m/push\ntranslation_strategy: NoTranslation"),
        ["translation_strategy"]
    );
    let unknown =
        crate::config::tree::from_str::<RemoteWriteExporterConfig>("endpoint: x\nwal: {}");
    assert!(unknown.is_err());
}
