use super::{SpanMetrics, SpanMetricsConfig};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, NumberDataPoint, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde_json::json;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

use crate::pdata::testing::string_kv as kv;

fn spans(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    let mut attributes = vec![kv("host.name", "h1")];
    attributes.extend(service.map(|s| kv("service.name", s)));
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span_of(name: &str, millis: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + millis * MS,
        attributes,
        ..Default::default()
    }
}

fn meter(config: serde_json::Value) -> SpanMetrics {
    SpanMetrics::new(
        SpanMetricsConfig::from_value(&config).unwrap(),
        "instance-1".into(),
    )
}

fn metric<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn calls(request: &ExportMetricsServiceRequest) -> &[NumberDataPoint] {
    match &metric(request, "traces.span.metrics.calls").data {
        Some(metric::Data::Sum(sum)) => &sum.data_points,
        other => panic!("{other:?}"),
    }
}

fn durations(request: &ExportMetricsServiceRequest) -> &[HistogramDataPoint] {
    match &metric(request, "traces.span.metrics.duration").data {
        Some(metric::Data::Histogram(h)) => &h.data_points,
        other => panic!("{other:?}"),
    }
}

fn int(point: &NumberDataPoint) -> i64 {
    match point.value {
        Some(number_data_point::Value::AsInt(n)) => n,
        other => panic!("{other:?}"),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    super::find(attributes, key).map(super::as_text)
}

#[test]
fn counts_calls_and_buckets_durations_with_the_collector_labels() {
    let mut meter = meter(json!({}));
    meter.consume(
        &spans(
            Some("checkout"),
            vec![
                span_of("GET /", 3, vec![]),
                span_of("GET /", 75, vec![]),
                span_of("GET /", 2, vec![]),
            ],
        ),
        T0,
    );
    let first = meter.flush(T0 + 1).unwrap();
    // A cumulative count is first sent as zero; the histogram is not.
    assert_eq!(int(&calls(&first)[0]), 0);
    let point = &durations(&first)[0];
    assert_eq!(point.count, 3);
    assert_eq!(point.sum, Some(80.0));
    assert_eq!(point.explicit_bounds.len(), 16);
    // 2 ms goes in the (≤2] bucket, 3 in (2,4], 75 in (50,100].
    assert_eq!(&point.bucket_counts[..7], &[1, 1, 0, 0, 0, 0, 1]);
    assert_eq!(metric(&first, "traces.span.metrics.duration").unit, "ms");
    let attributes = &point.attributes;
    assert_eq!(
        attribute(attributes, "service.name").as_deref(),
        Some("checkout")
    );
    assert_eq!(attribute(attributes, "span.name").as_deref(), Some("GET /"));
    assert_eq!(
        attribute(attributes, "span.kind").as_deref(),
        Some("SPAN_KIND_SERVER")
    );
    assert_eq!(
        attribute(attributes, "status.code").as_deref(),
        Some("STATUS_CODE_UNSET")
    );
    assert_eq!(
        attribute(attributes, "collector.instance.id").as_deref(),
        Some("instance-1")
    );
    let resource = first.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        attribute(&resource.attributes, "host.name").as_deref(),
        Some("h1")
    );
    let second = meter.flush(T0 + 2).unwrap();
    assert_eq!(int(&calls(&second)[0]), 3);
    assert_eq!(calls(&second)[0].start_time_unix_nano, T0);
}

#[test]
fn dimensions_take_span_then_resource_then_default_and_split_series() {
    let mut meter = meter(json!({
        "dimensions": [{"name": "http.method", "default": "GET"}, {"name": "host.name"}, {"name": "absent"}],
        "histogram": {"unit": "s", "explicit": {"buckets": ["100ms", "1s"]}},
        "exclude_dimensions": ["status.code"],
    }));
    let post = span_of("op", 500, vec![kv("http.method", "POST")]);
    let mut error = span_of("op", 1500, vec![]);
    error.status = Some(Status {
        code: 2,
        ..Default::default()
    });
    meter.consume(&spans(Some("svc"), vec![post, error]), T0);
    let out = meter.flush(T0 + 1).unwrap();
    let points = durations(&out);
    assert_eq!(points.len(), 2);
    let methods: Vec<_> = points
        .iter()
        .map(|p| attribute(&p.attributes, "http.method").unwrap())
        .collect();
    assert!(methods.contains(&"POST".into()) && methods.contains(&"GET".into()));
    for point in points {
        assert_eq!(
            attribute(&point.attributes, "host.name").as_deref(),
            Some("h1")
        );
        assert_eq!(attribute(&point.attributes, "absent"), None);
        assert_eq!(attribute(&point.attributes, "status.code"), None);
        assert_eq!(point.explicit_bounds, vec![0.1, 1.0]);
    }
    let get = points
        .iter()
        .find(|p| attribute(&p.attributes, "http.method").as_deref() == Some("GET"))
        .unwrap();
    assert_eq!(get.bucket_counts, vec![0, 0, 1]);
    assert_eq!(get.sum, Some(1.5));
}

