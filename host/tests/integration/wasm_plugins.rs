//! Wasm plugins in the sandbox: a well-behaved plugin changes the batch; each kind of
//! misbehaviour is contained, classified, and leaves the batch exactly as it was.
//! Needs `make plugins` (the components in target/plugins/).

#![allow(clippy::unwrap_used)] // a test: a failed step should fail it loudly

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::processors::wasm::{FailureKind, Limits, LoadError, Plugin, Runtime};

use crate::plugins;
use plugins::plugin_path;

fn load(runtime: &Arc<Runtime>, name: &str, config: &str) -> Result<Plugin, LoadError> {
    plugins::load_with(runtime, name, config, Duration::from_millis(200))
}

const SPANS: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"lessons"}}]},
  "scopeSpans":[{"spans":[
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b171","name":"a"},
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b172","name":"b"}]}]}]}"#;

fn batch() -> Batch {
    let context = RequestContext::of_request(
        Some("10.1.2.3:4000".parse().unwrap()),
        None,
        Arc::from("otlp"),
    );
    trailhead::pdata::json::batch_from_json(Signal::Traces, SPANS.as_bytes(), context).unwrap()
}

// A resource-only plugin stamps resources, keeps what was set, and leaves spans as they were.
#[test]
fn resource_stamp_enriches_resources() {
    let runtime = Runtime::new().unwrap();
    let config = r#"{"attributes":{"deployment.environment":"prod","service.name":"ignored"}}"#;
    let plugin = load(&runtime, "resource-stamp", config).unwrap();
    assert_eq!(plugin.info.name, "resource-stamp");
    assert!(plugin.handles(Signal::Traces) && plugin.handles(Signal::Logs));
    let output = plugin.call(&batch()).unwrap();
    let request = ExportTraceServiceRequest::decode(output).unwrap();
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    let attribute = |key: &str| {
        resource
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| format!("{:?}", kv.value))
    };
    assert!(
        attribute("deployment.environment")
            .unwrap()
            .contains("prod")
    );
    assert!(
        attribute("service.name").unwrap().contains("lessons"),
        "never overwrites"
    );
    assert_eq!(request.resource_spans[0].scope_spans[0].spans.len(), 2);
}

// A well-behaved call changes every span; the same instance serves the next batch too.
#[test]
fn plugin_changes_spans_and_is_reused() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, "faults", r#"{"fault":"none"}"#).unwrap();
    for _ in 0..3 {
        let request = ExportTraceServiceRequest::decode(plugin.call(&batch()).unwrap()).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert!(
            spans
                .iter()
                .all(|s| s.attributes.iter().any(|kv| kv.key == "touched"))
        );
    }
}

// Each fault is contained and classified; the next call on the same plugin works again (a
// trapped instance is replaced), and a failure never hands back a half-changed batch.
#[test]
fn faults_are_contained_and_classified() {
    let runtime = Runtime::new().unwrap();
    let cases = [
        ("loop", FailureKind::Timeout),
        ("alloc", FailureKind::OutOfMemory),
        ("panic", FailureKind::Panic),
        ("recurse", FailureKind::Trap),
        ("error", FailureKind::PluginError),
        ("half", FailureKind::Panic),
    ];
    for (fault, kind) in cases {
        let plugin = load(&runtime, "faults", &format!(r#"{{"fault":"{fault}"}}"#)).unwrap();
        for attempt in 0..2 {
            let failure = plugin.call(&batch()).unwrap_err();
            assert_eq!(
                failure.kind, kind,
                "{fault} (attempt {attempt}): {failure:?}"
            );
        }
        if fault == "panic" {
            let failure = plugin.call(&batch()).unwrap_err();
            assert!(failure.output.contains("panics as asked"), "{failure:?}");
        }
    }
}

// A config the plugin rejects, a file that is not a component, and a sha256 pin that does
// not match are load errors naming the problem.
#[test]
fn bad_plugins_are_refused_at_load() {
    let runtime = Runtime::new().unwrap();
    let err = load(&runtime, "faults", r#"{"fault":"explode"}"#)
        .err()
        .unwrap();
    assert!(
        matches!(err, LoadError::Init { .. }) && err.to_string().contains("unknown fault"),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("trailhead-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm garbage").unwrap();
    let err = runtime
        .load("garbage", &garbage, None, "{}", Limits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");

    let err = runtime
        .load(
            "pinned",
            &plugin_path("faults"),
            Some("00ff"),
            "{}",
            Limits::default(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(err, LoadError::Pin { .. }) && err.to_string().contains("00ff"),
        "{err}"
    );
}

// A version that traps on the host's canary batch is refused at load, before it serves.
#[test]
fn canary_rejects_a_trapping_version() {
    let runtime = Runtime::new().unwrap();
    let err = load(&runtime, "faults", r#"{"fault":"panic","canary":true}"#)
        .err()
        .unwrap();
    assert!(
        matches!(err, LoadError::Canary { .. }) && err.to_string().contains("panic"),
        "{err}"
    );
}

// `trailhead plugin check` and `plugin test`: a plugin run offline on an OTLP/JSON file
// prints the batch it would forward.
#[test]
fn offline_check_and_test() {
    use trailhead::processors::offline;
    let report = offline::check(&plugin_path("resource-stamp"), "").unwrap();
    assert!(
        report.contains("name: resource-stamp")
            && report.contains("signals: traces, metrics, logs"),
        "{report}"
    );
    let settings = "attributes:\n  deployment.environment: staging\non_failure: pass\n";
    let output = offline::test(&plugin_path("resource-stamp"), settings, SPANS).unwrap();
    let json: serde_json::Value = serde_json::from_str(&output).unwrap();
    let attributes = &json["resourceSpans"][0]["resource"]["attributes"];
    assert!(attributes.to_string().contains("staging"), "{output}");
    let err = offline::test(&plugin_path("faults"), r#"{"fault":"panic"}"#, SPANS).unwrap_err();
    assert!(err.contains("panic"), "{err}");
}

// A component that imports sockets is refused at load with the import named; one built against
// another WIT is refused as not implementing the contract. Neither ever runs.
#[test]
fn misfits_are_refused_at_load() {
    let runtime = Runtime::new().unwrap();
    let err = load(&runtime, "misfit-sockets", "{}").err().unwrap();
    assert!(matches!(err, LoadError::Forbidden { .. }), "{err}");
    assert!(err.to_string().contains("wasi:sockets/"), "{err}");
    let err = load(&runtime, "misfit-wrong-wit", "{}").err().unwrap();
    assert!(matches!(err, LoadError::Contract { .. }), "{err}");
    assert!(
        err.to_string().contains("mathtrail:trailhead@0.1.0"),
        "{err}"
    );
}

// A component that imports the filesystem loads, but finds nothing to open: no directory is
// preopened, so reading a host file fails inside the plugin, and the batch is untouched.
#[test]
fn the_filesystem_grants_nothing() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, "misfit-filesystem", "{}").unwrap();
    let failure = plugin.call(&batch()).unwrap_err();
    assert_eq!(failure.kind, FailureKind::PluginError, "{failure:?}");
    assert!(
        failure.message.contains("cannot read /etc/hostname"),
        "{failure:?}"
    );
}
