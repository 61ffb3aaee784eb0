//! Connectors at run time: the exporter end of one or more pipelines that is the receiver end
//! of others (the collector's `connectors:` section). What a pipeline keeps after its
//! processors goes to its exporters and to each connector it lists; a connector says what it
//! makes of the batch and which downstream pipelines ([`Fanout`]s) take each part.
//!
//! The one idea: a connector's consume is synchronous and part of the upstream hand-off.
//! [`super::Fanout`] gathers every exporter delivery of the whole graph below a receiver
//! (through any number of connectors) before it reserves a queue slot, so a batch is accepted
//! by every exporter it reaches or by none, and a refusal anywhere downstream reaches the
//! upstream sender as the refusal it is (retryable for a full queue). The collector's fanout
//! calls each consumer in turn and returns their joined errors, so a retry duplicates data
//! into the consumers that took it; this does not.

use super::{Fanout, Hold, Rejection};
use crate::pdata::{Batch, Signal};
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One connector instance: it takes one signal leaving its upstream pipelines and gives one
/// signal to its downstream pipelines (the collector builds one per connector id and pair of
/// signals, too).
pub trait Connector: Send + Sync {
    /// The component id, e.g. `forward` or `routing/tenants`.
    fn id(&self) -> &str;
    /// The signal it takes, and the signal it gives.
    fn signals(&self) -> (Signal, Signal);
    /// What it makes of a batch leaving an upstream pipeline, now: each part with the
    /// downstream pipelines that take it. A stateful connector (spanmetrics) records the batch
    /// in a [`Hold`], committed only once the whole hand-off is accepted, and sends later.
    fn consume(&self, batch: Batch) -> Result<Connected, ConnectError>;
    /// A task that sends on the connector's own schedule (spanmetrics' flush) until `stop`;
    /// the service spawns it on the supervisor.
    fn run(self: Arc<Self>, _stop: CancellationToken) -> Option<BoxFuture<'static, ()>> {
        None
    }
    /// At shutdown, after the receivers stopped and before the exporters drain: send what it
    /// still holds, by `deadline`.
    fn flush(&self, _deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What a connector made of one batch.
#[derive(Default)]
pub struct Connected {
    /// Each part and the downstream pipelines that take it.
    pub outputs: Vec<(Arc<Fanout>, Batch)>,
    /// State to keep once the batch is accepted (nothing kept when it is refused).
    pub hold: Option<Hold>,
    /// Items accepted that go nowhere by the connector's own failure (routing with
    /// `error_mode: ignore` drops nothing; this is for connectors that must).
    pub rejected: Option<Rejection>,
}

impl Connected {
    /// Every part of `batch` to `to`.
    pub fn to(to: &Arc<Fanout>, batch: Batch) -> Connected {
        Connected {
            outputs: vec![(to.clone(), batch)],
            ..Connected::default()
        }
    }
}

/// A connector refused a batch (routing with `error_mode: propagate` when a condition fails):
/// the same batch would fail again, so the sender is not told to retry.
#[derive(Debug, thiserror::Error)]
#[error("connector `{connector}` failed: {message}")]
pub struct ConnectError {
    pub connector: String,
    pub message: String,
}
