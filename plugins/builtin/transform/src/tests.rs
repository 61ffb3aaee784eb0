//! The transform run natively over OTLP JSON through the SDK's harness, which keeps the host's
//! semantics (writes by index, `Err` discarding every change).

use super::Transform;
use trailhead_plugin::testing::{self, Logs, Metrics, Spans};

fn transform(config: &str) -> Transform {
    testing::init(config).unwrap_or_else(|e| panic!("{config}: {e}"))
}

fn refused(config: &str) -> String {
    match testing::init::<Transform>(config) {
        Ok(_) => panic!("{config} is accepted"),
        Err(e) => e,
    }
}

const SPANS: &str = r#"{"resourceSpans": [
  {"resource": {"attributes": [
     {"key": "service.name", "value": {"stringValue": "lessons"}},
     {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}}]},
   "scopeSpans": [{"scope": {"name": "http"}, "spans": [
     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0000000000000001", "name": "GET /users/42",
      "startTimeUnixNano": "1000", "endTimeUnixNano": "251000", "kind": 2,
      "attributes": [
        {"key": "http.url", "value": {"stringValue": "https://x/users/42?token=secret"}},
        {"key": "password", "value": {"stringValue": "hunter2"}},
        {"key": "long", "value": {"stringValue": "abcdefghij"}},
        {"key": "n", "value": {"intValue": "7"}}],
      "events": [{"name": "retry", "timeUnixNano": "2000", "attributes": [{"key": "attempt", "value": {"intValue": "2"}}]}]},
     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0000000000000002", "name": "SELECT",
      "startTimeUnixNano": "1000", "endTimeUnixNano": "2000", "kind": 3,
      "status": {"code": 2, "message": "timeout"},
      "attributes": [{"key": "db.statement", "value": {"stringValue": "SELECT * FROM t"}}]}]}]},
  {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "other"}}]},
   "scopeSpans": [{"scope": {"name": "grpc"}, "spans": [
     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0000000000000003", "name": "Call",
      "startTimeUnixNano": "5", "endTimeUnixNano": "10", "kind": 1}]}]}]}"#;

/// The spans after `config`, as OTLP JSON values.
fn spans_after(config: &str) -> serde_json::Value {
    let mut spans = Spans::from_json(SPANS).expect("fixture");
    spans
        .run(&mut transform(config))
        .expect("process_spans returns Ok");
    serde_json::from_str(&spans.to_json()).expect("json")
}

fn span(out: &serde_json::Value, r: usize, s: usize) -> &serde_json::Value {
    &out["resourceSpans"][r]["scopeSpans"][0]["spans"][s]
}

/// An attribute of a JSON entity, as its OTLP JSON value.
fn attr<'v>(entity: &'v serde_json::Value, key: &str) -> Option<&'v serde_json::Value> {
    entity["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

fn keys(entity: &serde_json::Value) -> Vec<String> {
    entity["attributes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| kv["key"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// The typical gateway block: where on a resource attribute, deletes, a pattern with `$1`,
// truncation, status, and math on times.
#[test]
fn typical_gateway_span_statements() {
    let out = spans_after(
        r#"{"error_mode": "ignore", "trace_statements": [{"context": "span", "statements": [
            "set(attributes[\"env\"], \"prod\") where resource.attributes[\"k8s.namespace.name\"] == \"shop\"",
            "delete_key(attributes, \"password\")",
            "replace_pattern(attributes[\"http.url\"], \"token=([a-z]+)\", \"token=<$1:redacted>\")",
            "replace_pattern(name, \"/users/[0-9]+\", \"/users/{id}\")",
            "truncate_all(attributes, 4)",
            "set(status.code, STATUS_CODE_ERROR) where end_time_unix_nano - start_time_unix_nano > 100000",
            "set(attributes[\"duration_ns\"], end_time_unix_nano - start_time_unix_nano)",
            "set(status.message, \"slow\") where attributes[\"duration_ns\"] > 100000"
        ]}]}"#,
    );
    let first = span(&out, 0, 0);
    assert_eq!(first["name"], "GET /users/{id}");
    assert_eq!(
        attr(first, "env"),
        Some(&serde_json::json!({"stringValue": "prod"}))
    );
    assert_eq!(attr(first, "password"), None);
    // Truncated after the replacement: strings only, the int is left alone.
    assert_eq!(
        attr(first, "http.url"),
        Some(&serde_json::json!({"stringValue": "http"}))
    );
    assert_eq!(
        attr(first, "long"),
        Some(&serde_json::json!({"stringValue": "abcd"}))
    );
    assert_eq!(
        attr(first, "n"),
        Some(&serde_json::json!({"intValue": "7"}))
    );
    assert_eq!(
        attr(first, "duration_ns"),
        Some(&serde_json::json!({"intValue": "250000"}))
    );
    assert_eq!(first["status"]["code"], 2);
    assert_eq!(first["status"]["message"], "slow");
    // The second span keeps its own status message; the third is in another resource.
    assert_eq!(span(&out, 0, 1)["status"]["message"], "timeout");
    assert_eq!(attr(span(&out, 1, 0), "env"), None);
}

