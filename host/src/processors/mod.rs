//! Processors: a processor entry's host settings, and the pipeline slot that runs a Wasm plugin
//! under its failure policy.
//!
//! A processor entry mixes two kinds of keys. `plugin`, `sha256`, `on_failure` and `limits`
//! belong to the host. Every other key is handed to the plugin as JSON, so the collector's
//! `k8sattributes:` and `filter:` blocks keep their shape.

pub mod wasm;

use crate::pdata::Batch;
use crate::pipeline::{ProcessError, Processor};
use crate::telemetry::metrics::{Counter, Registry};
use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasm::{Failure, FailureKind, Plugin};

/// Processor types whose plugins ship with trailhead (found without a `plugin:` path).
pub const BUILT_IN: &[&str] = &["k8sattributes", "filter"];

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
pub fn split_settings(settings: &serde_yaml::Value) -> Result<(HostSettings, String), String> {
    let mut host = serde_yaml::Mapping::new();
    let mut plugin = serde_yaml::Mapping::new();
    if let Some(map) = settings.as_mapping() {
        for (key, value) in map {
            let is_host = key.as_str().is_some_and(|k| HOST_KEYS.contains(&k));
            if is_host { &mut host } else { &mut plugin }.insert(key.clone(), value.clone());
        }
    }
    let host: HostSettings =
        serde_yaml::from_value(serde_yaml::Value::Mapping(host)).map_err(|e| e.to_string())?;
    let json = serde_json::to_string(&plugin).map_err(|e| e.to_string())?;
    Ok((host, json))
}

/// Counters for one processor.
#[derive(Clone)]
struct ProcessorMetrics {
    registry: Arc<Registry>,
    id: String,
    calls: Counter,
    dropped_items: Counter,
}

impl ProcessorMetrics {
    fn failure(&self, kind: FailureKind) -> Counter {
        self.registry.counter(
            "trailhead_processor_failures_total",
            "Plugin calls that failed, by kind: timeout, out_of_memory, panic, trap, plugin_error.",
            &[("processor", &self.id), ("kind", kind.as_str())],
        )
    }
}

/// A pipeline slot running a Wasm plugin. The plugin version is swapped atomically; a batch
/// in flight finishes on the version it started with.
pub struct WasmProcessor {
    id: String,
    plugin: ArcSwap<Plugin>,
    on_failure: OnFailure,
    metrics: ProcessorMetrics,
}

impl WasmProcessor {
    pub fn new(plugin: Plugin, on_failure: OnFailure, registry: &Arc<Registry>) -> Self {
        let id = plugin.id.to_string();
        let labels = [("processor", id.as_str())];
        let metrics = ProcessorMetrics {
            calls: registry.counter(
                "trailhead_processor_calls_total",
                "Batches handed to a plugin.",
                &labels,
            ),
            dropped_items: registry.counter(
                "trailhead_processor_dropped_items_total",
                "Items a processor removed, by its own decision or by on_failure: drop.",
                &labels,
            ),
            registry: registry.clone(),
            id: id.clone(),
        };
        WasmProcessor {
            id,
            plugin: ArcSwap::from_pointee(plugin),
            on_failure,
            metrics,
        }
    }

    fn failed(&self, batch: Batch, failure: Failure) -> Option<Batch> {
        self.metrics.failure(failure.kind).add(1);
        tracing::warn!(
            processor = %self.id,
            kind = failure.kind.as_str(),
            error = %failure.message,
            plugin_output = %failure.output,
            on_failure = ?self.on_failure,
            items = batch.items,
            "plugin failed on a batch"
        );
        match self.on_failure {
            OnFailure::Pass => Some(batch),
            OnFailure::Drop => {
                self.metrics.dropped_items.add(batch.items as u64);
                None
            }
        }
    }
}

impl Processor for WasmProcessor {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Option<Batch>, ProcessError>> {
        Box::pin(async move {
            let plugin = self.plugin.load_full();
            if !plugin.handles(batch.signal) {
                return Ok(Some(batch));
            }
            self.metrics.calls.add(1);
            let input = batch.clone();
            let outcome = tokio::task::spawn_blocking(move || plugin.call(&input))
                .await
                .map_err(|e| ProcessError {
                    processor: self.id.clone(),
                    message: format!("plugin worker failed: {e}"),
                })?;
            match outcome {
                Ok(payload) => {
                    let items =
                        crate::pdata::wire::count_items(batch.signal, &payload).unwrap_or(0);
                    self.metrics
                        .dropped_items
                        .add(batch.items.saturating_sub(items) as u64);
                    Ok((items > 0).then(|| Batch {
                        payload,
                        items,
                        ..batch
                    }))
                }
                Err(failure) => Ok(self.failed(batch, failure)),
            }
        })
    }
}
