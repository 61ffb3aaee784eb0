//! Exporters: a bounded queue per exporter and signal, a batcher, and concurrent senders with
//! retry, in front of a [`Sink`] that knows one protocol (`otlp`, `debug`, `prometheus`...).
//!
//! Backpressure runs backwards through bounded steps: when every sender is busy the batcher
//! stops reading, the queue fills, [`ExporterHandle::try_reserve`] fails, and receivers refuse
//! with 503 / UNAVAILABLE. Memory is bounded by `queue_size` requests plus one batch per sender.
//! With `sending_queue.storage`, the queue is a log on disk ([`persistent`]) instead, read back
//! into a short channel in front of the same batcher.

pub mod debug;
pub mod loadbalancing;
pub mod otlp;
pub mod otlp_http;
mod persistent;
pub mod prometheus;
mod queue;
pub mod tls;

pub use persistent::{DiskQueue, FileStorageConfig};
pub use queue::{
    BatchPolicy, BatchSettings, BatchSizer, DEFAULT_MAX_REQUEST_BYTES, ExporterSpec, QueueSettings,
    QueueSizer, RetrySettings, batch_settings, sending_problems, spawn_exporter,
};

pub use crate::pdata::Payload;
use crate::pdata::{Batch, Signal};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a batch found no place in an exporter's queue. Each is worth a retry later.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is full: the sender should back off and retry.
    #[error("exporter `{0}` queue is full; retry later")]
    Full(String),
    /// trailhead is shutting down: the sender should retry (another replica will take it).
    #[error("trailhead is shutting down; retry later")]
    ShuttingDown,
    /// A persistent queue is full or cannot be written (the disk is full).
    #[error("exporter `{exporter}` cannot queue the request: {message}; retry later")]
    Storage { exporter: String, message: String },
    /// A request that cannot be split (profiles: its profiles share one dictionary) is over
    /// the exporter's byte bound. Refused before it is accepted, so the sender learns it; once
    /// accepted it could only be dropped. Not worth a retry.
    #[error(
        "exporter `{exporter}` cannot send a {signal} request of {bytes} bytes: its \
         max_request_bytes is {bound}, and a {signal} request is never split (its items share \
         one dictionary); send smaller requests"
    )]
    TooLarge {
        exporter: String,
        signal: Signal,
        bytes: usize,
        bound: usize,
    },
}

/// One protocol's way of delivering an encoded export request.
pub trait Sink: Send + Sync + 'static {
    fn send(
        &self,
        payload: Payload,
        items: usize,
    ) -> BoxFuture<'_, Result<SendOutcome, ExportError>>;

    /// Called once the exporter's own queue is drained, before it reports done: a sink that
    /// feeds queues of its own (`loadbalancing`) drains them here, giving up at `abort`.
    fn drain<'a>(&'a self, _abort: &'a tokio_util::sync::CancellationToken) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A delivered request; the peer may have rejected some of it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub rejected: u64,
    pub message: String,
}

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Worth retrying, after `retry_after` when the peer said so.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The peer refused the request as larger than it accepts (gRPC RESOURCE_EXHAUSTED for
    /// message size, HTTP 413): the exporter splits it and sends the halves.
    #[error("{message}")]
    TooLarge { message: String },
    /// Retrying would fail the same way.
    #[error("{message}")]
    Permanent { message: String },
}

/// What the batcher takes from a queue: an encoded request, its item count, and, when the
/// queue is on disk, where it came from.
pub struct Queued {
    pub payload: Payload,
    pub items: usize,
    pub stored: Option<FromDisk>,
}

/// A request read back from disk: the record to acknowledge once it is done, and its share of
/// the read-ahead budget (its size in bytes), given back at the same time. The budget is what
/// keeps an outage from growing memory: what waits on disk is not also held in memory.
pub struct FromDisk {
    pub id: persistent::RecordId,
    pub budget: tokio::sync::OwnedSemaphorePermit,
}

/// The pipelines' end of one exporter's queue.
#[derive(Clone)]
pub struct ExporterHandle {
    pub id: Arc<str>,
    inlet: Inlet,
    /// The byte bound a request that cannot be split must fit (`max_request_bytes`).
    unsplittable_bound: usize,
}

#[derive(Clone)]
enum Inlet {
    Memory(mpsc::Sender<Queued>),
    Disk(Arc<persistent::DiskQueue>),
}

/// A claimed place in an exporter's queue.
pub enum Slot<'a> {
    Memory(mpsc::Permit<'a, Queued>),
    Disk {
        exporter: &'a str,
        reservation: persistent::Reservation,
    },
}

/// A persistent queue's refusal, naming its exporter.
fn storage_error(exporter: &str, error: persistent::StoreError) -> QueueError {
    QueueError::Storage {
        exporter: exporter.to_string(),
        message: error.to_string(),
    }
}

impl ExporterHandle {
    /// Claims a queue slot for `batch` without waiting.
    pub fn try_reserve(&self, batch: &Batch) -> Result<Slot<'_>, QueueError> {
        let bytes = batch.payload.len();
        if !batch.signal.merges_by_concatenation() && bytes > self.unsplittable_bound {
            return Err(QueueError::TooLarge {
                exporter: self.id.to_string(),
                signal: batch.signal,
                bytes,
                bound: self.unsplittable_bound,
            });
        }
        match &self.inlet {
            Inlet::Memory(tx) => tx.try_reserve().map(Slot::Memory).map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => QueueError::Full(self.id.to_string()),
                mpsc::error::TrySendError::Closed(()) => QueueError::ShuttingDown,
            }),
            Inlet::Disk(queue) => match queue.try_reserve(batch.payload.len()) {
                Ok(reservation) => Ok(Slot::Disk {
                    exporter: &self.id,
                    reservation,
                }),
                Err(e) => Err(storage_error(&self.id, e)),
            },
        }
    }
}

impl crate::telemetry::traces::SpanSink for ExporterHandle {
    fn offer(&self, batch: Batch) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.try_reserve(&batch) {
                Ok(slot) => slot.fill(batch).await.is_ok(),
                Err(_) => false,
            }
        })
    }
}

impl Slot<'_> {
    /// Whether handing over can fail (it writes to disk); such slots are filled first.
    pub fn is_durable(&self) -> bool {
        matches!(self, Slot::Disk { .. })
    }

    /// Hands the batch over; a durable slot returns once the batch is on disk.
    pub async fn fill(self, batch: Batch) -> Result<(), QueueError> {
        match self {
            Slot::Memory(permit) => {
                permit.send(Queued {
                    payload: batch.payload,
                    items: batch.items,
                    stored: None,
                });
                Ok(())
            }
            Slot::Disk {
                exporter,
                reservation,
            } => reservation
                .write(batch.payload.to_bytes(), batch.items)
                .await
                .map_err(|e| storage_error(exporter, e)),
        }
    }
}
