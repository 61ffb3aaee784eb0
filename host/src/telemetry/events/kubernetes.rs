//! The Kubernetes watches' events: a full list finishes, an outage of the API server starts,
//! and ends. The console's Kubernetes view reads the failure count, the last list's time and
//! the outage notes (`kubernetes/KIND`).

use super::Event;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Recent, Registry, unix_seconds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One kind's watch: its failures, when it last listed, and its recent outages.
pub struct WatchInstruments {
    what: &'static str,
    failures: Counter,
    /// Seconds since the epoch, as f64 bits.
    listed_at: Arc<AtomicU64>,
    notes: Arc<Recent>,
}

impl WatchInstruments {
    /// `what`: the kind watched, as its `kind` label says it: `pods`, `nodes`, …
    pub fn new(registry: &Registry, what: &'static str) -> Self {
        let listed_at = Arc::new(AtomicU64::new(0f64.to_bits()));
        let read = listed_at.clone();
        registry.gauge_fn(&catalog::KUBERNETES_LISTED, &[what], move || {
            f64::from_bits(read.load(Ordering::Relaxed))
        });
        WatchInstruments {
            what,
            failures: registry.counter(&catalog::KUBERNETES_WATCH_FAILURES, &[what]),
            listed_at,
            notes: registry.recent(&format!("kubernetes/{what}")),
        }
    }
}

/// A list of every object of the kind finished (the first, or a relist after the watch
/// expired): the cache holds what the API server has.
pub struct WatchListed;

impl Event for WatchListed {
    type Instruments = WatchInstruments;

    fn emit(self, to: &WatchInstruments) {
        to.listed_at
            .store(unix_seconds().to_bits(), Ordering::Relaxed);
    }
}

/// A list or watch call failed; kube's backoff retries it. Every failure counts, but only
/// the first of an outage is a warning (the rest would flood the log once a second).
pub struct WatchFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
    pub first_of_outage: bool,
}

impl Event for WatchFailed<'_> {
    type Instruments = WatchInstruments;

    fn emit(self, to: &WatchInstruments) {
        to.failures.add(1);
        let (what, error) = (to.what, self.error);
        if self.first_of_outage {
            to.notes.note("failing", error.to_string());
            tracing::warn!(what, %error, "Kubernetes watch failed; retrying with backoff, the cache keeps what it has");
        } else {
            tracing::debug!(what, %error, "Kubernetes watch still failing");
        }
    }
}

/// The API server answers again after a failure.
pub struct WatchResumed;

impl Event for WatchResumed {
    type Instruments = WatchInstruments;

    fn emit(self, to: &WatchInstruments) {
        to.notes.note("resumed", "the API server answers again");
        tracing::info!(what = to.what, "Kubernetes watch resumed");
    }
}