#[test]
fn delta_starts_each_point_where_the_last_flush_ended_and_forgets() {
    let mut meter = meter(json!({"aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA"}));
    meter.consume(&spans(Some("svc"), vec![span_of("a", 1, vec![])]), T0);
    let first = meter.flush(T0 + 10).unwrap();
    assert_eq!(int(&calls(&first)[0]), 1);
    assert_eq!(calls(&first)[0].start_time_unix_nano, T0);
    assert!(meter.flush(T0 + 20).is_none(), "nothing new, nothing sent");
    meter.consume(
        &spans(
            Some("svc"),
            vec![span_of("a", 1, vec![]), span_of("a", 1, vec![])],
        ),
        T0 + 25,
    );
    let third = meter.flush(T0 + 30).unwrap();
    assert_eq!(int(&calls(&third)[0]), 2);
    assert_eq!(calls(&third)[0].start_time_unix_nano, T0 + 10);
    assert_eq!(durations(&third)[0].start_time_unix_nano, T0 + 10);
    let temporality = match &metric(&third, "traces.span.metrics.calls").data {
        Some(metric::Data::Sum(sum)) => sum.aggregation_temporality,
        _ => 0,
    };
    assert_eq!(temporality, 1);
}

#[test]
fn cumulative_resources_and_series_expire() {
    let mut meter = meter(json!({"metrics_expiration": "10ns", "series_expiration": "5ns"}));
    meter.consume(
        &spans(
            Some("old"),
            vec![span_of("a", 1, vec![]), span_of("b", 1, vec![])],
        ),
        T0,
    );
    assert!(meter.flush(T0 + 1).is_some());
    meter.consume(&spans(Some("old"), vec![span_of("a", 1, vec![])]), T0 + 4);
    // At +8, `b` (last seen at +0) has expired; `a` (+4) has not.
    let kept = meter.flush(T0 + 8).unwrap();
    assert_eq!(calls(&kept).len(), 2, "sent once more before expiring");
    let later = meter.flush(T0 + 9).unwrap();
    let names: Vec<_> = calls(&later)
        .iter()
        .map(|p| attribute(&p.attributes, "span.name").unwrap())
        .collect();
    assert_eq!(names, vec!["a"]);
    assert!(meter.flush(T0 + 14).is_some());
    assert!(
        meter.flush(T0 + 15).is_none(),
        "the resource, unseen for 10ns, is gone"
    );
}

#[test]
fn spans_without_service_name_are_skipped_and_resources_are_grouped() {
    let mut meter = meter(json!({"resource_metrics_key_attributes": ["service.name"]}));
    meter.consume(&spans(None, vec![span_of("a", 1, vec![])]), T0);
    assert!(meter.flush(T0 + 1).is_none());
    let mut other_host = spans(Some("svc"), vec![span_of("a", 1, vec![])]);
    other_host.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes[0] = kv("host.name", "h2");
    meter.consume(&spans(Some("svc"), vec![span_of("a", 1, vec![])]), T0);
    meter.consume(&other_host, T0);
    meter.flush(T0 + 1);
    let out = meter.flush(T0 + 2).unwrap();
    assert_eq!(
        out.resource_metrics.len(),
        1,
        "one resource by service.name alone"
    );
    assert_eq!(int(&calls(&out)[0]), 2);
}

