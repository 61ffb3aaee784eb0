//! The Kubernetes watches' events: an outage of the API server starts, and ends.

use super::Event;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Registry};

/// The failure counter of one kind's watch.
pub struct WatchInstruments {
    what: &'static str,
    failures: Counter,
}

impl WatchInstruments {
    /// `what`: the kind watched, as its `kind` label says it: `pods`, `nodes`, …
    pub fn new(registry: &Registry, what: &'static str) -> Self {
        WatchInstruments {
            what,
            failures: registry.counter(&catalog::KUBERNETES_WATCH_FAILURES, &[what]),
        }
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
        tracing::info!(what = to.what, "Kubernetes watch resumed");
    }
}
