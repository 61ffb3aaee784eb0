//! The filter run natively over OTLP JSON fixtures through the SDK's harness, which keeps the
//! host's semantics (removals at the end of the call, emptied parents going, `Err` discarding
//! every change).

use super::Filter;
use trailhead_plugin::testing::{self, Logs, Metrics, Spans};

const SPANS: &str = include_str!("../testdata/spans.json");
const LOGS: &str = include_str!("../testdata/logs.json");
const METRICS: &str = include_str!("../testdata/metrics.json");

fn filter(config: &str) -> Filter {
    testing::init(config).unwrap_or_else(|e| panic!("{config}: {e}"))
}

/// Span names left, and each span's event names, after the filter ran with `config`.
fn spans_left(config: &str) -> Vec<(String, Vec<String>)> {
    let mut spans = Spans::from_json(SPANS).expect("fixture");
    spans
        .run(&mut filter(config))
        .expect("process_spans returns Ok");
    let request = spans.request();
    let all = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    all.map(|s| {
        (
            s.name.clone(),
            s.events.iter().map(|e| e.name.clone()).collect(),
        )
    })
    .collect()
}

fn names(left: &[(String, Vec<String>)]) -> Vec<&str> {
    left.iter().map(|(name, _)| name.as_str()).collect()
}

