//! The `plugin` policy, trailhead's own: a Wasm component implementing the `sampler` world
//! (`wit/sampler`) decides each whole trace. A trap or a deadline decides `not_sampled`, is
//! counted and logged, and the plugin's instance is rebuilt for the next trace.

use super::config::PluginPolicyConfig;
use super::policy::Decision;
use super::trace::TraceData;
use crate::processors::wasm::Runtime;
use crate::processors::wasm::sampler::{self, SamplerPlugin};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Failed plugin decisions (traps, deadlines) across all plugin policies since start.
pub static ERRORS: AtomicU64 = AtomicU64::new(0);

/// One runtime for every sampling plugin: compiled components are shared between the
/// validation build and the running one.
fn runtime() -> Result<Arc<Runtime>, String> {
    static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new().map_err(|e| format!("cannot start the Wasm runtime: {e}")))
        .clone()
}

/// A built `plugin` policy.
#[derive(Debug)]
pub struct PluginPolicy {
    name: String,
    plugin: SamplerPlugin,
}

impl PluginPolicy {
    /// Loads the plugin at `plugin.path`; errors start with `at`, the policy's key path.
    pub fn build(name: &str, config: &PluginPolicyConfig, at: &str) -> Result<Self, String> {
        if config.path.is_empty() {
            return Err(format!(
                "{at}.plugin.path: a `plugin` policy needs the path of its .wasm component"
            ));
        }
        let json = match &config.config {
            Some(value) if !value.is_null() => value.to_string(),
            _ => "{}".to_string(),
        };
        let pin = Some(config.sha256.as_str()).filter(|s| !s.is_empty());
        let plugin = runtime()
            .map_err(|e| format!("{at}.plugin: {e}"))?
            .load_sampler(name, Path::new(&config.path), pin, &json)
            .map_err(|e| format!("{at}.plugin.path: {e}"))?;
        Ok(PluginPolicy {
            name: name.to_string(),
            plugin,
        })
    }

    /// The plugin's decision on `trace`; a failed call is `NotSampled`, counted and logged.
    pub fn evaluate(&mut self, trace: &TraceData) -> Decision {
        match self.plugin.decide(trace.encoded()) {
            Ok(sampler::Decision::Sampled) => Decision::Sampled,
            Ok(sampler::Decision::NotSampled) => Decision::NotSampled,
            Ok(sampler::Decision::Dropped) => Decision::Dropped,
            Err(why) => {
                let total = ERRORS.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    policy = %self.name,
                    plugin = %self.plugin.path.display(),
                    errors_total = total,
                    "sampling plugin failed; the trace is not sampled by this policy: {why}"
                );
                Decision::NotSampled
            }
        }
    }
}
