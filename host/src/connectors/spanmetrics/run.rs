//! `spanmetrics` between pipelines: each accepted traces batch is added to the aggregate (in
//! the hand-off's [`Hold`], so a batch refused downstream is not counted), and every
//! `metrics_flush_interval` the aggregate goes to the metrics pipelines that list the
//! connector as a receiver. At shutdown what it holds is sent once more.

use super::{SpanMetrics, SpanMetricsConfig};
use crate::connectors::{decode_traces, now_nanos, send_metrics};
use crate::pdata::{Batch, Signal};
use crate::pipeline::connector::{ConnectError, Connected, Connector};
use crate::pipeline::{Fanout, Hold};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a flush waits for room in full exporter queues before its metrics count as lost.
const ROOM_WAIT: Duration = Duration::from_secs(5);

/// One `spanmetrics` instance.
pub struct SpanMetricsConnector {
    id: String,
    state: Arc<Mutex<SpanMetrics>>,
    downstream: Arc<Fanout>,
    interval: Duration,
}

impl SpanMetricsConnector {
    /// Connector `id` with `config`, sending to `downstream`; `instance_id` labels the series
    /// (`collector.instance.id`).
    pub fn new(
        id: &str,
        config: &SpanMetricsConfig,
        instance_id: String,
        downstream: Arc<Fanout>,
    ) -> Self {
        if config.dimensions_cache_size != 0 {
            tracing::warn!(connector = %id, "dimensions_cache_size is deprecated and has no effect; use aggregation_cardinality_limit");
        }
        SpanMetricsConnector {
            id: id.to_string(),
            interval: config.metrics_flush_interval,
            state: Arc::new(Mutex::new(SpanMetrics::new(config.clone(), instance_id))),
            downstream,
        }
    }

    /// Sends the aggregate now, if there is one, waiting for room downstream until `deadline`.
    async fn send(&self, deadline: Instant) {
        let request = match self.state.lock() {
            Ok(mut state) => state.flush(now_nanos()),
            Err(_) => return,
        };
        send_metrics(
            &self.id,
            "span metrics",
            &self.downstream,
            request,
            deadline,
        )
        .await;
    }
}

impl Connector for SpanMetricsConnector {
    fn id(&self) -> &str {
        &self.id
    }

    fn signals(&self) -> (Signal, Signal) {
        (Signal::Traces, Signal::Metrics)
    }

    fn consume(&self, batch: Batch) -> Result<Connected, ConnectError> {
        let request = decode_traces(&self.id, &batch)?;
        let state = self.state.clone();
        Ok(Connected {
            hold: Some(Hold::new(move || {
                if let Ok(mut state) = state.lock() {
                    state.consume(&request, now_nanos());
                }
            })),
            ..Connected::default()
        })
    }

    fn run(self: Arc<Self>, stop: CancellationToken) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(async move {
            let mut ticker =
                tokio::time::interval_at(Instant::now() + self.interval, self.interval);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => self.send(Instant::now() + ROOM_WAIT).await,
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
