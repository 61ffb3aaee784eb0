//! Processors: the pipeline slot that runs a Wasm plugin under its failure policy, with its
//! metrics, swap probation and rollback (here); the circuit breaker (`breaker`), a processor
//! entry's host settings (`settings`), the built-in plugins (`builtin`), the Wasm sandbox
//! (`wasm`), plugins run outside a pipeline (`offline`), the host-native `tail_sampling`,
//! which holds traces across requests and so cannot be a per-batch plugin, and
//! `resourcedetection`, detected by the host and applied by the `resource` plugin.

mod breaker;
mod builtin;
pub mod offline;
pub mod ottl;
pub mod resourcedetection;
mod settings;
pub mod tail_sampling;
pub mod wasm;

use breaker::Breaker;
pub use builtin::{ALIASES, BUILT_IN, TRANSLATED, built_in_dirs, canonical, find_built_in};
pub use settings::{HostSettings, LimitSettings, OnFailure, plugin_settings, split_settings};

use crate::pdata::{Batch, Signal};
use crate::pipeline::{ProcessError, Processed, Processor, Rejection};
use crate::telemetry::events::{
    Event, PluginFailed, PluginInstruments, PluginRejected, PluginRolledBack, PluginSwapped,
};
use crate::telemetry::metrics::Registry;
use arc_swap::{ArcSwap, ArcSwapOption};
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasm::{Failure, FailureKind, Plugin};

/// The built-in plugins that declare `profiles` (contract 0.2.1), so a profiles pipeline may
/// list them; checked against the plugins themselves by an integration test (`wasm_profiles`).
pub const BUILT_IN_FOR_PROFILES: &[&str] = &["k8sattributes"];

/// Why a processor is refused in a profiles pipeline.
pub const PROFILES_REFUSAL: &str = "a profiles pipeline runs the host's `memory_limiter` and \
    plugins that declare `profiles` in their signals (contract 0.2.1, which gives them each \
    profile's resource through `process-profiles`); of the built-ins, `k8sattributes` does";

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
    metrics: PluginInstruments,
    /// Whether a profiles pipeline runs it: a new version must then declare `profiles` too.
    on_profiles: AtomicBool,
}

impl WasmProcessor {
    pub fn new(plugin: Plugin, on_failure: OnFailure, registry: &Arc<Registry>) -> Self {
        let id = plugin.id.to_string();
        let kinds = FailureKind::ALL.map(FailureKind::as_str);
        let metrics = PluginInstruments::new(registry, &id, &kinds);
        WasmProcessor {
            id,
            plugin: ArcSwap::from_pointee(plugin),
            previous: ArcSwapOption::empty(),
            probation: Mutex::new(None),
            breaker: Mutex::new(Breaker::default()),
            on_failure,
            metrics,
            on_profiles: AtomicBool::new(false),
        }
    }

    /// Whether the running version asked to see `signal`.
    pub fn handles(&self, signal: Signal) -> bool {
        self.plugin.load().handles(signal)
    }

    /// Marks whether a profiles pipeline runs this processor (set at every (re)load).
    pub fn set_on_profiles(&self, on_profiles: bool) {
        self.on_profiles.store(on_profiles, Ordering::Relaxed);
    }

    /// The plugin file, for watching.
    pub fn path(&self) -> PathBuf {
        self.plugin.load().path.clone()
    }

    /// Re-reads the plugin file; swaps in a new version that loads, initialises and passes its
    /// canary. Blocking. A version that fails any step is rejected and the current one keeps
    /// serving. Returns whether a new version was applied.
    pub fn reload(&self) -> Result<bool, wasm::LoadError> {
        let current = self.plugin.load_full();
        let reloaded = current.reload().and_then(|next| match next {
            Some(next)
                if self.on_profiles.load(Ordering::Relaxed) && !next.handles(Signal::Profiles) =>
            {
                Err(wasm::LoadError::Profiles {
                    path: next.path.clone(),
                })
            }
            next => Ok(next),
        });
        match reloaded {
            Ok(None) => Ok(false),
            Ok(Some(next)) => {
                let (from, to) = (&current.sha256, &next.sha256);
                PluginSwapped {
                    from,
                    to,
                    version: &next.info.version,
                }
                .emit(&self.metrics);
                self.previous.store(Some(current));
                self.plugin.store(Arc::new(next));
                *self.probation.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), 0));
                Ok(true)
            }
            Err(error) => {
                PluginRejected { error: &error }.emit(&self.metrics);
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
                let (bad, restored) = (&failed.sha256, &previous.sha256);
                PluginRolledBack { bad, restored }.emit(&self.metrics);
                self.plugin.store(previous);
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
                    self.metrics.failures(kind.as_str()).into(),
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
            "contract": plugin.info.contract,
            "compiled": plugin.compiled.as_str(),
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
        let circuit_opened = self
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed();
        PluginFailed {
            kind: failure.kind.as_str(),
            error: &failure.message,
            output: &failure.output,
            on_failure: self.on_failure.as_str(),
            items: batch.items,
            circuit_opened,
        }
        .emit(&self.metrics);
        if failure.kind != FailureKind::PluginError {
            self.note_trap(plugin);
        }
        self.apply_policy(batch, &format!("failed: {}", failure.kind.as_str()))
    }
}

impl Processor for WasmProcessor {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Processed, ProcessError>> {
        self.process_batch(batch)
    }
}

impl WasmProcessor {
    /// Runs the plugin on a batch of a signal it declared (a profiles request included, at the
    /// resource level: `wasm::profiles`); passes the others through.
    fn process_batch(&self, batch: Batch) -> BoxFuture<'_, Result<Processed, ProcessError>> {
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
                        // A profiles request keeps its samples (a plugin cannot remove any),
                        // so one that had none is still a request to pass on.
                        0 if batch.signal != Signal::Profiles => Processed::Filtered,
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
