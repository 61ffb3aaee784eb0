//! trailhead observing itself: metrics (named here, in one place), the health check, logs.

pub mod health;
pub mod heap;
pub mod metrics;
pub mod profiles;
pub mod supervisor;
pub mod traces;

use crate::pdata::Signal;
use metrics::{Counter, Histogram, Registry};
use std::sync::Arc;

/// Counters one receiver keeps for one signal.
#[derive(Clone, Debug)]
pub struct ReceiverMetrics {
    /// Items handed to every pipeline's exporters.
    pub accepted: Counter,
    /// Items refused because the pipeline was full or shutting down (the sender may retry).
    pub refused: Counter,
    /// Requests rejected as malformed (the sender must not retry).
    pub malformed_requests: Counter,
}

impl ReceiverMetrics {
    pub fn new(registry: &Registry, receiver: &str, signal: Signal) -> Self {
        let labels = [("receiver", receiver), ("signal", signal.as_str())];
        ReceiverMetrics {
            accepted: registry.counter(
                "trailhead_receiver_accepted_items_total",
                "Items accepted and queued for export.",
                &labels,
            ),
            refused: registry.counter(
                "trailhead_receiver_refused_items_total",
                "Items refused with a retryable error (pipeline full or shutting down).",
                &labels,
            ),
            malformed_requests: registry.counter(
                "trailhead_receiver_malformed_requests_total",
                "Requests rejected as malformed.",
                &labels,
            ),
        }
    }
}

/// Counters of one listening server: what it refuses before a request reaches a receiver.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    pub refused_connections: Counter,
    pub unauthenticated_requests: Counter,
    pub rate_limited_requests: Counter,
}

impl ServerMetrics {
    pub fn new(registry: &Registry, server: &str) -> Self {
        let labels = [("server", server)];
        ServerMetrics {
            refused_connections: registry.counter(
                "trailhead_server_refused_connections_total",
                "Connections closed at once because the server had max_connections open.",
                &labels,
            ),
            unauthenticated_requests: registry.counter(
                "trailhead_server_unauthenticated_requests_total",
                "Requests refused for a missing or wrong bearer token.",
                &labels,
            ),
            rate_limited_requests: registry.counter(
                "trailhead_server_rate_limited_requests_total",
                "Requests refused because the server's request rate limit was reached.",
                &labels,
            ),
        }
    }
}

/// Counters one exporter keeps for one signal.
#[derive(Clone, Debug)]
pub struct ExporterMetrics {
    pub sent: Counter,
    /// Items given up on: permanent rejection, retries exhausted, or shutdown deadline.
    pub failed: Counter,
    /// Items the peer reported as rejected in a partial success.
    pub rejected_by_peer: Counter,
    /// Send attempts that will be retried.
    pub retries: Counter,
    /// Requests the peer refused as too large, and sent again in halves.
    pub size_splits: Counter,
    pub batch_items: Histogram,
}

const BATCH_BOUNDS: &[f64] = &[10.0, 100.0, 512.0, 1024.0, 4096.0, 8192.0, 16384.0, 65536.0];

impl ExporterMetrics {
    pub fn new(registry: &Registry, exporter: &str, signal: Signal) -> Self {
        let labels = [("exporter", exporter), ("signal", signal.as_str())];
        ExporterMetrics {
            sent: registry.counter(
                "trailhead_exporter_sent_items_total",
                "Items delivered.",
                &labels,
            ),
            failed: registry.counter(
                "trailhead_exporter_send_failed_items_total",
                "Items that could not be delivered and were dropped.",
                &labels,
            ),
            rejected_by_peer: registry.counter(
                "trailhead_exporter_peer_rejected_items_total",
                "Items the peer rejected in a partial success response.",
                &labels,
            ),
            retries: registry.counter(
                "trailhead_exporter_retries_total",
                "Send attempts that failed with a retryable error.",
                &labels,
            ),
            size_splits: registry.counter(
                "trailhead_exporter_size_splits_total",
                "Requests the peer refused as too large and that were sent again in halves.",
                &labels,
            ),
            batch_items: registry.histogram(
                "trailhead_exporter_batch_items",
                "Items per batch sent.",
                &labels,
                BATCH_BOUNDS,
            ),
        }
    }
}

/// What every component gets to report on itself.
#[derive(Clone)]
pub struct Telemetry {
    pub registry: Arc<Registry>,
    pub health: health::Health,
    /// Watches the long-lived tasks; one that dies turns `health` 503.
    pub supervisor: supervisor::Supervisor,
    /// Where spans about trailhead's own work go, when `service.telemetry.traces` is set.
    pub tracer: Option<Arc<traces::SelfTracer>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let health = health::Health::default();
        Telemetry {
            registry: Arc::default(),
            supervisor: supervisor::Supervisor::new(health.clone()),
            health,
            tracer: None,
        }
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("self_traces", &self.tracer.is_some())
            .finish()
    }
}
