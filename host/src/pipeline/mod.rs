//! Pipelines: the ordered processor slot and the all-or-nothing hand-off to exporter queues.
//!
//! A receiver feeds one [`Fanout`] per signal, covering every pipeline that lists it. A batch is
//! accepted only if every exporter queue of every such pipeline has room: otherwise none of them
//! gets it and the sender is told to retry, so a retry never duplicates data into the exporters
//! that had room. The same holds through connectors: a pipeline that exports to one hands its
//! output on to the connector's downstream pipelines within the same hand-off ([`connector`]).

pub mod batch;
pub mod connector;
pub mod memory_limiter;
pub mod tap;
use crate::exporters::{ExporterHandle, QueueError};
use crate::pdata::{Batch, Signal};
use crate::telemetry::ReceiverMetrics;
use arc_swap::ArcSwap;
use connector::{ConnectError, Connector};
use futures::future::BoxFuture;
use memory_limiter::MemoryLimiter;
use std::sync::Arc;
use std::time::Duration;
use tap::Point;
use tokio::time::Instant;

/// How often a request waiting for room asks again.
const ROOM_POLL: Duration = Duration::from_millis(50);

/// A processor in a pipeline's ordered slot. The Wasm runtime implements this.
pub trait Processor: Send + Sync {
    /// The component id, e.g. `k8sattributes`.
    fn id(&self) -> &str;
    /// Transforms a batch.
    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Processed, ProcessError>>;
    /// Given once the pipeline is built, to a processor that holds batches and sends them on
    /// later ([`Processed::Held`]): where they go. Stateless processors ignore it.
    fn attach(&self, _downstream: Downstream) {}
}

/// What a processor made of a batch.
#[derive(Debug)]
pub enum Processed {
    /// The batch goes on, with fewer items when the processor removed some by its own decision.
    Kept(Batch),
    /// The processor removed every item by its own decision (a filter): nothing was lost.
    Filtered,
    /// The processor takes the batch to hold it (tail sampling waits for whole traces): what
    /// it keeps goes on later through its [`Downstream`], so nothing goes on now. It holds the
    /// batch only once the [`Hold`] is committed.
    Held(Hold),
    /// The processor failed and its failure policy (`on_failure: drop`) dropped the batch
    /// after it was accepted: the sender is told through OTLP `partial_success`.
    Rejected(Rejection),
}

/// A batch a processor will hold once it is committed: [`Fanout`] commits after every
/// exporter of every pipeline took its part, and drops it (nothing held) when the batch is
/// refused, so a sender's retry is not held twice.
pub struct Hold(Box<dyn FnOnce() + Send>);

impl Hold {
    pub fn new(commit: impl FnOnce() + Send + 'static) -> Hold {
        Hold(Box::new(commit))
    }

    /// The batch is accepted: the processor holds it from now on.
    pub fn commit(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

/// Items a sender sent that were accepted but will not reach an exporter, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub items: u64,
    pub reason: String,
}

/// A batch was accepted; `rejected` says how many of its items a failing processor dropped
/// (the most any one pipeline dropped: an item is lost if any destination misses it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected: Option<Rejection>,
}