// `$1` expands as Go's regexp does: `$1x` names a group `1x`, which is empty; `${1}x` works.
#[test]
fn replace_pattern_expands_groups_as_go() {
    let out = spans_after(
        r#"{"trace_statements": [{"context": "span", "statements": [
            "replace_pattern(name, \"^(GET) (.*)$\", \"$1x|${1}x|$2\")"]}]}"#,
    );
    assert_eq!(span(&out, 0, 0)["name"], "|GETx|/users/42");
    assert_eq!(span(&out, 0, 1)["name"], "SELECT");
}

// A flat list runs in the lowest context its paths name, with every path prefixed.
#[test]
fn flat_statements_infer_their_context() {
    let out = spans_after(
        r#"{"trace_statements": [
            "set(resource.attributes[\"deployment.environment\"], \"prod\")",
            "set(span.attributes[\"service\"], resource.attributes[\"service.name\"])",
            "keep_keys(span.attributes, [\"service\", \"n\"])"]}"#,
    );
    assert_eq!(keys(span(&out, 0, 0)), ["n", "service"]);
    assert_eq!(
        attr(span(&out, 1, 0), "service"),
        Some(&serde_json::json!({"stringValue": "other"}))
    );
    let resource = &out["resourceSpans"][1]["resource"];
    assert_eq!(
        attr(resource, "deployment.environment"),
        Some(&serde_json::json!({"stringValue": "prod"}))
    );
}

// Resource and scope contexts, and a block's conditions (any of them) gating its statements.
#[test]
fn resource_context_and_block_conditions() {
    let out = spans_after(
        r#"{"trace_statements": [
            {"context": "resource", "conditions": ["attributes[\"service.name\"] == \"other\""],
             "statements": ["set(attributes[\"team\"], \"b\")", "limit(attributes, 1, [\"team\"])"]},
            {"context": "span", "conditions": ["kind == SPAN_KIND_CLIENT", "name == \"Call\""],
             "statements": ["set(attributes[\"picked\"], true)", "set(kind, SPAN_KIND_SERVER)"]}]}"#,
    );
    assert_eq!(keys(&out["resourceSpans"][1]["resource"]), ["team"]);
    assert_eq!(keys(&out["resourceSpans"][0]["resource"]).len(), 2);
    assert_eq!(attr(span(&out, 0, 0), "picked"), None);
    assert_eq!(
        attr(span(&out, 0, 1), "picked"),
        Some(&serde_json::json!({"boolValue": true}))
    );
    assert_eq!(span(&out, 0, 1)["kind"], 2);
    assert_eq!(span(&out, 1, 0)["kind"], 2);
}