// A span condition on an attribute drops the health check and nothing else.
#[test]
fn drops_matching_spans() {
    let left = spans_left(r#"{"traces":{"span":["attributes[\"http.route\"] == \"/healthz\""]}}"#);
    assert_eq!(names(&left), ["GET /lessons", "GET key"]);
}

// Resource and scope fields reach every span under them; a resource left empty goes.
#[test]
fn resource_and_scope_fields_reach_their_spans() {
    let config = r#"{"traces":{"span":["resource.attributes[\"service.name\"] == \"cache\"", "instrumentation_scope.name == \"nope\""]}}"#;
    let mut spans = Spans::from_json(SPANS).unwrap();
    spans.run(&mut filter(config)).unwrap();
    assert_eq!(spans.request().resource_spans.len(), 1);
    let left = spans_left(r#"{"traces":{"span":["instrumentation_scope.name == \"http\""]}}"#);
    assert_eq!(names(&left), ["GET key"]);
}

// Span events match on their own fields and, through parents(), on their span's.
#[test]
fn drops_span_events_by_their_own_and_their_spans_fields() {
    let left = spans_left(
        r#"{"traces":{"spanevent":["name == \"retry\" and span.kind == SPAN_KIND_SERVER"]}}"#,
    );
    assert_eq!(
        left[1],
        ("GET /lessons".into(), vec!["exception".to_string()])
    );
    assert_eq!(left[2], ("GET key".into(), vec!["retry".to_string()]));
    let left = spans_left(
        r#"{"traces":{"spanevent":["span.status.code == STATUS_CODE_ERROR and attributes[\"exception.type\"] != nil", "resource.attributes[\"service.name\"] == \"cache\""]}}"#,
    );
    assert_eq!(left[1].1, ["retry"]);
    assert!(left[2].1.is_empty());
}

// Spans and their events filtered in one call: the span's removal takes its events along.
#[test]
fn spans_and_events_together() {
    let left = spans_left(
        r#"{"traces":{"span":["name == \"GET key\""],"spanevent":["name == \"exception\""]}}"#,
    );
    assert_eq!(
        left,
        [
            ("GET /healthz".into(), vec![]),
            ("GET /lessons".into(), vec!["retry".to_string()])
        ]
    );
}

// The paths 0.2's columns answer: IDs (as bytes and as hex), times and the status message.
#[test]
fn ids_times_and_status_message() {
    let left =
        |context: &str, condition: &str| spans_left(&config_of("traces", context, condition));
    let by_id = "trace_id == TraceID(0x5b8efff798038103d269b633813fc60c)";
    assert_eq!(names(&left("span", by_id)), ["GET /lessons", "GET key"]);
    let by_hex = r#"span_id.string == "eee19b7ec3c1b174""#;
    assert_eq!(names(&left("span", by_hex)), ["GET /lessons", "GET key"]);
    let slow = r#"end_time_unix_nano > 1000000 or status.message == "upstream timed out""#;
    assert_eq!(names(&left("span", slow)), ["GET /healthz", "GET key"]);
    let by_span =
        "span.start_time_unix_nano == 1000 and span.span_id == SpanID(0x00f067aa0ba902b7)";
    let events = left("spanevent", by_span);
    assert_eq!((events[1].1.len(), events[2].1.len()), (2, 0));
}

fn config_of(signal: &str, context: &str, condition: &str) -> String {
    serde_json::json!({ signal: { context: [condition] } }).to_string()
}

/// Log bodies left after the filter ran with `config`, or the plugin's error.
fn logs_left(config: &str) -> Result<Vec<String>, String> {
    let mut logs = Logs::from_json(LOGS).unwrap();
    logs.run(&mut filter(config)).map_err(|e| e.message)?;
    let request = logs.request();
    let records = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records);
    Ok(records.map(|r| r.severity_text.clone()).collect())
}

// Log records match on severity, severity text, trace ID and body.
#[test]
fn drops_log_records() {
    let left = logs_left(r#"{"logs":{"log_record":["severity_number < SEVERITY_NUMBER_INFO"]}}"#);
    assert_eq!(left.unwrap(), ["INFO", "ERROR"]);
    let left = logs_left(
        r#"{"logs":{"log_record":["severity_text == \"ERROR\"", "trace_id.string == \"5b8efff798038103d269b633813fc60c\""]}}"#,
    );
    assert_eq!(left.unwrap(), ["DEBUG"]);
    let left = logs_left(r#"{"logs":{"log_record":["span_id == SpanID(0x0000000000000000)"]}}"#);
    assert_eq!(left.unwrap(), ["INFO"]);
}

// ToLowerCase on a map body fails for that record (IsMatch would read the map as JSON, as
// the collector's does): propagate fails the batch (leaving it as it was), ignore and silent
// treat it as no match and go on with the others.
#[test]
fn error_modes() {
    let condition = r#"["ToLowerCase(body) == \"cache warm\""]"#;
    let error = logs_left(&format!(r#"{{"logs":{{"log_record":{condition}}}}}"#)).unwrap_err();
    assert_eq!(
        error,
        "condition `ToLowerCase(body) == \"cache warm\"` failed on 1 log record(s), first log record 2: ToLowerCase: expected a string but got a map"
    );
    for mode in ["ignore", "silent"] {
        let left = logs_left(&format!(
            r#"{{"error_mode":"{mode}","logs":{{"log_record":{condition}}}}}"#
        ));
        assert_eq!(left.unwrap(), ["INFO", "ERROR"]);
    }
}

/// Metric names left, with how many points each kept.
fn metrics_left(config: &str) -> Vec<(String, usize)> {
    let mut metrics = Metrics::from_json(METRICS).unwrap();
    metrics.run(&mut filter(config)).unwrap();
    points_left(&metrics.request())
}

/// Each metric of a request, with its data point count, whatever its type.
fn points_left(
    request: &testing::otlp::collector::metrics::v1::ExportMetricsServiceRequest,
) -> Vec<(String, usize)> {
    use testing::otlp::metrics::v1::metric::Data;
    let points = |m: &testing::otlp::metrics::v1::Metric| match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
        None => 0,
    };
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| (m.name.clone(), points(m)))
        .collect()
}

// Data points match on their attributes and their metric's fields; a metric left without
// points goes.
#[test]
fn drops_metrics_and_data_points() {
    let left =
        metrics_left(r#"{"metrics":{"datapoint":["attributes[\"http.route\"] == \"/healthz\""]}}"#);
    assert_eq!(
        left,
        [
            ("http.server.duration".into(), 1),
            ("queue.depth".into(), 1)
        ]
    );
    let left = metrics_left(
        r#"{"metrics":{"metric":["type == METRIC_DATA_TYPE_GAUGE"],"datapoint":["metric.name == \"http.server.duration\" and attributes[\"http.route\"] == nil"]}}"#,
    );
    assert_eq!(left, [("http.server.duration".into(), 2)]);
    let left = metrics_left(r#"{"metrics":{"metric":["IsMatch(name, \"^probe\")"]}}"#);
    assert_eq!(left.len(), 2);
}

// Only the signals with conditions are asked for.
#[test]
fn asks_only_for_configured_signals() {
    use trailhead_plugin::{Plugin, Signal};
    let plugin = filter(r#"{"logs":{"log_record":["body == nil"]}}"#);
    assert_eq!(plugin.signals(), [Signal::Logs]);
}

// Config errors name the field and the column, word for word as 0.1's did.
#[test]
fn config_errors_are_unchanged() {
    let cases = [
        (
            r#"{"traces":{"span":["kind == SPAN_KIND_SERVR"]}}"#,
            "traces.span[0]: column 9: unknown enum `SPAN_KIND_SERVR` in `kind == SPAN_KIND_SERVR`",
        ),
        (
            r#"{"error_mode":"loud"}"#,
            "error_mode: expected ignore, silent or propagate",
        ),
        (
            r#"{"traces":{"span":[1]}}"#,
            "traces.span[0]: a condition must be a string",
        ),
        (
            r#"{"traces":{"span":"x"}}"#,
            "traces.span: expected a list of conditions",
        ),
        (
            r#"{"traces":{"span":{"include":1}}}"#,
            "traces.span: expected a list of conditions",
        ),
        (
            r#"{"logs":{"exclude":[]}}"#,
            "logs.exclude: the legacy include/exclude filters are not supported; write OTTL conditions",
        ),
        (
            r#"{"metrics":{"span":[]}}"#,
            "metrics.span: unknown key; expected metric, datapoint",
        ),
        (
            r#"{"trace":{}}"#,
            "trace: unknown key; expected error_mode, traces, metrics, logs",
        ),
        (r#"[]"#, "config: expected a map"),
    ];
    for (config, expected) in cases {
        let error = testing::init::<Filter>(config)
            .err()
            .unwrap_or_else(|| panic!("{config} is accepted"));
        assert_eq!(error, expected, "{config}");
    }
    let error = testing::init::<Filter>(r#"{"metrics":{"metric":["status.code == 1"]}}"#)
        .err()
        .unwrap();
    assert!(error.starts_with("metrics.metric[0]: column 1: unknown path `status.code` in the metric context; supported: name, description"), "{error}");
}

// The shared OTTL engine gives the filter math and the converters: a span slower than 1 ms,
// a name longer than 11 bytes unless it is exactly "GET /healthz", a name in any case.
#[test]
fn math_and_converters() {
    let left = |condition: &str| spans_left(&config_of("traces", "span", condition));
    let slow = "end_time_unix_nano - start_time_unix_nano > 1000000";
    assert_eq!(names(&left(slow)), ["GET /healthz", "GET key"]);
    let long = r#"(Len(name) > 11 and name != "GET /healthz") or ToLowerCase(name) == "get key""#;
    assert_eq!(names(&left(long)), ["GET /healthz"]);
}

/// Spans over every span path: IDs, trace states, flags, kinds, dropped counts, events,
/// links, nested attributes, and a scope with a version and attributes.
const RICH_SPANS: &str = r#"{"resourceSpans": [
  {"resource": {"droppedAttributesCount": 2, "attributes": [
     {"key": "k8s", "value": {"kvlistValue": {"values": [{"key": "pod", "value": {"stringValue": "web-1"}}]}}}]},
   "scopeSpans": [{"scope": {"name": "http", "version": "1.2.0",
                             "attributes": [{"key": "tier", "value": {"stringValue": "edge"}}]}, "spans": [
     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "fast",
      "traceState": "ot=th:0,vendor=x", "flags": 1, "kind": 2,
      "startTimeUnixNano": "1000", "endTimeUnixNano": "2000", "droppedAttributesCount": 1,
      "droppedEventsCount": 3,
      "attributes": [{"key": "http", "value": {"kvlistValue": {"values": [
        {"key": "route", "value": {"stringValue": "/a"}},
        {"key": "codes", "value": {"arrayValue": {"values": [{"intValue": "200"}, {"intValue": "404"}]}}}]}}}],
      "events": [{"name": "e1", "timeUnixNano": "1500", "attributes": [{"key": "n", "value": {"intValue": "1"}}]}]},
     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "b7ad6b7169203331", "name": "slow",
      "parentSpanId": "eee19b7ec3c1b174", "traceState": "Not A State", "kind": 3,
      "startTimeUnixNano": "1000", "endTimeUnixNano": "5000000", "droppedLinksCount": 1,
      "status": {"code": 1},
      "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00f067aa0ba902b7"}]}]}]},
  {"resource": {"attributes": []},
   "scopeSpans": [{"scope": {"name": "db"}, "spans": [
     {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7", "name": "other",
      "kind": 1, "startTimeUnixNano": "1000", "endTimeUnixNano": "1000",
      "events": [{"name": "e2", "timeUnixNano": "3000", "attributes": [{"key": "n", "value": {"intValue": "2"}}]},
                 {"name": "e3", "timeUnixNano": "3000"}]}]}]}
]}"#;

/// Span names left, with their events, after `condition` ran in `context` over RICH_SPANS;
/// or the plugin's error.
fn rich_spans_left(context: &str, mode: &str, condition: &str) -> Result<Vec<String>, String> {
    let config = serde_json::json!({"error_mode": mode, "traces": {context: [condition]}});
    let mut spans = Spans::from_json(RICH_SPANS).expect("fixture");
    spans
        .run(&mut filter(&config.to_string()))
        .map_err(|e| e.message)?;
    let request = spans.request();
    let all = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    Ok(all
        .map(|s| {
            let events: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
            format!("{}{events:?}", s.name)
        })
        .collect())
}

// Every span path the collector reads: each condition drops exactly the spans named.
#[test]
fn every_span_path() {
    let cases = [
        ("parent_span_id == SpanID(0x0000000000000000)", "slow"),
        (
            r#"parent_span_id.string == "eee19b7ec3c1b174""#,
            "fast other",
        ),
        (r#"trace_state == "ot=th:0,vendor=x""#, "slow other"),
        (r#"trace_state["vendor"] == "x""#, "slow other"),
        // A trace state that does not parse reads nil; a missing member reads "".
        (r#"trace_state["vendor"] == nil"#, "fast other"),
        (r#"trace_state["ot"] == """#, "fast slow"),
        ("flags == 1", "slow other"),
        (r#"kind.string == "Client""#, "fast other"),
        (
            r#"kind.deprecated_string == "SPAN_KIND_INTERNAL""#,
            "fast slow",
        ),
        ("status.code == STATUS_CODE_OK", "fast other"),
        ("status != nil", ""),
        ("dropped_attributes_count == 1", "slow other"),
        (
            "dropped_events_count == 3 or dropped_links_count == 1",
            "other",
        ),
        ("Len(events) == 2", "fast slow"),
        ("Len(links) > 0", "fast other"),
        ("events == nil", "fast slow other"),
        ("end_time - start_time > Duration(\"1ms\")", "fast other"),
        ("start_time_unix_nano == end_time_unix_nano", "fast slow"),
        (r#"instrumentation_scope.version == "1.2.0""#, "other"),
        (r#"scope.attributes["tier"] == "edge""#, "other"),
        ("resource.dropped_attributes_count == 2", "other"),
        (r#"resource.attributes["k8s"]["pod"] == "web-1""#, "other"),
        (r#"attributes["http"]["route"] == "/a""#, "slow other"),
        (r#"attributes["http"]["codes"][1] == 404"#, "slow other"),
        ("Len(attributes) == 1", "slow other"),
        (r#"span.name == "fast""#, "slow other"),
        (r#"cache["x"] == nil"#, ""),
    ];
    for (condition, left) in cases {
        let names = rich_spans_left("span", "propagate", condition).unwrap();
        let names: Vec<&str> = names.iter().map(|n| &n[..n.find('[').unwrap()]).collect();
        assert_eq!(names.join(" "), left, "{condition}");
    }
}

// Span events read their own time, attributes and dropped count, and every path of their span.
#[test]
fn every_span_event_path() {
    let cases = [
        ("time_unix_nano > 2000", r#"fast["e1"] slow[] other[]"#),
        (
            "attributes[\"n\"] == 2 or dropped_attributes_count > 0",
            r#"fast["e1"] slow[] other["e3"]"#,
        ),
        (
            "span.dropped_events_count == 3",
            r#"fast[] slow[] other["e2", "e3"]"#,
        ),
        (
            "Len(span.events) == 2 and name == \"e3\"",
            r#"fast["e1"] slow[] other["e2"]"#,
        ),
        (
            "span.parent_span_id == SpanID(0x0000000000000000) and time < span.start_time + Duration(\"1us\")",
            r#"fast[] slow[] other["e2", "e3"]"#,
        ),
        ("Len(attributes) == 0", r#"fast["e1"] slow[] other["e2"]"#),
    ];
    for (condition, left) in cases {
        let names = rich_spans_left("spanevent", "propagate", condition).unwrap();
        assert_eq!(names.join(" "), left, "{condition}");
    }
}

// A nested key into a value that is no map fails for that span, as in the collector: an
// error under propagate, no match under ignore.
#[test]
fn nested_keys_into_a_string_fail() {
    let condition = r#"attributes["http"]["route"]["x"] == nil"#;
    let error = rich_spans_left("span", "propagate", condition).unwrap_err();
    assert!(
        error.contains("a string does not support indexing"),
        "{error}"
    );
    // Only "fast" fails; the others have no `http`, so the whole path is nil.
    let left = rich_spans_left("span", "ignore", condition).unwrap();
    assert_eq!(left, [r#"fast["e1"]"#]);
}

/// Log records over every log path; each has its attribute `id`.
const RICH_LOGS: &str = r#"{"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
  {"timeUnixNano": "100", "observedTimeUnixNano": "200", "flags": 1, "severityText": "INFO",
   "attributes": [{"key": "id", "value": {"stringValue": "map"}}],
   "body": {"kvlistValue": {"values": [
     {"key": "user", "value": {"kvlistValue": {"values": [{"key": "name", "value": {"stringValue": "ann"}}]}}},
     {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}}]}}},
  {"observedTimeUnixNano": "300", "body": {"stringValue": "plain"},
   "attributes": [{"key": "id", "value": {"stringValue": "string"}}]},
  {"eventName": "login", "attributes": [{"key": "id", "value": {"stringValue": "empty"}}]},
  {"body": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}},
   "attributes": [{"key": "id", "value": {"stringValue": "list"}}]}]}]}]}"#;

/// The `id`s of the records left after `condition` ran, or the plugin's error.
fn rich_logs_left(mode: &str, condition: &str) -> Result<String, String> {
    let config = serde_json::json!({"error_mode": mode, "logs": {"log_record": [condition]}});
    let mut logs = Logs::from_json(RICH_LOGS).expect("fixture");
    logs.run(&mut filter(&config.to_string()))
        .map_err(|e| e.message)?;
    let request = logs.request();
    let records = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records);
    let id = |r: &testing::otlp::logs::v1::LogRecord| format!("{:?}", r.attributes[0].value);
    let ids: Vec<String> = records.map(id).collect();
    Ok(["map", "string", "empty", "list"]
        .into_iter()
        .filter(|name| ids.iter().any(|i| i.contains(&format!("\"{name}\""))))
        .collect::<Vec<_>>()
        .join(" "))
}

// Every log path: body keys and indexes, body.string, times, flags, event name, zero IDs.
#[test]
fn every_log_path() {
    let cases = [
        (r#"body["user"]["name"] == "ann""#, "string empty list"),
        (r#"body["tags"][1] == "b""#, "string empty list"),
        ("body[1] == 2", "map string empty"),
        (r#"body.string == "plain""#, "map empty list"),
        (
            r#"body.string == "{\"tags\":[\"a\",\"b\"],\"user\":{\"name\":\"ann\"}}""#,
            "string empty list",
        ),
        (
            r#"body.string == "" and event_name == "login""#,
            "map string list",
        ),
        ("time_unix_nano == 100", "string empty list"),
        (
            "observed_time_unix_nano - time_unix_nano > 150",
            "map empty list",
        ),
        ("observed_time > time", "empty list"),
        ("flags == 1", "string empty list"),
        (
            r#"trace_id.string == "00000000000000000000000000000000""#,
            "",
        ),
        (r#"IsMatch(body, "ann")"#, "string empty list"),
        ("Len(body) == 2", "string empty"),
        (
            r#"attributes["id"] == "list" or Len(attributes) == 0"#,
            "map string empty",
        ),
        (r#"attributes == {"id": "map"}"#, "string empty list"),
    ];
    for (condition, left) in cases {
        assert_eq!(
            rich_logs_left("ignore", condition).unwrap(),
            left,
            "{condition}"
        );
    }
}

// Indexing a body that is no map or list fails, an empty one too, as the collector's
// "log bodies of type Empty cannot be indexed".
#[test]
fn indexing_a_scalar_or_empty_body_fails() {
    let error = rich_logs_left("propagate", r#"body["x"] == nil"#).unwrap_err();
    assert!(error.contains("failed on 3 log record(s)"), "{error}");
    assert!(error.contains("does not support indexing"), "{error}");
    assert_eq!(
        rich_logs_left("ignore", r#"body["x"] == nil"#).unwrap(),
        "string empty list"
    );
}

/// Metrics of every type, for data point paths.
const RICH_METRICS: &str = r#"{"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
  {"name": "g", "unit": "ms", "description": "gauge", "gauge": {"dataPoints": [
    {"asInt": "5", "attributes": [{"key": "a", "value": {"kvlistValue": {"values": [{"key": "b", "value": {"stringValue": "c"}}]}}}]},
    {"asDouble": 2.5, "flags": 1}]}},
  {"name": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
    {"asInt": "7", "startTimeUnixNano": "100", "timeUnixNano": "200"}]}},
  {"name": "h", "histogram": {"aggregationTemporality": 1, "dataPoints": [
    {"count": "3", "sum": 4.5, "bucketCounts": ["1", "2"], "explicitBounds": [1.0],
     "exemplars": [{"asInt": "1"}]}]}},
  {"name": "q", "summary": {"dataPoints": [
    {"count": "2", "sum": 1.0, "quantileValues": [{"quantile": 0.5, "value": 1.0}]}]}},
  {"name": "e", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
    {"count": "2", "scale": 2, "zeroCount": "1", "positive": {"offset": 1, "bucketCounts": ["1", "1"]}}]}}
]}]}]}"#;

/// Each metric left with how many points it kept, as `name:points`.
fn rich_metrics_left(context: &str, condition: &str) -> String {
    let config = serde_json::json!({"error_mode": "ignore", "metrics": {context: [condition]}});
    let mut metrics = Metrics::from_json(RICH_METRICS).expect("fixture");
    metrics.run(&mut filter(&config.to_string())).unwrap();
    let left: Vec<String> = points_left(&metrics.request())
        .into_iter()
        .map(|(name, points)| format!("{name}:{points}"))
        .collect();
    left.join(" ")
}

// Every metric and data point path, each value nil on the types that lack it, as pdata's.
#[test]
fn every_metric_and_data_point_path() {
    let all = "g:2 s:1 h:1 q:1 e:1";
    let cases = [
        (
            "metric",
            r#"unit == "ms" or description == "gauge""#,
            "s:1 h:1 q:1 e:1",
        ),
        (
            "metric",
            "aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA",
            "g:2 s:1 q:1 e:1",
        ),
        ("metric", "aggregation_temporality == nil", "s:1 h:1 e:1"),
        ("metric", "is_monotonic == true", "g:2 h:1 q:1 e:1"),
        ("metric", "Len(data_points) == 2", "s:1 h:1 q:1 e:1"),
        ("metric", r#"metadata["x"] != nil"#, all),
        ("datapoint", "value_int == 5", "g:1 s:1 h:1 q:1 e:1"),
        // A double point's value_int is 0; a histogram's is nil.
        ("datapoint", "value_int == 0", "g:1 s:1 h:1 q:1 e:1"),
        ("datapoint", "value_double > 2.0", "g:1 s:1 h:1 q:1 e:1"),
        ("datapoint", "value_int == nil", "g:2 s:1"),
        (
            "datapoint",
            "flags == FLAG_NO_RECORDED_VALUE",
            "g:1 s:1 h:1 q:1 e:1",
        ),
        ("datapoint", "count == 3 or sum == 1.0", "g:2 s:1 e:1"),
        (
            "datapoint",
            "time_unix_nano - start_time_unix_nano == 100",
            "g:2 h:1 q:1 e:1",
        ),
        (
            "datapoint",
            r#"attributes["a"]["b"] == "c""#,
            "g:1 s:1 h:1 q:1 e:1",
        ),
        (
            "datapoint",
            "Len(bucket_counts) == 2 and Len(explicit_bounds) == 1",
            "g:2 s:1 q:1 e:1",
        ),
        ("datapoint", "Len(exemplars) == 1", "g:2 s:1 q:1 e:1"),
        ("datapoint", "Len(quantile_values) == 1", "g:2 s:1 h:1 e:1"),
        (
            "datapoint",
            "scale == 2 and zero_count == 1 and positive.offset == 1",
            "g:2 s:1 h:1 q:1",
        ),
        (
            "datapoint",
            "Len(positive.bucket_counts) == 2 and negative != nil",
            "g:2 s:1 h:1 q:1",
        ),
        (
            "datapoint",
            r#"metric.unit == "ms" and metric.is_monotonic == nil"#,
            "s:1 h:1 q:1 e:1",
        ),
    ];
    for (context, condition, left) in cases {
        assert_eq!(rich_metrics_left(context, condition), left, "{condition}");
    }
}

// What the collector refuses at load, or what the host cannot give a plugin, is refused with
// its column; nothing is ignored.
#[test]
fn refused_paths_name_their_column() {
    let cases = [
        (
            "traces",
            "span",
            "name[\"x\"] == nil",
            "column 1: `name` takes no keys",
        ),
        (
            "traces",
            "span",
            "events[0] == nil",
            "column 1: `events` takes no keys",
        ),
        (
            "traces",
            "span",
            "trace_state[\"a\"][\"b\"] == nil",
            "must provide exactly 1 key",
        ),
        (
            "traces",
            "span",
            "x == 1 or status.text == \"\"",
            "column 1: unknown path `x` in the span context",
        ),
        (
            "traces",
            "span",
            "resource == nil",
            "column 1: `resource` alone is not a path",
        ),
        (
            "traces",
            "spanevent",
            "event_index == 0",
            "`event_index`: the collector's filter never sets it",
        ),
        (
            "traces",
            "span",
            "otelcol.client.addr == \"\"",
            "the otelcol context",
        ),
        (
            "logs",
            "log_record",
            "name == \"\"",
            "unknown path `name` in the log context",
        ),
        (
            "metrics",
            "metric",
            "value_int == 1",
            "unknown path `value_int` in the metric context",
        ),
    ];
    assert_refused(&cases);
}

// Trace states parse as OpenTelemetry Go parses them: tenant keys, blanks around members,
// and nil (None) for duplicates, upper-case keys or a value ending in a space.
#[test]
fn trace_state_members() {
    use crate::tracestate::get;
    assert_eq!(get("a=1, t@sys=2 ,", "t@sys"), Some("2"));
    assert_eq!(get("", "a"), Some(""));
    assert_eq!(get("a=1,b=2", "c"), Some(""));
    for invalid in ["a=1,a=2", "A=1", "a=", "a", "a=1 x=", "@s=1"] {
        assert_eq!(get(invalid, "a"), None, "{invalid}");
    }
}

// body.string writes bytes as standard base64 and numbers as pdata does.
#[test]
fn body_as_string() {
    use trailhead_ottl::Value;
    let text = |v: Value<'_>| crate::text::as_string(&v);
    assert_eq!(text(Value::Bytes(b"hi!?".to_vec().into())), "aGkhPw==");
    assert_eq!(text(Value::Bytes(b"abc".to_vec().into())), "YWJj");
    assert_eq!(text(Value::Double(2.5)), "2.5");
    assert_eq!(text(Value::Nil), "");
}

// `IsRootSpan()` holds for the spans with no parent span ID, as the collector's does; `not`
// and `== true` read it as a bool.
#[test]
fn is_root_span() {
    let left = |condition| rich_spans_left("span", "propagate", condition).unwrap();
    assert_eq!(left("IsRootSpan()"), [r#"slow[]"#]);
    assert_eq!(
        left("IsRootSpan() == true and name == \"other\""),
        [r#"fast["e1"]"#, r#"slow[]"#]
    );
    assert_eq!(
        left("not IsRootSpan()"),
        [r#"fast["e1"]"#, r#"other["e2", "e3"]"#]
    );
}

/// Metrics of every type whose data points carry (or lack) `route`, for the
/// `HasAttr…OnDatapoint` pair: in `g` the first point with `route` says "/a", the second
/// "/b"; in `s` the first point lacks it and the second holds an int.
const POINT_ATTR_METRICS: &str = r#"{"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"scope": {}, "metrics": [
  {"name": "g", "gauge": {"dataPoints": [
    {"asInt": "1", "attributes": [{"key": "route", "value": {"stringValue": "/a"}}]},
    {"asInt": "2", "attributes": [{"key": "route", "value": {"stringValue": "/b"}}]}]}},
  {"name": "s", "sum": {"aggregationTemporality": 2, "dataPoints": [
    {"asInt": "3"},
    {"asInt": "4", "attributes": [{"key": "route", "value": {"intValue": "5"}}]}]}},
  {"name": "h", "histogram": {"aggregationTemporality": 1, "dataPoints": [
    {"count": "1", "attributes": [{"key": "route", "value": {"stringValue": "/b"}}]}]}},
  {"name": "q", "summary": {"dataPoints": [
    {"count": "1", "attributes": [{"key": "route", "value": {"stringValue": "/a"}}]}]}},
  {"name": "e", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
    {"count": "1", "attributes": [{"key": "other", "value": {"stringValue": "x"}}]}]}}
]}]}]}"#;

/// The metrics left (as `name:points`) after a metric condition ran over POINT_ATTR_METRICS.
fn point_attr_metrics_left(condition: &str) -> String {
    let config = serde_json::json!({"metrics": {"metric": [condition]}});
    let mut metrics = Metrics::from_json(POINT_ATTR_METRICS).expect("fixture");
    metrics.run(&mut filter(&config.to_string())).unwrap();
    let request = metrics.request();
    let all = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics);
    let left: Vec<&str> = all.map(|m| m.name.as_str()).collect();
    left.join(" ")
}

// The collector's HasAttrKeyOnDatapoint / HasAttrOnDatapoint over every data point type: the
// first point that has the key decides alone (`g` holds "/b" on its second point, yet does
// not match "/b"), and a value that is not a string compares as "" (pdata's `Str()`).
#[test]
fn has_attr_on_datapoint() {
    let cases = [
        (r#"HasAttrKeyOnDatapoint("route")"#, "e"),
        (r#"not HasAttrKeyOnDatapoint("route")"#, "g s h q"),
        (r#"HasAttrOnDatapoint("route", "/a")"#, "s h e"),
        (r#"HasAttrOnDatapoint("route", "/b")"#, "g s q e"),
        (r#"HasAttrOnDatapoint("route", "")"#, "g h q e"),
        (r#"HasAttrOnDatapoint("route", "5")"#, "g s h q e"),
        (
            r#"HasAttrOnDatapoint(key = "other", expected_val = "x")"#,
            "g s h q",
        ),
        (
            r#"HasAttrKeyOnDatapoint("nope") == false and name == "q""#,
            "g s h e",
        ),
    ];
    for (condition, expected) in cases {
        assert_eq!(point_attr_metrics_left(condition), expected, "{condition}");
    }
}

// The filter-only converters are refused, with their column, where the collector's filter
// does not give them (IsRootSpan outside traces.span, the pair outside metrics.metric), and
// so are arguments that are not string literals and keys after a bool.
#[test]
fn filter_converters_refused_out_of_their_context() {
    let cases = [
        (
            "traces",
            "spanevent",
            "name == \"x\" or IsRootSpan()",
            "column 16: `IsRootSpan`: the collector's filter has it in traces.span only",
        ),
        (
            "logs",
            "log_record",
            "IsRootSpan()",
            "column 1: `IsRootSpan`",
        ),
        (
            "metrics",
            "metric",
            "IsRootSpan()",
            "column 1: `IsRootSpan`",
        ),
        (
            "traces",
            "span",
            "HasAttrKeyOnDatapoint(\"k\")",
            "column 1: `HasAttrKeyOnDatapoint`: the collector's filter has it in metrics.metric only",
        ),
        (
            "metrics",
            "datapoint",
            "HasAttrOnDatapoint(\"k\", \"v\")",
            "column 1: `HasAttrOnDatapoint`: the collector's filter has it in metrics.metric only",
        ),
        (
            "metrics",
            "metric",
            "HasAttrOnDatapoint(name, \"v\")",
            "column 20: HasAttrOnDatapoint's key must be a string literal",
        ),
        (
            "metrics",
            "metric",
            "HasAttrKeyOnDatapoint()",
            "HasAttrKeyOnDatapoint needs its `key` argument",
        ),
        (
            "traces",
            "span",
            "IsRootSpan(\"x\")",
            "IsRootSpan takes 0 argument(s)",
        ),
        (
            "traces",
            "span",
            "IsRootSpan()[\"x\"] == nil",
            "column 13: IsRootSpan returns a bool, which has no keys",
        ),
    ];
    assert_refused(&cases);
}

/// Each (signal, context, condition) is refused at load with an error containing its text.
fn assert_refused(cases: &[(&str, &str, &str, &str)]) {
    for (signal, context, condition, expected) in cases {
        let config = config_of(signal, context, condition);
        let error = testing::init::<Filter>(&config)
            .err()
            .unwrap_or_else(|| panic!("{condition} is accepted"));
        assert!(error.contains(expected), "{condition}: {error}");
    }
}
