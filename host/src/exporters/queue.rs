//! The exporter driver: bounded queue → batcher → up to `num_consumers` concurrent sends, each
//! retried with exponential backoff.
//!
//! Batches of one signal are merged by concatenating their encodings (protobuf concatenates
//! repeated fields), so batching never decodes. Shutdown has two stages: `stop` closes the
//! queue and drains it; `abort` (the drain deadline) gives up on whatever is still retrying and
//! counts it as failed, unless the queue is on disk, where it stays for the next start.

use super::persistent::{DiskQueue, RecordId};
use super::{ExportError, ExporterHandle, Inlet, Payload, Queued, Sink};
use crate::config::{ComponentId, values};
use crate::pdata::Signal;
use crate::telemetry::traces::SelfTracer;
use crate::telemetry::{ExporterMetrics, Telemetry};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `sending_queue`: the collector's exporter queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// With the queue off, a request waits only for a free sender.
    pub enabled: bool,
    /// Concurrent sends.
    pub num_consumers: usize,
    /// What the queue holds before receivers start refusing, counted by `sizer`.
    pub queue_size: usize,
    /// `requests` (default), or `bytes` (with `storage` only: the bytes on disk).
    pub sizer: QueueSizer,
    /// A `file_storage` extension to keep the queue on disk, so it survives a crash.
    pub storage: Option<ComponentId>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueSizer {
    #[default]
    Requests,
    Bytes,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: QueueSizer::Requests,
            storage: None,
        }
    }
}

impl QueueSettings {
    /// What a persistent queue may hold under these settings.
    pub fn disk_limits(&self) -> super::persistent::Limits {
        match self.sizer {
            QueueSizer::Requests => super::persistent::Limits {
                requests: self.queue_size,
                bytes: u64::MAX,
            },
            QueueSizer::Bytes => super::persistent::Limits {
                requests: usize::MAX,
                bytes: self.queue_size as u64,
            },
        }
    }
}

/// `batch`: merge queued requests into larger sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Send once this many items are waiting.
    pub send_batch_size: usize,
    /// Send whatever is waiting after this long; `0` sends every request as it comes.
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            send_batch_size: 8192,
            timeout: Duration::from_millis(200),
        }
    }
}

/// `retry_on_failure`: the collector's defaults (5 s → 30 s, give up after 300 s).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub enabled: bool,
    #[serde(deserialize_with = "values::duration")]
    pub initial_interval: Duration,
    #[serde(deserialize_with = "values::duration")]
    pub max_interval: Duration,
    /// Give up on a request after retrying this long.
    #[serde(deserialize_with = "values::duration")]
    pub max_elapsed_time: Duration,
    pub multiplier: f64,
    /// Each wait is randomised by ± this fraction, so senders do not retry in lockstep.
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// What one exporter instance needs to run.
pub struct ExporterSpec {
    pub id: String,
    pub signal: Signal,
    pub sink: Arc<dyn Sink>,
    pub queue: QueueSettings,
    pub batch: BatchSettings,
    pub retry: RetrySettings,
}

/// Starts an exporter; returns the pipelines' handle and the task that ends once drained.
/// With `storage`, the queue is that log on disk, read back into a short channel.
pub fn spawn_exporter(
    spec: ExporterSpec,
    storage: Option<Arc<DiskQueue>>,
    telemetry: &Telemetry,
    stop: CancellationToken,
    abort: CancellationToken,
) -> (ExporterHandle, tokio::task::JoinHandle<()>) {
    let labels = [
        ("exporter", spec.id.as_str()),
        ("signal", spec.signal.as_str()),
    ];
    let metrics = ExporterMetrics::new(&telemetry.registry, &spec.id, spec.signal);
    let id: Arc<str> = Arc::from(spec.id.as_str());
    let disk = storage.clone();
    let (inlet, rx, capacity, stop_batcher): (Inlet, _, usize, _) = match storage {
        None => {
            let capacity = if spec.queue.enabled {
                spec.queue.queue_size
            } else {
                spec.queue.num_consumers
            };
            let (tx, rx) = mpsc::channel(capacity.max(1));
            let weak = tx.downgrade();
            telemetry.registry.gauge_fn(
                "trailhead_exporter_queue_size",
                "Requests waiting in the exporter queue.",
                &labels,
                move || {
                    weak.upgrade()
                        .map_or(0.0, |tx| (tx.max_capacity() - tx.capacity()) as f64)
                },
            );
            (Inlet::Memory(tx), rx, capacity, stop)
        }
        Some(disk) => {
            // Enough read ahead to keep every sender busy; the rest stays on disk.
            let (tx, rx) = mpsc::channel(spec.queue.num_consumers.max(1) * 2);
            let gauge = Arc::downgrade(&disk);
            telemetry.registry.gauge_fn(
                "trailhead_exporter_queue_size",
                "Requests waiting in the exporter queue.",
                &labels,
                move || gauge.upgrade().map_or(0.0, |d| d.len() as f64),
            );
            let capacity = disk.capacity();
            tokio::spawn(feed(disk.clone(), tx, id.clone(), stop, abort.clone()));
            // The batcher runs until the feeder has handed over everything on disk.
            (Inlet::Disk(disk), rx, capacity, CancellationToken::new())
        }
    };
    telemetry.registry.gauge_fn(
        "trailhead_exporter_queue_capacity",
        "Requests the exporter queue can hold.",
        &labels,
        move || capacity as f64,
    );
    let handle = ExporterHandle { id, inlet };
    let driver = Arc::new(Driver {
        spec,
        metrics,
        disk,
        abort,
        tracer: telemetry.tracer.clone(),
    });
    let task = tokio::spawn(run(driver, rx, stop_batcher));
    (handle, task)
}

