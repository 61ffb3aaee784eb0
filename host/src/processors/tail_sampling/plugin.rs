//! The `plugin` policy, trailhead's own: a Wasm component implementing the `sampler` world
//! (`wit/sampler`) decides each whole trace. A trap, a deadline or running out of memory
//! decides `not_sampled`, is counted (`trailhead_tail_sampling_plugin_failures_total`) and
//! logged, and the plugin's instance is rebuilt for the next trace.
//!
//! The one idea: the running version sits in a [`SamplerSlot`] behind an `ArcSwap`, as a
//! processor's does. The reloader (`service::reload`: the file watcher, SIGHUP, `POST /reload`)
//! swaps in a version that loaded, initialised and decided a canary trace; a decision holds the
//! version it started on, so it finishes there. A version that fails any step is refused and
//! the running one keeps deciding.

use super::config::PluginPolicyConfig;
use super::policy::Decision;
use super::trace::TraceData;
use crate::processors::wasm::Runtime;
use crate::processors::wasm::sampler::{self, FailureKind, SamplerPlugin, SamplerSpec};
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Recent, Registry};
use arc_swap::ArcSwap;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One runtime for every sampling plugin: compiled components are shared between the
/// validation build and the running one, and between a version and the next.
fn runtime() -> Result<Arc<Runtime>, String> {
    static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new().map_err(|e| format!("cannot start the Wasm runtime: {e}")))
        .clone()
}

/// A plugin policy's running version, shared by the policy that decides with it and the
/// reloader that replaces it.
pub struct SamplerSlot {
    /// The policy's name.
    name: String,
    /// The component file (every version is read from it).
    path: PathBuf,
    version: ArcSwap<Mutex<SamplerPlugin>>,
    /// The sha256 of the version before the last swap.
    previous: Mutex<Option<String>>,
    /// The tail_sampling processor's id, the failure counters by kind and the processor's swap
    /// notes (the console's swap history), once the policy belongs to a running processor (a
    /// validation build has none and only logs).
    attached: OnceLock<(String, [Counter; 3], Arc<Recent>)>,
    /// Failed decisions of this policy since start, for the log line.
    failed_total: AtomicU64,
}

impl std::fmt::Debug for SamplerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerSlot")
            .field("name", &self.name)
            .finish()
    }
}

impl SamplerSlot {
    /// Counts this policy's failures under `processor` in `registry`, from zero.
    pub fn attach(&self, processor: &str, registry: &Registry) {
        let metric = &catalog::TAIL_SAMPLING_PLUGIN_FAILURES;
        let labels = |kind: FailureKind| [processor, self.name.as_str(), kind.as_str()];
        let counters = FailureKind::ALL.map(|kind| registry.counter(metric, &labels(kind)));
        let notes = registry.recent(&format!("processor/{processor}"));
        let _ = self.attached.set((processor.to_string(), counters, notes));
    }

    /// The policy's name.
    pub fn policy(&self) -> &str {
        &self.name
    }

    /// The processor it decides for (empty before [`SamplerSlot::attach`]).
    pub fn processor(&self) -> &str {
        self.attached.get().map_or("", |(id, _, _)| id.as_str())
    }