impl Accepted {
    fn reject(&mut self, rejection: Rejection) {
        if self
            .rejected
            .as_ref()
            .is_none_or(|r| r.items < rejection.items)
        {
            self.rejected = Some(rejection);
        }
    }
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
    /// The connectors it exports to: what it keeps goes on through them, in the same hand-off.
    pub connectors: Vec<Arc<dyn Connector>>,
    /// Where `trailhead tap` watches.
    pub taps: tap::Taps,
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// An exporter queue is full or closing: the sender should back off and retry.
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Processor(#[from] ProcessError),
    /// Above the memory limiter's soft limit: the sender should back off and retry.
    #[error(transparent)]
    MemoryLimit(#[from] memory_limiter::Refused),
    #[error(transparent)]
    Connector(#[from] ConnectError),
}

impl ConsumeError {
    /// Whether the sender should retry later (503 / UNAVAILABLE) rather than give up.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ConsumeError::Processor(_)
                | ConsumeError::Connector(_)
                | ConsumeError::Queue(QueueError::TooLarge { .. })
        )
    }

    /// Whether the request is too large for an exporter to ever send (413 / INVALID_ARGUMENT:
    /// the sender must send it smaller).
    pub fn is_too_large(&self) -> bool {
        matches!(self, ConsumeError::Queue(QueueError::TooLarge { .. }))
    }

    /// Whether room may come back soon (memory, a queue, a disk): worth a short wait for a
    /// sender that cannot retry.
    fn is_for_room(&self) -> bool {
        matches!(
            self,
            ConsumeError::Queue(QueueError::Full(_) | QueueError::Storage { .. })
                | ConsumeError::MemoryLimit(_)
        )
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
    pub async fn consume(&self, batch: Batch) -> Result<Accepted, ConsumeError> {
        self.consume_within(batch, Instant::now()).await
    }

    /// Whether a new request may be read, asking again until `deadline` while memory is short
    /// (a refusal is counted once, at the end).
    pub async fn admit_within(&self, deadline: Instant) -> Result<(), ConsumeError> {
        if let Some(limiter) = &self.limiter {
            while !limiter.has_room() && Instant::now() < deadline {
                tokio::time::sleep_until(deadline.min(Instant::now() + ROOM_POLL)).await;
            }
        }
        self.admit()
    }

    /// As [`Fanout::consume`], but a refusal for room (memory, a full queue or disk) is tried
    /// again until `deadline`: for senders that never retry, such as Dapr's Zipkin exporter.
    pub async fn consume_within(
        &self,
        batch: Batch,
        deadline: Instant,
    ) -> Result<Accepted, ConsumeError> {
        let (items, bytes) = (batch.items as u64, batch.payload.len() as u64);
        let result = loop {
            match self.consume_inner(&batch).await {
                Err(e) if e.is_for_room() && Instant::now() < deadline => {
                    tokio::time::sleep_until(deadline.min(Instant::now() + ROOM_POLL)).await;
                }
                result => break result,
            }
        };
        match &result {
            Ok(_) => {
                self.metrics.accepted.add(items);
                self.metrics.accepted_bytes.add(bytes);
            }
            Err(_) => self.metrics.refused.add(items),
        }
        result
    }

    async fn consume_inner(&self, batch: &Batch) -> Result<Accepted, ConsumeError> {
        if batch.items == 0 {
            return Ok(Accepted::default());
        }
        let mut handoff = Handoff::default();
        self.gather(batch.clone(), &mut handoff).await?;
        handoff.complete().await
    }

    /// Runs `batch` through every pipeline, and on through the connectors they export to,
    /// adding what each exporter is to get to `handoff`; nothing is queued yet.
    fn gather<'a>(
        &'a self,
        batch: Batch,
        handoff: &'a mut Handoff,
    ) -> BoxFuture<'a, Result<(), ConsumeError>> {
        Box::pin(async move {
            for pipeline in &self.pipelines {
                match pipeline.run_processors(batch.clone()).await? {
                    Processed::Kept(output) if output.items > 0 => {
                        pipeline.send_on(output, handoff).await?
                    }
                    Processed::Held(hold) => handoff.holds.push(hold),
                    Processed::Kept(_) | Processed::Filtered => {}
                    Processed::Rejected(rejection) => handoff.accepted.reject(rejection),
                }
            }
            Ok(())
        })
    }
}

/// Everything one batch comes to across the pipelines and connectors it reaches: the exporter
/// deliveries, queued all or none, and the holds committed once they are.
#[derive(Default)]
struct Handoff {
    deliveries: Vec<(ExporterHandle, Batch)>,
    holds: Vec<Hold>,
    accepted: Accepted,
}

impl Handoff {
    /// Queues every delivery, or none, then commits the holds.
    async fn complete(self) -> Result<Accepted, ConsumeError> {
        queue_all(&self.deliveries).await?;
        self.holds.into_iter().for_each(Hold::commit);
        Ok(self.accepted)
    }
}

/// [`hand_over`] of gathered deliveries (the holds stay out of the future: they are not `Sync`).
async fn queue_all(deliveries: &[(ExporterHandle, Batch)]) -> Result<(), ConsumeError> {
    hand_over(deliveries.iter().map(|(e, b)| (e, b.clone()))).await
}

