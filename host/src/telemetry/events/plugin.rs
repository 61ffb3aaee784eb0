//! A processor's plugin events: a new version swapped in, rejected or rolled back, and a
//! failed call.

use super::Event;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Histogram, Recent, Registry};
use std::sync::Arc;

/// Seconds: a resource-only plugin takes microseconds, a filter over a large batch
/// milliseconds, and the default timeout is a few seconds.
const DURATION_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The counters of one processor.
pub struct PluginInstruments {
    processor: String,
    pub calls: Counter,
    pub dropped_items: Counter,
    /// Batches not handed to the plugin because its circuit was open.
    pub skipped: Counter,
    /// Time inside the plugin per batch, failed calls included.
    pub duration: Histogram,
    /// One per kind of failure, by its `kind` label.
    failures: Vec<(&'static str, Counter)>,
    /// `trailhead_processor_swaps_total` by result.
    swaps_applied: Counter,
    swaps_rejected: Counter,
    swaps_rolled_back: Counter,
    /// The swaps' history, for the console.
    pub swaps: Arc<Recent>,
}

impl PluginInstruments {
    /// `failure_kinds`: every value of the failures' `kind` label.
    pub fn new(registry: &Registry, processor: &str, failure_kinds: &[&'static str]) -> Self {
        let values = [processor];
        let swaps = |result| registry.counter(&catalog::PROCESSOR_SWAPS, &[processor, result]);
        PluginInstruments {
            processor: processor.to_string(),
            calls: registry.counter(&catalog::PROCESSOR_CALLS, &values),
            dropped_items: registry.counter(&catalog::PROCESSOR_DROPPED, &values),
            skipped: registry.counter(&catalog::PROCESSOR_SKIPPED, &values),
            duration: registry.histogram(&catalog::PROCESSOR_DURATION, &values, DURATION_BOUNDS),
            failures: failure_kinds
                .iter()
                .map(|kind| {
                    let counter =
                        registry.counter(&catalog::PROCESSOR_FAILURES, &[processor, kind]);
                    (*kind, counter)
                })
                .collect(),
            swaps_applied: swaps("applied"),
            swaps_rejected: swaps("rejected"),
            swaps_rolled_back: swaps("rolled_back"),
            swaps: registry.recent(&format!("processor/{processor}")),
        }
    }

    /// How many failures of `kind` so far.
    pub fn failures(&self, kind: &str) -> u64 {
        self.failure_counter(kind).map_or(0, Counter::get)
    }

    fn failure_counter(&self, kind: &str) -> Option<&Counter> {
        self.failures
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c)
    }
}

/// A new plugin version loaded, initialised, passed its canary and now serves.
pub struct PluginSwapped<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub version: &'a str,
}

impl Event for PluginSwapped<'_> {
    type Instruments = PluginInstruments;

    fn emit(self, to: &PluginInstruments) {
        to.swaps_applied.add(1);
        let detail = format!("version {} ({} after {})", self.version, self.to, self.from);
        to.swaps.note("applied", detail);
        tracing::info!(processor = %to.processor, from = %self.from, to = %self.to, version = %self.version, "plugin swapped");
    }
}

/// A new plugin version failed to load, initialise or pass its canary.
pub struct PluginRejected<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for PluginRejected<'_> {
    type Instruments = PluginInstruments;

    fn emit(self, to: &PluginInstruments) {
        to.swaps_rejected.add(1);
        to.swaps.note("rejected", self.error.to_string());
        tracing::error!(processor = %to.processor, error = %self.error, "new plugin version rejected; the current one keeps serving");
    }
}

/// A new version kept trapping on probation; the previous one serves again.
pub struct PluginRolledBack<'a> {
    pub bad: &'a str,
    pub restored: &'a str,
}

impl Event for PluginRolledBack<'_> {
    type Instruments = PluginInstruments;

    fn emit(self, to: &PluginInstruments) {
        to.swaps_rolled_back.add(1);
        let detail = format!(
            "{} kept failing on probation; {} serves again",
            self.bad, self.restored
        );
        to.swaps.note("rolled_back", detail);
        tracing::error!(processor = %to.processor, bad = %self.bad, restored = %self.restored, "new plugin version keeps failing; rolled back");
    }
}

/// The plugin did not process a batch.
pub struct PluginFailed<'a> {
    /// The failure's `kind` label: trap, timeout, memory, plugin-error, …
    pub kind: &'static str,
    pub error: &'a str,
    /// What the plugin wrote before it failed.
    pub output: &'a str,
    pub on_failure: &'static str,
    pub items: usize,
    /// This failure opened the circuit: the plugin is not called until its backoff ends.
    pub circuit_opened: bool,
}

impl Event for PluginFailed<'_> {
    type Instruments = PluginInstruments;

    fn emit(self, to: &PluginInstruments) {
        if let Some(counter) = to.failure_counter(self.kind) {
            counter.add(1);
        }
        if self.circuit_opened {
            tracing::error!(processor = %to.processor, "plugin keeps failing; not calling it until its backoff ends");
        }
        tracing::warn!(
            processor = %to.processor,
            kind = self.kind,
            error = %self.error,
            plugin_output = %self.output,
            on_failure = self.on_failure,
            items = self.items,
            "plugin failed on a batch"
        );
    }
}
