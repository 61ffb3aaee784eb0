//! The exporter driver: bounded queue → batcher → up to `num_consumers` concurrent sends, each
//! retried with exponential backoff.
//!
//! Batches of one signal are merged by concatenating their encodings (protobuf concatenates
//! repeated fields), so batching never decodes. Profiles are the exception: each request is a
//! send of its own, never merged nor split (`send_alone`). Shutdown has two stages: `stop` closes the
//! queue and drains it; `abort` (the drain deadline) gives up on whatever is still retrying and
//! counts it as failed, unless the queue is on disk, where it stays for the next start.

use super::persistent::{DiskQueue, RecordId};
use super::{ExportError, ExporterHandle, FromDisk, Inlet, Payload, Queued, Sink};
use crate::config::{ComponentId, values};
use crate::pdata::Signal;
use crate::pdata::split::{self, Bound};
use crate::telemetry::Telemetry;
use crate::telemetry::catalog;
use crate::telemetry::events::{
    Event, ExportDelivered, ExportFinished, ExportGaveUp, ExportKeptOnDisk, ExportRetrying,
    ExportSplit, ExporterInstruments,
};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
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
    /// The collector's place for the batch keys (see [`BatchSettings`]).
    pub batch: Option<BatchSettings>,
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
            batch: None,
        }
    }
}

impl QueueSettings {
    /// What the collector refuses: a queue that is on must hold something and be read.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.enabled && self.num_consumers == 0 {
            problems.push("`num_consumers` must be positive".into());
        }
        if self.enabled && self.queue_size == 0 {
            problems.push("`queue_size` must be positive".into());
        }
        problems
    }

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

/// `batch` (or the collector's `sending_queue.batch`): merge queued requests into larger sends,
/// and bound every send in items and bytes. The keys combine so:
/// - a send leaves once `min_size` (in `sizer` units; `send_batch_size` is the older name, in
///   items) is waiting, or `flush_timeout` (`timeout`) after its first request came; `0` for
///   either sends each request as it comes;
/// - no send holds more than `max_size` (in `sizer` units; `0`: no bound in that unit), nor
///   more than `max_request_bytes` bytes, whatever the sizer: by default 3.5 MiB, under the
///   4 MiB that Alloy's OTLP receiver and gRPC servers accept by default. A request larger
///   than a bound is split between resources, scopes or items, never inside an item.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// What `min_size` and `max_size` count: `items` (default) or `bytes`.
    pub sizer: BatchSizer,
    /// Send once this much has gathered (the collector's `sending_queue.batch` key); `0` sends each request as it comes.
    pub min_size: Option<usize>,
    /// The batch processor's older name for `min_size`.
    pub send_batch_size: Option<usize>,
    /// No batch larger than this in the sizer's unit; larger requests are split. `0`: no bound.
    pub max_size: usize,
    /// Send what has gathered after this long, however small; must be positive.
    #[serde(deserialize_with = "values::optional_duration")]
    pub flush_timeout: Option<Duration>,
    /// The batch processor's older name for `flush_timeout`; `0` sends each request as it comes.
    #[serde(deserialize_with = "values::optional_duration")]
    pub timeout: Option<Duration>,
    /// No request larger than this many bytes (3.5 MiB by default, under Alloy's 4 MiB); `0`: no byte bound.
    pub max_request_bytes: usize,
}

/// What `min_size` and `max_size` count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSizer {
    #[default]
    Items,
    Bytes,
}

/// Alloy's and gRPC's default limit is 4 MiB; half a MiB is left for what a peer or a proxy
/// on the way counts beyond the protobuf message.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3584 * 1024;

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            sizer: BatchSizer::Items,
            min_size: None,
            send_batch_size: None,
            max_size: 0,
            flush_timeout: None,
            timeout: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// The batch settings resolved: when a send leaves and how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Flush once this many items, or bytes, are waiting.
    pub flush_items: usize,
    pub flush_bytes: usize,
    pub flush_timeout: Duration,
    pub bound: Bound,
}

impl BatchPolicy {
    /// Each request sent on its own as it came, with no bound: for sinks that keep or split
    /// what they get themselves (debug, prometheus, prometheusremotewrite).
    pub const UNBATCHED: BatchPolicy = BatchPolicy {
        flush_items: 1,
        flush_bytes: usize::MAX,
        flush_timeout: Duration::ZERO,
        bound: Bound {
            bytes: usize::MAX,
            items: usize::MAX,
        },
    };
}