// Span events see their span's fields; maps nest; converters compose.
#[test]
fn span_events_nested_maps_and_converters() {
    let out = spans_after(
        r#"{"trace_statements": [
            {"context": "spanevent", "statements": [
              "set(attributes[\"span\"], Concat([span.name, name, String(attributes[\"attempt\"])], \"/\"))",
              "set(attributes[\"m\"][\"a\"][\"b\"], ToUpperCase(name))",
              "set(attributes[\"parts\"], Split(span.name, \" \"))",
              "set(attributes[\"second\"], Split(span.name, \" \")[1])",
              "set(attributes[\"hash\"], SHA256(\"a\"))"]},
            {"context": "span", "statements": [
              "set(attributes[\"len\"], Len(name)) where IsString(name)",
              "set(attributes[\"id\"], trace_id.string) where trace_id == TraceID(0x5b8efff798038103d269b633813fc60c)",
              "set(attributes[\"sub\"], Substring(name, 0, 3))",
              "set(attributes[\"i\"], Int(\"12\") * 2 + Double(\"0.5\"))",
              "set(attributes[\"snake\"], ConvertCase(\"HelloWorld\", \"snake\"))",
              "set(attributes[\"ns\"], Nanoseconds(Duration(\"1m30s\")))"]}]}"#,
    );
    let event = &span(&out, 0, 0)["events"][0];
    assert_eq!(
        attr(event, "span"),
        Some(&serde_json::json!({"stringValue": "GET /users/42/retry/2"}))
    );
    assert_eq!(
        attr(event, "m"),
        Some(
            &serde_json::json!({"kvlistValue": {"values": [{"key": "a", "value": {"kvlistValue": {"values": [{"key": "b", "value": {"stringValue": "RETRY"}}]}}}]}})
        )
    );
    assert_eq!(
        attr(event, "parts"),
        Some(
            &serde_json::json!({"arrayValue": {"values": [{"stringValue": "GET"}, {"stringValue": "/users/42"}]}})
        )
    );
    assert_eq!(
        attr(event, "second"),
        Some(&serde_json::json!({"stringValue": "/users/42"}))
    );
    assert_eq!(
        attr(event, "hash"),
        Some(
            &serde_json::json!({"stringValue": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"})
        )
    );
    let first = span(&out, 0, 0);
    assert_eq!(
        attr(first, "len"),
        Some(&serde_json::json!({"intValue": "13"}))
    );
    assert_eq!(
        attr(first, "id"),
        Some(&serde_json::json!({"stringValue": "5b8efff798038103d269b633813fc60c"}))
    );
    assert_eq!(
        attr(first, "sub"),
        Some(&serde_json::json!({"stringValue": "GET"}))
    );
    assert_eq!(
        attr(first, "i"),
        Some(&serde_json::json!({"doubleValue": 24.5}))
    );
    assert_eq!(
        attr(first, "snake"),
        Some(&serde_json::json!({"stringValue": "hello_world"}))
    );
    assert_eq!(
        attr(first, "ns"),
        Some(&serde_json::json!({"intValue": "90000000000"}))
    );
}

// Map editors: matching keys, merge, flatten, replace_all_*.
#[test]
fn map_editors() {
    let out = spans_after(
        r#"{"trace_statements": [{"context": "span", "statements": [
            "delete_matching_keys(attributes, \"^pass\")",
            "replace_all_patterns(attributes, \"value\", \"[0-9]+\", \"N\")",
            "replace_all_patterns(attributes, \"key\", \"^http\\\\.\", \"h.\")",
            "replace_all_matches(attributes, \"SELECT*\", \"<sql>\")",
            "replace_match(name, \"GET *\", \"get\")",
            "merge_maps(attributes, {\"n\": 1, \"new\": \"x\"}, \"insert\")",
            "set(attributes[\"nest\"], {\"a\": {\"b\": 1}, \"l\": [1, 2]})",
            "flatten(attributes)",
            "keep_matching_keys(attributes, \"^(h|n|d)\")"]}]}"#,
    );
    let first = span(&out, 0, 0);
    assert_eq!(first["name"], "get");
    assert_eq!(
        attr(first, "h.url"),
        Some(&serde_json::json!({"stringValue": "https://x/users/N?token=secret"}))
    );
    assert_eq!(
        attr(first, "n"),
        Some(&serde_json::json!({"intValue": "7"}))
    );
    assert_eq!(
        attr(first, "new"),
        Some(&serde_json::json!({"stringValue": "x"}))
    );
    assert_eq!(
        attr(first, "nest.a.b"),
        Some(&serde_json::json!({"intValue": "1"}))
    );
    assert_eq!(
        attr(first, "nest.l.1"),
        Some(&serde_json::json!({"intValue": "2"}))
    );
    assert_eq!(attr(first, "password"), None);
    assert_eq!(
        attr(span(&out, 0, 1), "db.statement"),
        Some(&serde_json::json!({"stringValue": "<sql>"}))
    );
}

