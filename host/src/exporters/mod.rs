//! Exporters: a bounded queue per exporter and signal, a batcher, and concurrent senders with
//! retry, in front of a [`Sink`] that knows one protocol (`otlp`, `debug`).
//!
//! Backpressure runs backwards through bounded steps: when every sender is busy the batcher
//! stops reading, the queue fills, [`ExporterHandle::try_reserve`] fails, and receivers refuse
//! with 503 / UNAVAILABLE. Memory is bounded by `queue_size` requests plus one batch per sender.

pub mod debug;
pub mod otlp;
mod queue;

pub use queue::{BatchSettings, ExporterSpec, QueueSettings, RetrySettings, spawn_exporter};

use crate::pdata::Batch;
use crate::pipeline::ConsumeError;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One protocol's way of delivering an encoded export request.
pub trait Sink: Send + Sync + 'static {
    fn send(&self, payload: Bytes, items: usize)
    -> BoxFuture<'_, Result<SendOutcome, ExportError>>;
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
    /// Retrying would fail the same way.
    #[error("{message}")]
    Permanent { message: String },
}

/// The pipelines' end of one exporter's queue.
#[derive(Clone)]
pub struct ExporterHandle {
    pub id: Arc<str>,
    tx: mpsc::Sender<Batch>,
}

impl ExporterHandle {
    /// Claims a queue slot without waiting.
    pub fn try_reserve(&self) -> Result<mpsc::Permit<'_, Batch>, ConsumeError> {
        self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => ConsumeError::Full(self.id.to_string()),
            mpsc::error::TrySendError::Closed(()) => ConsumeError::ShuttingDown,
        })
    }
}
