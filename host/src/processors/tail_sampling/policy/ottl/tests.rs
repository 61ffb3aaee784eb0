use crate::processors::tail_sampling::config::TailSamplingConfig;
use crate::processors::tail_sampling::policy::{Decision, Policy};
use crate::processors::tail_sampling::trace::TraceData;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::json;
use std::time::Instant;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// A span named `name` with `attributes`, a root when `parent` is 0.
fn span(name: &str, parent: u8, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![name.len() as u8; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 3_500_000_000,
        attributes,
        ..Default::default()
    }
}

fn event(name: &str, attributes: Vec<KeyValue>) -> Event {
    Event {
        name: name.into(),
        time_unix_nano: 2_000_000_000,
        attributes,
        ..Default::default()
    }
}

/// One resource (`service.name` = `service`) and scope (`http`) holding `spans`, read back
/// from its encoding as the processor holds it.
fn trace(service: &str, spans: Vec<Span>) -> TraceData {
    use prost::Message;
    let span_count = spans.len() as u64;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "http".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
        }],
    };
    TraceData::new([0xab; 16], request.encode_to_vec(), span_count)
}

fn build(settings: serde_json::Value) -> Result<Policy, String> {
    let entry = json!({"name": "o", "type": "ottl_condition", "ottl_condition": settings});
    let config = TailSamplingConfig::from_value(&json!({ "policies": [entry] }))?;
    Policy::build(&config.policies[0], "policies[0]")
}

fn decide(settings: serde_json::Value, trace: &TraceData) -> Decision {
    let mut policy = build(settings).expect("the policy builds");
    policy.evaluate(trace, Instant::now())
}

fn spans(conditions: &[&str]) -> serde_json::Value {
    json!({ "span": conditions })
}

fn checkout() -> TraceData {
    let mut failed = span("charge", 1, vec![int("http.status_code", 503)]);
    failed.status = Some(Status {
        code: 2,
        message: "upstream".into(),
    });
    failed.trace_state = "vendor=a1,other=b".into();
    failed.events = vec![event("exception", vec![text("exception.type", "Timeout")])];
    trace(
        "checkout",
        vec![
            span("GET /cart", 0, vec![text("http.route", "/cart")]),
            failed,
        ],
    )
}