const LOGS: &str = r#"{"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "auth"}}]},
  "scopeLogs": [{"scope": {"name": "auth"}, "logRecords": [
    {"timeUnixNano": "1", "severityNumber": 9, "severityText": "INFO", "body": {"stringValue": "user password=hunter2 logged in"}},
    {"timeUnixNano": "2", "severityNumber": 17, "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "boom"}}]}}},
    {"timeUnixNano": "3", "body": {"stringValue": "plain"}}]}]}]}"#;

fn logs_after(config: &str) -> Result<serde_json::Value, String> {
    let mut logs = Logs::from_json(LOGS).expect("fixture");
    logs.run(&mut transform(config)).map_err(|e| e.message)?;
    Ok(serde_json::from_str(&logs.to_json()).expect("json"))
}

fn record(out: &serde_json::Value, i: usize) -> &serde_json::Value {
    &out["resourceLogs"][0]["scopeLogs"][0]["logRecords"][i]
}

// Log records: body (also a map body's keys), severity and time.
#[test]
fn log_statements() {
    let out = logs_after(
        r#"{"log_statements": [{"context": "log", "statements": [
            "replace_pattern(body, \"password=[^ ]+\", \"password=***\")",
            "set(attributes[\"msg\"], body[\"msg\"])",
            "set(severity_text, \"ERROR\") where severity_number >= SEVERITY_NUMBER_ERROR",
            "set(severity_number, SEVERITY_NUMBER_WARN) where body == \"plain\"",
            "set(time_unix_nano, time_unix_nano + 1000)",
            "set(body, \"dropped\") where IsMatch(body, \"^plain$\")"]}]}"#,
    )
    .unwrap();
    assert_eq!(
        record(&out, 0)["body"]["stringValue"],
        "user password=*** logged in"
    );
    assert_eq!(record(&out, 0)["severityText"], "INFO");
    assert_eq!(
        attr(record(&out, 1), "msg"),
        Some(&serde_json::json!({"stringValue": "boom"}))
    );
    assert_eq!(record(&out, 1)["severityText"], "ERROR");
    assert_eq!(record(&out, 1)["severityNumber"], 17);
    assert_eq!(record(&out, 2)["severityNumber"], 13);
    assert_eq!(record(&out, 2)["body"]["stringValue"], "dropped");
    assert_eq!(record(&out, 2)["timeUnixNano"], "1003");
}

// error_mode: an evaluation error (Substring past the end) fails the batch under propagate
// (nothing changes), and skips that record's statement under ignore.
#[test]
fn error_modes() {
    let statements =
        r#"["set(attributes[\"a\"], \"x\")", "set(attributes[\"s\"], Substring(body, 0, 6))"]"#;
    let propagate = format!(
        r#"{{"error_mode": "propagate", "log_statements": [{{"context": "log", "statements": {statements}}}]}}"#
    );
    let error = logs_after(&propagate).unwrap_err();
    assert!(error.contains("Substring"), "{error}");
    let ignore = format!(
        r#"{{"error_mode": "ignore", "log_statements": [{{"context": "log", "statements": {statements}}}]}}"#
    );
    let out = logs_after(&ignore).unwrap();
    assert_eq!(
        attr(record(&out, 0), "s"),
        Some(&serde_json::json!({"stringValue": "user p"}))
    );
    assert_eq!(attr(record(&out, 1), "s"), None);
    assert_eq!(attr(record(&out, 2), "s"), None);
    assert_eq!(
        attr(record(&out, 2), "a"),
        Some(&serde_json::json!({"stringValue": "x"}))
    );
    // A block's own error_mode wins over the processor's.
    let block = format!(
        r#"{{"error_mode": "propagate", "log_statements": [{{"context": "log", "error_mode": "silent", "statements": {statements}}}]}}"#
    );
    assert!(logs_after(&block).is_ok());
}

