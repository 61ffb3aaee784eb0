//! The processors in use, and how they change while trailhead runs: a plugin file that
//! changes on disk is swapped in by its processor (checked, canaried, rolled back if it keeps
//! failing), and so is a tail_sampling `plugin` policy's (checked and canaried); SIGHUP and
//! `POST /reload` also re-read the config, rebuild the processors whose settings changed, and
//! swap the processor lists of the pipelines that changed.
//!
//! A reload is all or nothing: a config that does not load, or a changed processor that
//! does not load, leaves everything as it was. Receivers, exporters (their batching too, which
//! batch processors set) and the pipelines' wiring are fixed at start; a reload that changes
//! them is refused with the reason.

use super::StartError;
use super::running::{self, Running};
use crate::components::shown::{self, ValueChange};
use crate::components::{Config, ConfigDiff, Snapshot};
use crate::config::ComponentId;
use crate::kubernetes;
use crate::pdata::Signal;
use crate::pipeline::{Pipeline, Processors, batch, memory_limiter};
use crate::processors::tail_sampling::{SamplerSlot, TailSampling};
use crate::processors::wasm::{LoadError, Runtime};
use crate::processors::{
    PROFILES_REFUSAL, WasmProcessor, find_built_in, resourcedetection, tail_sampling,
};
use crate::telemetry::events::{
    Event, ReloadApplied, ReloadInstruments, ReloadRejected, ReloadUnchanged,
};
use crate::telemetry::metrics::Registry;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The loaded processors, by id.
pub type Loaded = BTreeMap<ComponentId, Arc<WasmProcessor>>;

/// What a reload came to: the config's result (the `result` label of
/// `trailhead_config_reloads_total`) and, unless it was rejected, each plugin's own re-read.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Changed processors were swapped in.
    Applied(Vec<PluginReload>),
    /// The config's processors were as they ran (plugin files may still have changed).
    Unchanged(Vec<PluginReload>),
    /// Nothing changed; the reason.
    Rejected(String),
}

/// One plugin's re-read on a reload: whether a new version was swapped in, or why not.
#[derive(Debug)]
pub struct PluginReload {
    pub processor: String,
    /// For a tail_sampling `plugin` policy, its name.
    pub policy: Option<String>,
    pub outcome: Result<bool, String>,
}

impl PluginReload {
    fn to_json(&self) -> serde_json::Value {
        let mut entry = serde_json::json!({"processor": self.processor});
        if let Some(policy) = &self.policy {
            entry["policy"] = policy.as_str().into();
        }
        match &self.outcome {
            Ok(swapped) => entry["swapped"] = (*swapped).into(),
            Err(error) => entry["error"] = error.as_str().into(),
        }
        entry
    }
}

impl ReloadOutcome {
    /// `POST /reload`'s answer: `{"config": RESULT, "plugins": [...]}` or
    /// `{"config": "rejected", "error": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        let (config, plugins) = match self {
            ReloadOutcome::Applied(plugins) => ("applied", plugins),
            ReloadOutcome::Unchanged(plugins) => ("unchanged", plugins),
            ReloadOutcome::Rejected(error) => {
                return serde_json::json!({"config": "rejected", "error": error});
            }
        };
        let plugins: Vec<serde_json::Value> = plugins.iter().map(PluginReload::to_json).collect();
        serde_json::json!({"config": config, "plugins": plugins})
    }
}

/// Loads every processor the pipelines use: reads, pins, compiles and initialises each plugin
/// with its config. `trailhead validate` calls this too, so plugin config errors show there.
pub fn load_processors(
    config: &Config,
    registry: &Arc<Registry>,
    metadata: &Arc<kubernetes::Store>,
) -> Result<Loaded, StartError> {
    load(config, registry, metadata, &mut None, &BTreeMap::new())
}