/// Hands stored requests to the batcher in order; after `stop`, until the disk is drained.
async fn feed(
    disk: Arc<DiskQueue>,
    tx: mpsc::Sender<Queued>,
    exporter: Arc<str>,
    stop: CancellationToken,
    abort: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            next = disk.next(&stop) => next,
            () = abort.cancelled() => None,
        };
        let stored = match next {
            None => break,
            Some(Ok(stored)) => stored,
            Some(Err(e)) => {
                tracing::error!(exporter = %exporter, error = %e, "cannot read the persistent queue");
                continue;
            }
        };
        let queued = Queued {
            payload: stored.payload.into(),
            items: stored.items,
            stored: Some(stored.id),
        };
        let sent = tokio::select! {
            sent = tx.send(queued) => sent.is_ok(),
            () = abort.cancelled() => false,
        };
        if !sent {
            break;
        }
    }
    if !disk.is_empty() {
        tracing::warn!(exporter = %exporter, requests = disk.len(), "requests left in the persistent queue; they are sent after the next start");
    }
}

/// Requests waiting to be merged into one send.
#[derive(Default)]
struct Pending {
    parts: Vec<Bytes>,
    items: usize,
    since: Option<Instant>,
    stored: Vec<RecordId>,
}

/// One send's worth of requests.
struct Outgoing {
    payload: Payload,
    items: usize,
    /// The disk records it holds, acknowledged once the send is done.
    stored: Vec<RecordId>,
}

impl Pending {
    fn push(&mut self, queued: Queued) {
        self.since.get_or_insert_with(Instant::now);
        self.items += queued.items;
        self.parts.extend(queued.payload.parts().iter().cloned());
        self.stored.extend(queued.stored);
    }

    fn take(&mut self) -> Option<Outgoing> {
        let pending = std::mem::take(self);
        if pending.parts.is_empty() {
            return None;
        }
        Some(Outgoing {
            payload: Payload::new(pending.parts),
            items: pending.items,
            stored: pending.stored,
        })
    }
}

/// What every send of one exporter shares.
struct Driver {
    spec: ExporterSpec,
    metrics: ExporterMetrics,
    disk: Option<Arc<DiskQueue>>,
    abort: CancellationToken,
    tracer: Option<Arc<SelfTracer>>,
}

async fn run(driver: Arc<Driver>, mut rx: mpsc::Receiver<Queued>, stop: CancellationToken) {
    let senders = Arc::new(Semaphore::new(driver.spec.queue.num_consumers.max(1)));
    let mut sends = JoinSet::new();
    let mut pending = Pending::default();
    let mut closing = false;
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let batch = &driver.spec.batch;
    loop {
        let deadline = pending.since.map_or(far_future, |t| t + batch.timeout);
        let flush = tokio::select! {
            biased;
            () = stop.cancelled(), if !closing => {
                rx.close();
                closing = true;
                false
            }
            () = tokio::time::sleep_until(deadline) => true,
            received = rx.recv() => match received {
                Some(queued) => {
                    pending.push(queued);
                    pending.items >= batch.send_batch_size || batch.timeout.is_zero()
                }
                None => break,
            },
        };
        if flush {
            dispatch(&driver, &mut pending, &senders, &mut sends).await;
        }
        while sends.try_join_next().is_some() {}
    }
    dispatch(&driver, &mut pending, &senders, &mut sends).await;
    while sends.join_next().await.is_some() {}
}

