//! Contract 0.2.0 from the host's side, through `plugins/probes/contract-v2` (written against
//! the WIT directly, no SDK): every column it reads comes back as an attribute to check, its
//! writes land, a bad index or length traps and leaves the batch as it was, an instance keeps
//! its state between calls, and a 0.1 component runs on the output of a 0.2 one.
//! Needs `make plugins` (the components in target/plugins/).

#![allow(clippy::unwrap_used)] // a test: a failed step should fail it loudly

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::processors::wasm::{FailureKind, Limits, Plugin, Runtime};

use crate::plugins;
use plugins::plugin_path;

fn load(runtime: &Arc<Runtime>, name: &str, config: &str) -> Plugin {
    plugins::load_with(runtime, name, config, Duration::from_millis(500)).unwrap()
}

fn batch(signal: Signal, json: &str) -> Batch {
    let context = RequestContext::of_request(None, None, Arc::from("otlp"));
    trailhead::pdata::json::batch_from_json(signal, json.as_bytes(), context).unwrap()
}

/// Two spans of one trace: a 1.5 ms server span with an event to drop and one to keep, and a
/// client span with a link; scope `lessons-api@2.1`.
const SPANS: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"lessons"}}]},
  "scopeSpans":[{"scope":{"name":"lessons-api","version":"2.1"},"spans":[
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b171","name":"get /lesson","kind":2,
     "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001500000",
     "events":[{"name":"drop-me","timeUnixNano":"1700000000000100000"},{"name":"keep","timeUnixNano":"1700000000000200000"}]},
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b172","name":"db query","kind":3,
     "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000000000250",
     "links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","traceState":"vendor=x","flags":1}]}]}]}]}"#;

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    let kv = attributes.iter().find(|kv| kv.key == key)?;
    kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref())
}

fn spans_through(plugin: &Plugin, input: &Batch) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(plugin.call(input).unwrap()).unwrap()
}

// Every span column the probe reads comes back right, and its writes are applied.
#[test]
fn span_columns_read_and_write() {
    let runtime = Runtime::new().unwrap();
    let probe = load(&runtime, "contract-v2", r#"{"mode":"columns"}"#);
    assert_eq!(probe.info.contract, "0.2.0");
    let request = spans_through(&probe, &batch(Signal::Traces, SPANS));
    let scope_spans = &request.resource_spans[0].scope_spans[0];
    let (server, client) = (&scope_spans.spans[0], &scope_spans.spans[1]);

    assert_eq!(
        attribute(&server.attributes, "probe.duration_ns"),
        Some(&Value::IntValue(1_500_000))
    );
    assert_eq!(
        attribute(&client.attributes, "probe.duration_ns"),
        Some(&Value::IntValue(250))
    );
    let trace_id = Value::StringValue("5b8efff798038103d269b633813fc60c".into());
    assert_eq!(
        attribute(&client.attributes, "probe.trace_id"),
        Some(&trace_id)
    );
    // Links: read through their parents, IDs, trace states and flags.
    let link =
        Value::StringValue("0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331/vendor=x/1".into());
    assert_eq!(attribute(&client.attributes, "probe.links"), Some(&link));
    assert_eq!(attribute(&server.attributes, "probe.links"), None);
    let scope = scope_spans.scope.as_ref().unwrap();
    let tag = Value::StringValue("lessons-api@2.1".into());
    assert_eq!(attribute(&scope.attributes, "probe.scope"), Some(&tag));

    // Writes: the server span renamed, its `drop-me` event gone, a link added to span 0.
    assert_eq!(
        (server.name.as_str(), client.name.as_str()),
        ("GET /LESSON", "db query")
    );
    let events: Vec<&str> = server.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["keep"]);
    assert_eq!(server.links.len(), 1);
    assert_eq!(
        (
            server.links[0].trace_id.as_slice(),
            server.links[0].trace_state.as_str()
        ),
        (&[7u8; 16][..], "probe=1")
    );
    assert_eq!(
        client.links.len(),
        1,
        "the client span keeps its own link only"
    );
}