impl BatchSettings {
    /// Resolves the keys into a policy, or says which key is wrong (the collector's checks).
    pub fn policy(&self) -> Result<BatchPolicy, String> {
        if self.min_size.is_some() && self.send_batch_size.is_some() {
            return Err("give `min_size` or its older name `send_batch_size`, not both".into());
        }
        if self.flush_timeout.is_some() && self.timeout.is_some() {
            return Err("give `flush_timeout` or its older name `timeout`, not both".into());
        }
        if self.send_batch_size.is_some() && self.sizer == BatchSizer::Bytes {
            return Err(
                "`send_batch_size` counts items; with `sizer: bytes` use `min_size`".into(),
            );
        }
        if self.flush_timeout == Some(Duration::ZERO) {
            return Err(
                "`flush_timeout` must be positive (`timeout: 0` sends each request as it comes)"
                    .into(),
            );
        }
        // The collector's default, 8192, is in the sizer's unit: with `bytes`, 8 KiB.
        let min = self.min_size.or(self.send_batch_size).unwrap_or(8192);
        if self.max_size != 0 && self.max_size < min {
            return Err(format!(
                "`max_size` ({}) must be greater or equal to `min_size` ({min})",
                self.max_size
            ));
        }
        let unbounded = |n: usize| if n == 0 { usize::MAX } else { n };
        let (flush_items, flush_bytes, max_items, max_bytes) = match self.sizer {
            BatchSizer::Items => (min, usize::MAX, unbounded(self.max_size), usize::MAX),
            BatchSizer::Bytes => (usize::MAX, min, usize::MAX, unbounded(self.max_size)),
        };
        // A zero threshold means "send each request as it comes".
        let flush_timeout = self
            .flush_timeout
            .or(self.timeout)
            .unwrap_or(Duration::from_millis(200));
        let flush_timeout = if min == 0 {
            Duration::ZERO
        } else {
            flush_timeout
        };
        Ok(BatchPolicy {
            flush_items,
            flush_bytes,
            flush_timeout,
            bound: Bound {
                bytes: max_bytes.min(unbounded(self.max_request_bytes)),
                items: max_items,
            },
        })
    }
}

/// `retry_on_failure`: the collector's defaults (5 s → 30 s, give up after 300 s).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retry retryable failures; off, a failed send is dropped and counted.
    pub enabled: bool,
    /// The first wait after a failure.
    #[serde(deserialize_with = "values::duration")]
    pub initial_interval: Duration,
    /// The longest wait between attempts.
    #[serde(deserialize_with = "values::duration")]
    pub max_interval: Duration,
    /// Give up on a request after retrying this long; `0` retries until the peer is back or
    /// the shutdown deadline passes, as in the collector.
    #[serde(deserialize_with = "values::duration")]
    pub max_elapsed_time: Duration,
    /// Each wait is the previous one times this, up to `max_interval`.
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

/// The batch keys of an exporter that takes them in two places, trailhead's `batch:` or the
/// collector's `sending_queue.batch:` (the defaults with neither).
pub fn batch_settings(batch: &Option<BatchSettings>, queue: &QueueSettings) -> BatchSettings {
    batch
        .clone()
        .or_else(|| queue.batch.clone())
        .unwrap_or_default()
}

/// The exporterhelper's checks of an exporter's batch, queue and retry keys, as (key, reason),
/// zero and negative values included: batch keys in both places, a batch policy the batcher
/// refuses, then `sending_queue` and `retry_on_failure`.
pub fn sending_problems(
    batch: &Option<BatchSettings>,
    queue: &QueueSettings,
    retry: &RetrySettings,
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if batch.is_some() && queue.batch.is_some() {
        problems.push((
            "batch",
            "give the batch keys under `batch` or `sending_queue.batch`, not both".into(),
        ));
    }
    let section = if batch.is_some() {
        "batch"
    } else {
        "sending_queue"
    };
    if let Err(why) = batch_settings(batch, queue).policy() {
        problems.push((section, why));
    }
    problems.extend(queue.problems().into_iter().map(|p| ("sending_queue", p)));
    problems.extend(
        retry
            .problems()
            .into_iter()
            .map(|p| ("retry_on_failure", p)),
    );
    problems
}

impl RetrySettings {
    /// What the collector refuses (checked even with `enabled: false`, as it does). Negative
    /// durations are refused when they are read.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            problems.push(format!(
                "`randomization_factor` must be within [0, 1], found {}",
                self.randomization_factor
            ));
        }
        if self.multiplier < 0.0 || self.multiplier.is_nan() {
            problems.push(format!(
                "`multiplier` must be zero or more, found {}",
                self.multiplier
            ));
        }
        // 0 retries for ever, so it bounds nothing.
        if !self.max_elapsed_time.is_zero() {
            for (key, interval) in [
                ("initial_interval", self.initial_interval),
                ("max_interval", self.max_interval),
            ] {
                if self.max_elapsed_time < interval {
                    problems.push(format!("`max_elapsed_time` must not be less than `{key}`"));
                }
            }
        }
        problems
    }
}