/// Hands the pending batch to a free sender, waiting for one (which is the backpressure).
async fn dispatch(
    driver: &Arc<Driver>,
    pending: &mut Pending,
    senders: &Arc<Semaphore>,
    sends: &mut JoinSet<()>,
) {
    let Some(outgoing) = pending.take() else {
        return;
    };
    let permit = tokio::select! {
        permit = senders.clone().acquire_owned() => permit,
        () = driver.abort.cancelled() => {
            let gave_up = GaveUp { why: "shutdown deadline passed before a sender was free", error: String::new(), at_shutdown: true };
            return driver.finish(&outgoing, Err(gave_up), Sent::default());
        }
    };
    let Ok(permit) = permit else { return };
    driver.metrics.batch_items.observe(outgoing.items as f64);
    let driver = driver.clone();
    sends.spawn(async move {
        let mut sent = Sent::default();
        let result = driver.send_with_retry(&outgoing, &mut sent).await;
        driver.finish(&outgoing, result, sent);
        drop(permit);
    });
}

/// How a send went, for its self-trace span.
struct Sent {
    started: std::time::SystemTime,
    attempts: u32,
}

impl Default for Sent {
    fn default() -> Self {
        Sent {
            started: std::time::SystemTime::now(),
            attempts: 0,
        }
    }
}

/// Why a send was given up.
struct GaveUp {
    why: &'static str,
    error: String,
    /// Given up only because the shutdown deadline passed.
    at_shutdown: bool,
}

impl Driver {
    /// Counts and logs how a send ended, and acknowledges its disk records unless they should
    /// be sent again after a restart.
    fn finish(&self, outgoing: &Outgoing, result: Result<(), GaveUp>, sent: Sent) {
        let (spec, items) = (&self.spec, outgoing.items);
        if let Some(tracer) = &self.tracer {
            use opentelemetry_proto::tonic::common::v1::any_value::Value;
            let outcome = match &result {
                Ok(()) => "delivered",
                Err(g) if g.at_shutdown && !outgoing.stored.is_empty() => "kept on disk",
                Err(_) => "dropped",
            };
            let attributes = [
                ("trailhead.exporter", Value::StringValue(spec.id.clone())),
                (
                    "trailhead.signal",
                    Value::StringValue(spec.signal.to_string()),
                ),
                ("trailhead.items", Value::IntValue(items as i64)),
                (
                    "trailhead.attempts",
                    Value::IntValue(i64::from(sent.attempts)),
                ),
                ("trailhead.outcome", Value::StringValue(outcome.into())),
            ];
            let error = result
                .as_ref()
                .err()
                .map(|g| format!("{}: {}", g.why, g.error));
            let name = format!("export {}", spec.signal);
            let now = std::time::SystemTime::now();
            tracer.record(&name, sent.started, now, &attributes, error.as_deref());
        }
        if let Err(gave_up) = &result {
            if gave_up.at_shutdown && !outgoing.stored.is_empty() {
                tracing::warn!(exporter = %spec.id, signal = %spec.signal, items, "{}; kept in the persistent queue for the next start", gave_up.why);
                return;
            }
            self.metrics.failed.add(items as u64);
            tracing::error!(exporter = %spec.id, signal = %spec.signal, items, error = %gave_up.error, "dropping data: {}", gave_up.why);
        }
        if let Some(disk) = &self.disk {
            outgoing.stored.iter().for_each(|id| disk.ack(*id));
        }
    }