/// Loads the processors `config` uses, reusing those in `keep` whose settings are unchanged.
fn load(
    config: &Config,
    registry: &Arc<Registry>,
    metadata: &Arc<kubernetes::Store>,
    runtime: &mut Option<Arc<Runtime>>,
    keep: &BTreeMap<ComponentId, (serde_json::Value, Arc<WasmProcessor>)>,
) -> Result<Loaded, StartError> {
    let mut loaded = BTreeMap::new();
    for pipeline in config.service.pipelines.values() {
        for id in &pipeline.processors {
            // The memory limiter is the host's, at the receivers (`pipeline::memory_limiter`);
            // a batch processor is the exporters' batching (`pipeline::batch`); tail_sampling
            // is built per pipeline with it (`service::build_pipelines`).
            let host_own = [memory_limiter::KIND, batch::KIND, tail_sampling::KIND]
                .contains(&id.kind.as_str());
            if loaded.contains_key(id) || host_own {
                continue;
            }
            let failed = |message: String| {
                StartError::Processor(config.processor_diagnostic(id, "", message))
            };
            let processor = config
                .processors
                .get(id)
                .ok_or_else(|| failed("not defined".into()))?;
            if let Some((settings, running)) = keep.get(id)
                && *settings == processor.settings
            {
                loaded.insert(id.clone(), running.clone());
                continue;
            }
            let (host, plugin_config) = processor.host_settings().map_err(failed)?;
            let (kind, plugin_config) = if processor.kind == resourcedetection::KIND {
                // Detected here; nothing detected leaves the processor out of the chain.
                let settings =
                    resourcedetection::resource_settings(&plugin_config).map_err(|e| {
                        StartError::Processor(config.processor_diagnostic(id, &e, e.clone()))
                    })?;
                match settings {
                    Some(settings) => (resourcedetection::APPLIED_BY, settings),
                    None => continue,
                }
            } else {
                (processor.kind.as_str(), plugin_config)
            };
            let path = match &host.plugin {
                Some(p) => config.resolve_path(p),
                None => find_built_in(kind).map_err(failed)?,
            };
            let runtime = match runtime {
                Some(runtime) => runtime,
                None => runtime.insert(
                    Runtime::with_metadata(metadata.clone())
                        .map_err(|e| failed(format!("cannot start the Wasm runtime: {e:#}")))?,
                ),
            };
            let plugin = runtime
                .load(
                    &id.to_string(),
                    &path,
                    host.sha256.as_deref(),
                    &plugin_config,
                    host.limits.to_limits(),
                )
                .map_err(|e| match &e {
                    LoadError::Init { reason, .. } => StartError::Processor(
                        config.processor_diagnostic(id, reason, e.to_string()),
                    ),
                    _ => failed(e.to_string()),
                })?;
            tracing::info!(processor = %id, plugin = %plugin.info.name, version = %plugin.info.version, sha256 = %plugin.sha256, contract = plugin.info.contract, compiled = plugin.compiled.as_str(), "plugin loaded");
            loaded.insert(
                id.clone(),
                Arc::new(WasmProcessor::new(plugin, host.on_failure, registry)),
            );
        }
    }
    check_profiles(config, &loaded)?;
    Ok(loaded)
}

/// Refuses a plugin on a profiles pipeline that does not declare `profiles` (which only a
/// plugin's `init` tells, so the config's own checks let a `plugin:` through to here), and
/// marks the others, so a new version of theirs that stops declaring it is refused too.
fn check_profiles(config: &Config, loaded: &Loaded) -> Result<(), StartError> {
    let on_profiles = |id: &ComponentId| {
        config.service.pipelines.iter().find(|(pipeline, p)| {
            Signal::parse(&pipeline.kind) == Some(Signal::Profiles) && p.processors.contains(id)
        })
    };
    for (id, processor) in loaded {
        let pipeline = on_profiles(id).map(|(pipeline, _)| pipeline);
        processor.set_on_profiles(pipeline.is_some());
        if let Some(pipeline) = pipeline
            && !processor.handles(Signal::Profiles)
        {
            let message = format!(
                "processor `{id}` cannot process profiles: its plugin does not declare \
                 `profiles` in its signals; {PROFILES_REFUSAL}"
            );
            return Err(StartError::Processor(
                config.pipeline_diagnostic(pipeline, id, message),
            ));
        }
    }
    Ok(())
}

/// A pipeline's processor list from the loaded processors and the pipeline's own stateful
/// ones (`own`: tail_sampling, built per pipeline and kept across reloads).
pub fn chain(ids: &[ComponentId], loaded: &Loaded, own: &Processors) -> Processors {
    ids.iter()
        .filter_map(|id| match loaded.get(id) {
            Some(p) => Some(p.clone() as Arc<dyn crate::pipeline::Processor>),
            None => own.iter().find(|p| p.id() == id.to_string()).cloned(),
        })
        .collect()
}

