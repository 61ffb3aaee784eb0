//! Processors: the pipeline slot that runs a Wasm plugin under its failure policy, with its
//! metrics, swap probation and rollback (here); the circuit breaker (`breaker`), a processor
//! entry's host settings (`settings`), the built-in plugins (`builtin`), the Wasm sandbox
//! (`wasm`) and plugins run outside a pipeline (`offline`).

mod breaker;
mod builtin;
pub mod offline;
mod settings;
pub mod wasm;

use breaker::Breaker;
pub use builtin::{BUILT_IN, built_in_dirs, find_built_in};
pub use settings::{HostSettings, LimitSettings, OnFailure, split_settings};

use crate::pdata::Batch;
use crate::pipeline::{ProcessError, Processed, Processor, Rejection};
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Histogram, Registry};
use arc_swap::{ArcSwap, ArcSwapOption};
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasm::{Failure, FailureKind, Plugin};

/// Counters for one processor.
#[derive(Clone)]
struct ProcessorMetrics {
    registry: Arc<Registry>,
    calls: Counter,
    dropped_items: Counter,
    /// Batches not handed to the plugin because its circuit was open.
    skipped: Counter,
    /// Time inside the plugin per batch, failed calls included.
    duration: Histogram,
    /// One per `FailureKind`, in its order, made with the processor: every series exists from
    /// the start at zero (so rate() and alerts see the first failure), and a failure does not
    /// lock the registry.
    failures: [Counter; FailureKind::ALL.len()],
}

/// Seconds: a resource-only plugin takes microseconds, a filter over a large batch
/// milliseconds, and the default timeout is a few seconds.
const DURATION_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// What a swap can come to, each a `result` label of `trailhead_processor_swaps_total`.
const SWAP_RESULTS: [&str; 3] = ["applied", "rejected", "rolled_back"];

impl ProcessorMetrics {
    fn failure(&self, kind: FailureKind) -> &Counter {
        &self.failures[kind as usize]
    }
}

/// How many traps a new version may have during probation before it is rolled back.
const PROBATION_TRAPS: u64 = 3;
/// How long a new version is on probation after a swap.
const PROBATION: Duration = Duration::from_secs(30);

/// A pipeline slot running a Wasm plugin. The plugin version is swapped atomically; a batch
/// in flight finishes on the version it started with. The last good version is kept, and a new
/// version that keeps trapping right after the swap is rolled back to it.
pub struct WasmProcessor {
    id: String,
    plugin: ArcSwap<Plugin>,
    previous: ArcSwapOption<Plugin>,
    probation: Mutex<Option<(Instant, u64)>>,
    breaker: Mutex<Breaker>,
    on_failure: OnFailure,
    metrics: ProcessorMetrics,
}

impl WasmProcessor {
    pub fn new(plugin: Plugin, on_failure: OnFailure, registry: &Arc<Registry>) -> Self {
        let id = plugin.id.to_string();
        let values = [id.as_str()];
        let metrics = ProcessorMetrics {
            calls: registry.counter(&catalog::PROCESSOR_CALLS, &values),
            dropped_items: registry.counter(&catalog::PROCESSOR_DROPPED, &values),
            skipped: registry.counter(&catalog::PROCESSOR_SKIPPED, &values),
            duration: registry.histogram(&catalog::PROCESSOR_DURATION, &values, DURATION_BOUNDS),
            failures: FailureKind::ALL
                .map(|kind| registry.counter(&catalog::PROCESSOR_FAILURES, &[&id, kind.as_str()])),
            registry: registry.clone(),
        };
        let processor = WasmProcessor {
            id,
            plugin: ArcSwap::from_pointee(plugin),
            previous: ArcSwapOption::empty(),
            probation: Mutex::new(None),
            breaker: Mutex::new(Breaker::default()),
            on_failure,
            metrics,
        };
        for result in SWAP_RESULTS {
            processor.swap_counter(result);
        }
        processor
    }

    /// The plugin file, for watching.
    pub fn path(&self) -> PathBuf {
        self.plugin.load().path.clone()
    }

    fn swap_counter(&self, result: &str) -> Counter {
        self.metrics
            .registry
            .counter(&catalog::PROCESSOR_SWAPS, &[&self.id, result])
    }

