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

// IsMatch on a map body fails for that record: propagate fails the batch (leaving it as it
// was), ignore and silent treat it as no match and go on with the others.
#[test]
fn error_modes() {
    let condition = r#"["IsMatch(body, \"^cache\")"]"#;
    let error = logs_left(&format!(r#"{{"logs":{{"log_record":{condition}}}}}"#)).unwrap_err();
    assert_eq!(
        error,
        "condition `IsMatch(body, \"^cache\")` failed on 1 log record(s), first log record 2: IsMatch: the target is a map, not a string"
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
    use testing::otlp::metrics::v1::metric::Data;
    let mut metrics = Metrics::from_json(METRICS).unwrap();
    metrics.run(&mut filter(config)).unwrap();
    let request = metrics.request();
    let all = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics);
    let points = |m: &testing::otlp::metrics::v1::Metric| match &m.data {
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Gauge(g)) => g.data_points.len(),
        _ => 0,
    };
    all.map(|m| (m.name.clone(), points(m))).collect()
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
        (
            r#"{"logs":{"log_record":["attributes == nil"]}}"#,
            "logs.log_record[0]: column 1: `attributes` needs a key, as in attributes[\"key\"]",
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
    assert!(error.starts_with("metrics.metric[0]: column 1: unknown path `status.code` in the metric context; supported: name, type"), "{error}");
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