/// Each loaded processor with the settings it was loaded from.
fn with_settings(
    config: &Config,
    loaded: Loaded,
) -> BTreeMap<ComponentId, (serde_json::Value, Arc<WasmProcessor>)> {
    loaded
        .into_iter()
        .map(|(id, p)| {
            let settings = config.processors.get(&id).map(|c| c.settings.clone());
            (id, (settings.unwrap_or_default(), p))
        })
        .collect()
}

/// What the last successful (re)load set up.
struct Current {
    /// What the running config's diff against a new one starts from.
    snapshot: Snapshot,
    /// The running config as written, for the next reload's change list.
    written: serde_json::Value,
    /// Its pipelines' shape.
    topology: serde_json::Value,
    processors: BTreeMap<ComponentId, (serde_json::Value, Arc<WasmProcessor>)>,
    runtime: Option<Arc<Runtime>>,
}

/// The reload controller: the live processors, the pipelines that run them, and what changes
/// them while trailhead runs (SIGHUP, `POST /reload`, a plugin file that changes).
pub struct Reloader {
    /// The config file to re-read; `None` for the embedded default.
    source: Option<PathBuf>,
    registry: Arc<Registry>,
    metadata: Arc<kubernetes::Store>,
    pipelines: BTreeMap<String, Arc<Pipeline>>,
    /// Held for the whole of a reload, so two never interleave.
    current: Mutex<Current>,
    /// Every loaded processor, for the file watcher and `GET /plugins`.
    live: ArcSwap<Vec<Arc<WasmProcessor>>>,
    /// The tail_sampling `plugin` policies, fixed at start (a change to tail_sampling's
    /// settings needs a restart); their files are watched and re-read as processors' are.
    samplers: Vec<Arc<SamplerSlot>>,
    instruments: ReloadInstruments,
    /// What the console shows of the config: replaced by every reload.
    running: ArcSwap<Running>,
}

impl Reloader {
    pub fn new(
        config: &Config,
        loaded: Loaded,
        pipelines: BTreeMap<String, Arc<Pipeline>>,
        telemetry: &crate::telemetry::Telemetry,
        metadata: &Arc<kubernetes::Store>,
        tail_sampling: &[Arc<TailSampling>],
    ) -> Self {
        let registry = &telemetry.registry;
        let samplers = tail_sampling.iter().flat_map(|t| t.plugins()).cloned();
        let live = loaded.values().cloned().collect();
        let processors = with_settings(config, loaded);
        let embedded = config.source.to_string_lossy().starts_with('<');
        Reloader {
            source: (!embedded).then(|| config.source.clone()),
            registry: registry.clone(),
            metadata: metadata.clone(),
            pipelines,
            current: Mutex::new(Current {
                snapshot: Snapshot::of(config),
                written: config.as_written(),
                topology: running::topology(config),
                processors,
                runtime: None,
            }),
            live: ArcSwap::from_pointee(live),
            samplers: samplers.collect(),
            instruments: ReloadInstruments::new(registry, telemetry.tracer.clone()),
            running: ArcSwap::from_pointee(Running::of(config)),
        }
    }

    /// Re-reads the config and every plugin file, then records how it went for the console.
    /// Blocking.
    fn reload_blocking(&self) -> ReloadOutcome {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut changes = Vec::new();
        let outcome = self.reload_locked(&mut current, &mut changes);
        let settings = shown::redacted(&current.written);
        let topology = current.topology.clone();
        let next =
            (self.running.load()).after_reload(settings, topology, outcome.to_json(), &changes);
        self.running.store(Arc::new(next));
        outcome
    }