/// What one exporter instance needs to run.
pub struct ExporterSpec {
    pub id: String,
    pub signal: Signal,
    pub sink: Arc<dyn Sink>,
    pub queue: QueueSettings,
    pub batch: BatchPolicy,
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
    let values = [spec.id.as_str(), spec.signal.as_str()];
    let tracer = telemetry.tracer.clone();
    let metrics = ExporterInstruments::new(&telemetry.registry, tracer, &spec.id, spec.signal);
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
            telemetry
                .registry
                .gauge_fn(&catalog::EXPORTER_QUEUE_SIZE, &values, move || {
                    weak.upgrade()
                        .map_or(0.0, |tx| (tx.max_capacity() - tx.capacity()) as f64)
                });
            (Inlet::Memory(tx), rx, capacity, stop)
        }
        Some(disk) => {
            // Enough read ahead to keep every sender busy; the rest stays on disk.
            let (tx, rx) = mpsc::channel(spec.queue.num_consumers.max(1) * 2);
            let gauge = Arc::downgrade(&disk);
            telemetry
                .registry
                .gauge_fn(&catalog::EXPORTER_QUEUE_SIZE, &values, move || {
                    gauge.upgrade().map_or(0.0, |d| d.len() as f64)
                });
            let capacity = disk.capacity();
            let name = format!("disk feeder {id}/{}", spec.signal.as_str());
            let budget = ReadAhead::new(read_ahead_bytes(&spec.batch));
            let held = budget.clone();
            telemetry
                .registry
                .gauge_fn(&catalog::EXPORTER_READ_AHEAD, &values, move || {
                    held.held() as f64
                });
            let feeder = feed(disk.clone(), tx, budget, id.clone(), stop, abort.clone());
            telemetry.supervisor.spawn(name, feeder);
            // The batcher runs until the feeder has handed over everything on disk.
            (Inlet::Disk(disk), rx, capacity, CancellationToken::new())
        }
    };
    telemetry
        .registry
        .gauge_fn(&catalog::EXPORTER_QUEUE_CAPACITY, &values, move || {
            capacity as f64
        });
    let handle = ExporterHandle {
        id,
        inlet,
        unsplittable_bound: spec.batch.bound.bytes,
    };
    let driver = Arc::new(Driver {
        spec,
        metrics,
        disk,
        abort,
    });
    let name = format!(
        "exporter {}/{}",
        driver.spec.id,
        driver.spec.signal.as_str()
    );
    let task = telemetry
        .supervisor
        .spawn(name, run(driver, rx, stop_batcher));
    (handle, task)
}

/// How many bytes read back from disk may be in memory at once (batching, sending, retrying):
/// two of the largest requests, so one can fill while another is sent, within 4–64 MiB (with
/// no byte bound, 64). An outage then costs disk, not memory (docs/RELIABILITY.md has the
/// figures with Dapr's exporter through an outage).
fn read_ahead_bytes(batch: &BatchPolicy) -> usize {
    const FLOOR: usize = 4 << 20;
    const CEILING: usize = 64 << 20;
    batch.bound.bytes.saturating_mul(2).clamp(FLOOR, CEILING)
}

/// The bytes of read-back requests memory may hold, as permits of a semaphore.
#[derive(Clone)]
struct ReadAhead {
    permits: Arc<Semaphore>,
    total: usize,
}