// Span conditions read the span context's paths as the collector names them (with and
// without the `span.` prefix) and sample when any span meets any condition.
#[test]
fn span_conditions_sample_on_any_span() {
    let t = checkout();
    let sampled = [
        r#"attributes["http.status_code"] >= 500"#,
        r#"span.status.code == STATUS_CODE_ERROR and status.message == "upstream""#,
        r#"resource.attributes["service.name"] == "checkout""#,
        r#"instrumentation_scope.name == "http" and scope.version == "1.2""#,
        r#"resource.schema_url == "https://opentelemetry.io/schemas/1.30.0""#,
        r#"kind == SPAN_KIND_SERVER and kind.string == "Server""#,
        r#"IsRootSpan() and name == "GET /cart""#,
        r#"trace_id.string == "abababababababababababababababab""#,
        r#"trace_state["vendor"] == "a1""#,
        r#"end_time - start_time > Duration("2s")"#,
        r#"end_time_unix_nano - start_time_unix_nano == 2500000000"#,
        r#"Len(events) == 1"#,
        r#"IsMatch(name, "^GET ")"#,
        r#"attributes["http.route"] != nil and attributes["missing"] == nil"#,
    ];
    for condition in sampled {
        assert_eq!(
            decide(spans(&[condition]), &t),
            Decision::Sampled,
            "{condition}"
        );
    }
    let not_sampled = [
        r#"attributes["http.status_code"] >= 600"#,
        r#"name == "charge" and kind != SPAN_KIND_SERVER"#,
        r#"resource.attributes["service.name"] == "cart""#,
        r#"trace_state["absent"] != """#,
        r#"end_time - start_time > Duration("3s")"#,
    ];
    for condition in not_sampled {
        assert_eq!(
            decide(spans(&[condition]), &t),
            Decision::NotSampled,
            "{condition}"
        );
    }
    let any = spans(&[r#"name == "nope""#, r#"name == "charge""#]);
    assert_eq!(decide(any, &t), Decision::Sampled);
}

// Span event conditions run over every span's events, with the holding span's fields under
// `span.`; a trace without events is not sampled by them.
#[test]
fn spanevent_conditions_read_events_and_their_span() {
    let t = checkout();
    let hit = |c: &str| decide(json!({ "spanevent": [c] }), &t);
    assert_eq!(hit(r#"name == "exception""#), Decision::Sampled);
    assert_eq!(
        hit(r#"attributes["exception.type"] == "Timeout" and span.name == "charge""#),
        Decision::Sampled
    );
    assert_eq!(
        hit(r#"spanevent.time_unix_nano == 2000000000"#),
        Decision::Sampled
    );
    assert_eq!(hit(r#"span.name == "GET /cart""#), Decision::NotSampled);
    let quiet = trace("cart", vec![span("GET /cart", 0, vec![])]);
    let no_events = decide(json!({ "spanevent": ["true"] }), &quiet);
    assert_eq!(no_events, Decision::NotSampled);
    let both = json!({"span": ["false"], "spanevent": [r#"name == "exception""#]});
    assert_eq!(decide(both, &t), Decision::Sampled);
}

// error_mode as the collector's: with `propagate` the first failing condition, in span
// order, fails the policy (sampling nothing) even if a later span matches; `ignore` and
// `silent` (and unset) count it as false and go on.
#[test]
fn error_mode_decides_what_a_failed_condition_does() {
    let t = trace(
        "cart",
        vec![
            span("first", 0, vec![int("d", 0)]),
            span("second", 1, vec![int("d", 1)]),
        ],
    );
    let conditions = [r#"10 / attributes["d"] > 1"#];
    let with = |mode: &str| decide(json!({"error_mode": mode, "span": conditions}), &t);
    assert_eq!(with("propagate"), Decision::NotSampled);
    assert_eq!(with("ignore"), Decision::Sampled);
    assert_eq!(with("SILENT"), Decision::Sampled);
    assert_eq!(decide(spans(&conditions), &t), Decision::Sampled);
    // A match on an earlier span comes before the later span's error.
    let early = trace(
        "cart",
        vec![
            span("a", 0, vec![int("d", 1)]),
            span("b", 1, vec![int("d", 0)]),
        ],
    );
    let propagate = json!({"error_mode": "propagate", "span": conditions});
    assert_eq!(decide(propagate, &early), Decision::Sampled);
}

// An error passes through `not` (not inverted), `and` and `composite` (which stops at it),
// as the collector's combinators pass errors up.
#[test]
fn an_evaluation_error_passes_up_through_sub_policies() {
    let t = trace("cart", vec![span("a", 0, vec![int("d", 0)])]);
    let failing = json!({"name": "f", "type": "ottl_condition", "ottl_condition": {"error_mode": "propagate", "span": [r#"1 / attributes["d"] > 0"#]}});
    let always = json!({"name": "a", "type": "always_sample"});
    let run = |entry: serde_json::Value| {
        let config = TailSamplingConfig::from_value(&json!({ "policies": [entry] })).unwrap();
        let mut policy = Policy::build(&config.policies[0], "policies[0]").unwrap();
        policy.evaluate(&t, Instant::now())
    };
    let not = json!({"name": "n", "type": "not", "not": {"not_sub_policy": failing}});
    assert_eq!(run(not), Decision::NotSampled);
    let composite = json!({"name": "c", "type": "composite", "composite": {"max_total_spans_per_second": 100, "composite_sub_policy": [failing, always]}});
    assert_eq!(run(composite), Decision::NotSampled);
    let matching = json!({"name": "m", "type": "ottl_condition", "ottl_condition": {"span": [r#"name == "a""#]}});
    let and = json!({"name": "x", "type": "and", "and": {"and_sub_policy": [matching, always]}});
    assert_eq!(run(and), Decision::Sampled);
    let drop = json!({"name": "d", "type": "drop", "drop": {"drop_sub_policy": [matching]}});
    assert_eq!(run(drop), Decision::Dropped);
}

// Bad settings are refused at config time with the key path, and for a condition the
// column of what is wrong.
#[test]
fn bad_conditions_are_refused_with_key_and_column() {
    let err = |settings: serde_json::Value| build(settings).unwrap_err();
    assert_eq!(
        err(json!({})),
        "policies[0].ottl_condition: expected at least one OTTL condition to filter on (set `span` or `spanevent`)"
    );
    assert!(
        err(json!({"error_mode": "loud", "span": ["true"]}))
            .starts_with("policies[0].ottl_condition.error_mode: unknown error mode loud")
    );
    let unknown = err(spans(&["true", r#"name == "a" and duration > 3"#]));
    assert!(
        unknown.starts_with(
            "policies[0].ottl_condition.span[1]: column 17: unknown path `duration` in the span context; supported: name,"
        ),
        "{unknown}"
    );
    let syntax = err(json!({"spanevent": [r#"name == "#]}));
    assert!(
        syntax.starts_with("policies[0].ottl_condition.spanevent[0]: column "),
        "{syntax}"
    );
    let root = err(json!({"spanevent": ["IsRootSpan()"]}));
    assert!(
        root.contains("`IsRootSpan`: the collector has it in `span` conditions only"),
        "{root}"
    );
    let keyed = err(spans(&[r#"name["x"] == "a""#]));
    assert!(
        keyed.ends_with("`name` takes no keys (the collector refuses `name[\"x\"]` too)"),
        "{keyed}"
    );
    let index = err(json!({"spanevent": ["event_index == 0"]}));
    assert!(index.contains("column 1: `event_index`"), "{index}");
    let unknown_key = TailSamplingConfig::from_value(
        &json!({"policies": [{"name": "o", "type": "ottl_condition", "ottl_condition": {"spans": []}}]}),
    );
    assert!(
        unknown_key
            .unwrap_err()
            .starts_with("policies[0].ottl_condition.spans: unknown field `spans`")
    );
}

// The policy moves between threads with the processor's state; each thread parses the
// checked conditions itself, and decides the same.
#[test]
fn a_policy_decides_the_same_on_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let mut policy = build(spans(&[r#"attributes["http.status_code"] == 503"#])).unwrap();
    assert_send(&policy);
    let t = checkout();
    assert_eq!(policy.evaluate(&t, Instant::now()), Decision::Sampled);
    let decided = std::thread::spawn(move || {
        let t = checkout();
        policy.evaluate(&t, Instant::now())
    });
    assert_eq!(decided.join().unwrap(), Decision::Sampled);
}

// A thread keeps one parse per policy it evaluated, and dropping the policy (a reload
// replacing it) forgets that thread's parse, so the per-thread cache does not grow.
#[test]
fn a_dropped_policy_leaves_no_parse_behind() {
    let cached = crate::processors::ottl::parsed_count;
    let before = cached();
    let mut policy = build(spans(&[r#"name == "charge""#])).unwrap();
    let t = checkout();
    assert_eq!(policy.evaluate(&t, Instant::now()), Decision::Sampled);
    assert_eq!(policy.evaluate(&t, Instant::now()), Decision::Sampled);
    assert_eq!(cached(), before + 1);
    drop(policy);
    assert_eq!(cached(), before);
}