// Metrics: their names, units and descriptions, and data point attributes read through
// their metric.
#[test]
fn metric_statements() {
    let json = r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "http.server.duration", "unit": "ms", "sum": {"aggregationTemporality": 2, "dataPoints": [
           {"asInt": "5", "attributes": [{"key": "route", "value": {"stringValue": "/a"}}]},
           {"asInt": "9"}]}}]}]}]}"#;
    let mut metrics = Metrics::from_json(json).unwrap();
    let config = r#"{"metric_statements": [
        {"context": "metric", "statements": ["set(name, Concat([name, \"ms\"], \"_\"))", "set(unit, \"s\")", "set(description, \"d\") where type == METRIC_DATA_TYPE_SUM"]},
        {"context": "datapoint", "statements": ["set(attributes[\"metric\"], metric.name)", "set(attributes[\"big\"], value_int) where value_int > 6"]}]}"#;
    metrics.run(&mut transform(config)).unwrap();
    let out: serde_json::Value = serde_json::from_str(&metrics.to_json()).unwrap();
    let metric = &out["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
    assert_eq!(metric["name"], "http.server.duration_ms");
    assert_eq!(metric["unit"], "s");
    assert_eq!(metric["description"], "d");
    let points = &metric["sum"]["dataPoints"];
    assert_eq!(
        attr(&points[0], "metric"),
        Some(&serde_json::json!({"stringValue": "http.server.duration_ms"}))
    );
    assert_eq!(
        attr(&points[1], "big"),
        Some(&serde_json::json!({"intValue": "9"}))
    );
    assert_eq!(attr(&points[0], "big"), None);
}

// Whatever is not supported is refused at load, naming the statement and the column.
#[test]
fn unsupported_config_is_refused_with_its_position() {
    let cases = [
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["set(attributes[\"a\"], Hex(name))"]}]}"#,
            "trace_statements[0].statements[0]: column 22: unsupported function `Hex`",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["sort(attributes)"]}]}"#,
            "trace_statements[0].statements[0]: column 1: unsupported editor `sort`",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["set(attributes[\"a\"], 1) where links == nil"]}]}"#,
            "trace_statements[0].statements[0]: column 31: unknown path `links` in the span context",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["set(trace_id, TraceID(0x00000000000000000000000000000001))"]}]}"#,
            "trace_statements[0].statements[0]: column 5: `trace_id` cannot be changed",
        ),
        (
            r#"{"trace_statements": ["set(attributes[\"a\"], 1)"]}"#,
            "trace_statements[0]: column 5: missing context name for path",
        ),
        (
            r#"{"trace_statements": ["set(span.name, \"a\")", {"context": "span", "statements": []}]}"#,
            "trace_statements: configuring multiple configuration styles is not supported",
        ),
        (
            r#"{"log_statements": [{"context": "span", "statements": []}]}"#,
            "log_statements[0].context: unknown context \"span\"",
        ),
        (
            r#"{"trace_statements": [{"context": "resource", "statements": ["set(span.name, \"a\")"]}]}"#,
            "column 5: `span.name`: the span context cannot be reached from the resource context",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["replace_pattern(name, \"(\", \"x\")"]}]}"#,
            "column 23: invalid regex",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["replace_pattern(name, \"a\", \"b\", SHA256)"]}]}"#,
            "column 33: passing the function `SHA256` as an argument is not supported",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["limit(attributes, 1, [\"a\", \"b\"])"]}]}"#,
            "column 19: invalid limit for limit function, 1 cannot be less than number of priority attributes 2",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["set(resource.attributes[\"first\"], name) where resource.attributes[\"first\"] == nil"]}]}"#,
            "writes a resource field from the span context",
        ),
        (
            r#"{"trace_statements": [{"context": "span", "statements": ["set(cache[\"a\"], 1)"]}]}"#,
            "the transform context's `cache` is not supported",
        ),
        (
            r#"{"error_mode": "loud"}"#,
            "error_mode: expected ignore, silent or propagate",
        ),
        (r#"{"traces": []}"#, "traces: unknown key"),
    ];
    for (config, expected) in cases {
        let error = refused(config);
        assert!(
            error.contains(expected),
            "{config}:\n  got  {error}\n  want {expected}"
        );
    }
}