#[test]
fn events_count_per_event_and_limits_overflow() {
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    let mut meter = meter(json!({
        "events": {"enabled": true, "dimensions": [{"name": "exception.type"}]},
        "aggregation_cardinality_limit": 2,
        "histogram": {"disable": true},
        "aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA",
    }));
    let mut failing = span_of("a", 1, vec![]);
    failing.events = vec![
        Event {
            name: "exception".into(),
            attributes: vec![kv("exception.type", "Timeout")],
            ..Default::default()
        },
        Event {
            name: "exception".into(),
            attributes: vec![kv("exception.type", "Timeout")],
            ..Default::default()
        },
    ];
    meter.consume(
        &spans(
            Some("svc"),
            vec![failing, span_of("b", 1, vec![]), span_of("c", 1, vec![])],
        ),
        T0,
    );
    let out = meter.flush(T0 + 1).unwrap();
    let events = match &metric(&out, "traces.span.metrics.events").data {
        Some(metric::Data::Sum(sum)) => sum.data_points.clone(),
        _ => panic!(),
    };
    assert_eq!(int(&events[0]), 2);
    assert_eq!(
        attribute(&events[0].attributes, "exception.type").as_deref(),
        Some("Timeout")
    );
    let points = calls(&out);
    assert_eq!(points.len(), 3, "two series and the overflow one");
    assert!(
        points
            .iter()
            .any(|p| attribute(&p.attributes, "otel.metric.overflow").as_deref() == Some("true"))
    );
    assert!(
        out.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .all(|m| !m.name.ends_with("duration"))
    );
}

#[test]
fn exponential_histograms_and_sampled_spans() {
    let mut meter = meter(
        json!({"histogram": {"exponential": {"max_size": 10}}, "aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA", "namespace": ""}),
    );
    let mut sampled = span_of("a", 8, vec![]);
    sampled.trace_state = "ot=th:8".into();
    meter.consume(
        &spans(Some("svc"), vec![sampled, span_of("a", 1, vec![])]),
        T0,
    );
    let out = meter.flush(T0 + 1).unwrap();
    let m = &out.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(m[0].name, "calls");
    match &m[0].data {
        Some(metric::Data::Sum(sum)) => assert_eq!(int(&sum.data_points[0]), 3),
        other => panic!("{other:?}"),
    }
    match &m[1].data {
        Some(metric::Data::ExponentialHistogram(h)) => {
            let point = &h.data_points[0];
            assert_eq!(point.count, 3);
            assert_eq!(point.sum, Some(17.0));
            assert!(point.positive.as_ref().unwrap().bucket_counts.len() <= 10);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn exemplars_are_kept_per_flush() {
    let mut meter = meter(json!({"exemplars": {"enabled": true, "max_per_data_point": 1}}));
    meter.consume(
        &spans(
            Some("svc"),
            vec![span_of("a", 1, vec![]), span_of("a", 2, vec![])],
        ),
        T0,
    );
    let out = meter.flush(T0 + 5).unwrap();
    let exemplars = &durations(&out)[0].exemplars;
    assert_eq!(exemplars.len(), 1);
    assert_eq!(exemplars[0].trace_id, vec![1; 16]);
    assert_eq!(exemplars[0].time_unix_nano, T0 + 5);
    let again = meter.flush(T0 + 6).unwrap();
    assert!(durations(&again)[0].exemplars.is_empty());
}

#[test]
fn refusals_name_their_key() {
    let refused = |config: serde_json::Value| SpanMetricsConfig::from_value(&config).unwrap_err();
    assert!(
        refused(json!({"histogram": {"unit": "h"}}))
            .starts_with("histogram.unit: unknown Unit \"h\"")
    );
    assert!(
        refused(json!({"metrics_expiration": "-20s"})).starts_with("metrics_expiration: negative")
    );
    assert!(
        refused(json!({"histogram": {"explicit": {}, "exponential": {}}}))
            .starts_with("histogram.exponential: use either")
    );
    assert!(
        refused(json!({"dimensions": [{"name": "a"}, {"name": "span.kind"}]}))
            .starts_with("dimensions[1]: duplicate dimension name")
    );
    assert!(refused(json!({"dimensions": [{"glob": "span.*"}]})).contains("conflicting with glob"));
    assert!(
        refused(json!({"events": {"enabled": true}}))
            .starts_with("events.dimensions: no dimensions")
    );
    assert!(
        refused(json!({"aggregation_cardinality_limit": -1}))
            .starts_with("aggregation_cardinality_limit:")
    );
    assert!(refused(json!({"aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA", "metric_timestamp_cache_size": 0})).starts_with("metric_timestamp_cache_size:"));
    assert!(refused(json!({"metrics_flush_interval": 0})).starts_with("metrics_flush_interval:"));
    assert!(
        refused(json!({"resource_metrics_cache_size": 0}))
            .starts_with("resource_metrics_cache_size:")
    );
    assert!(refused(json!({"dimension": []})).contains("unknown field `dimension`"));
    // The collector's `explicit:` with no value is the default histogram.
    let default = SpanMetricsConfig::from_value(&json!({"histogram": {"explicit": null}})).unwrap();
    assert_eq!(default.explicit_bounds().unwrap().len(), 16);
}