    /// The component file, for watching.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn failures(&self, kind: FailureKind) -> u64 {
        let at = FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.attached
            .get()
            .map_or(0, |(_, counters, _)| counters[at].get())
    }

    /// Re-reads the component file; swaps in a new version that loads, initialises and decides
    /// its canary. Blocking. Returns whether a new version was swapped in; on an error the
    /// running version stays.
    pub fn reload(&self) -> Result<bool, String> {
        // The lock waits at most for the decision in flight; the new version loads (and may
        // compile, for seconds) without it, so decisions go on meanwhile.
        let source = lock(&self.version.load()).source();
        let (processor, policy) = (self.processor(), self.name.as_str());
        match source.reload() {
            Ok(None) => Ok(false),
            Ok(Some(next)) => {
                let from = source.sha256().to_string();
                let to = next.sha256.clone();
                self.version.store(Arc::new(Mutex::new(next)));
                self.note("applied", format!("policy {policy}: {to} after {from}"));
                tracing::info!(processor, policy, from = %from, to = %to, "sampling plugin swapped");
                *self.previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                Ok(true)
            }
            Err(error) => {
                self.note("rejected", format!("policy {policy}: {error}"));
                tracing::warn!(processor, policy, error = %error, "sampling plugin's new version refused; the running one keeps deciding");
                Err(error)
            }
        }
    }

    /// A swap's outcome in the processor's notes, beside its plugin processors' swaps.
    fn note(&self, outcome: &str, detail: String) {
        if let Some((_, _, notes)) = self.attached.get() {
            notes.note(outcome, detail);
        }
    }

    /// What `GET /plugins` shows for this policy's plugin.
    pub fn status(&self) -> serde_json::Value {
        let version = self.version.load();
        let plugin = lock(&version);
        let failures: serde_json::Map<String, serde_json::Value> = FailureKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), self.failures(*k).into()))
            .collect();
        serde_json::json!({
            "id": self.processor(),
            "policy": self.name,
            "contract": "mathtrail:sampler@0.1.0",
            "sha256": plugin.sha256,
            "path": plugin.path(),
            "failures": failures,
            "previous_sha256": *self.previous.lock().unwrap_or_else(|e| e.into_inner()),
        })
    }

    /// The running version's decision on `trace`: the version is held for the whole call, so
    /// a swap meanwhile applies from the next trace on.
    fn decide(&self, trace: &[u8]) -> Result<sampler::Decision, sampler::Failure> {
        let version = self.version.load_full();
        let mut plugin = lock(&version);
        plugin.decide(trace)
    }

    fn failed(&self, failure: &sampler::Failure) {
        let total = self.failed_total.fetch_add(1, Ordering::Relaxed) + 1;
        let processor = match self.attached.get() {
            Some((processor, counters, _)) => {
                let at = FailureKind::ALL.iter().position(|k| *k == failure.kind);
                counters[at.unwrap_or(0)].add(1);
                processor.as_str()
            }
            None => "",
        };
        tracing::warn!(
            processor,
            policy = %self.name,
            kind = failure.kind.as_str(),
            errors_total = total,
            error = %failure.message,
            "sampling plugin failed; the trace is not sampled by this policy"
        );
    }
}

fn lock(version: &Mutex<SamplerPlugin>) -> std::sync::MutexGuard<'_, SamplerPlugin> {
    version.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// The slots built while [`collect`] runs on this thread.
    static BUILT: RefCell<Option<Vec<Arc<SamplerSlot>>>> = const { RefCell::new(None) };
}

/// Runs `build` and returns, with its result, every plugin policy it built. Plugin policies
/// can sit at any depth (`and`, `not`, `composite`), so the processor collects them as they
/// are built rather than walking each policy type for them.
pub fn collect<T>(build: impl FnOnce() -> T) -> (T, Vec<Arc<SamplerSlot>>) {
    let outer = BUILT.replace(Some(Vec::new()));
    let result = build();
    let built = BUILT.replace(outer).unwrap_or_default();
    (result, built)
}

/// A built `plugin` policy.
#[derive(Debug)]
pub struct PluginPolicy {
    slot: Arc<SamplerSlot>,
}

