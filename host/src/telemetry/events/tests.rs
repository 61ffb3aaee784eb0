//! Each event adds to its own counter, and the events with a span record it with the
//! outcome an operator filters on.

use super::*;
use crate::pdata::{Batch, Signal};
use crate::telemetry::metrics::Registry;
use crate::telemetry::traces::{SelfTracer, SpanSink};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A self-trace exporter that keeps what it is offered.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Batch>>>);

impl SpanSink for Spans {
    fn offer(&self, batch: Batch) -> futures::future::BoxFuture<'_, bool> {
        self.0.lock().unwrap().push(batch);
        Box::pin(async { true })
    }
}

impl Spans {
    /// Flushes `tracer` once and decodes every span it sent.
    async fn flushed(&self, tracer: Arc<SelfTracer>) -> Vec<Span> {
        let stop = tokio_util::sync::CancellationToken::new();
        stop.cancel();
        tracer.run(stop).await;
        let batches = self.0.lock().unwrap();
        batches
            .iter()
            .flat_map(|b| {
                ExportTraceServiceRequest::decode(b.payload.to_bytes())
                    .unwrap()
                    .resource_spans
            })
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

fn attribute(span: &Span, key: &str) -> String {
    let value = span.attributes.iter().find(|kv| kv.key == key);
    format!("{:?}", value.and_then(|kv| kv.value.clone()))
}

/// The exposition's value of the series whose line starts with `series`.
fn value(registry: &Registry, series: &str) -> String {
    let text = registry.render();
    let line = text.lines().find(|l| l.starts_with(series));
    let line = line.unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn export_events_count_into_their_own_series() {
    let registry = Registry::default();
    let to = ExporterInstruments::new(&registry, None, "otlp/alloy", Signal::Traces);
    let labels = r#"{exporter="otlp/alloy",signal="traces"}"#;
    ExportDelivered {
        items: 10,
        bytes: 1234,
        rejected: 3,
        message: "3 spans had no id",
    }
    .emit(&to);
    ExportRetrying {
        items: 4,
        error: "unavailable",
        wait: Duration::from_millis(5),
    }
    .emit(&to);
    ExportSplit {
        items: 4,
        bytes: 5 << 20,
        error: "too large",
    }
    .emit(&to);
    ExportGaveUp {
        items: 4,
        why: "retries exhausted",
        error: "unavailable",
    }
    .emit(&to);
    ExportKeptOnDisk {
        items: 2,
        why: "shutdown deadline passed",
    }
    .emit(&to);
    let series = |name: &str| value(&registry, &format!("{name}{labels}"));
    assert_eq!(series("trailhead_exporter_sent_items_total"), "7");
    assert_eq!(series("trailhead_exporter_sent_bytes_total"), "1234");
    assert_eq!(series("trailhead_exporter_peer_rejected_items_total"), "3");
    assert_eq!(series("trailhead_exporter_retries_total"), "1");
    assert_eq!(series("trailhead_exporter_size_splits_total"), "1");
    // Kept on disk is not lost: only the given-up items count as failed.
    assert_eq!(series("trailhead_exporter_send_failed_items_total"), "4");
}

#[tokio::test]
async fn an_export_span_says_how_the_batch_ended() {
    let (registry, spans) = (Registry::default(), Spans::default());
    let tracer = Arc::new(SelfTracer::new(spans.clone(), &registry));
    let to = ExporterInstruments::new(&registry, Some(tracer.clone()), "otlp", Signal::Logs);
    let started = SystemTime::now() - Duration::from_secs(2);
    let (items, attempts, outcome) = (9, 3, "dropped");
    ExportFinished {
        started,
        items,
        attempts,
        outcome,
        error: Some("retries exhausted: x"),
    }
    .emit(&to);
    let spans = spans.flushed(tracer).await;
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "export logs");
    assert!(attribute(span, "trailhead.outcome").contains("\"dropped\""));
    assert!(attribute(span, "trailhead.attempts").contains("IntValue(3)"));
    assert_eq!(
        span.status.as_ref().unwrap().message,
        "retries exhausted: x"
    );
    let took = span.end_time_unix_nano - span.start_time_unix_nano;
    assert!(took >= 2_000_000_000, "{took}");
}

#[test]
fn plugin_events_count_swaps_by_result_and_failures_by_kind() {
    let registry = Registry::default();
    let to = PluginInstruments::new(&registry, "k8s", &["trap", "timeout"]);
    let swaps = |result: &str| {
        let series =
            format!(r#"trailhead_processor_swaps_total{{processor="k8s",result="{result}"}}"#);
        value(&registry, &series)
    };
    // Every series is there at zero before anything happens.
    assert_eq!(swaps("rolled_back"), "0");
    assert_eq!(to.failures("timeout"), 0);
    PluginSwapped {
        from: "aa",
        to: "bb",
        version: "0.2.0",
    }
    .emit(&to);
    PluginSwapped {
        from: "bb",
        to: "cc",
        version: "0.2.1",
    }
    .emit(&to);
    PluginRejected {
        error: &"canary trapped",
    }
    .emit(&to);
    PluginRolledBack {
        bad: "cc",
        restored: "bb",
    }
    .emit(&to);
    let failed = |kind| PluginFailed {
        kind,
        error: "wasm trap: unreachable",
        output: "",
        on_failure: "pass",
        items: 5,
        circuit_opened: false,
    };
    failed("timeout").emit(&to);
    failed("timeout").emit(&to);
    failed("trap").emit(&to);
    assert_eq!(
        (swaps("applied"), swaps("rejected"), swaps("rolled_back")),
        ("2".into(), "1".into(), "1".into())
    );
    assert_eq!((to.failures("timeout"), to.failures("trap")), (2, 1));
}

#[tokio::test]
async fn reload_events_count_by_result_and_trace_the_rejection() {
    let (registry, spans) = (Registry::default(), Spans::default());
    let tracer = Arc::new(SelfTracer::new(spans.clone(), &registry));
    let to = ReloadInstruments::new(&registry, Some(tracer.clone()));
    let started = SystemTime::now();
    let config = std::path::Path::new("/etc/trailhead/config.yaml");
    ReloadApplied { started, config }.emit(&to);
    ReloadUnchanged { started }.emit(&to);
    ReloadUnchanged { started }.emit(&to);
    ReloadRejected {
        started,
        error: "`exporters.otlp`: these need a restart",
    }
    .emit(&to);
    let reloads = |result: &str| {
        value(
            &registry,
            &format!(r#"trailhead_config_reloads_total{{result="{result}"}}"#),
        )
    };
    assert_eq!(
        (
            reloads("applied"),
            reloads("unchanged"),
            reloads("rejected")
        ),
        ("1".into(), "2".into(), "1".into())
    );
    let spans = spans.flushed(tracer).await;
    let failed: Vec<_> = spans.iter().filter(|s| s.status.is_some()).collect();
    assert_eq!(spans.len(), 4);
    assert_eq!(failed.len(), 1);
    assert!(attribute(failed[0], "trailhead.result").contains("\"rejected\""));
}

#[test]
fn secret_events_count_rotations_and_refusals_apart() {
    let registry = Registry::default();
    let to = SecretInstruments::new(&registry, "receiver otlp (grpc) tls");
    SecretRotated.emit(&to);
    SecretRotated.emit(&to);
    SecretRotationFailed {
        error: "key does not match the certificate",
    }
    .emit(&to);
    let labels = r#"{secret="receiver otlp (grpc) tls"}"#;
    assert_eq!(
        value(
            &registry,
            &format!("trailhead_secret_reloads_total{labels}")
        ),
        "2"
    );
    assert_eq!(
        value(
            &registry,
            &format!("trailhead_secret_reload_failures_total{labels}")
        ),
        "1"
    );
}
