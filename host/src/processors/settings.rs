//! A processor entry's host settings: `plugin`, `sha256`, `on_failure` and `limits`. Every
//! other key is handed to the plugin as JSON, so the collector's `k8sattributes:` and
//! `filter:` blocks keep their shape.

use super::wasm;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The host's keys of a processor entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSettings {
    /// Path to the plugin's `.wasm` component, relative to the config file.
    pub plugin: Option<PathBuf>,
    /// The plugin file's expected sha256 (hex); a different file is refused.
    pub sha256: Option<String>,
    /// What happens to a batch the plugin fails on: `pass` it on (default) or `drop` it.
    pub on_failure: OnFailure,
    /// The plugin's memory and time per batch.
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

impl OnFailure {
    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Pass => "pass",
            OnFailure::Drop => "drop",
        }
    }
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
    let host = keys(settings, |key| HOST_KEYS.contains(&key));
    let host: HostSettings = serde_json::from_value(host).map_err(|e| e.to_string())?;
    Ok((host, plugin_settings(settings)))
}

/// The plugin's part of a processor entry, as the JSON its `init` gets: every key but the
/// host's.
pub fn plugin_settings(settings: &serde_json::Value) -> String {
    keys(settings, |key| !HOST_KEYS.contains(&key)).to_string()
}

fn keys(settings: &serde_json::Value, wanted: impl Fn(&str) -> bool) -> serde_json::Value {
    let map = settings.as_object().into_iter().flatten();
    let kept = map.filter(|(key, _)| wanted(key));
    serde_json::Value::Object(kept.map(|(k, v)| (k.clone(), v.clone())).collect())
}