impl PluginPolicy {
    /// Loads the plugin at `plugin.path`; errors start with `at`, the policy's key path.
    pub fn build(name: &str, config: &PluginPolicyConfig, at: &str) -> Result<Self, String> {
        if config.path.is_empty() {
            return Err(format!(
                "{at}.plugin.path: a `plugin` policy needs the path of its .wasm component"
            ));
        }
        let config_json = match &config.config {
            Some(value) if !value.is_null() => value.to_string(),
            _ => "{}".to_string(),
        };
        let spec = SamplerSpec {
            id: name.to_string(),
            path: PathBuf::from(&config.path),
            pin: Some(config.sha256.clone()).filter(|s| !s.is_empty()),
            config_json,
            limits: config.limits.to_limits(),
        };
        let plugin = runtime()
            .map_err(|e| format!("{at}.plugin: {e}"))?
            .load_sampler(&spec)
            .map_err(|e| format!("{at}.plugin.path: {e}"))?;
        let slot = Arc::new(SamplerSlot {
            name: name.to_string(),
            path: spec.path.clone(),
            version: ArcSwap::from_pointee(Mutex::new(plugin)),
            previous: Mutex::new(None),
            attached: OnceLock::new(),
            failed_total: AtomicU64::new(0),
        });
        BUILT.with_borrow_mut(|built| {
            if let Some(built) = built {
                built.push(slot.clone());
            }
        });
        Ok(PluginPolicy { slot })
    }