    /// The reload itself, under the lock; `changes` gets what the new config changes.
    fn reload_locked(
        &self,
        current: &mut Current,
        changes: &mut Vec<ValueChange>,
    ) -> ReloadOutcome {
        let config = match self.source.as_ref().map(|s| Config::load(s)) {
            None => None,
            Some(Ok(config)) => {
                config.warn_unset_env();
                Some(config)
            }
            Some(Err(e)) => return ReloadOutcome::Rejected(e.to_string()),
        };
        let mut changed = false;
        if let Some(config) = config {
            let written = config.as_written();
            *changes = shown::changes(&current.written, &written);
            // What start would refuse (`Plan`), refused here with its own message rather than
            // as a change that needs a restart.
            if let Err(refused) = config.batching() {
                let (id, message) = (refused.processor, refused.message);
                return ReloadOutcome::Rejected(format!("processor `{id}`: {message}"));
            }
            let snapshot = Snapshot::of(&config);
            let fixed = ConfigDiff::new(&current.snapshot, &snapshot).needs_restart();
            if !fixed.is_empty() {
                return ReloadOutcome::Rejected(format!(
                    "{}: these need a restart (only processors and the pipelines' processor lists change on a reload)",
                    fixed.join("; ")
                ));
            }
            let mut runtime = current.runtime.take();
            let loaded = load(
                &config,
                &self.registry,
                &self.metadata,
                &mut runtime,
                &current.processors,
            );
            current.runtime = runtime;
            let loaded = match loaded {
                Ok(loaded) => loaded,
                Err(e) => return ReloadOutcome::Rejected(e.to_string()),
            };
            changed = loaded.iter().any(|(id, p)| {
                current
                    .processors
                    .get(id)
                    .is_none_or(|(_, old)| !Arc::ptr_eq(old, p))
            }) || loaded.len() != current.processors.len();
            for (id, pipeline) in &config.service.pipelines {
                if let Some(running) = self.pipelines.get(&id.to_string()) {
                    // A tail_sampling processor keeps its held traces: the one running goes on
                    // (a change to it needs a restart, see `ConfigDiff`).
                    let own = running.processors.load_full();
                    let next = chain(&pipeline.processors, &loaded, &own);
                    running.processors.store(Arc::new(next));
                }
            }
            self.live
                .store(Arc::new(loaded.values().cloned().collect()));
            current.processors = with_settings(&config, loaded);
            current.snapshot = snapshot;
            current.topology = running::topology(&config);
            current.written = written;
        }
        let mut plugins: Vec<PluginReload> = self
            .live
            .load()
            .iter()
            .map(|plugin| PluginReload {
                processor: plugin_id(plugin).to_string(),
                policy: None,
                outcome: plugin.reload().map_err(|e| e.to_string()),
            })
            .collect();
        plugins.extend(self.samplers.iter().map(|slot| PluginReload {
            processor: slot.processor().to_string(),
            policy: Some(slot.policy().to_string()),
            outcome: slot.reload(),
        }));
        match changed {
            true => ReloadOutcome::Applied(plugins),
            false => ReloadOutcome::Unchanged(plugins),
        }
    }

    /// Re-reads the config and every plugin file, off the async executor.
    pub async fn reload(self: Arc<Self>) -> ReloadOutcome {
        let started = std::time::SystemTime::now();
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.reload_blocking())
            .await
            .unwrap_or_else(|e| ReloadOutcome::Rejected(e.to_string()));
        self.report(&outcome, started);
        outcome
    }

    /// A reload's counter, log line and span.
    fn report(&self, outcome: &ReloadOutcome, started: std::time::SystemTime) {
        let to = &self.instruments;
        match outcome {
            ReloadOutcome::Rejected(error) => ReloadRejected { started, error }.emit(to),
            ReloadOutcome::Applied(_) => {
                // Only a config read from a file can change, so `source` is set here.
                let config = self.source.as_deref().unwrap_or(std::path::Path::new(""));
                ReloadApplied { started, config }.emit(to)
            }
            ReloadOutcome::Unchanged(_) => ReloadUnchanged { started }.emit(to),
        }
    }

    /// Reloads a plugin (a processor's or a sampling policy's) whenever its file changes,
    /// until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut seen: BTreeMap<String, Option<Fingerprint>> = BTreeMap::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
            for plugin in self.live.load_full().iter() {
                let key = plugin_id(plugin).to_string();
                if changed(&mut seen, key, &plugin.path()) {
                    let plugin = plugin.clone();
                    let _ = tokio::task::spawn_blocking(move || plugin.reload()).await;
                }
            }
            // By position: two pipelines listing one tail_sampling id each run their own.
            for (i, slot) in self.samplers.iter().enumerate() {
                let key = format!("sampler {i}");
                if changed(&mut seen, key, slot.path()) {
                    let slot = slot.clone();
                    let _ = tokio::task::spawn_blocking(move || slot.reload()).await;
                }
            }
        }
    }

    /// The running config and the last reload, as the console shows them.
    pub(super) fn running(&self) -> Arc<Running> {
        self.running.load_full()
    }

    /// The one Kubernetes cache (the console's lookup by IP reads it).
    pub(super) fn metadata(&self) -> &Arc<kubernetes::Store> {
        &self.metadata
    }

    /// What `GET /plugins` lists (the console shows it too).
    pub(super) fn status(&self) -> Vec<serde_json::Value> {
        let processors = self
            .live
            .load()
            .iter()
            .map(|p| p.status())
            .collect::<Vec<_>>();
        let samplers = self.samplers.iter().map(|slot| slot.status());
        processors.into_iter().chain(samplers).collect()
    }
}