    async fn send_with_retry(&self, outgoing: &Outgoing, sent: &mut Sent) -> Result<(), GaveUp> {
        let (spec, metrics, abort) = (&self.spec, &self.metrics, &self.abort);
        let (payload, items) = (&outgoing.payload, outgoing.items);
        let retry = &spec.retry;
        let started = Instant::now();
        let mut interval = retry.initial_interval;
        let give_up = |why, error: String, at_shutdown| {
            Err(GaveUp {
                why,
                error,
                at_shutdown,
            })
        };
        loop {
            sent.attempts += 1;
            let attempt = tokio::select! {
                result = spec.sink.send(payload.clone(), items) => result,
                () = abort.cancelled() => return give_up("shutdown deadline passed", "send in progress".into(), true),
            };
            let (message, retry_after) = match attempt {
                Ok(outcome) => {
                    metrics
                        .sent
                        .add(items as u64 - outcome.rejected.min(items as u64));
                    if outcome.rejected > 0 || !outcome.message.is_empty() {
                        metrics.rejected_by_peer.add(outcome.rejected);
                        tracing::warn!(exporter = %spec.id, signal = %spec.signal, rejected = outcome.rejected, message = %outcome.message, "peer accepted the request partially");
                    }
                    return Ok(());
                }
                Err(ExportError::Permanent { message }) => {
                    return give_up("the peer rejected it permanently", message, false);
                }
                Err(ExportError::Retryable {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            let wait = retry_after.unwrap_or_else(|| jitter(interval, retry.randomization_factor));
            if !retry.enabled || started.elapsed() + wait > retry.max_elapsed_time {
                return give_up("retries exhausted", message, false);
            }
            metrics.retries.add(1);
            tracing::warn!(exporter = %spec.id, signal = %spec.signal, items, error = %message, wait_ms = wait.as_millis() as u64, "send failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = abort.cancelled() => return give_up("shutdown deadline passed while retrying", message, true),
            }
            interval = interval.mul_f64(retry.multiplier).min(retry.max_interval);
        }
    }
}

/// `interval` randomised by ± `factor`.
fn jitter(interval: Duration, factor: f64) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(Instant::now()) as f64 / u64::MAX as f64; // [0, 1)
    interval.mul_f64((1.0 + factor * (2.0 * random - 1.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporters::SendOutcome;
    use crate::pdata::Batch;
    use crate::pdata::RequestContext;
    use futures::future::BoxFuture;
    use std::sync::Mutex;

    /// Records sends; fails the first `failures` attempts with a retryable error.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<usize>>,
        failures: Mutex<usize>,
    }

    impl Sink for Recorder {
        fn send(
            &self,
            _payload: Payload,
            items: usize,
        ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
            Box::pin(async move {
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    return Err(ExportError::Retryable {
                        message: "down".into(),
                        retry_after: Some(Duration::from_millis(1)),
                    });
                }
                self.sent.lock().unwrap().push(items);
                Ok(SendOutcome::default())
            })
        }
    }

    fn batch(items: usize) -> Batch {
        let payload = crate::pdata::wire::tests_support::traces_request(items);
        Batch {
            signal: Signal::Traces,
            payload: payload.into(),
            items,
            context: RequestContext::internal("t"),
        }
    }

    fn spec(sink: Arc<Recorder>, send_batch_size: usize, queue_size: usize) -> ExporterSpec {
        ExporterSpec {
            id: "test".into(),
            signal: Signal::Traces,
            sink,
            queue: QueueSettings {
                enabled: true,
                num_consumers: 1,
                queue_size,
                ..QueueSettings::default()
            },
            batch: BatchSettings {
                send_batch_size,
                timeout: Duration::from_millis(20),
            },
            retry: RetrySettings::default(),
        }
    }

    // Requests are merged up to the batch size; the remainder leaves on the timer; a retryable
    // failure is retried after the peer's RetryInfo delay; every item is sent exactly once.
    #[tokio::test]
    async fn batches_retries_and_drains() {
        let sink = Arc::new(Recorder::default());
        *sink.failures.lock().unwrap() = 2;
        let telemetry = Telemetry::default();
        let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
        let (handle, task) = spawn_exporter(
            spec(sink.clone(), 10, 100),
            None,
            &telemetry,
            stop.clone(),
            abort,
        );
        for _ in 0..5 {
            let b = batch(4);
            handle.try_reserve(&b).unwrap().fill(b).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        task.await.unwrap();
        let sent = sink.sent.lock().unwrap().clone();
        assert_eq!(sent.iter().sum::<usize>(), 20, "{sent:?}");
        assert!(sent.iter().all(|&n| n <= 12), "{sent:?}");
        let text = telemetry.registry.render();
        assert!(
            text.contains(
                "trailhead_exporter_retries_total{exporter=\"test\",signal=\"traces\"} 2"
            ),
            "{text}"
        );
    }

    // A full queue refuses instead of growing.
    #[tokio::test]
    async fn full_queue_refuses() {
        let sink = Arc::new(Recorder::default());
        *sink.failures.lock().unwrap() = usize::MAX; // never drains
        let telemetry = Telemetry::default();
        let (handle, _task) = spawn_exporter(
            spec(sink, 1, 2),
            None,
            &telemetry,
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let mut refused = 0;
        for _ in 0..10 {
            let b = batch(1);
            match handle.try_reserve(&b) {
                Ok(slot) => slot.fill(b).await.unwrap(),
                Err(_) => refused += 1,
            }
            tokio::task::yield_now().await;
        }
        assert!(refused >= 6, "refused {refused}");
    }
}
