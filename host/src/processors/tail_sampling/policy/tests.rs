use super::*;
use crate::processors::tail_sampling::config::TailSamplingConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span(start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: vec![1; 16],
        start_time_unix_nano: start_ms * 1_000_000,
        end_time_unix_nano: end_ms * 1_000_000,
        ..Default::default()
    }
}

/// A trace of one resource (with `resource` attributes) holding `spans`, read back from its
/// encoding as the processor holds it.
fn trace(resource: Vec<KeyValue>, spans: Vec<Span>) -> TraceData {
    use prost::Message;
    let span_count = spans.len() as u64;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    let id = core::array::from_fn(|i| i as u8 + 1);
    TraceData::new(id, request.encode_to_vec(), span_count)
}

/// The first policy of a `policies:` list written in YAML-like JSON.
fn policy(json: serde_json::Value) -> Result<Policy, String> {
    let config = TailSamplingConfig::from_value(&serde_json::json!({ "policies": [json] }))?;
    Policy::build(&config.policies[0], "policies[0]")
}

fn decide(p: &mut Policy, t: &TraceData) -> Decision {
    p.evaluate(t, Instant::now())
}

// The probabilistic threshold and hash are the collector's to the bit: values from running
// its calculateThreshold (big.Float) and hash/fnv in Go.
#[test]
fn probabilistic_matches_the_collectors_arithmetic() {
    let golden: [(f64, u64); 11] = [
        (0.0, 0),
        (0.01, 1844674407370955),
        (1.0, 184467440737095519),
        (10.0, 1844674407370955263),
        (25.0, 4611686018427387903),
        (33.3, 6142765776545279999),
        (50.0, 9223372036854775807),
        (99.99, 18444899399302178815),
        (100.0, 18446744073709551615),
        (150.0, 18446744073709551615),
        (1e-10, 18446744),
    ];
    for (percent, want) in golden {
        assert_eq!(threshold(percent / 100.0), want, "{percent}%");
    }
    let id: Vec<u8> = (1..=16).collect();
    assert_eq!(fnv1a(b"default-hash-seed", &id), 15838989281584434349);
    assert_eq!(fnv1a(b"s1", &id), 9400403866294306137);
    assert_eq!(threshold(-5.0), 0);
}

// Latency grows the span range span by span and samples at the first span inside the band,
// so with an upper bound a later, longer span does not undo it (the collector's behaviour).
#[test]
fn latency_follows_the_running_range() {
    let mut over = policy(
        serde_json::json!({"name": "l", "type": "latency", "latency": {"threshold_ms": 100}}),
    )
    .unwrap();
    assert_eq!(
        decide(&mut over, &trace(vec![], vec![span(0, 50), span(10, 120)])),
        Decision::Sampled
    );
    assert_eq!(
        decide(&mut over, &trace(vec![], vec![span(0, 100)])),
        Decision::NotSampled
    );
    let mut band = policy(serde_json::json!({"name": "l", "type": "latency", "latency": {"threshold_ms": 100, "upper_threshold_ms": 200}})).unwrap();
    let passes_through = trace(vec![], vec![span(1, 151), span(1, 500)]);
    assert_eq!(decide(&mut band, &passes_through), Decision::Sampled);
    assert_eq!(
        decide(&mut band, &trace(vec![], vec![span(1, 500)])),
        Decision::NotSampled
    );
}