fn plugin_id(plugin: &WasmProcessor) -> &str {
    crate::pipeline::Processor::id(plugin)
}

/// How often plugin files are checked for changes. The check follows symlinks, so kubelet's
/// atomic `..data` swap of a ConfigMap volume counts as a change.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// What identifies a file's content cheaply: modification time, length and inode.
type Fingerprint = (std::time::SystemTime, u64, u64);

/// Whether the file at `path`, watched under `key`, changed since the last look (and exists).
fn changed(
    seen: &mut BTreeMap<String, Option<Fingerprint>>,
    key: String,
    path: &std::path::Path,
) -> bool {
    let now = fingerprint(path);
    let last = seen.insert(format!("{key}\0{}", path.display()), now);
    last.is_some_and(|last| last != now) && now.is_some()
}

fn fingerprint(path: &std::path::Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// `GET /plugins` lists every loaded plugin; `POST /reload` re-reads the config and plugins.
/// `/reload` changes what runs, so it answers only connections from this host (an operator's
/// `kubectl port-forward` or `exec`), even when the metrics address is open to the cluster.
pub fn routes(plugins: Arc<Reloader>) -> axum::Router {
    let listed = plugins.clone();
    let control = axum::Router::new()
        .route(
            "/reload",
            axum::routing::post(move || {
                let plugins = plugins.clone();
                async move {
                    let outcome = plugins.reload().await;
                    let status = match outcome {
                        ReloadOutcome::Rejected(_) => http::StatusCode::UNPROCESSABLE_ENTITY,
                        _ => http::StatusCode::OK,
                    };
                    (status, axum::Json(outcome.to_json()))
                }
            }),
        )
        .layer(axum::middleware::from_fn(local_only));
    axum::Router::new()
        .route(
            "/plugins",
            axum::routing::get(move || {
                let listed = listed.clone();
                async move { axum::Json(listed.status()) }
            }),
        )
        .merge(control)
}

/// Refuses (403) a request that did not come from a loopback address.
pub async fn local_only(
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if is_local(peer.ip()) {
        next.run(request).await
    } else {
        let message = format!(
            "{} answers only connections from this host",
            request.uri().path()
        );
        (http::StatusCode::FORBIDDEN, message).into_response()
    }
}

fn is_local(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::{PluginReload, ReloadOutcome};

    // The reload answer lists a sampling policy's plugin with its policy, beside processors.
    #[test]
    fn the_answer_names_a_sampling_policy() {
        let plugins = vec![
            PluginReload {
                processor: "filter".into(),
                policy: None,
                outcome: Ok(false),
            },
            PluginReload {
                processor: "tail_sampling".into(),
                policy: Some("custom".into()),
                outcome: Err("plugin `x` is not a valid component".into()),
            },
        ];
        let answer = ReloadOutcome::Unchanged(plugins).to_json();
        let expected = serde_json::json!({"config": "unchanged", "plugins": [
            {"processor": "filter", "swapped": false},
            {"processor": "tail_sampling", "policy": "custom",
             "error": "plugin `x` is not a valid component"},
        ]});
        assert_eq!(answer, expected);
    }

    #[test]
    fn only_loopback_is_local() {
        for (ip, local) in [
            ("127.0.0.1", true),
            ("127.3.2.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.7", false),
            ("::ffff:10.0.0.7", false),
        ] {
            assert_eq!(super::is_local(ip.parse().unwrap()), local, "{ip}");
        }
    }
}