impl Pipeline {
    /// What the processors kept goes to every exporter and, through each connector, to the
    /// pipelines downstream of it.
    async fn send_on(&self, output: Batch, handoff: &mut Handoff) -> Result<(), ConsumeError> {
        self.taps.observe(|p| *p == Point::Exporters, &output);
        for exporter in &self.exporters {
            handoff.deliveries.push((exporter.clone(), output.clone()));
        }
        for connector in &self.connectors {
            let connected = connector.consume(output.clone())?;
            handoff.holds.extend(connected.hold);
            if let Some(rejection) = connected.rejected {
                handoff.accepted.reject(rejection);
            }
            for (downstream, part) in connected.outputs {
                downstream.gather(part, handoff).await?;
            }
        }
        Ok(())
    }

    /// Runs `batch` through the processor list as it is now, showing each step to the taps.
    async fn run_processors(&self, batch: Batch) -> Result<Processed, ProcessError> {
        self.run_after(None, batch).await
    }

    /// Runs `batch` through the processors after the one with id `after` (all of them when
    /// `None`) in the list as it is now, showing each step to the taps.
    async fn run_after(
        &self,
        after: Option<&str>,
        batch: Batch,
    ) -> Result<Processed, ProcessError> {
        let processors = self.processors.load_full();
        let start = match after {
            None => 0,
            // A reload that drops the holding processor leaves its later output to the rest.
            Some(id) => processors
                .iter()
                .position(|p| p.id() == id)
                .map_or(0, |i| i + 1),
        };
        let mut current = batch;
        for processor in &processors[start..] {
            let id = processor.id();
            self.taps
                .observe(|p| matches!(p, Point::Before(p) if p == id), &current);
            current = match processor.process(current).await? {
                Processed::Kept(output) => output,
                stopped => return Ok(stopped),
            };
            self.taps
                .observe(|p| matches!(p, Point::After(p) if p == id), &current);
        }
        Ok(Processed::Kept(current))
    }
}

/// Where a holding processor sends what it releases: the processors after it in its pipeline,
/// then every exporter of the pipeline, all or none, as [`Fanout`] hands a batch over.
#[derive(Clone)]
pub struct Downstream {
    pipeline: std::sync::Weak<Pipeline>,
    after: String,
}

impl Downstream {
    /// The rest of `pipeline` after processor `after`.
    pub fn new(pipeline: &Arc<Pipeline>, after: &str) -> Downstream {
        Downstream {
            pipeline: Arc::downgrade(pipeline),
            after: after.to_string(),
        }
    }

    /// The pipeline's id, for logs and metrics.
    pub fn pipeline_id(&self) -> Option<String> {
        self.pipeline.upgrade().map(|p| p.id.clone())
    }

    /// Runs `batch` through the rest of the pipeline and queues it for every exporter, or for
    /// none; a refusal for room (a full queue, a disk) is tried again until `deadline`.
    pub async fn deliver(&self, batch: Batch, deadline: Instant) -> Result<(), ConsumeError> {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return Err(ConsumeError::Queue(QueueError::ShuttingDown));
        };
        let output = match pipeline.run_after(Some(&self.after), batch).await? {
            Processed::Kept(output) if output.items > 0 => output,
            Processed::Held(hold) => {
                hold.commit();
                return Ok(());
            }
            _ => return Ok(()),
        };
        let mut handoff = Handoff::default();
        pipeline.send_on(output, &mut handoff).await?;
        loop {
            match queue_all(&handoff.deliveries).await {
                Err(e) if e.is_for_room() && Instant::now() < deadline => {
                    tokio::time::sleep_until(deadline.min(Instant::now() + ROOM_POLL)).await;
                }
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        handoff.holds.into_iter().for_each(Hold::commit);
        Ok(())
    }
}

/// Reserves a slot in every exporter queue, then fills them all: disk queues first, since
/// their writes can fail and a failure then leaves the in-memory queues untouched. (Two
/// persistent exporters where the second write fails get a duplicate in the first when the
/// sender retries.)
async fn hand_over<'e>(
    deliveries: impl IntoIterator<Item = (&'e ExporterHandle, Batch)>,
) -> Result<(), ConsumeError> {
    let mut handovers = Vec::new();
    for (exporter, batch) in deliveries {
        handovers.push((exporter.try_reserve(&batch)?, batch));
    }
    if handovers.iter().any(|(slot, _)| slot.is_durable()) {
        handovers.sort_by_key(|(slot, _)| !slot.is_durable());
    }
    for (slot, batch) in handovers {
        slot.fill(batch).await?;
    }
    Ok(())
}
