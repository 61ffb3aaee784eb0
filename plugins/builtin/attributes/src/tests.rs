//! The attributes processor natively, through the SDK's harness: include/exclude per signal
//! as the collector evaluates them, and the actions on spans, records and data points.

use super::Attributes;
use trailhead_plugin::testing::{self, Logs, Metrics, Spans};
use trailhead_plugin::{Batch, Level, Plugin, Signal};

fn plugin(config: &str) -> Attributes {
    testing::init(config).unwrap_or_else(|e| panic!("{config}: {e}"))
}

fn marked(batch: &impl Batch, level: Level) -> Vec<bool> {
    let column = batch.attr_column(level, "marked");
    column.iter().map(|v| v.is_some()).collect()
}

fn kv(key: &str, value: &str) -> String {
    format!(r#"{{"key": "{key}", "value": {{"stringValue": "{value}"}}}}"#)
}

fn spans() -> Spans {
    Spans::from_json(&format!(
        r#"{{"resourceSpans": [
        {{"resource": {{"attributes": [{svc}, {env}]}}, "scopeSpans": [
            {{"scope": {{"name": "http", "version": "1.2"}}, "spans": [
                {{"name": "GET /cart", "kind": 2, "attributes": [{route}]}},
                {{"name": "SELECT", "kind": 3, "attributes": [{db}]}}]}},
            {{"scope": {{"name": "grpc"}}, "spans": [{{"name": "Check", "kind": 1}}]}}]}},
        {{"resource": {{"attributes": []}}, "scopeSpans": [{{"spans": [{{"name": "GET /x", "kind": 2}}]}}]}}]}}"#,
        svc = kv("service.name", "cart"),
        env = kv("env", "prod"),
        route = kv("http.route", "/cart"),
        db = kv("db.system", "postgres"),
    ))
    .unwrap()
}

fn marked_spans(matching: &str) -> Vec<bool> {
    let config = format!(
        r#"{{{matching}, "actions": [{{"key": "marked", "value": true, "action": "insert"}}]}}"#
    );
    let mut p = plugin(&config);
    let mut batch = spans();
    batch.run(&mut p).unwrap();
    marked(&batch, Level::Item)
}

// Each span property selects what the collector's filterspan selects; include, then exclude.
#[test]
fn span_properties() {
    let cases = [
        (
            r#""include": {"match_type": "strict", "services": ["cart"]}"#,
            [true, true, true, false],
        ),
        (
            r#""include": {"match_type": "regexp", "services": ["^<nil"]}"#,
            [false, false, false, true],
        ),
        (
            r#""include": {"match_type": "regexp", "span_names": ["^GET"]}"#,
            [true, false, false, true],
        ),
        (
            r#""include": {"match_type": "strict", "span_kinds": ["SPAN_KIND_CLIENT", "SPAN_KIND_INTERNAL"]}"#,
            [false, true, true, false],
        ),
        (
            r#""include": {"match_type": "strict", "libraries": [{"name": "http", "version": "1.2"}]}"#,
            [true, true, false, false],
        ),
        (
            r#""include": {"match_type": "strict", "libraries": [{"name": "grpc", "version": ""}]}"#,
            [false, false, true, false],
        ),
        (
            r#""include": {"match_type": "strict", "attributes": [{"key": "db.system"}]}"#,
            [false, true, false, false],
        ),
        (
            r#""include": {"match_type": "regexp", "attributes": [{"key": "http.route", "value": "^/c"}]}"#,
            [true, false, false, false],
        ),
        (
            r#""include": {"match_type": "strict", "resources": [{"key": "env", "value": "prod"}]}"#,
            [true, true, true, false],
        ),
        (
            r#""exclude": {"match_type": "strict", "span_names": ["SELECT"]}"#,
            [true, false, true, true],
        ),
        (
            r#""include": {"match_type": "strict", "services": ["cart"]}, "exclude": {"match_type": "regexp", "span_names": ["^(SELECT|Check)$"]}"#,
            [true, false, false, false],
        ),
        // Key existence alone needs no match_type.
        (
            r#""include": {"attributes": [{"key": "http.route"}]}"#,
            [true, false, false, false],
        ),
    ];
    for (matching, want) in cases {
        assert_eq!(marked_spans(matching), want, "{matching}");
    }
}

