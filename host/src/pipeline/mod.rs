//! Pipelines: the ordered processor slot and the all-or-nothing hand-off to exporter queues.
//!
//! A receiver feeds one [`Fanout`] per signal, covering every pipeline that lists it. A batch is
//! accepted only if every exporter queue of every such pipeline has room: otherwise none of them
//! gets it and the sender is told to retry, so a retry never duplicates data into the exporters
//! that had room.

pub mod memory_limiter;
pub mod tap;
use crate::exporters::ExporterHandle;
use crate::pdata::{Batch, Signal};
use crate::telemetry::ReceiverMetrics;
use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use memory_limiter::MemoryLimiter;
use std::sync::Arc;
use tap::Point;

/// A processor in a pipeline's ordered slot. The Wasm runtime implements this.
pub trait Processor: Send + Sync {
    /// The component id, e.g. `k8sattributes`.
    fn id(&self) -> &str;
    /// Transforms a batch; `Ok(None)` when every item was dropped.
    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Option<Batch>, ProcessError>>;
}

/// A processor failed in a way its failure policy turns into a refusal.
#[derive(Debug, thiserror::Error)]
#[error("processor `{processor}` failed: {message}")]
pub struct ProcessError {
    pub processor: String,
    pub message: String,
}

/// The processors of a pipeline, in order.
pub type Processors = Vec<Arc<dyn Processor>>;

/// One configured pipeline. Its processor list is swapped whole when a config reload changes
/// it; a batch runs through the list it started with.
pub struct Pipeline {
    pub id: String,
    pub processors: ArcSwap<Processors>,
    pub exporters: Vec<ExporterHandle>,
    /// Where `trailhead tap` watches.
    pub taps: tap::Taps,
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// An exporter queue is full: the sender should back off and retry.
    #[error("exporter `{0}` queue is full; retry later")]
    Full(String),
    /// trailhead is shutting down: the sender should retry (another replica will take it).
    #[error("trailhead is shutting down; retry later")]
    ShuttingDown,
    #[error(transparent)]
    Processor(#[from] ProcessError),
    /// A persistent queue is full or cannot be written (the disk is full).
    #[error("exporter `{exporter}` cannot queue the request: {message}; retry later")]
    Storage { exporter: String, message: String },
    /// Above the memory limiter's soft limit: the sender should back off and retry.
    #[error(transparent)]
    MemoryLimit(#[from] memory_limiter::Refused),
}

impl ConsumeError {
    /// Whether the sender should retry later (503 / UNAVAILABLE) rather than give up.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConsumeError::Processor(_))
    }
}

/// Every pipeline one receiver feeds for one signal.
pub struct Fanout {
    pub signal: Signal,
    pipelines: Vec<Arc<Pipeline>>,
    metrics: ReceiverMetrics,
    limiter: Option<Arc<MemoryLimiter>>,
}

impl Fanout {
    pub fn new(signal: Signal, pipelines: Vec<Arc<Pipeline>>, metrics: ReceiverMetrics) -> Self {
        Fanout {
            signal,
            pipelines,
            metrics,
            limiter: None,
        }
    }

    /// Refuses new requests while `limiter` says memory is short.
    pub fn with_memory_limiter(mut self, limiter: Option<Arc<MemoryLimiter>>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Whether a new request may be read at all. Receivers ask before reading the body.
    pub fn admit(&self) -> Result<(), ConsumeError> {
        match &self.limiter {
            Some(limiter) => Ok(limiter.admit()?),
            None => Ok(()),
        }
    }

    pub fn metrics(&self) -> &ReceiverMetrics {
        &self.metrics
    }

    /// Runs each pipeline's processors, then queues the results for every exporter, or for none.
    pub async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.items as u64;
        let result = self.consume_inner(batch).await;
        match &result {
            Ok(()) => self.metrics.accepted.add(items),
            Err(_) => self.metrics.refused.add(items),
        }
        result
    }

    async fn consume_inner(&self, batch: Batch) -> Result<(), ConsumeError> {
        if batch.items == 0 {
            return Ok(());
        }
        let mut deliveries = Vec::new();
        for pipeline in &self.pipelines {
            let mut current = Some(batch.clone());
            let processors = pipeline.processors.load_full();
            for processor in processors.iter() {
                let Some(input) = current.take() else { break };
                let id = processor.id();
                pipeline
                    .taps
                    .observe(|p| matches!(p, Point::Before(p) if p == id), &input);
                current = processor.process(input).await?;
                if let Some(output) = &current {
                    pipeline
                        .taps
                        .observe(|p| matches!(p, Point::After(p) if p == id), output);
                }
            }
            if let Some(output) = current.filter(|b| b.items > 0) {
                pipeline.taps.observe(|p| *p == Point::Exporters, &output);
                for exporter in &pipeline.exporters {
                    deliveries.push((exporter, output.clone()));
                }
            }
        }
        let mut handovers = Vec::with_capacity(deliveries.len());
        for (exporter, batch) in deliveries {
            handovers.push((exporter.try_reserve(&batch)?, batch));
        }
        // Disk writes can fail, so they go first: a failure then leaves the in-memory queues
        // untouched. (Two persistent exporters where the second write fails get a duplicate
        // in the first when the sender retries.)
        if handovers.iter().any(|(slot, _)| slot.is_durable()) {
            handovers.sort_by_key(|(slot, _)| !slot.is_durable());
        }
        for (slot, batch) in handovers {
            slot.fill(batch).await?;
        }
        Ok(())
    }
}
