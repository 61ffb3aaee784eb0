//! Processors: a processor entry's host settings, and the pipeline slot that runs a Wasm plugin
//! under its failure policy.
//!
//! A processor entry mixes two kinds of keys. `plugin`, `sha256`, `on_failure` and `limits`
//! belong to the host. Every other key is handed to the plugin as JSON, so the collector's
//! `k8sattributes:` and `filter:` blocks keep their shape.

pub mod offline;
pub mod wasm;

use crate::pdata::Batch;
use crate::pipeline::{ProcessError, Processed, Processor, Rejection};
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Histogram, Registry};
use arc_swap::{ArcSwap, ArcSwapOption};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasm::{Failure, FailureKind, Plugin};

/// Processor types whose plugins ship with trailhead (found without a `plugin:` path).
pub const BUILT_IN: &[&str] = &["k8sattributes", "filter"];

/// Where built-in plugins are looked for, first match wins: `$TRAILHEAD_PLUGIN_DIR`, then
/// `plugins/` beside the binary (the container image), then `../plugins/` beside it (a
/// build tree: `target/release/trailhead` finds `target/plugins/`).
pub fn built_in_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("TRAILHEAD_PLUGIN_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        dirs.push(bin.join("plugins"));
        if let Some(up) = bin.parent() {
            dirs.push(up.join("plugins"));
        }
    }
    dirs
}

/// The file of built-in plugin `kind`.
pub fn find_built_in(kind: &str) -> Result<PathBuf, String> {
    let dirs = built_in_dirs();
    dirs.iter()
        .map(|d| d.join(format!("{kind}.wasm")))
        .find(|f| f.is_file())
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "the built-in `{kind}` plugin is not installed: no {kind}.wasm in {} (set TRAILHEAD_PLUGIN_DIR, or give a `plugin:` path)",
                looked.join(", ")
            )
        })
}

/// The host's keys of a processor entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSettings {
    /// Path to the plugin's `.wasm` component, relative to the config file.
    pub plugin: Option<PathBuf>,
    /// The plugin file's expected sha256 (hex); a different file is refused.
    pub sha256: Option<String>,
    pub on_failure: OnFailure,
    pub limits: LimitSettings,
}

/// What to do with a batch when the plugin fails on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Forward the batch as it was before the plugin (fail open; for enrichment).
    #[default]
    Pass,
    /// Drop the batch (fail closed; for redaction).
    Drop,
}

/// `limits:` of a processor entry.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Linear memory the plugin may grow to.
    pub memory_mib: usize,
    /// CPU time one batch may take.
    pub timeout_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let limits = wasm::Limits::default();
        LimitSettings {
            memory_mib: limits.memory_bytes >> 20,
            timeout_ms: limits.timeout.as_millis() as u64,
        }
    }
}

impl LimitSettings {
    pub fn to_limits(self) -> wasm::Limits {
        wasm::Limits {
            memory_bytes: self.memory_mib << 20,
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

const HOST_KEYS: [&str; 4] = ["plugin", "sha256", "on_failure", "limits"];

/// Splits a processor entry into the host's settings and the plugin's config as JSON.
pub fn split_settings(settings: &serde_json::Value) -> Result<(HostSettings, String), String> {
    let mut host = serde_json::Map::new();
    let mut plugin = serde_json::Map::new();
    if let Some(map) = settings.as_object() {
        for (key, value) in map {
            let is_host = HOST_KEYS.contains(&key.as_str());
            if is_host { &mut host } else { &mut plugin }.insert(key.clone(), value.clone());
        }
    }
    let host: HostSettings =
        serde_json::from_value(serde_json::Value::Object(host)).map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&plugin).map_err(|e| e.to_string())?;
    Ok((host, json))
}

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

/// Consecutive failures that open the circuit: the plugin is not called while it is open.
const BREAKER_FAILURES: u32 = 5;
const BREAKER_FIRST_WAIT: Duration = Duration::from_secs(1);
const BREAKER_LONGEST_WAIT: Duration = Duration::from_secs(60);

/// Stops calling a plugin that keeps failing, and tries it again after a backoff that doubles
/// while the retries keep failing.
#[derive(Default)]
struct Breaker {
    consecutive: u32,
    open_until: Option<Instant>,
    wait: Duration,
}

impl Breaker {
    /// Whether the plugin may be called now (a closed circuit, or an open one whose wait is over).
    fn allows(&self) -> bool {
        self.open_until.is_none_or(|until| Instant::now() >= until)
    }

    fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    /// Returns true when this failure opens (or re-opens) the circuit.
    fn failed(&mut self) -> bool {
        self.consecutive += 1;
        if self.consecutive < BREAKER_FAILURES {
            return false;
        }
        self.wait = if self.open_until.is_some() {
            (self.wait * 2).min(BREAKER_LONGEST_WAIT)
        } else {
            BREAKER_FIRST_WAIT
        };
        self.open_until = Some(Instant::now() + self.wait);
        true
    }
}

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

    // Five failures in a row open the circuit; a success closes it; repeated opening doubles
    // the wait up to a minute.
    #[test]
    fn breaker_opens_backs_off_and_closes() {
        let mut breaker = Breaker::default();
        for _ in 0..BREAKER_FAILURES - 1 {
            assert!(!breaker.failed());
        }
        assert!(breaker.allows());
        assert!(breaker.failed());
        assert!(!breaker.allows());
        assert_eq!(breaker.wait, BREAKER_FIRST_WAIT);
        assert!(breaker.failed());
        assert_eq!(breaker.wait, BREAKER_FIRST_WAIT * 2);
        breaker.succeeded();
        assert!(breaker.allows());
        assert_eq!(breaker.consecutive, 0);
    }
}