    /// Re-reads the plugin file; swaps in a new version that loads, initialises and passes its
    /// canary. Blocking. A version that fails any step is rejected and the current one keeps
    /// serving. Returns whether a new version was applied.
    pub fn reload(&self) -> Result<bool, wasm::LoadError> {
        let current = self.plugin.load_full();
        match current.reload() {
            Ok(None) => Ok(false),
            Ok(Some(next)) => {
                tracing::info!(processor = %self.id, from = %current.sha256, to = %next.sha256, version = %next.info.version, "plugin swapped");
                self.previous.store(Some(current));
                self.plugin.store(Arc::new(next));
                *self.probation.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), 0));
                self.swap_counter("applied").add(1);
                Ok(true)
            }
            Err(error) => {
                tracing::error!(processor = %self.id, error = %error, "new plugin version rejected; the current one keeps serving");
                self.swap_counter("rejected").add(1);
                Err(error)
            }
        }
    }

    /// During probation, a version that traps repeatedly is replaced by the previous one.
    fn note_trap(&self, failed: &Arc<Plugin>) {
        let mut probation = self.probation.lock().unwrap_or_else(|e| e.into_inner());
        let Some((since, traps)) = probation.as_mut() else {
            return;
        };
        if since.elapsed() > PROBATION || !Arc::ptr_eq(failed, &self.plugin.load()) {
            return;
        }
        *traps += 1;
        if *traps >= PROBATION_TRAPS {
            if let Some(previous) = self.previous.swap(None) {
                tracing::error!(processor = %self.id, bad = %failed.sha256, restored = %previous.sha256, "new plugin version keeps failing; rolled back");
                self.plugin.store(previous);
                self.swap_counter("rolled_back").add(1);
            }
            *probation = None;
        }
    }

    /// What `GET /plugins` shows for this processor.
    pub fn status(&self) -> serde_json::Value {
        let plugin = self.plugin.load();
        let failures: serde_json::Map<String, serde_json::Value> = FailureKind::ALL
            .iter()
            .map(|kind| {
                (
                    kind.as_str().to_string(),
                    self.metrics.failure(*kind).get().into(),
                )
            })
            .collect();
        let loaded_at = plugin
            .loaded_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        serde_json::json!({
            "id": self.id,
            "name": plugin.info.name,
            "version": plugin.info.version,
            "sha256": plugin.sha256,
            "path": plugin.path,
            "loaded_at_unix": loaded_at,
            "calls": self.metrics.calls.get(),
            "failures": failures,
            "state": if !self.breaker.lock().map(|b| b.allows()).unwrap_or(true) {
                "circuit-open"
            } else if self.probation.lock().map(|p| p.is_some()).unwrap_or(false) {
                "probation"
            } else {
                "serving"
            },
            "previous_sha256": self.previous.load().as_ref().map(|p| p.sha256.clone()),
        })
    }

    /// What the failure policy does with a batch the plugin did not process; `why` becomes
    /// the sender's `partial_success` message when the policy drops it.
    fn apply_policy(&self, batch: Batch, why: &str) -> Processed {
        match self.on_failure {
            OnFailure::Pass => Processed::Kept(batch),
            OnFailure::Drop => {
                self.metrics.dropped_items.add(batch.items as u64);
                Processed::Rejected(Rejection {
                    items: batch.items as u64,
                    reason: format!("processor `{}` {why} (on_failure: drop)", self.id),
                })
            }
        }
    }

    fn failed(&self, plugin: &Arc<Plugin>, batch: Batch, failure: Failure) -> Processed {
        self.metrics.failure(failure.kind).add(1);
        if self
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed()
        {
            tracing::error!(processor = %self.id, "plugin keeps failing; not calling it until its backoff ends");
        }
        if failure.kind != FailureKind::PluginError {
            self.note_trap(plugin);
        }
        tracing::warn!(
            processor = %self.id,
            kind = failure.kind.as_str(),
            error = %failure.message,
            plugin_output = %failure.output,
            on_failure = ?self.on_failure,
            items = batch.items,
            "plugin failed on a batch"
        );
        self.apply_policy(batch, &format!("failed: {}", failure.kind.as_str()))
    }
}

impl Processor for WasmProcessor {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Processed, ProcessError>> {
        Box::pin(async move {
            let plugin = self.plugin.load_full();
            if !plugin.handles(batch.signal) {
                return Ok(Processed::Kept(batch));
            }
            if !self
                .breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allows()
            {
                self.metrics.skipped.add(1);
                return Ok(self.apply_policy(batch, "is failing and was not called"));
            }
            self.metrics.calls.add(1);
            let started = Instant::now();
            let done_in_place = if plugin.blocking_io.load(Ordering::Relaxed) {
                None
            } else {
                in_place(|| plugin.process(&batch))
            };
            let outcome = match done_in_place {
                Some(outcome) => outcome,
                None => {
                    if !plugin.blocking_io.swap(true, Ordering::Relaxed) {
                        tracing::info!(processor = %self.id, "the plugin does blocking I/O (it writes output): its calls run on the blocking pool from now on");
                    }
                    let (running, input) = (plugin.clone(), batch.clone());
                    tokio::task::spawn_blocking(move || running.process(&input))
                        .await
                        .map_err(|e| ProcessError {
                            processor: self.id.clone(),
                            message: format!("plugin worker failed: {e}"),
                        })?
                }
            };
            self.metrics
                .duration
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(out) => {
                    self.breaker
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .succeeded();
                    self.metrics
                        .dropped_items
                        .add(batch.items.saturating_sub(out.items) as u64);
                    Ok(match out.items {
                        0 => Processed::Filtered,
                        _ => Processed::Kept(out),
                    })
                }
                Err(failure) => Ok(self.failed(&plugin, batch, failure)),
            }
        })
    }
}

thread_local! {
    static IN_PLACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a plugin call on the async worker itself: a hop to the blocking pool and back cost two
/// thread switches a call, most of a small batch's cost on one core, and the epoch deadline
/// bounds a call's time either way. WASI's blocking stream calls (a plugin writing to stdout
/// or stderr) wait on a runtime, which panics on a worker: `None` then, without printing the
/// panic, and the caller runs the batch again on the blocking pool (the failed attempt's
/// store is dropped, so nothing of it survives).
fn in_place<T>(call: impl FnOnce() -> T) -> Option<T> {
    static QUIET_IN_PLACE: std::sync::Once = std::sync::Once::new();
    QUIET_IN_PLACE.call_once(|| {
        let print = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_PLACE.get() {
                print(info)
            }
        }));
    });
    IN_PLACE.set(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    IN_PLACE.set(false);
    result.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A call in place returns its value; a panic in it (what WASI's blocking I/O does on a
    // worker) becomes `None`, and the thread is no longer marked in place afterwards.
    #[test]
    fn in_place_turns_a_panic_into_none() {
        assert_eq!(in_place(|| 7), Some(7));
        assert_eq!(in_place(|| -> i32 { panic!("cannot block here") }), None);
        assert!(!IN_PLACE.get());
    }
}