// Log records: body (as a string), severity text and number, attributes.
#[test]
fn log_properties() {
    let json = r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "user password=1"}, "severityText": "INFO", "severityNumber": 9},
        {"body": {"intValue": "42"}, "severityText": "debug", "severityNumber": 5},
        {"body": {"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "x"}}]}}},
        {"severityNumber": 17}
    ]}]}]}"#;
    let cases = [
        (
            r#""include": {"match_type": "regexp", "log_bodies": ["password"]}"#,
            [true, false, false, false],
        ),
        (
            r#""include": {"match_type": "strict", "log_bodies": ["42"]}"#,
            [false, true, false, false],
        ),
        (
            r#""include": {"match_type": "strict", "log_bodies": ["{\"a\":\"x\"}"]}"#,
            [false, false, true, false],
        ),
        (
            r#""include": {"match_type": "regexp", "log_severity_texts": ["^de"]}"#,
            [false, true, false, false],
        ),
        (
            r#""include": {"log_severity_number": {"min": 9}}"#,
            [true, false, false, true],
        ),
        (
            r#""include": {"log_severity_number": {"min": 13, "match_undefined": true}}"#,
            [false, false, true, true],
        ),
    ];
    for (matching, want) in cases {
        let mut p = plugin(&format!(
            r#"{{{matching}, "actions": [{{"key": "marked", "value": 1, "action": "upsert"}}]}}"#
        ));
        let mut logs = Logs::from_json(json).unwrap();
        logs.run(&mut p).unwrap();
        assert_eq!(marked(&logs, Level::Item), want, "{matching}");
    }
}

// Metrics: the actions go to data points, of the metrics whose names match; `resources` is
// accepted but, as in the collector, selects nothing.
#[test]
fn metric_points() {
    let json = r#"{"resourceMetrics": [{"resource": {"attributes": [{"key": "env", "value": {"stringValue": "dev"}}]}, "scopeMetrics": [{"metrics": [
        {"name": "http.requests", "sum": {"dataPoints": [{"asInt": "1"}, {"asInt": "2"}]}},
        {"name": "cpu", "gauge": {"dataPoints": [{"asDouble": 0.5}]}},
        {"name": "latency", "histogram": {"dataPoints": [{"count": "1"}]}}
    ]}]}]}"#;
    let cases = [
        ("", [true, true, true, true]),
        (
            r#""include": {"match_type": "regexp", "metric_names": ["^http\\."]}, "#,
            [true, true, false, false],
        ),
        (
            r#""exclude": {"match_type": "strict", "metric_names": ["cpu"]}, "#,
            [true, true, false, true],
        ),
        (
            r#""include": {"match_type": "strict", "resources": [{"key": "env", "value": "prod"}]}, "#,
            [true, true, true, true],
        ),
    ];
    for (matching, want) in cases {
        let mut p = plugin(&format!(
            r#"{{{matching}"actions": [{{"key": "marked", "value": "y", "action": "insert"}}]}}"#
        ));
        let mut metrics = Metrics::from_json(json).unwrap();
        metrics.run(&mut p).unwrap();
        assert_eq!(marked(&metrics, Level::Point), want, "{matching}");
        assert!(marked(&metrics, Level::Resource).iter().all(|m| !m));
    }
}

// A config valid for some signals serves those only; one valid for none is refused with the
// reason and where; unknown keys anywhere are refused.
#[test]
fn per_signal_validity_and_refusals() {
    let spans_only = plugin(
        r#"{"include": {"match_type": "strict", "services": ["a"]}, "actions": [{"key": "k", "action": "delete"}]}"#,
    );
    assert_eq!(spans_only.signals(), [Signal::Traces]);
    let logs_only = plugin(
        r#"{"include": {"match_type": "strict", "log_severity_texts": ["a"]}, "actions": [{"key": "k", "action": "delete"}]}"#,
    );
    assert_eq!(logs_only.signals(), [Signal::Logs]);
    let all = plugin(r#"{"actions": [{"key": "k", "action": "delete"}]}"#);
    assert_eq!(
        all.signals(),
        [Signal::Traces, Signal::Metrics, Signal::Logs]
    );

    let cases = [
        (r#"{}"#, "actions: missing required field"),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "include": {"match_type": "strict"}}"#,
            "include: give at least one of",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "include": {"services": ["a"]}}"#,
            "include.match_type: `` is not a match type",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "include": {"match_type": "regexp", "span_names": ["("]}}"#,
            "include.span_names[0]:",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "exclude": {"match_type": "strict", "span_kinds": ["server"]}}"#,
            "exclude.span_kinds: `server` is not a span kind",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "include": {"match_type": "regexp", "attributes": [{"key": "a", "value": 1}]}}"#,
            "include.attributes[0].value: match_type regexp takes a string",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "include": {"match_type": "strict", "expressions": ["x"]}}"#,
            "include.expressions: unknown field `expressions`",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "include": {"match_type": "strict", "attributes": [{"key": "a", "regexp": "x"}]}}"#,
            "include.attributes[0].regexp: unknown field `regexp`",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "delete"}], "match_type": "strict"}"#,
            "match_type: unknown field `match_type`",
        ),
        (
            r#"{"actions": [{"key": "k", "action": "explode"}]}"#,
            "actions[0].action: unknown action `explode`",
        ),
    ];
    for (config, want) in cases {
        let error = testing::init::<Attributes>(config).err().unwrap();
        assert!(error.contains(want), "{config}: {error}");
    }
}