    /// The plugin's decision on `trace`; a failed call is `NotSampled`, counted and logged.
    pub fn evaluate(&mut self, trace: &TraceData) -> Decision {
        match self.slot.decide(trace.encoded()) {
            Ok(sampler::Decision::Sampled) => Decision::Sampled,
            Ok(sampler::Decision::NotSampled) => Decision::NotSampled,
            Ok(sampler::Decision::Dropped) => Decision::Dropped,
            Err(failure) => {
                self.slot.failed(&failure);
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
        built("error-latency-sampler")
    }

    /// A plugin `make plugins` built, by name.
    fn built(name: &str) -> String {
        format!(
            "{}/../target/plugins/{name}.wasm",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// A policy on a copy of the plugin `name` in a folder of its own, which the test then
    /// overwrites; the file is `dir/sampler.wasm`.
    fn on_a_copy(name: &str, config: serde_json::Value) -> (tempfile::TempDir, PluginPolicy) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sampler.wasm");
        std::fs::copy(built(name), &path).unwrap();
        let settings = settings(path.to_str().unwrap(), config);
        let policy = PluginPolicy::build("p", &settings, "policies[0]").unwrap();
        (dir, policy)
    }

    /// Overwrites the policy's file with the plugin `name` (or with `bytes`).
    fn replace(dir: &tempfile::TempDir, name: &str) {
        std::fs::copy(built(name), dir.path().join("sampler.wasm")).unwrap();
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
        let policy = build(serde_json::json!({"threshold_ms": 100})).unwrap();
        let decide = |bytes: Vec<u8>| policy.slot.decide(&bytes).unwrap();
        assert_eq!(decide(trace("a", 50, 0)), sampler::Decision::NotSampled);
        assert_eq!(decide(trace("a", 50, 2)), sampler::Decision::Sampled);
        assert_eq!(decide(trace("a", 101, 1)), sampler::Decision::Sampled);
        assert_eq!(decide(trace("a", 100, 1)), sampler::Decision::NotSampled);
    }

    // A trap is an error for that trace only: the next decision runs on a new instance.
    #[test]
    fn a_trap_is_an_error_and_the_instance_is_rebuilt() {
        let config = serde_json::json!({"threshold_ms": 10, "panic_on_span_named": "boom"});
        let policy = build(config).unwrap();
        let failed = policy.slot.decide(&trace("boom", 50, 2));
        assert!(failed.is_err(), "{failed:?}");
        let next = policy.slot.decide(&trace("fine", 50, 0));
        assert_eq!(next, Ok(sampler::Decision::Sampled));
    }

    // On async workers too (where tail_sampling decides): a panicking plugin's blocking
    // stderr write must not panic the host, on either runtime flavour.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_trap_on_an_async_worker_is_an_error() {
        let config = serde_json::json!({"threshold_ms": 10, "panic_on_span_named": "boom"});
        let policy = build(config).unwrap();
        assert!(policy.slot.decide(&trace("boom", 50, 2)).is_err());
        assert_eq!(
            policy.slot.decide(&trace("ok", 50, 0)),
            Ok(sampler::Decision::Sampled)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_trap_on_a_current_thread_runtime_is_an_error() {
        let config = serde_json::json!({"threshold_ms": 10, "panic_on_span_named": "boom"});
        let policy = build(config).unwrap();
        assert!(policy.slot.decide(&trace("boom", 50, 2)).is_err());
        assert_eq!(
            policy.slot.decide(&trace("ok", 50, 0)),
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

    // A changed file that loads, inits and passes its canary is swapped in: the next decision
    // is the new version's. An unchanged file is not swapped again.
    #[test]
    fn a_good_version_is_swapped_in() {
        let config = serde_json::json!({"threshold_ms": 100});
        let (dir, policy) = on_a_copy("error-latency-sampler", config);
        let quick = trace("a", 50, 0);
        assert_eq!(
            policy.slot.decide(&quick),
            Ok(sampler::Decision::NotSampled)
        );
        assert_eq!(policy.slot.reload(), Ok(false));
        replace(&dir, "keep-all-sampler");
        assert_eq!(policy.slot.reload(), Ok(true));
        assert_eq!(policy.slot.decide(&quick), Ok(sampler::Decision::Sampled));
        assert_eq!(policy.slot.reload(), Ok(false));
        let status = policy.slot.status();
        assert!(status["previous_sha256"].is_string(), "{status}");
    }

    // A decision in flight keeps the version it started on: the swap waits for nothing and
    // the version taken before it still decides as the old one.
    #[test]
    fn a_decision_in_flight_finishes_on_its_version() {
        let config = serde_json::json!({"threshold_ms": 100});
        let (dir, policy) = on_a_copy("error-latency-sampler", config);
        let started = policy.slot.version.load_full();
        replace(&dir, "keep-all-sampler");
        assert_eq!(policy.slot.reload(), Ok(true));
        let old = lock(&started).decide(&trace("a", 50, 0));
        assert_eq!(old, Ok(sampler::Decision::NotSampled));
    }

    // Versions that fail a step are refused with the step named, and the running version
    // keeps deciding: not a component, the processor world, a canary trap, a missing file.
    #[test]
    fn a_bad_version_is_refused_and_the_old_one_keeps_deciding() {
        // keep-all takes this config; error-latency traps on the canary span with it.
        let config = serde_json::json!({"threshold_ms": 100, "panic_on_span_named": "canary"});
        let (dir, policy) = on_a_copy("keep-all-sampler", config);
        let quick = trace("a", 50, 0);
        let file = dir.path().join("sampler.wasm");
        let refused = |expected: &str| {
            let err = policy.slot.reload().unwrap_err();
            assert!(err.contains(expected), "{err}");
            let decision = policy.slot.decide(&quick);
            assert_eq!(decision, Ok(sampler::Decision::Sampled), "after {expected}");
        };
        std::fs::write(&file, b"not wasm").unwrap();
        refused("is not a valid component");
        replace(&dir, "latency-sampler");
        refused("does not implement mathtrail:sampler");
        replace(&dir, "error-latency-sampler");
        refused("failed its canary trace");
        std::fs::remove_file(&file).unwrap();
        refused("cannot read plugin");
    }

    // A config's sha256 pin holds across reloads: a changed file that does not match it is
    // refused, as a processor's.
    #[test]
    fn a_pinned_plugin_refuses_a_changed_file() {
        let bytes = std::fs::read(example()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sampler.wasm");
        std::fs::write(&path, &bytes).unwrap();
        let mut pinned = settings(
            path.to_str().unwrap(),
            serde_json::json!({"threshold_ms": 100}),
        );
        pinned.sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let policy = PluginPolicy::build("p", &pinned, "policies[0]").unwrap();
        replace(&dir, "keep-all-sampler");
        let err = policy.slot.reload().unwrap_err();
        assert!(err.contains("but the config pins"), "{err}");
        let decision = policy.slot.decide(&trace("a", 50, 0));
        assert_eq!(decision, Ok(sampler::Decision::NotSampled));
    }

    // `limits:` takes a processor plugin's keys and defaults, and its errors name the key.
    #[test]
    fn limits_parse_with_the_processor_keys() {
        let parse = |limits: serde_json::Value| {
            let policy = serde_json::json!({"name": "p", "type": "plugin",
                "plugin": {"path": "x.wasm", "limits": limits}});
            super::super::TailSamplingConfig::from_value(&serde_json::json!({"policies": [policy]}))
                .map(|c| c.policies[0].plugin.limits)
        };
        let limits = parse(serde_json::json!({"memory_mib": 8, "timeout_ms": 20})).unwrap();
        assert_eq!((limits.memory_mib, limits.timeout_ms), (8, 20));
        let defaults = parse(serde_json::json!({})).unwrap();
        let processor = crate::processors::LimitSettings::default();
        assert_eq!(
            (defaults.memory_mib, defaults.timeout_ms),
            (processor.memory_mib, processor.timeout_ms)
        );
        let err = parse(serde_json::json!({"cpu_ms": 1})).unwrap_err();
        assert!(err.starts_with("policies[0].plugin.limits"), "{err}");
        let err = parse(serde_json::json!({"timeout_ms": -1})).unwrap_err();
        assert!(
            err.starts_with("policies[0].plugin.limits.timeout_ms"),
            "{err}"
        );
    }

    fn with_limits(memory_mib: usize, timeout_ms: u64) -> Result<PluginPolicy, String> {
        let mut limited = settings(&example(), serde_json::json!({"threshold_ms": 100}));
        limited.limits = crate::processors::LimitSettings {
            memory_mib,
            timeout_ms,
        };
        PluginPolicy::build("p", &limited, "policies[0]")
    }

    // The limits reach the sampler's sandbox: memory below the module's own size leaves no
    // room to start, and a trace that fits in the default 64 MiB does not fit in 2 (see
    // `a_failed_decision_is_counted_by_kind`). The CPU budget is the one configured.
    #[test]
    fn limits_bound_the_plugin() {
        let err = with_limits(0, 100).unwrap_err();
        assert!(err.starts_with("policies[0].plugin.path: "), "{err}");
        let roomy = with_limits(64, 1000).unwrap();
        let wide = roomy.slot.decide(&wide_trace(20_000));
        assert_eq!(wide, Ok(sampler::Decision::NotSampled));
        let limits = lock(&roomy.slot.version.load()).limits();
        assert_eq!(limits.timeout, std::time::Duration::from_millis(1000));
        assert_eq!(limits.memory_bytes, 64 << 20);
    }

    /// A trace of `spans` spans with long names, as an encoded request.
    fn wide_trace(spans: usize) -> Vec<u8> {
        let span = |i: usize| Span {
            name: format!("{i:0>200}"),
            ..Default::default()
        };
        let scope = ScopeSpans {
            spans: (0..spans).map(span).collect(),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![scope],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    // A decision past the memory bound fails as out_of_memory, counted by policy and kind
    // in the processor's registry; the next (small) trace is decided on a fresh instance.
    #[test]
    fn a_failed_decision_is_counted_by_kind() {
        let mut policy = with_limits(2, 1000).unwrap();
        let registry = Registry::default();
        policy.slot.attach("tail_sampling", &registry);
        let id = [7; 16];
        let wide = super::TraceData::new(id, wide_trace(20_000), 20_000);
        assert_eq!(policy.evaluate(&wide), Decision::NotSampled);
        assert_eq!(policy.slot.failures(FailureKind::OutOfMemory), 1);
        let boom = super::TraceData::new(id, trace("ok", 500, 0), 1);
        assert_eq!(policy.evaluate(&boom), Decision::Sampled);
        let rendered = registry.render();
        let line = r#"trailhead_tail_sampling_plugin_failures_total{processor="tail_sampling",policy="p",kind="out_of_memory"} 1"#;
        assert!(rendered.contains(line), "{rendered}");
    }
}
