//! Redaction natively, through the SDK's harness: the collector's documented behaviour, and the
//! summaries it writes.

use super::*;
use trailhead_plugin::testing::otlp::common::v1::{KeyValue as Kv, any_value};
use trailhead_plugin::testing::{self, Logs, Metrics, Spans};

fn redaction(config: &str) -> Redaction {
    testing::init(config).unwrap_or_else(|e| panic!("{config}: {e}"))
}

fn attrs(kvs: &[Kv]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => format!("int:{i}"),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SPAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
    {"key":"host.name","value":{"stringValue":"web-1"}}]},
  "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET",
    "attributes":[
      {"key":"id","value":{"stringValue":"42"}},
      {"key":"card","value":{"stringValue":"visa 4111111111111111 ok"}},
      {"key":"password","value":{"stringValue":"hunter2"}},
      {"key":"secret_token","value":{"stringValue":"abc"}},
      {"key":"trace.note","value":{"stringValue":"4111111111111111"}},
      {"key":"safe","value":{"stringValue":"4000000000000002"}},
      {"key":"n","value":{"intValue":"7"}}],
    "events":[{"name":"e","attributes":[{"key":"password","value":{"stringValue":"x"}}]}]}]}]}]}"#;

// Allowed keys stay, others go (the last attribute takes a removed one's place, as in pdata),
// blocked values and keys are masked, ignored keys pass, allowed values pass, and `debug`
// writes sorted key lists and counts; events and resources are redacted too.
#[test]
fn redacts_spans_like_the_collector() {
    let config = r#"{"allowed_keys":["id","card","secret_token","safe","trace.note"],
        "ignored_keys":["trace.note"],"blocked_key_patterns":[".*token.*"],
        "blocked_values":["4[0-9]{12}(?:[0-9]{3})?"],"allowed_values":["^4000"],"summary":"debug"}"#;
    let mut spans = Spans::from_json(SPAN).unwrap();
    spans.run(&mut redaction(config)).unwrap();
    let request = spans.request();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        attrs(&span.attributes),
        pairs(&[
            ("id", "42"),
            ("card", "visa **** ok"),
            ("safe", "4000000000000002"),
            ("secret_token", "****"),
            ("trace.note", "4111111111111111"),
            ("redaction.redacted.keys", "n,password"),
            ("redaction.redacted.count", "int:2"),
            ("redaction.masked.keys", "card,secret_token"),
            ("redaction.masked.count", "int:2"),
            ("redaction.allowed.keys", "safe"),
            ("redaction.allowed.count", "int:1"),
            ("redaction.ignored.count", "int:1"),
        ])
    );
    let event = &span.events[0];
    assert_eq!(
        attrs(&event.attributes),
        pairs(&[
            ("redaction.redacted.keys", "password"),
            ("redaction.redacted.count", "int:1")
        ])
    );
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(
        attrs(&resource.attributes),
        pairs(&[
            ("redaction.redacted.keys", "host.name"),
            ("redaction.redacted.count", "int:1")
        ])
    );
}

// `info` writes counts only; `silent` nothing; hash functions replace matches with hex digests.
#[test]
fn summaries_and_hashes() {
    let mut spans = Spans::from_json(SPAN).unwrap();
    spans
        .run(&mut redaction(r#"{"allow_all_keys":true,"blocked_values":["hunter2"],"summary":"info","hash_function":"SHA1"}"#))
        .unwrap();
    let request = spans.request();
    let got = attrs(&request.resource_spans[0].scope_spans[0].spans[0].attributes);
    assert!(
        got.contains(&(
            "password".into(),
            "f3bbbd66a63d4bf1747940578ec3d0103530e21d".into()
        )),
        "{got:?}"
    );
    assert!(got.contains(&("redaction.masked.count".into(), "int:1".into())));
    assert!(!got.iter().any(|(k, _)| k == "redaction.masked.keys"));

    let mut spans = Spans::from_json(SPAN).unwrap();
    spans
        .run(&mut redaction(
            r#"{"allow_all_keys":true,"blocked_values":["hunter2"],"hash_function":"md5"}"#,
        ))
        .unwrap();
    let request = spans.request();
    let got = attrs(&request.resource_spans[0].scope_spans[0].spans[0].attributes);
    assert!(
        got.contains(&("password".into(), "2ab96390c7dbe3439de74d0c9b0b1767".into())),
        "{got:?}"
    );
    assert!(!got.iter().any(|(k, _)| k.starts_with("redaction.")));
}

// Log bodies: map keys are redacted and masked by path, the body summary goes to the record's
// attributes; a string body is masked as `body`.
#[test]
fn log_bodies() {
    let json = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
        {"body":{"kvlistValue":{"values":[
            {"key":"user","value":{"kvlistValue":{"values":[{"key":"password","value":{"stringValue":"p"}},{"key":"name","value":{"stringValue":"card 4111111111111111"}}]}}},
            {"key":"name","value":{"stringValue":"ok"}},
            {"key":"drop","value":{"stringValue":"x"}}]}}},
        {"body":{"stringValue":"card 4111111111111111"}}
    ]}]}]}"#;
    let config =
        r#"{"allowed_keys":["user","name"],"blocked_values":["4[0-9]{15}"],"summary":"debug"}"#;
    let mut logs = Logs::from_json(json).unwrap();
    logs.run(&mut redaction(config)).unwrap();
    let request = logs.request();
    let records = &request.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(
        attrs(&records[0].attributes),
        pairs(&[
            ("redaction.body.redacted.keys", "drop,user.password"),
            ("redaction.body.redacted.count", "int:2"),
            ("redaction.body.masked.keys", "user.name"),
            ("redaction.body.masked.count", "int:1"),
        ])
    );
    let body = format!("{:?}", records[0].body);
    assert!(
        body.contains("card ****") && !body.contains("\"p\"") && !body.contains("drop"),
        "{body}"
    );
    assert_eq!(
        attrs(&records[1].attributes),
        pairs(&[
            ("redaction.body.masked.keys", "body"),
            ("redaction.body.masked.count", "int:1")
        ])
    );
}

