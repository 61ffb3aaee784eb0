//! A sender that cannot retry (Dapr's Zipkin exporter) is answered only after a short wait for
//! room: a full exporter queue that drains within the wait takes the batch, where an answer at
//! once would have refused it; past the wait the refusal stands.

#![allow(clippy::unwrap_used)] // a test: a failed step should fail it loudly
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trailhead::exporters::{
    BatchSettings, ExportError, ExporterSpec, Payload, QueueError, QueueSettings, RetrySettings,
    SendOutcome, Sink, spawn_exporter,
};
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::pipeline::{ConsumeError, Fanout, Pipeline};
use trailhead::telemetry::{ReceiverMetrics, Telemetry};

/// A peer that takes `delay` to answer each export.
struct Slow {
    delay: Duration,
}

impl Sink for Slow {
    fn send(&self, _: Payload, _: usize) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Ok(SendOutcome::default())
        })
    }
}

fn batch() -> Batch {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::from_message(Signal::Traces, &request, RequestContext::internal("t"))
}

#[tokio::test]
async fn a_full_queue_that_drains_within_the_wait_takes_the_batch() {
    let telemetry = Telemetry::default();
    let batch_policy = BatchSettings {
        send_batch_size: Some(1),
        ..BatchSettings::default()
    };
    let spec = ExporterSpec {
        id: "slow".into(),
        signal: Signal::Traces,
        sink: Arc::new(Slow {
            delay: Duration::from_millis(300),
        }),
        queue: QueueSettings {
            queue_size: 1,
            num_consumers: 1,
            ..QueueSettings::default()
        },
        batch: batch_policy.policy().unwrap(),
        retry: RetrySettings::default(),
    };
    let (exporter, _task) = spawn_exporter(
        spec,
        None,
        &telemetry,
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let pipeline = Arc::new(Pipeline {
        id: "traces".into(),
        processors: arc_swap::ArcSwap::from_pointee(Vec::new()),
        exporters: vec![exporter],
        connectors: Vec::new(),
        taps: Default::default(),
    });
    let metrics = ReceiverMetrics::new(&telemetry.registry, "zipkin", Signal::Traces);
    let fanout = Fanout::new(Signal::Traces, vec![pipeline], metrics);
    // One batch in the sender, then fill the one-request queue.
    let fill = || async {
        let mut queued = 0;
        while fanout.consume(batch()).await.is_ok() {
            queued += 1;
            assert!(queued < 10, "the queue never filled");
        }
    };
    fill().await;
    assert!(matches!(
        fanout.consume(batch()).await,
        Err(ConsumeError::Queue(QueueError::Full(_)))
    ));
    let waited = Instant::now();
    let within = fanout
        .consume_within(batch(), Instant::now() + Duration::from_secs(2))
        .await;
    assert!(within.is_ok(), "{within:?}");
    assert!(
        waited.elapsed() >= Duration::from_millis(50),
        "it had to wait for room"
    );
    // No wait (`wait_for_room: 0s`) is the refusal at once.
    fill().await;
    let at_once = fanout.consume_within(batch(), Instant::now()).await;
    assert!(
        matches!(at_once, Err(ConsumeError::Queue(QueueError::Full(_)))),
        "{at_once:?}"
    );
}