// String attributes: a resource value matches even when it is not a string (read as ""),
// a span's only when non-empty; invert samples only when nothing matches anywhere.
#[test]
fn string_attribute_reads_values_as_pdata_does() {
    let s = |v: &str| any_value::Value::StringValue(v.into());
    let mut exact = policy(serde_json::json!({"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["a", "b"]}})).unwrap();
    let tagged = |v| {
        trace(
            vec![],
            vec![Span {
                attributes: vec![kv("k", s(v))],
                ..span(0, 1)
            }],
        )
    };
    assert_eq!(decide(&mut exact, &tagged("b")), Decision::Sampled);
    assert_eq!(decide(&mut exact, &tagged("c")), Decision::NotSampled);
    let on_resource = trace(vec![kv("k", s("a"))], vec![span(0, 1)]);
    assert_eq!(decide(&mut exact, &on_resource), Decision::Sampled);
    let mut inverted = policy(serde_json::json!({"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["a"], "invert_match": true}})).unwrap();
    assert_eq!(decide(&mut inverted, &tagged("a")), Decision::NotSampled);
    assert_eq!(decide(&mut inverted, &tagged("z")), Decision::Sampled);
    let mut regex = policy(serde_json::json!({"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["^$", "x.z"], "enabled_regex_matching": true}})).unwrap();
    let int_on_resource = trace(
        vec![kv("k", any_value::Value::IntValue(3))],
        vec![span(0, 1)],
    );
    assert_eq!(decide(&mut regex, &int_on_resource), Decision::Sampled);
    assert_eq!(decide(&mut regex, &tagged("axyz")), Decision::Sampled);
    let bad = policy(
        serde_json::json!({"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["("], "enabled_regex_matching": true}}),
    );
    assert!(
        bad.unwrap_err()
            .starts_with("policies[0].string_attribute.values[0]: invalid regex")
    );
}

// Numeric bounds of 0 are open; a value of another type reads as 0; neither bound is refused.
#[test]
fn numeric_and_boolean_attributes() {
    let mut at_most = policy(serde_json::json!({"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "n", "max_value": 10}})).unwrap();
    let with = |v| {
        trace(
            vec![],
            vec![Span {
                attributes: vec![kv("n", v)],
                ..span(0, 1)
            }],
        )
    };
    assert_eq!(
        decide(&mut at_most, &with(any_value::Value::IntValue(-40))),
        Decision::Sampled
    );
    assert_eq!(
        decide(&mut at_most, &with(any_value::Value::IntValue(11))),
        Decision::NotSampled
    );
    assert_eq!(
        decide(
            &mut at_most,
            &with(any_value::Value::StringValue("99".into()))
        ),
        Decision::Sampled
    );
    let neither = policy(
        serde_json::json!({"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "n"}}),
    );
    assert!(
        neither
            .unwrap_err()
            .starts_with("policies[0].numeric_attribute: set min_value or max_value")
    );
    let mut flag = policy(serde_json::json!({"name": "b", "type": "boolean_attribute", "boolean_attribute": {"key": "n", "value": false}})).unwrap();
    assert_eq!(
        decide(&mut flag, &with(any_value::Value::StringValue("x".into()))),
        Decision::Sampled
    );
    assert_eq!(
        decide(&mut flag, &with(any_value::Value::BoolValue(true))),
        Decision::NotSampled
    );
}

// Status codes by name; tracestate parsed as Go's ParseTraceState (an invalid one matches
// nothing); span counts with an open upper bound; trace flags.
#[test]
fn status_trace_state_span_count_and_flags() {
    let mut errors = policy(serde_json::json!({"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}})).unwrap();
    let failed = Span {
        status: Some(Status {
            code: 2,
            ..Default::default()
        }),
        ..span(0, 1)
    };
    assert_eq!(
        decide(&mut errors, &trace(vec![], vec![span(0, 1), failed])),
        Decision::Sampled
    );
    assert_eq!(
        decide(&mut errors, &trace(vec![], vec![span(0, 1)])),
        Decision::NotSampled
    );
    let unknown = policy(
        serde_json::json!({"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR", "BAD"]}}),
    );
    assert!(
        unknown
            .unwrap_err()
            .starts_with("policies[0].status_code.status_codes[1]: unknown status code `BAD`")
    );
    let mut state = policy(serde_json::json!({"name": "t", "type": "trace_state", "trace_state": {"key": "ot", "values": ["x"]}})).unwrap();
    let with_state = |ts: &str| {
        trace(
            vec![],
            vec![Span {
                trace_state: ts.into(),
                ..span(0, 1)
            }],
        )
    };
    assert_eq!(
        decide(&mut state, &with_state("a=1, ot=x")),
        Decision::Sampled
    );
    assert_eq!(
        decide(&mut state, &with_state("ot=x,ot=y")),
        Decision::NotSampled
    );
    assert_eq!(
        decide(&mut state, &with_state("Bad=1,ot=x")),
        Decision::NotSampled
    );
    let mut count = policy(
        serde_json::json!({"name": "c", "type": "span_count", "span_count": {"min_spans": 2}}),
    )
    .unwrap();
    assert_eq!(
        decide(&mut count, &trace(vec![], vec![span(0, 1); 3])),
        Decision::Sampled
    );
    assert_eq!(
        decide(&mut count, &trace(vec![], vec![span(0, 1)])),
        Decision::NotSampled
    );
    let mut flags = policy(serde_json::json!({"name": "f", "type": "trace_flags"})).unwrap();
    assert_eq!(
        decide(
            &mut flags,
            &trace(
                vec![],
                vec![Span {
                    flags: 0x101,
                    ..span(0, 1)
                }]
            )
        ),
        Decision::Sampled
    );
}

// The token bucket starts full, refuses a trace larger than the burst, and refills at the
// rate (golang.org/x/time/rate's AllowN).
#[test]
fn rate_limiting_is_a_token_bucket_of_spans() {
    let mut bucket = Bucket::new(10, 20);
    let start = Instant::now();
    assert!(bucket.allow(15, start));
    assert!(!bucket.allow(6, start));
    assert!(bucket.allow(5, start));
    assert!(!bucket.allow(21, start + std::time::Duration::from_secs(60)));
    assert!(bucket.allow(10, start + std::time::Duration::from_secs(1)));
}

// and/not/drop combine as the collector's: and samples when no sub-policy says not
// sampled; drop says dropped when all sub-policies sample; not flips. A composite gives each
// sub-policy its share of spans a second and stops at the first that samples.
#[test]
fn combining_policies() {
    let errors = serde_json::json!({"name": "e", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}});
    let slow =
        serde_json::json!({"name": "l", "type": "latency", "latency": {"threshold_ms": 100}});
    let failed_fast_span = Span {
        status: Some(Status {
            code: 2,
            ..Default::default()
        }),
        ..span(0, 1)
    };
    let failed_fast = trace(vec![], vec![failed_fast_span.clone()]);
    let mut both = policy(
        serde_json::json!({"name": "a", "type": "and", "and": {"and_sub_policy": [errors, slow]}}),
    )
    .unwrap();
    assert_eq!(decide(&mut both, &failed_fast), Decision::NotSampled);
    let mut not_slow = policy(serde_json::json!({"name": "a", "type": "and", "and": {"and_sub_policy": [errors, {"name": "n", "type": "not", "not": {"not_sub_policy": slow}}]}})).unwrap();
    assert_eq!(decide(&mut not_slow, &failed_fast), Decision::Sampled);
    let mut drop = policy(
        serde_json::json!({"name": "d", "type": "drop", "drop": {"drop_sub_policy": [errors]}}),
    )
    .unwrap();
    assert!(drop.is_drop());
    assert_eq!(decide(&mut drop, &failed_fast), Decision::Dropped);
    let mut composite = policy(
        serde_json::json!({"name": "c", "type": "composite", "composite": {
            "max_total_spans_per_second": 4,
            "composite_sub_policy": [errors, {"name": "all", "type": "always_sample"}],
            "rate_allocation": [{"policy": "e", "percent": 50}]
        }}),
    )
    .unwrap();
    // `e` may sample 2 spans a second: the first error trace passes, the second does not, and
    // it does not fall through to `all`.
    assert_eq!(decide(&mut composite, &failed_fast), Decision::Sampled);
    let two_errors = trace(vec![], vec![failed_fast_span; 2]);
    assert_eq!(decide(&mut composite, &two_errors), Decision::NotSampled);
    let nested = policy(
        serde_json::json!({"name": "c", "type": "composite", "composite": {"composite_sub_policy": [{"name": "d", "type": "drop"}]}}),
    );
    assert_eq!(
        nested.unwrap_err(),
        "policies[0].composite.composite_sub_policy[0].type: `drop` cannot be a sub-policy here"
    );
}

// ottl_condition builds and decides (its own tests are in `ottl/tests.rs`); what trailhead
// does not run is refused at its key with the reason, not ignored.
#[test]
fn unsupported_policies_are_refused_in_place() {
    let mut ottl = policy(
        serde_json::json!({"name": "o", "type": "ottl_condition", "ottl_condition": {"span": ["true"]}}),
    )
    .unwrap();
    let one_span = trace(vec![], vec![span(0, 1)]);
    assert_eq!(decide(&mut ottl, &one_span), Decision::Sampled);
    let unknown = policy(serde_json::json!({"name": "o", "type": "sometimes"}));
    assert_eq!(
        unknown.unwrap_err(),
        "policies[0].type: unknown sampling policy type `sometimes`"
    );
    let key = TailSamplingConfig::from_value(
        &serde_json::json!({"policies": [{"name": "l", "type": "latency", "latency": {"threshold": 1}}]}),
    );
    let message = key.unwrap_err();
    assert!(
        message.starts_with("policies[0].latency.threshold: unknown field `threshold`"),
        "{message}"
    );
}