// Metric data points are redacted.
#[test]
fn metric_points() {
    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[
        {"asInt":"1","attributes":[{"key":"a","value":{"stringValue":"1"}},{"key":"b","value":{"stringValue":"2"}}]}]}}]}]}]}"#;
    let mut metrics = Metrics::from_json(json).unwrap();
    metrics
        .run(&mut redaction(r#"{"allowed_keys":["a"],"summary":"info"}"#))
        .unwrap();
    let request = metrics.request();
    let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(trailhead_plugin::testing::otlp::metrics::v1::metric::Data::Gauge(g)) = &metric.data
    else {
        panic!()
    };
    assert_eq!(
        attrs(&g.data_points[0].attributes),
        pairs(&[("a", "1"), ("redaction.redacted.count", "int:1")])
    );
}

// Go's regex meaning: `\d` is ASCII only; `\Q…\E` is literal.
#[test]
fn go_regex_dialect() {
    let re = goregex::compile(r"^\d+$").unwrap();
    assert!(re.is_match("123") && !re.is_match("١٢٣"));
    let re = goregex::compile(r"\Qa.b\E").unwrap();
    assert!(re.is_match("a.b") && !re.is_match("axb"));
    let re = goregex::compile(r"[\w-]+@x").unwrap();
    assert!(re.is_match("a-b@x"));
    let re = goregex::compile(r"[[]").unwrap();
    assert!(re.is_match("["));
    // `.*` masks each line, as Go's ReplaceAll does.
    let r = redaction(r#"{"allow_all_keys":true}"#);
    assert_eq!(r.rules.hash_of("x"), "****");
    let masked = r.rules.mask_all.replace_all("a\nb", "*").into_owned();
    assert_eq!(masked, "*\n*");
    assert_eq!(r.rules.mask_all.replace_all("", "*").into_owned(), "*");
}

// Options that are not built are refused by name; so are unknown keys and bad patterns.
#[test]
fn refusals() {
    let err = |c: &str| testing::init::<Redaction>(c).err().unwrap();
    assert!(err(r#"{"url_sanitizer":{"enabled":true}}"#).starts_with("url_sanitizer"));
    assert!(err(r#"{"db_sanitizer":{"sql":{"enabled":true}}}"#).starts_with("db_sanitizer.sql"));
    assert!(err(r#"{"summary":"verbose"}"#).starts_with("summary"));
    assert!(err(r#"{"hash_function":"sha256"}"#).starts_with("hash_function"));
    assert!(err(r#"{"hash_function":"hmac-sha256","hmac_key":"short"}"#).starts_with("hmac_key"));
    assert!(err(r#"{"blocked_values":["("]}"#).starts_with("blocked_values[0]"));
    assert!(err(r#"{"allowed_key":["a"]}"#).contains("unknown field"));
    testing::init::<Redaction>(
        r#"{"url_sanitizer":{"enabled":false},"db_sanitizer":{"sql":{"enabled":false}}}"#,
    )
    .unwrap();
}

// Many spans written back in batched edits: the ones that drop the same keys and mask to the
// same value share calls and keep their order; a value with a line break is masked per line;
// a span whose removal moves its last attribute into the gap (pdata's order) is written whole.
#[test]
fn batched_edits_keep_each_spans_order() {
    let span = |id: &str, kvs: &str| {
        format!(
            r#"{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{id}","name":"s","attributes":[{kvs}]}}"#
        )
    };
    let kv = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    let spans = [
        span(
            "0000000000000001",
            &[kv("a", "1"), kv("m", "x"), kv("z", "9")].join(","),
        ),
        span(
            "0000000000000002",
            &[kv("a", "2"), kv("m", "l1\\nl2"), kv("z", "9")].join(","),
        ),
        span(
            "0000000000000003",
            &[kv("z", "9"), kv("a", "3"), kv("b", "4")].join(","),
        ),
    ];
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let config = r#"{"allowed_keys":["a","b","m"],"blocked_key_patterns":["^m$"]}"#;
    let mut batch = Spans::from_json(&json).unwrap();
    batch.run(&mut redaction(config)).unwrap();
    let request = batch.request();
    let got: Vec<_> = request.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| attrs(&s.attributes))
        .collect();
    assert_eq!(
        got,
        [
            pairs(&[("a", "1"), ("m", "****")]),
            pairs(&[("a", "2"), ("m", "****\n****")]),
            pairs(&[("b", "4"), ("a", "3")]),
        ]
    );
}