impl ReadAhead {
    fn new(total: usize) -> Self {
        ReadAhead {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Waits until `bytes` fit; a request larger than the whole budget takes all of it.
    async fn take(&self, bytes: usize) -> OwnedSemaphorePermit {
        let cost = bytes.clamp(1, self.total) as u32;
        let permits = self.permits.clone();
        permits
            .acquire_many_owned(cost)
            .await
            .expect("the budget is never closed")
    }

    fn held(&self) -> usize {
        self.total - self.permits.available_permits()
    }
}

/// Hands stored requests to the batcher in order, each within the read-ahead budget; after
/// `stop`, until the disk is drained.
async fn feed(
    disk: Arc<DiskQueue>,
    tx: mpsc::Sender<Queued>,
    budget: ReadAhead,
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
        let budget = tokio::select! {
            permit = budget.take(stored.payload.len()) => permit,
            () = abort.cancelled() => break,
        };
        let queued = Queued {
            payload: stored.payload.into(),
            items: stored.items,
            stored: Some(FromDisk {
                id: stored.id,
                budget,
            }),
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

/// A disk record's acknowledgement, shared by every send its request was split into: the
/// record is acknowledged once the last of them is done, unless one was kept for the next start.
struct StoredRecord {
    disk: Arc<DiskQueue>,
    id: RecordId,
    keep: AtomicBool,
    /// Returned to the read-ahead budget when the last send holding the record is done.
    _budget: OwnedSemaphorePermit,
}

impl Drop for StoredRecord {
    fn drop(&mut self) {
        if !self.keep.load(Ordering::Relaxed) {
            self.disk.ack(self.id);
        }
    }
}

/// Requests waiting to be merged into one send.
#[derive(Default)]
struct Pending {
    parts: Vec<Bytes>,
    items: usize,
    bytes: usize,
    since: Option<Instant>,
    stored: Vec<Arc<StoredRecord>>,
}

/// One send's worth of requests.
struct Outgoing {
    payload: Payload,
    items: usize,
    /// The disk records it holds, acknowledged once every send holding them is done.
    stored: Vec<Arc<StoredRecord>>,
}

impl Pending {
    fn push(&mut self, piece: split::Piece, stored: Option<&Arc<StoredRecord>>) {
        self.since.get_or_insert_with(Instant::now);
        self.items += piece.items;
        self.bytes += piece.payload.len();
        self.parts.extend(piece.payload.parts().iter().cloned());
        self.stored.extend(stored.cloned());
    }

    /// Whether `piece` would take this batch past `bound`.
    fn would_exceed(&self, piece: &split::Piece, bound: Bound) -> bool {
        !self.parts.is_empty()
            && (self.bytes + piece.payload.len() > bound.bytes
                || self.items + piece.items > bound.items)
    }

    fn is_due(&self, policy: &BatchPolicy) -> bool {
        self.items >= policy.flush_items
            || self.bytes >= policy.flush_bytes
            || policy.flush_timeout.is_zero()
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
    metrics: ExporterInstruments,
    disk: Option<Arc<DiskQueue>>,
    abort: CancellationToken,
}

async fn run(driver: Arc<Driver>, mut rx: mpsc::Receiver<Queued>, stop: CancellationToken) {
    let senders = Arc::new(Semaphore::new(driver.spec.queue.num_consumers.max(1)));
    let mut sends = JoinSet::new();
    let mut pending = Pending::default();
    let mut closing = false;
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let policy = driver.spec.batch;
    loop {
        let deadline = pending
            .since
            .map_or(far_future, |t| t + policy.flush_timeout);
        let received = tokio::select! {
            biased;
            () = stop.cancelled(), if !closing => {
                rx.close();
                closing = true;
                continue;
            }
            () = tokio::time::sleep_until(deadline) => None,
            received = rx.recv() => match received {
                Some(queued) => Some(queued),
                None => break,
            },
        };
        match received {
            None => dispatch(&driver, &mut pending, &senders, &mut sends).await,
            Some(queued) => {
                let stored = queued.stored.map(|from| {
                    Arc::new(StoredRecord {
                        disk: driver.disk.clone().expect("a stored request has its disk"),
                        id: from.id,
                        keep: AtomicBool::new(false),
                        _budget: from.budget,
                    })
                });
                let signal = driver.spec.signal;
                if !signal.merges_by_concatenation() {
                    let piece = split::Piece {
                        payload: queued.payload,
                        items: queued.items,
                    };
                    send_alone(&driver, piece, stored, &senders, &mut sends).await;
                    continue;
                }
                for piece in split::split(signal, &queued.payload, queued.items, policy.bound) {
                    if pending.would_exceed(&piece, policy.bound) {
                        dispatch(&driver, &mut pending, &senders, &mut sends).await;
                    }
                    pending.push(piece, stored.as_ref());
                    if pending.is_due(&policy) {
                        dispatch(&driver, &mut pending, &senders, &mut sends).await;
                    }
                }
            }
        }
        while sends.try_join_next().is_some() {}
    }
    dispatch(&driver, &mut pending, &senders, &mut sends).await;
    while sends.join_next().await.is_some() {}
    driver.spec.sink.drain(&driver.abort).await;
}

/// A request of a signal that must not be merged (profiles) goes in a send of its own. One over
/// the byte bound was refused at the queue's door (`ExporterHandle::try_reserve`), so this
/// only catches a bound that changed since (a restart on a persistent queue): it is given up,
/// counted and logged, as cutting it would break its dictionary.
async fn send_alone(
    driver: &Arc<Driver>,
    piece: split::Piece,
    stored: Option<Arc<StoredRecord>>,
    senders: &Arc<Semaphore>,
    sends: &mut JoinSet<()>,
) {
    let bound = driver.spec.batch.bound.bytes;
    let mut alone = Pending::default();
    alone.push(piece, stored.as_ref());
    if alone.bytes > bound {
        let outgoing = alone.take().expect("one request");
        let mut delivery = Delivery::default();
        let why = "a profiles request is larger than max_request_bytes, and it is never split \
                   (its profiles share one dictionary) nor merged";
        let error = format!("{} bytes over the bound of {bound}", outgoing.payload.len());
        driver.give_up(&mut delivery, &outgoing, outgoing.items, why, error, false);
        return driver.finish(&outgoing, delivery, Sent::default());
    }
    dispatch(driver, &mut alone, senders, sends).await;
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
            let mut delivery = Delivery::default();
            driver.give_up(&mut delivery, &outgoing, outgoing.items, "shutdown deadline passed before a sender was free", String::new(), true);
            return driver.finish(&outgoing, delivery, Sent::default());
        }
    };
    let Ok(permit) = permit else { return };
    driver.metrics.batch_items.observe(outgoing.items as f64);
    let driver = driver.clone();
    sends.spawn(async move {
        let mut sent = Sent::default();
        let delivery = driver.deliver(&outgoing, &mut sent).await;
        driver.finish(&outgoing, delivery, sent);
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

/// What became of one outgoing batch, which a size refusal may have split.
#[derive(Default)]
struct Delivery {
    /// Items given up and counted as failed.
    dropped: usize,
    /// Items left on disk for the next start, because the shutdown deadline passed.
    kept: usize,
    /// The last reason something was given up.
    error: Option<String>,
}

/// Why one attempt chain of a piece ended without delivery.
enum Undelivered {
    /// Given up: `why`, the peer's last `error`, and whether only the shutdown deadline did it.
    GaveUp {
        why: &'static str,
        error: String,
        at_shutdown: bool,
    },
    /// The peer refused it as too large: split it, or drop it if it is one item.
    TooLarge(String),
}

impl Driver {
    /// Sends an outgoing batch; a piece the peer refuses as too large is split in halves and
    /// sent again, down to single items, and only an item too large alone is dropped.
    async fn deliver(&self, outgoing: &Outgoing, sent: &mut Sent) -> Delivery {
        let mut delivery = Delivery::default();
        let mut work = vec![split::Piece {
            payload: outgoing.payload.clone(),
            items: outgoing.items,
        }];
        while let Some(piece) = work.pop() {
            match self.send_with_retry(&piece, sent).await {
                Ok(()) => {}
                Err(Undelivered::TooLarge(error)) => {
                    let half = Bound {
                        bytes: piece.payload.len().div_ceil(2),
                        items: usize::MAX,
                    };
                    let halves = split::split(self.spec.signal, &piece.payload, piece.items, half);
                    if halves.len() > 1 {
                        let (items, bytes) = (piece.items, piece.payload.len());
                        let error = &error;
                        ExportSplit {
                            items,
                            bytes,
                            error,
                        }
                        .emit(&self.metrics);
                        work.extend(halves.into_iter().rev());
                    } else {
                        let why = if self.spec.signal.merges_by_concatenation() {
                            "the peer refuses this item as too large on its own"
                        } else {
                            "the peer refuses this profiles request as too large, and it is never split"
                        };
                        let error = format!("{} bytes: {error}", piece.payload.len());
                        self.give_up(&mut delivery, outgoing, piece.items, why, error, false);
                    }
                }
                Err(Undelivered::GaveUp {
                    why,
                    error,
                    at_shutdown,
                }) => {
                    let rest = piece.items + work.iter().map(|p| p.items).sum::<usize>();
                    if at_shutdown {
                        self.give_up(&mut delivery, outgoing, rest, why, error, true);
                        return delivery;
                    }
                    self.give_up(&mut delivery, outgoing, piece.items, why, error, false);
                }
            }
        }
        delivery
    }

    /// Counts and logs `items` given up; at shutdown, items whose requests are on disk are
    /// kept there for the next start instead.
    fn give_up(
        &self,
        delivery: &mut Delivery,
        outgoing: &Outgoing,
        items: usize,
        why: &str,
        error: String,
        at_shutdown: bool,
    ) {
        if at_shutdown && !outgoing.stored.is_empty() {
            delivery.kept += items;
            ExportKeptOnDisk { items, why }.emit(&self.metrics);
        } else {
            delivery.dropped += items;
            let error = &error;
            ExportGaveUp { items, why, error }.emit(&self.metrics);
        }
        delivery.error = Some(format!("{why}: {error}"));
    }

    /// Records how a batch's delivery ended in the self-trace, and keeps its disk records
    /// for the next start if any of it was kept (they are acknowledged when the last send
    /// holding them is dropped).
    fn finish(&self, outgoing: &Outgoing, delivery: Delivery, sent: Sent) {
        if delivery.kept > 0 {
            for record in &outgoing.stored {
                record.keep.store(true, Ordering::Relaxed);
            }
        }
        let items = outgoing.items;
        let outcome = match (delivery.kept, delivery.dropped) {
            (kept, _) if kept > 0 => "kept on disk",
            (0, 0) => "delivered",
            (0, dropped) if dropped == items => "dropped",
            _ => "partly dropped",
        };
        ExportFinished {
            started: sent.started,
            items,
            attempts: sent.attempts,
            outcome,
            error: delivery.error.as_deref(),
        }
        .emit(&self.metrics);
    }

    /// Sends one piece, retrying transient failures with backoff until `max_elapsed_time`
    /// (`0`: until the peer is back or the shutdown deadline passes).
    async fn send_with_retry(
        &self,
        piece: &split::Piece,
        sent: &mut Sent,
    ) -> Result<(), Undelivered> {
        let (spec, metrics, abort) = (&self.spec, &self.metrics, &self.abort);
        let (payload, items) = (&piece.payload, piece.items);
        let retry = &spec.retry;
        let started = Instant::now();
        let mut interval = retry.initial_interval;
        let give_up = |why, error: String, at_shutdown| {
            Err(Undelivered::GaveUp {
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
                    let (rejected, message) = (outcome.rejected, &outcome.message);
                    ExportDelivered {
                        items,
                        bytes: payload.len(),
                        rejected,
                        message,
                    }
                    .emit(metrics);
                    return Ok(());
                }
                Err(ExportError::TooLarge { message }) => {
                    return Err(Undelivered::TooLarge(message));
                }
                Err(ExportError::Permanent { message }) => {
                    return give_up("the peer rejected it permanently", message, false);
                }
                Err(ExportError::Retryable {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            // The collector waits the longer of its backoff and the peer's throttle delay.
            let backoff = jitter(interval, retry.randomization_factor);
            let wait = retry_after.map_or(backoff, |after| after.max(backoff));
            let forever = retry.max_elapsed_time.is_zero();
            if !retry.enabled || (!forever && started.elapsed() + wait > retry.max_elapsed_time) {
                return give_up("retries exhausted", message, false);
            }
            ExportRetrying {
                items,
                error: &message,
                wait,
            }
            .emit(metrics);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = abort.cancelled() => return give_up("shutdown deadline passed while retrying", message, true),
            }
            interval = next_interval(interval, retry);
        }
    }
}

/// The backoff's next interval: multiplied, and capped by `max_interval` unless that is 0
/// (with `multiplier` 0 or `max_interval` 0 the collector's backoff stays near the first).
fn next_interval(interval: Duration, retry: &RetrySettings) -> Duration {
    if retry.multiplier <= 0.0 || retry.max_interval.is_zero() {
        return interval;
    }
    interval.mul_f64(retry.multiplier).min(retry.max_interval)
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
        /// The size of every request delivered.
        bytes: Mutex<Vec<usize>>,
        failures: Mutex<usize>,
        /// Requests over this many bytes are refused as too large, as a gRPC server's
        /// receive limit refuses them.
        limit: Option<usize>,
    }

    impl Sink for Recorder {
        fn send(
            &self,
            payload: Payload,
            items: usize,
        ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
            Box::pin(async move {
                if self.limit.is_some_and(|limit| payload.len() > limit) {
                    return Err(ExportError::TooLarge {
                        message: format!(
                            "received message larger than max ({} vs. {:?})",
                            payload.len(),
                            self.limit
                        ),
                    });
                }
                let joined = payload.to_bytes();
                assert_eq!(
                    crate::pdata::wire::count_items(Signal::Traces, &joined),
                    Ok(items)
                );
                self.bytes.lock().unwrap().push(payload.len());
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
                send_batch_size: Some(send_batch_size),
                timeout: Some(Duration::from_millis(20)),
                ..BatchSettings::default()
            }
            .policy()
            .unwrap(),
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

    /// Traces of `spans` spans, each with an attribute of `size` bytes.
    fn big_spans(spans: usize, size: usize) -> Batch {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let span = Span {
            name: "GET".into(),
            attributes: vec![KeyValue {
                key: "url.full".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("x".repeat(size))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; spans],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let context = RequestContext::internal("t");
        Batch::from_message(Signal::Traces, &request, context)
    }

    /// Runs `batches` through an exporter of `spec` to the end; returns its counters.
    async fn run_through(spec: ExporterSpec, batches: Vec<Batch>) -> ExporterInstruments {
        let telemetry = Telemetry::default();
        // Asking the registry again returns the counters the exporter counts into.
        let metrics = ExporterInstruments::new(&telemetry.registry, None, &spec.id, spec.signal);
        let stop = CancellationToken::new();
        let (handle, task) = spawn_exporter(
            spec,
            None,
            &telemetry,
            stop.clone(),
            CancellationToken::new(),
        );
        for b in batches {
            handle.try_reserve(&b).unwrap().fill(b).await.unwrap();
        }
        stop.cancel();
        task.await.unwrap();
        metrics
    }

    /// Records every payload sent, whole.
    #[derive(Default)]
    struct Payloads(Mutex<Vec<Bytes>>);

    impl Sink for Payloads {
        fn send(
            &self,
            payload: Payload,
            _items: usize,
        ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
            self.0.lock().unwrap().push(payload.to_bytes());
            Box::pin(async { Ok(SendOutcome::default()) })
        }
    }

    // Profiles requests are sent one by one, never merged, whatever the batch settings say
    // (each has its own dictionary); one over the byte bound is refused at the queue's door,
    // not cut and not accepted to be dropped, and the requests after it still go.
    #[tokio::test]
    async fn profiles_are_never_merged_nor_cut() {
        use crate::exporters::QueueError;
        use crate::pdata::profiles::tests_support::request;
        use prost::Message;
        let sink = Arc::new(Payloads::default());
        let encoded: Vec<Bytes> = [&[2][..], &[3, 1], &[400], &[1]]
            .iter()
            .map(|samples| Bytes::from(request(samples).encode_to_vec()))
            .collect();
        let bound = encoded[0].len() * 4;
        assert!(encoded[2].len() > bound);
        let profiles_spec = || {
            let mut spec = spec(Arc::new(Recorder::default()), 100_000, 100);
            spec.signal = Signal::Profiles;
            spec.sink = sink.clone();
            spec.batch.bound.bytes = bound;
            spec
        };
        let context = || RequestContext::internal("t");
        let batch = |b: &Bytes| Batch::from_protobuf(Signal::Profiles, b.clone(), context());
        // The one over the bound is refused at the door, before anything is accepted.
        let telemetry = Telemetry::default();
        let tokens = (CancellationToken::new(), CancellationToken::new());
        let (handle, _task) = spawn_exporter(profiles_spec(), None, &telemetry, tokens.0, tokens.1);
        let refused = handle.try_reserve(&batch(&encoded[2]).unwrap()).err();
        assert!(matches!(refused, Some(QueueError::TooLarge { bound: b, .. }) if b == bound));
        let batches = [0, 1, 3].map(|i| batch(&encoded[i]).unwrap()).into();
        let metrics = run_through(profiles_spec(), batches).await;
        let sent = sink.0.lock().unwrap().clone();
        assert_eq!(
            sent,
            vec![encoded[0].clone(), encoded[1].clone(), encoded[3].clone()]
        );
        assert_eq!(metrics.failed.get(), 0);
        assert_eq!(metrics.size_splits.get(), 0);
    }

    // Merged sends stay under `max_request_bytes`; a request larger than it alone is split.
    #[tokio::test]
    async fn sends_stay_under_the_byte_bound() {
        let sink = Arc::new(Recorder::default());
        let mut spec = spec(sink.clone(), 100_000, 100);
        spec.batch.bound.bytes = 50_000;
        let mut batches: Vec<Batch> = (0..20).map(|_| big_spans(10, 900)).collect();
        batches.push(big_spans(200, 900)); // ~190 KB in one request
        let metrics = run_through(spec, batches).await;
        let bytes = sink.bytes.lock().unwrap().clone();
        assert!(bytes.iter().all(|&b| b <= 50_000), "{bytes:?}");
        assert_eq!(sink.sent.lock().unwrap().iter().sum::<usize>(), 400);
        assert_eq!(metrics.failed.get(), 0);
    }

    // A peer's size refusal splits the request in halves down to single items: everything
    // that fits arrives, only the item too large alone is dropped, and it is counted.
    #[tokio::test]
    async fn a_size_refusal_is_split_down_to_single_items() {
        let sink = Arc::new(Recorder {
            limit: Some(40_000),
            ..Recorder::default()
        });
        let mut spec = spec(sink.clone(), 100_000, 100);
        spec.batch.bound.bytes = usize::MAX; // only the peer bounds it
        let batches = vec![big_spans(300, 900), big_spans(1, 60_000), big_spans(5, 900)];
        let metrics = run_through(spec, batches).await;
        assert_eq!(sink.sent.lock().unwrap().iter().sum::<usize>(), 305);
        assert_eq!(metrics.failed.get(), 1);
        assert!(
            metrics.size_splits.get() >= 4,
            "{} splits",
            metrics.size_splits.get()
        );
    }

    // Through an outage a persistent queue holds at most its read-ahead budget in memory,
    // however much waits on disk; once the peer is back every request is sent.
    #[tokio::test]
    async fn an_outage_fills_the_disk_not_memory() {
        let dir = tempfile::tempdir().unwrap();
        let limits = super::super::persistent::Limits {
            requests: 1000,
            bytes: 1 << 30,
        };
        let disk = DiskQueue::open(dir.path(), false, limits).unwrap();
        let sink = Arc::new(Recorder::default());
        *sink.failures.lock().unwrap() = 200;
        let mut spec = spec(sink.clone(), 1, 1000);
        spec.queue.num_consumers = 10;
        spec.batch.bound.bytes = 100_000; // a budget of 4 MiB, the floor
        spec.retry.initial_interval = Duration::from_millis(5);
        spec.retry.max_elapsed_time = Duration::ZERO;
        let telemetry = Telemetry::default();
        let stop = CancellationToken::new();
        let (handle, task) = spawn_exporter(
            spec,
            Some(disk),
            &telemetry,
            stop.clone(),
            CancellationToken::new(),
        );
        for _ in 0..60 {
            let b = big_spans(500, 900); // ~470 KB each, 28 MB in all
            handle.try_reserve(&b).unwrap().fill(b).await.unwrap();
        }
        let held = || {
            let text = telemetry.registry.render();
            let line = text
                .lines()
                .find(|l| l.starts_with("trailhead_exporter_read_ahead_bytes{"))
                .unwrap()
                .to_string();
            line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
        };
        let mut most = 0f64;
        while *sink.failures.lock().unwrap() > 0 {
            most = most.max(held());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(most > 0.0 && most <= (4 << 20) as f64, "held {most} bytes");
        stop.cancel();
        task.await.unwrap();
        assert_eq!(sink.sent.lock().unwrap().iter().sum::<usize>(), 30_000);
    }

    // `max_elapsed_time: 0` retries until the peer is back, as in the collector.
    #[tokio::test]
    async fn zero_max_elapsed_time_retries_until_the_peer_is_back() {
        let sink = Arc::new(Recorder::default());
        *sink.failures.lock().unwrap() = 30;
        let mut spec = spec(sink.clone(), 1, 10);
        spec.retry = RetrySettings {
            initial_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(2),
            max_elapsed_time: Duration::ZERO,
            ..RetrySettings::default()
        };
        let metrics = run_through(spec, vec![batch(3)]).await;
        assert_eq!(*sink.sent.lock().unwrap(), [3]);
        assert_eq!(metrics.retries.get(), 30);
        assert_eq!(metrics.failed.get(), 0);
    }

    // The batch keys resolve as the collector reads them, zero values included.
    #[test]
    fn batch_keys_resolve_like_the_collector() {
        let policy = |yaml: &str| {
            crate::config::tree::from_str::<BatchSettings>(yaml)
                .unwrap()
                .policy()
        };
        let default = policy("{}").unwrap();
        assert_eq!(
            (default.flush_items, default.flush_timeout),
            (8192, Duration::from_millis(200))
        );
        assert_eq!(default.bound.bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert!(
            policy("min_size: 0").unwrap().flush_timeout.is_zero(),
            "0 sends at once"
        );
        assert!(policy("timeout: 0").unwrap().flush_timeout.is_zero());
        assert!(
            policy("flush_timeout: 0")
                .unwrap_err()
                .contains("must be positive")
        );
        assert_eq!(
            policy("sizer: bytes").unwrap().flush_bytes,
            8192,
            "the collector's default, in bytes"
        );
        let bytes = policy("{sizer: bytes, min_size: 1000, max_size: 2000000}").unwrap();
        assert_eq!((bytes.flush_bytes, bytes.bound.bytes), (1000, 2_000_000));
        assert_eq!(
            policy("max_size: 0").unwrap().bound.items,
            usize::MAX,
            "0: no bound"
        );
        assert_eq!(
            policy("max_request_bytes: 0").unwrap().bound.bytes,
            usize::MAX
        );
        assert!(
            policy("{min_size: 10, max_size: 5}")
                .unwrap_err()
                .contains("greater or equal")
        );
        assert!(policy("{min_size: 1, send_batch_size: 1}").is_err());
        assert!(crate::config::tree::from_str::<BatchSettings>("min_size: -1").is_err());
    }

    // Retry and queue values the collector refuses are refused; 0 for max_elapsed_time is
    // "for ever", so it bounds nothing; durations may be bare nanoseconds.
    #[test]
    fn retry_and_queue_checks_match_the_collector() {
        let retry =
            |yaml: &str| crate::config::tree::from_str::<RetrySettings>(yaml).map(|r| r.problems());
        assert_eq!(retry("max_elapsed_time: 0").unwrap(), Vec::<String>::new());
        assert_eq!(
            crate::config::tree::from_str::<RetrySettings>("max_elapsed_time: 0")
                .unwrap()
                .max_elapsed_time,
            Duration::ZERO
        );
        assert_eq!(
            retry("{max_elapsed_time: 1s, initial_interval: 5s}")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(retry("randomization_factor: 1.5").unwrap().len(), 1);
        assert_eq!(retry("multiplier: -1").unwrap().len(), 1);
        let negative = retry("initial_interval: -5s").unwrap_err().to_string();
        assert!(negative.contains("negative duration"), "{negative}");
        let queue = |yaml: &str| {
            crate::config::tree::from_str::<QueueSettings>(yaml)
                .unwrap()
                .problems()
        };
        assert_eq!(queue("queue_size: 0"), ["`queue_size` must be positive"]);
        assert_eq!(
            queue("num_consumers: 0"),
            ["`num_consumers` must be positive"]
        );
        assert!(queue("{enabled: false, queue_size: 0}").is_empty());
    }
}
