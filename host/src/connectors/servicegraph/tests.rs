use super::{ServiceGraph, ServiceGraphConfig};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde_json::json;

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

use crate::pdata::testing::string_kv as kv;

fn service(name: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", name)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn span_of(
    kind: span::SpanKind,
    id: u8,
    parent: u8,
    millis: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            vec![parent; 8]
        },
        kind: kind as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + millis * MS,
        attributes,
        ..Default::default()
    }
}

fn graph(config: serde_json::Value) -> ServiceGraph {
    ServiceGraph::new(ServiceGraphConfig::from_value(&config).unwrap(), T0)
}

fn request(resource_spans: Vec<ResourceSpans>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest { resource_spans }
}

fn metric<'a>(out: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
    out.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    super::find(attributes, key).map(super::as_text)
}

/// (client, server, connection_type, count) of each request_total point.
fn totals(out: &ExportMetricsServiceRequest) -> Vec<(String, String, String, i64)> {
    let Some(metric::Data::Sum(sum)) = &metric(out, "traces_service_graph_request_total")
        .unwrap()
        .data
    else {
        panic!("not a sum");
    };
    sum.data_points
        .iter()
        .map(|p| {
            let value = match p.value {
                Some(number_data_point::Value::AsInt(n)) => n,
                _ => -1,
            };
            let a = |k| attribute(&p.attributes, k).unwrap_or_default();
            (a("client"), a("server"), a("connection_type"), value)
        })
        .collect()
}

#[test]
fn pairs_client_and_server_spans_by_parent_id() {
    let mut graph = graph(json!({"dimensions": ["http.method"]}));
    let client = span_of(
        span::SpanKind::Client,
        1,
        0,
        30,
        vec![kv("http.method", "GET")],
    );
    let mut server = span_of(span::SpanKind::Server, 2, 1, 20, vec![]);
    server.status = Some(Status {
        code: 2,
        ..Default::default()
    });
    graph.consume(&request(vec![service("frontend", vec![client])]), T0);
    assert!(graph.flush(T0).is_none(), "half an edge is nothing yet");
    graph.consume(&request(vec![service("backend", vec![server])]), T0);
    let out = graph.flush(T0 + 5).unwrap();
    assert_eq!(
        totals(&out),
        vec![("frontend".into(), "backend".into(), "".into(), 1)]
    );
    assert!(metric(&out, "traces_service_graph_request_failed_total").is_some());
    let Some(metric::Data::Histogram(server_latency)) =
        &metric(&out, "traces_service_graph_request_server")
            .unwrap()
            .data
    else {
        panic!("no server histogram");
    };
    let point = &server_latency.data_points[0];
    assert_eq!(point.sum, Some(0.02));
    assert_eq!(point.bucket_counts[5], 1, "20ms is in (10ms, 50ms]");
    assert_eq!(point.start_time_unix_nano, T0);
    assert_eq!(
        attribute(&point.attributes, "client_http.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(&point.attributes, "failed").as_deref(),
        Some("true")
    );
    assert_eq!(
        metric(&out, "traces_service_graph_request_client")
            .unwrap()
            .unit,
        "s"
    );
    assert_eq!(graph.counts.total_edges, 1);
}

#[test]
fn database_and_messaging_edges() {
    let mut graph = graph(json!({}));
    let query = span_of(
        span::SpanKind::Client,
        1,
        0,
        3,
        vec![kv("db.name", "orders")],
    );
    let produce = span_of(span::SpanKind::Producer, 3, 0, 1, vec![]);
    let consume = span_of(span::SpanKind::Consumer, 4, 3, 2, vec![]);
    graph.consume(
        &request(vec![
            service("shop", vec![query, produce]),
            service("worker", vec![consume]),
        ]),
        T0,
    );
    let mut edges = totals(&graph.flush(T0).unwrap());
    edges.sort();
    assert_eq!(
        edges,
        vec![
            ("shop".into(), "orders".into(), "database".into(), 1),
            ("shop".into(), "worker".into(), "messaging_system".into(), 1),
        ]
    );
}

#[test]
fn unpaired_spans_expire_into_virtual_nodes() {
    let mut graph = graph(json!({"store": {"ttl": "1s"}, "virtual_node_extra_label": true}));
    let outgoing = span_of(
        span::SpanKind::Client,
        1,
        0,
        3,
        vec![kv("peer.service", "payments")],
    );
    let lost = span_of(span::SpanKind::Client, 5, 0, 3, vec![]);
    let root = span_of(span::SpanKind::Server, 2, 0, 3, vec![]);
    let orphan = span_of(span::SpanKind::Server, 6, 9, 3, vec![]);
    graph.consume(
        &request(vec![service("api", vec![outgoing, lost, root, orphan])]),
        T0,
    );
    graph.expire(T0 + 1_000_000_000);
    assert_eq!(graph.waiting(), 4, "not past the ttl yet");
    graph.expire(T0 + 1_000_000_001);
    assert_eq!((graph.waiting(), graph.counts.expired_edges), (0, 4));
    let mut edges = totals(&graph.flush(T0).unwrap());
    edges.sort();
    assert_eq!(
        edges,
        vec![
            ("api".into(), "payments".into(), "virtual_node".into(), 1),
            ("api".into(), "unknown".into(), "virtual_node".into(), 1),
            ("user".into(), "api".into(), "virtual_node".into(), 1),
        ]
    );
}

#[test]
fn a_full_store_drops_spans_and_stale_series_go() {
    let mut graph = graph(json!({"store": {"max_items": 1}}));
    let first = span_of(span::SpanKind::Client, 1, 0, 3, vec![]);
    let second = span_of(span::SpanKind::Client, 2, 0, 3, vec![]);
    graph.consume(&request(vec![service("a", vec![first, second])]), T0);
    assert_eq!(graph.counts.dropped_spans, 1);
    graph.consume(
        &request(vec![service(
            "b",
            vec![span_of(span::SpanKind::Server, 3, 1, 1, vec![])],
        )]),
        T0,
    );
    assert!(graph.flush(T0).is_some());
    graph.clean(T0 + 15 * 60 * 1_000_000_000 + 1);
    assert!(graph.flush(T0).is_none());
}

#[test]
fn exponential_histograms_are_sent_even_empty() {
    let graph_ = graph(json!({"exponential_histogram_max_size": 20}));
    let out = graph_.flush(T0).unwrap();
    let names: Vec<_> = out.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "traces_service_graph_request_server",
            "traces_service_graph_request_client"
        ]
    );
}

#[test]
fn refusals_name_their_key() {
    let refused = |config: serde_json::Value| ServiceGraphConfig::from_value(&config).unwrap_err();
    assert!(
        refused(json!({"exponential_histogram_max_size": -1}))
            .starts_with("exponential_histogram_max_size: ")
    );
    assert!(
        refused(json!({"exponential_histogram_max_size": 5, "latency_histogram_buckets": ["1s"]}))
            .contains("use either")
    );
    assert!(refused(json!({"store": {"ttl": "soon"}})).starts_with("store.ttl: "));
    assert!(refused(json!({"database_name_attribute": "db"})).contains("unknown field"));
    let config = ServiceGraphConfig::from_value(
        &json!({"metrics_flush_interval": 0, "latency_histogram_buckets": ["100ms", "1s"]}),
    )
    .unwrap();
    assert!(config.flush_interval().is_zero());
    assert_eq!(config.bounds(), Some(vec![0.1, 1.0]));
}
