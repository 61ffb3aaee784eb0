//! `servicegraph` between pipelines: each accepted traces batch is paired in the store (in the
//! hand-off's [`Hold`]); one task expires unpaired edges every `store_expiration_loop`, drops
//! stale series every `cache_loop` and sends the metrics every `metrics_flush_interval` (or
//! right after each batch when that is zero), as the collector's three loops do.

use super::{ServiceGraph, ServiceGraphConfig};
use crate::connectors::{decode_traces, now_nanos, send_metrics};
use crate::pdata::{Batch, Signal};
use crate::pipeline::connector::{ConnectError, Connected, Connector};
use crate::pipeline::{Fanout, Hold};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, interval_at};
use tokio_util::sync::CancellationToken;

/// How long a flush waits for room in full exporter queues before its metrics count as lost.
const ROOM_WAIT: Duration = Duration::from_secs(5);

/// One `servicegraph` instance.
pub struct ServiceGraphConnector {
    id: String,
    state: Arc<Mutex<ServiceGraph>>,
    downstream: Arc<Fanout>,
    /// Woken after a batch when metrics are sent after every batch.
    batch_done: Arc<Notify>,
    flush_interval: Duration,
    loops: (Duration, Duration),
}

impl ServiceGraphConnector {
    pub fn new(id: &str, config: &ServiceGraphConfig, downstream: Arc<Fanout>) -> Self {
        if !config.metrics_exporter.is_empty() {
            tracing::warn!(connector = %id, "metrics_exporter is deprecated and has no effect: the metrics pipelines that list the connector receive its metrics");
        }
        ServiceGraphConnector {
            id: id.to_string(),
            flush_interval: config.flush_interval(),
            loops: config.loops(),
            state: Arc::new(Mutex::new(ServiceGraph::new(config.clone(), now_nanos()))),
            downstream,
            batch_done: Arc::new(Notify::new()),
        }
    }

    fn with_state(&self, f: impl FnOnce(&mut ServiceGraph)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state);
        }
    }

    /// Sends the metrics now, if there are any, waiting for room downstream until `deadline`.
    async fn send(&self, deadline: Instant) {
        let mut request = None;
        self.with_state(|state| request = state.flush(now_nanos()));
        let what = "service graph metrics";
        send_metrics(&self.id, what, &self.downstream, request, deadline).await;
    }
}

impl Connector for ServiceGraphConnector {
    fn id(&self) -> &str {
        &self.id
    }

    fn signals(&self) -> (Signal, Signal) {
        (Signal::Traces, Signal::Metrics)
    }

    fn consume(&self, batch: Batch) -> Result<Connected, ConnectError> {
        let request = decode_traces(&self.id, &batch)?;
        let state = self.state.clone();
        let batch_done = self
            .flush_interval
            .is_zero()
            .then(|| self.batch_done.clone());
        Ok(Connected {
            hold: Some(Hold::new(move || {
                if let Ok(mut state) = state.lock() {
                    state.consume(&request, now_nanos());
                }
                if let Some(batch_done) = batch_done {
                    batch_done.notify_one();
                }
            })),
            ..Connected::default()
        })
    }

    fn run(self: Arc<Self>, stop: CancellationToken) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(async move {
            let every = |period: Duration| interval_at(Instant::now() + period, period);
            let (expiration, cache) = self.loops;
            let (mut expire, mut clean) = (every(expiration), every(cache));
            // With a zero flush interval there is no ticker: each batch wakes the loop instead.
            let mut flush = (!self.flush_interval.is_zero()).then(|| every(self.flush_interval));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = expire.tick() => self.with_state(|s| s.expire(now_nanos())),
                    _ = clean.tick() => self.with_state(|s| s.clean(now_nanos())),
                    _ = tick(&mut flush) => self.send(Instant::now() + ROOM_WAIT).await,
                    _ = self.batch_done.notified() => self.send(Instant::now() + ROOM_WAIT).await,
                }
            }
        }))
    }

    fn flush(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout_at(deadline, self.send(deadline)).await;
        })
    }
}

/// The next tick of `ticker`, or never without one.
async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}
