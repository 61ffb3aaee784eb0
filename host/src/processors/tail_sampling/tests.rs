use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

/// A request with one span per `(trace, error)`.
fn request(spans: &[(u8, bool)]) -> Batch {
    let spans = spans
        .iter()
        .map(|(trace, error)| Span {
            trace_id: vec![*trace; 16],
            span_id: vec![*trace; 8],
            status: Some(Status {
                code: if *error { 2 } else { 0 },
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let message = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::from_message(Signal::Traces, &message, RequestContext::internal("test"))
}

/// Gives `batch` to the processor as an accepted request: processed, then committed.
async fn take(ts: &TailSampling, batch: Batch) -> Result<(), ProcessError> {
    match ts.process(batch).await? {
        Processed::Held(hold) => {
            hold.commit();
            Ok(())
        }
        other => panic!("not held: {other:?}"),
    }
}

fn sampler(extra: serde_json::Value) -> (Arc<TailSampling>, Arc<Registry>) {
    let mut config = serde_json::json!({
        "decision_wait": "1s",
        "policies": [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}],
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let registry = Arc::new(Registry::default());
    let config = settings(&config).unwrap();
    (
        TailSampling::new("tail_sampling", config, &registry).unwrap(),
        registry,
    )
}

/// The trace IDs (first byte) of released pieces, and their span count.
fn released(releases: &[Release]) -> (Vec<u8>, u64) {
    let mut ids = Vec::new();
    for r in releases {
        let back = ExportTraceServiceRequest::decode(r.encoded.as_slice()).unwrap();
        for rs in back.resource_spans {
            ids.push(rs.scope_spans[0].spans[0].trace_id[0]);
        }
    }
    (ids, releases.iter().map(|r| r.spans).sum())
}

fn metric(registry: &Registry, line: &str) -> String {
    let text = registry.render();
    let found = text.lines().find(|l| l.starts_with(line));
    found.unwrap_or_default().to_string()
}

// Spans are held until decision_wait has passed since their trace's first span; then only
// the trace with an error goes on, with all its spans, and each decision is counted.
#[tokio::test]
async fn holds_then_releases_the_sampled_traces() {
    let (ts, registry) = sampler(serde_json::json!({}));
    let start = Instant::now();
    take(&ts, request(&[(1, false), (2, false)])).await.unwrap();
    take(&ts, request(&[(1, true)])).await.unwrap();
    assert!(
        ts.decide(start + Duration::from_millis(500), false)
            .is_empty()
    );
    let (ids, spans) = released(&ts.decide(start + Duration::from_secs(2), false));
    assert_eq!((ids, spans), (vec![1, 1], 2));
    let sampled = "trailhead_tail_sampling_policy_decisions_total{processor=\"tail_sampling\",policy=\"errors\",decision=\"sampled\"}";
    assert!(
        metric(&registry, sampled).ends_with(" 1"),
        "{}",
        registry.render()
    );
}

// A late span follows its trace's decision: without a decision cache the decided trace stays
// in the table; with one, the cache answers (here after the table forgot it).
#[tokio::test]
async fn late_spans_follow_the_decision() {
    for cache in [
        serde_json::json!({}),
        serde_json::json!({"decision_cache": {"sampled_cache_size": 10, "non_sampled_cache_size": 10}}),
    ] {
        let (ts, _) = sampler(
            serde_json::json!({"decision_cache": cache.get("decision_cache").cloned().unwrap_or(serde_json::json!({}))}),
        );
        let start = Instant::now();
        take(&ts, request(&[(1, true), (2, false)])).await.unwrap();
        assert_eq!(
            released(&ts.decide(start + Duration::from_secs(2), false)).0,
            [1]
        );
        take(&ts, request(&[(1, false), (2, true)])).await.unwrap();
        let (ids, _) = released(&ts.decide(start + Duration::from_secs(4), false));
        assert_eq!(ids, [1], "{cache}");
    }
}

// Beyond num_traces the oldest trace is evicted before its decision and counted; trailhead's
// max_held_bytes evicts the same way.
#[tokio::test]
async fn bounds_evict_the_oldest_and_count_it() {
    let (ts, registry) = sampler(serde_json::json!({"num_traces": 2}));
    let start = Instant::now();
    take(&ts, request(&[(1, true)])).await.unwrap();
    take(&ts, request(&[(2, true)])).await.unwrap();
    take(&ts, request(&[(3, true)])).await.unwrap();
    assert_eq!(
        released(&ts.decide(start + Duration::from_secs(2), false)).0,
        [2, 3]
    );
    let evicted = "trailhead_tail_sampling_evicted_traces_total{processor=\"tail_sampling\",reason=\"num_traces\"}";
    assert!(metric(&registry, evicted).ends_with(" 1"));

    let (ts, registry) = sampler(serde_json::json!({"max_held_bytes": 500}));
    for trace in 1..=5 {
        take(&ts, request(&[(trace, true)])).await.unwrap();
    }
    let held = "trailhead_tail_sampling_held_bytes{processor=\"tail_sampling\"}";
    let bytes: f64 = metric(&registry, held)
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0.0 && bytes <= 500.0, "{bytes}");
    let kept = released(&ts.decide(start + Duration::from_secs(2), false)).0;
    assert!(kept.len() < 5 && kept.ends_with(&[5]), "{kept:?}");
}

// At shutdown every waiting trace is decided at once; with drop_pending_traces_on_shutdown
// they are dropped and counted instead.
#[tokio::test]
async fn shutdown_decides_or_drops_what_waits() {
    let (ts, _) = sampler(serde_json::json!({}));
    take(&ts, request(&[(1, true), (2, false)])).await.unwrap();
    assert_eq!(released(&ts.decide(Instant::now(), true)).0, [1]);
    let (ts, registry) = sampler(serde_json::json!({"drop_pending_traces_on_shutdown": true}));
    take(&ts, request(&[(1, true), (2, false)])).await.unwrap();
    ts.flush(Instant::now()).await;
    let lost =
        "trailhead_tail_sampling_lost_spans_total{processor=\"tail_sampling\",reason=\"shutdown\"}";
    assert!(metric(&registry, lost).ends_with(" 2"));
}

// A batch whose hold is not committed (the fanout refused it, so the sender will retry) is
// not held: the retry is not held twice.
#[tokio::test]
async fn an_uncommitted_batch_is_not_held() {
    let (ts, _) = sampler(serde_json::json!({}));
    let refused = ts.process(request(&[(1, true)])).await.unwrap();
    drop(refused);
    take(&ts, request(&[(1, true)])).await.unwrap();
    let (ids, spans) = released(&ts.decide(Instant::now(), true));
    assert_eq!((ids, spans), (vec![1], 1));
}

// Config errors name the key; the collector's defaults apply.
#[test]
fn settings_are_the_collectors() {
    let defaults = settings(&serde_json::Value::Null).unwrap();
    assert_eq!(
        (defaults.decision_wait, defaults.num_traces),
        (Duration::from_secs(30), 50_000)
    );
    let duplicate = serde_json::json!({"policies": [{"name": "a", "type": "always_sample"}, {"name": "a", "type": "always_sample"}]});
    assert_eq!(
        settings(&duplicate).unwrap_err(),
        "policies[1].name: duplicate policy name `a`"
    );
    let strategy = serde_json::json!({"sampling_strategy": "span-ingest"});
    assert!(
        settings(&strategy)
            .unwrap_err()
            .starts_with("sampling_strategy: `span-ingest` is not supported")
    );
    let wait = serde_json::json!({"decision_wait": "soon"});
    assert!(
        settings(&wait)
            .unwrap_err()
            .starts_with("decision_wait: invalid duration")
    );
}

// decision_wait_after_root_received brings a trace's decision forward once its root span
// (no parent) arrives; a trace without one waits the whole decision_wait.
#[tokio::test]
async fn a_root_span_brings_the_decision_forward() {
    let (ts, _) = sampler(
        serde_json::json!({"decision_wait": "10s", "decision_wait_after_root_received": "1s"}),
    );
    let start = Instant::now();
    // request() makes spans without a parent: roots.
    take(&ts, request(&[(1, true)])).await.unwrap();
    let mut child = request(&[(2, true)]);
    let mut message = ExportTraceServiceRequest::decode(child.payload.to_bytes()).unwrap();
    message.resource_spans[0].scope_spans[0].spans[0].parent_span_id = vec![9; 8];
    child = Batch::from_message(Signal::Traces, &message, RequestContext::internal("test"));
    take(&ts, child).await.unwrap();
    assert_eq!(
        released(&ts.decide(start + Duration::from_secs(2), false)).0,
        [1]
    );
    assert_eq!(
        released(&ts.decide(start + Duration::from_secs(11), false)).0,
        [2]
    );
}

// sample_on_first_match stops at the first policy that samples: later policies are not
// evaluated (their decision counters stay at zero).
#[tokio::test]
async fn sample_on_first_match_stops_evaluating() {
    let policies = serde_json::json!([
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "all", "type": "always_sample"},
    ]);
    let (ts, registry) =
        sampler(serde_json::json!({"sample_on_first_match": true, "policies": policies}));
    take(&ts, request(&[(1, true), (2, false)])).await.unwrap();
    assert_eq!(released(&ts.decide(Instant::now(), true)).0.len(), 2);
    let all = "trailhead_tail_sampling_policy_decisions_total{processor=\"tail_sampling\",policy=\"all\",decision=\"sampled\"}";
    assert!(
        metric(&registry, all).ends_with(" 1"),
        "{}",
        metric(&registry, all)
    );
}