// A constant written to the resource from span statements is the same in either order.
#[test]
fn constant_parent_writes_are_accepted() {
    transform(
        r#"{"trace_statements": ["set(resource.attributes[\"a\"], \"x\") where resource.attributes[\"a\"] == nil", "set(span.attributes[\"b\"], 1)"]}"#,
    );
}

// Only the signals with statements are asked for.
#[test]
fn asks_only_for_configured_signals() {
    use trailhead_plugin::{Plugin, Signal};
    let plugin = transform(r#"{"log_statements": ["set(log.body, \"x\")"]}"#);
    assert_eq!(plugin.signals(), [Signal::Logs]);
}

// The e2e flat list, natively. Under the default error_mode (ignore, as the collector's),
// math on a missing attribute fails for that span's statement alone.
#[test]
fn flat_converters_and_the_default_error_mode() {
    let config = serde_json::json!({"trace_statements": [
        "set(span.attributes[\"upper\"], ToUpperCase(span.name))",
        "set(span.attributes[\"lower\"], ConvertCase(span.name, \"lower\"))",
        "set(span.attributes[\"svc\"], Concat([resource.attributes[\"service.name\"], span.name, span.attributes[\"missing\"]], \":\"))",
        "set(span.attributes[\"nested\"][\"a\"][\"b\"], \"deep\")",
        "set(span.attributes[\"hash\"], SHA256(span.name))",
        "set(span.attributes[\"ns\"], Nanoseconds(Duration(\"1.5s\")))",
        "set(span.attributes[\"int\"], Int(\"42\") * 2 - 1)",
        "set(span.attributes[\"half\"], Double(span.attributes[\"n\"]) / 4)",
        "set(span.attributes[\"len\"], Len(span.name))",
        "set(span.attributes[\"sub\"], Substring(span.name, 0, 3)) where Len(span.name) >= 3",
        "set(span.attributes[\"parts\"], Split(span.name, \" \"))",
        "set(span.attributes[\"first\"], Split(span.name, \" \")[0])",
        "set(span.attributes[\"is_str\"], IsString(span.attributes[\"n\"]))",
        "set(span.attributes[\"n_str\"], String(span.attributes[\"n\"]))",
        "set(span.attributes[\"matched\"], true) where IsMatch(span.name, \"^GET\")",
        "replace_match(span.attributes[\"db\"], \"SELECT *\", \"query\")",
        "replace_all_matches(span.attributes, \"*secret*\", \"***\")",
        "delete_matching_keys(span.attributes, \"^tmp\\\\.\")",
        "merge_maps(span.attributes, {\"n\": 100, \"added\": \"yes\"}, \"insert\")",
        "set(span.attributes[\"flat\"], {\"a\": {\"b\": 1}, \"l\": [1, 2]})",
        "flatten(span.attributes[\"flat\"], \"f\")",
        "keep_matching_keys(span.attributes, \"^(?:[a-z]|f\\\\.)\")"
    ]});
    let mut spans = Spans::from_json(SPANS).expect("fixture");
    spans.run(&mut transform(&config.to_string())).unwrap();
    let out: serde_json::Value = serde_json::from_str(&spans.to_json()).unwrap();
    let first = span(&out, 0, 0);
    assert_eq!(
        attr(first, "svc"),
        Some(&serde_json::json!({"stringValue": "lessons:GET /users/42:<nil>"}))
    );
    assert_eq!(
        attr(first, "half"),
        Some(&serde_json::json!({"doubleValue": 1.75}))
    );
    assert_eq!(
        attr(first, "int"),
        Some(&serde_json::json!({"intValue": "83"}))
    );
    let second = span(&out, 0, 1);
    assert_eq!(attr(second, "half"), None);
    assert_eq!(
        attr(second, "upper"),
        Some(&serde_json::json!({"stringValue": "SELECT"}))
    );
}
