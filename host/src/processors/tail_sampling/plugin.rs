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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    /// The example plugin `make plugins` builds (needs `make plugins` first).
    fn example() -> String {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/plugins/error-latency-sampler.wasm"
        )
        .to_string()
    }

    fn settings(path: &str, config: serde_json::Value) -> PluginPolicyConfig {
        PluginPolicyConfig {
            path: path.to_string(),
            sha256: String::new(),
            config: Some(config),
            limits: Default::default(),
        }
    }

    /// One span as an encoded request: its name, duration in ms and status code.
    fn trace(name: &str, ms: u64, code: i32) -> Vec<u8> {
        let start = 1_700_000_000_000_000_000u64;
        let span = Span {
            name: name.into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + ms * 1_000_000,
            status: Some(Status {
                code,
                ..Default::default()
            }),
            ..Default::default()
        };
        let scope = ScopeSpans {
            spans: vec![span],
            ..Default::default()
        };
        let resource = ResourceSpans {
            scope_spans: vec![scope],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![resource],
        }
        .encode_to_vec()
    }

    fn build(config: serde_json::Value) -> Result<PluginPolicy, String> {
        PluginPolicy::build("p", &settings(&example(), config), "policies[0]")
    }

    // The example keeps errors and traces over its threshold, and not the rest.
    #[test]
    fn the_example_decides_errors_and_latency() {
        let mut policy = build(serde_json::json!({"threshold_ms": 100})).unwrap();
        let mut decide = |bytes: Vec<u8>| policy.plugin.decide(&bytes).unwrap();
        assert_eq!(decide(trace("a", 50, 0)), sampler::Decision::NotSampled);
        assert_eq!(decide(trace("a", 50, 2)), sampler::Decision::Sampled);
        assert_eq!(decide(trace("a", 101, 1)), sampler::Decision::Sampled);
        assert_eq!(decide(trace("a", 100, 1)), sampler::Decision::NotSampled);
    }

    // A trap is an error for that trace only: the next decision runs on a new instance.
    #[test]
    fn a_trap_is_an_error_and_the_instance_is_rebuilt() {
        let config = serde_json::json!({"threshold_ms": 10, "panic_on_span_named": "boom"});
        let mut policy = build(config).unwrap();
        let failed = policy.plugin.decide(&trace("boom", 50, 2));
        assert!(failed.is_err(), "{failed:?}");
        let next = policy.plugin.decide(&trace("fine", 50, 0));
        assert_eq!(next, Ok(sampler::Decision::Sampled));
    }

    // On async workers too (where tail_sampling decides): a panicking plugin's blocking
    // stderr write must not panic the host, on either runtime flavour.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_trap_on_an_async_worker_is_an_error() {
        let config = serde_json::json!({"threshold_ms": 10, "panic_on_span_named": "boom"});
        let mut policy = build(config).unwrap();
        assert!(policy.plugin.decide(&trace("boom", 50, 2)).is_err());
        assert_eq!(
            policy.plugin.decide(&trace("ok", 50, 0)),
            Ok(sampler::Decision::Sampled)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_trap_on_a_current_thread_runtime_is_an_error() {
        let config = serde_json::json!({"threshold_ms": 10, "panic_on_span_named": "boom"});
        let mut policy = build(config).unwrap();
        assert!(policy.plugin.decide(&trace("boom", 50, 2)).is_err());
        assert_eq!(
            policy.plugin.decide(&trace("ok", 50, 0)),
            Ok(sampler::Decision::Sampled)
        );
    }

    // Refusals name the key: no path, a missing file, a wrong pin, a config the plugin rejects.
    #[test]
    fn bad_settings_are_refused_at_their_key() {
        let at = "policies[2]";
        let empty = PluginPolicy::build("p", &settings("", serde_json::json!({})), at);
        assert!(empty.unwrap_err().starts_with("policies[2].plugin.path: "));
        let missing = settings("/nonexistent/x.wasm", serde_json::json!({}));
        let err = PluginPolicy::build("p", &missing, at).unwrap_err();
        assert!(err.contains("cannot read plugin"), "{err}");
        let mut pinned = settings(&example(), serde_json::json!({}));
        pinned.sha256 = "00".repeat(32);
        let err = PluginPolicy::build("p", &pinned, at).unwrap_err();
        assert!(err.contains("but the config pins"), "{err}");
        let err = build(serde_json::json!({"no_such_key": 1})).unwrap_err();
        assert!(err.contains("rejected its config"), "{err}");
        assert!(err.contains("no_such_key"), "{err}");
    }

    // A processor component is not a sampler: refused as not implementing the world.
    #[test]
    fn a_processor_plugin_is_not_a_sampler() {
        let path = example().replace("error-latency-sampler", "latency-sampler");
        let err = PluginPolicy::build("p", &settings(&path, serde_json::json!({})), "policies[0]")
            .unwrap_err();
        assert!(
            err.contains("does not implement mathtrail:sampler"),
            "{err}"
        );
    }
}
