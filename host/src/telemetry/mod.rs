//! trailhead observing itself: metrics (declared in `catalog`, in one place), the events that
//! count, log and trace what happened (`events`, in one place), self-traces, the health check
//! and the supervisor of long-lived tasks.

pub mod catalog;
pub mod events;
pub mod health;
pub mod heap;
pub mod logs_export;
pub mod metrics;

pub mod profiles;
pub mod push;

pub mod supervisor;
pub mod traces;

use crate::pdata::Signal;
use metrics::{Counter, Registry};
use std::sync::Arc;

/// Counters one receiver keeps for one signal.
#[derive(Clone, Debug)]
pub struct ReceiverMetrics {
    /// Items handed to every pipeline's exporters.
    pub accepted: Counter,
    /// Their bytes, as OTLP protobuf.
    pub accepted_bytes: Counter,
    /// Items refused because the pipeline was full or shutting down (the sender may retry).
    pub refused: Counter,
    /// Requests rejected as malformed (the sender must not retry).
    pub malformed_requests: Counter,
}

impl ReceiverMetrics {
    pub fn new(registry: &Registry, receiver: &str, signal: Signal) -> Self {
        let values = [receiver, signal.as_str()];
        ReceiverMetrics {
            accepted: registry.counter(&catalog::RECEIVER_ACCEPTED, &values),
            accepted_bytes: registry.counter(&catalog::RECEIVER_ACCEPTED_BYTES, &values),
            refused: registry.counter(&catalog::RECEIVER_REFUSED, &values),
            malformed_requests: registry.counter(&catalog::RECEIVER_MALFORMED, &values),
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
        let values = [server];
        ServerMetrics {
            refused_connections: registry.counter(&catalog::SERVER_REFUSED_CONNECTIONS, &values),
            unauthenticated_requests: registry.counter(&catalog::SERVER_UNAUTHENTICATED, &values),
            rate_limited_requests: registry.counter(&catalog::SERVER_RATE_LIMITED, &values),
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