// An instance keeps its memory from one call to the next (the probe counts its calls on every
// resource); a trap replaces the instance, and its state starts over.
#[test]
fn an_instance_keeps_its_state_between_calls() {
    let runtime = Runtime::new().unwrap();
    let probe = load(&runtime, "contract-v2", r#"{"mode":"columns"}"#);
    let calls = |request: &ExportTraceServiceRequest| {
        let resource = request.resource_spans[0].resource.as_ref().unwrap();
        attribute(&resource.attributes, "probe.calls").cloned()
    };
    let input = batch(Signal::Traces, SPANS);
    // The canary batch at load was the first call.
    assert_eq!(
        calls(&spans_through(&probe, &input)),
        Some(Value::IntValue(2))
    );
    assert_eq!(
        calls(&spans_through(&probe, &input)),
        Some(Value::IntValue(3))
    );
    let trap = SPANS.replace("db query", "trap-now");
    let failure = probe.call(&batch(Signal::Traces, &trap)).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Panic, "{failure:?}");
    // A new instance: its own `init`, and a count that starts over.
    assert_eq!(
        calls(&spans_through(&probe, &input)),
        Some(Value::IntValue(1))
    );
}

// A bad index or a list of the wrong length traps with the method named. The canary batch
// that every version must pass before it serves (one span) shows it: such a version is
// refused at load, with the trap's message, and never replaces a good one.
#[test]
fn bad_indexes_and_lengths_trap() {
    let runtime = Runtime::new().unwrap();
    let cases = [
        (
            "bad-index",
            "trap: set-attr: index 1 is out of range: level `item` has 1 entries",
        ),
        ("bad-length", "trap: set-names: 2 values for 3 indexes"),
    ];
    for (mode, expected) in cases {
        let config = format!(r#"{{"mode":"{mode}"}}"#);
        let path = plugin_path("contract-v2");
        let refused = runtime.load(mode, &path, None, &config, Limits::default());
        let message = refused.err().unwrap().to_string();
        assert!(message.contains(expected), "{mode}: {message}");
    }
}

// Log and metric writes: a severity set where the body says `boom`; exemplar IDs read back, the
// first exemplar removed and every metric renamed.
#[test]
fn log_and_metric_columns() {
    let runtime = Runtime::new().unwrap();
    let probe = load(&runtime, "contract-v2", r#"{"mode":"columns"}"#);
    let logs = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
        {"body":{"stringValue":"boom"}},{"body":{"stringValue":"fine"},"severityNumber":9,"severityText":"INFO"}]}]}]}"#;
    let output = probe.call(&batch(Signal::Logs, logs)).unwrap();
    let request = ExportLogsServiceRequest::decode(output).unwrap();
    let records = &request.resource_logs[0].scope_logs[0].log_records;
    let severities: Vec<(i32, &str)> = records
        .iter()
        .map(|r| (r.severity_number, r.severity_text.as_str()))
        .collect();
    assert_eq!(severities, [(17, "ERROR"), (9, "INFO")]);

    let metrics = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"requests","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
          {"asInt":"5","exemplars":[
            {"asInt":"1","timeUnixNano":"1","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b171"},
            {"asInt":"2","timeUnixNano":"2","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}]}]}},
        {"name":"load","gauge":{"dataPoints":[{"asDouble":0.5}]}}]}]}]}"#;
    let output = probe.call(&batch(Signal::Metrics, metrics)).unwrap();
    let request = ExportMetricsServiceRequest::decode(output).unwrap();
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["probe.requests", "probe.load"]);
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let Some(Data::Sum(sum)) = &metrics[0].data else {
        panic!("a sum")
    };
    let exemplars: Vec<u64> = sum.data_points[0]
        .exemplars
        .iter()
        .map(|e| e.time_unix_nano)
        .collect();
    assert_eq!(exemplars, [2]);
    let ids = Value::StringValue(
        "5b8efff798038103d269b633813fc60c/eee19b7ec3c1b171,0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331".into(),
    );
    assert_eq!(
        attribute(&sum.data_points[0].attributes, "probe.exemplars"),
        Some(&ids)
    );
}

// A 0.1 component and a 0.2 component, loaded by one runtime, run one after the other on the
// same batch, each seeing what the other wrote.
#[test]
fn contract_0_1_and_0_2_side_by_side() {
    let runtime = Runtime::new().unwrap();
    let old = load(&runtime, "faults", r#"{"fault":"none"}"#);
    let new = load(&runtime, "contract-v2", r#"{"mode":"columns"}"#);
    assert_eq!((old.info.contract, new.info.contract), ("0.1.0", "0.2.0"));
    let first = new.call(&batch(Signal::Traces, SPANS)).unwrap();
    let context = RequestContext::of_request(None, None, Arc::from("otlp"));
    let between = Batch::from_protobuf(Signal::Traces, first, context).unwrap();
    let request = spans_through(&old, &between);
    for span in &request.resource_spans[0].scope_spans[0].spans {
        assert!(
            attribute(&span.attributes, "touched").is_some(),
            "0.1 wrote"
        );
        assert!(
            attribute(&span.attributes, "probe.duration_ns").is_some(),
            "0.2 wrote"
        );
    }
}
