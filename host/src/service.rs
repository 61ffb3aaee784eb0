//! Builds a running trailhead from a [`Config`] and stops it in stages.
//!
//! Start: exporters first (one per exporter id and signal), then pipelines, then receivers, so
//! nothing is accepted before it has somewhere to go; health turns 200 last. Stop (SIGTERM):
//! health 503, receivers stop accepting and finish in-flight requests, exporter queues close
//! and drain, and whatever is still unsent at the deadline is counted as failed.

use crate::config::{ComponentId, Config, ExporterConfig, ExtensionConfig, ReceiverConfig};
use crate::exporters::otlp::BuildError;
use crate::exporters::{ExporterHandle, spawn_exporter};
use crate::pdata::Signal;
use crate::pipeline::Processor as _;
use crate::pipeline::{Fanout, Pipeline};
use crate::processors::WasmProcessor;
use crate::processors::wasm::{LoadError, Runtime};
use crate::receivers::{self, Consumers, Listening};
use crate::telemetry::{ReceiverMetrics, Telemetry, health};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why trailhead could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("receiver `{id}`: {source}")]
    Receiver { id: String, source: std::io::Error },
    #[error("exporter `{id}`: {source}")]
    Exporter { id: String, source: BuildError },
    #[error("{what}: {source}")]
    Admin {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Processor(crate::config::Diagnostic),
}

/// Loads every processor the pipelines use: reads, pins, compiles and initialises each plugin
/// with its config. `trailhead validate` calls this too, so plugin config errors show there.
pub fn load_processors(
    config: &Config,
    registry: &Arc<crate::telemetry::metrics::Registry>,
) -> Result<BTreeMap<ComponentId, Arc<WasmProcessor>>, StartError> {
    let mut loaded = BTreeMap::new();
    let mut runtime = None;
    for pipeline in config.service.pipelines.values() {
        for id in &pipeline.processors {
            if loaded.contains_key(id) {
                continue;
            }
            let failed =
                |message: String| StartError::Processor(config.processor_diagnostic(id, "", message));
            let processor = config
                .processors
                .get(id)
                .ok_or_else(|| failed("not defined".into()))?;
            let (host, plugin_config) = processor.host_settings().map_err(failed)?;
            let path = match &host.plugin {
                Some(p) => config.resolve_path(p),
                None => crate::processors::find_built_in(&processor.kind).map_err(failed)?,
            };
            let runtime = match &runtime {
                Some(runtime) => runtime,
                None => runtime.insert(
                    Runtime::new()
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
                    LoadError::Init { reason, .. } => {
                        StartError::Processor(config.processor_diagnostic(id, reason, e.to_string()))
                    }
                    _ => failed(e.to_string()),
                })?;
            tracing::info!(processor = %id, plugin = %plugin.info.name, version = %plugin.info.version, sha256 = %plugin.sha256, "plugin loaded");
            loaded.insert(
                id.clone(),
                Arc::new(WasmProcessor::new(plugin, host.on_failure, registry)),
            );
        }
    }
    Ok(loaded)
}

/// A running trailhead.
pub struct Service {
    pub telemetry: Telemetry,
    plugins: Arc<Vec<Arc<WasmProcessor>>>,
    listening: Vec<Listening>,
    admin: Vec<Listening>,
    exporters: Vec<JoinHandle<()>>,
    stop_receivers: CancellationToken,
    stop_exporters: CancellationToken,
    abort_exporters: CancellationToken,
    stop_admin: CancellationToken,
    shutdown_timeout: Duration,
}

impl Service {
    pub async fn start(config: &Config) -> Result<Service, StartError> {
        let telemetry = Telemetry::default();
        let stop_exporters = CancellationToken::new();
        let abort_exporters = CancellationToken::new();
        let mut exporters: BTreeMap<(String, Signal), ExporterHandle> = BTreeMap::new();
        let mut exporter_tasks = Vec::new();
        let mut pipelines: Vec<(Signal, Arc<Pipeline>, &crate::config::PipelineConfig)> =
            Vec::new();
        let processors = load_processors(config, &telemetry.registry)?;

        for (pipeline_id, pipeline) in &config.service.pipelines {
            let Some(signal) = Signal::parse(&pipeline_id.kind) else {
                continue;
            };
            let mut handles = Vec::new();
            for exporter_id in &pipeline.exporters {
                let key = (exporter_id.to_string(), signal);
                if !exporters.contains_key(&key) {
                    let Some(exporter) = config.exporters.get(exporter_id) else {
                        continue;
                    };
                    let id = key.0.clone();
                    let spec = match exporter {
                        ExporterConfig::Otlp(otlp) => otlp
                            .build(&id, signal, |p| config.resolve_path(p))
                            .map_err(|source| StartError::Exporter {
                                id: id.clone(),
                                source,
                            })?,
                        ExporterConfig::Debug(debug) => debug.build(&id, signal),
                    };
                    let (handle, task) = spawn_exporter(
                        spec,
                        &telemetry,
                        stop_exporters.clone(),
                        abort_exporters.clone(),
                    );
                    exporter_tasks.push(task);
                    exporters.insert(key.clone(), handle);
                }
                handles.push(exporters[&key].clone());
            }
            let built = Pipeline {
                id: pipeline_id.to_string(),
                processors: pipeline
                    .processors
                    .iter()
                    .filter_map(|id| processors.get(id))
                    .map(|p| p.clone() as Arc<dyn crate::pipeline::Processor>)
                    .collect(),
                exporters: handles,
            };
            pipelines.push((signal, Arc::new(built), pipeline));
        }

        let stop_receivers = CancellationToken::new();
        let mut listening = Vec::new();
        for (id, receiver) in config.receivers.iter() {
            let mut consumers = Consumers::default();
            for signal in Signal::ALL {
                let feeding: Vec<Arc<Pipeline>> = pipelines
                    .iter()
                    .filter(|(s, _, p)| *s == signal && p.receivers.contains(id))
                    .map(|(_, built, _)| built.clone())
                    .collect();
                if !feeding.is_empty() {
                    let metrics =
                        ReceiverMetrics::new(&telemetry.registry, &id.to_string(), signal);
                    consumers.set(signal, Arc::new(Fanout::new(signal, feeding, metrics)));
                }
            }
            let id_text = id.to_string();
            let failed = |source| StartError::Receiver {
                id: id_text.clone(),
                source,
            };
            if Signal::ALL.iter().all(|s| consumers.get(*s).is_none()) {
                tracing::warn!(receiver = %id, "receiver is not used by any pipeline; not starting it");
                continue;
            }
            match receiver {
                ReceiverConfig::Otlp(otlp) => {
                    if let Some(grpc) = &otlp.protocols.grpc {
                        listening.push(
                            receivers::otlp::grpc::serve(
                                &id_text,
                                grpc,
                                &consumers,
                                stop_receivers.clone(),
                            )
                            .await
                            .map_err(failed)?,
                        );
                    }
                    if let Some(http) = &otlp.protocols.http {
                        let router = receivers::otlp::http::router(&id_text, http, &consumers);
                        let name = format!("{id_text} (http)");
                        listening.push(
                            receivers::serve_http(
                                name,
                                &http.endpoint,
                                router,
                                stop_receivers.clone(),
                            )
                            .await
                            .map_err(failed)?,
                        );
                    }
                }
                ReceiverConfig::Zipkin(zipkin) => {
                    if let Some(router) = receivers::zipkin::router(&id_text, zipkin, &consumers) {
                        listening.push(
                            receivers::serve_http(
                                id_text.clone(),
                                &zipkin.endpoint,
                                router,
                                stop_receivers.clone(),
                            )
                            .await
                            .map_err(failed)?,
                        );
                    }
                }
            }
        }

        let plugins: Arc<Vec<Arc<WasmProcessor>>> =
            Arc::new(processors.values().cloned().collect());
        let stop_admin = CancellationToken::new();
        if !plugins.is_empty() {
            tokio::spawn(watch_plugins(plugins.clone(), stop_admin.clone()));
        }
        let mut admin = Vec::new();
        let metrics = &config.service.telemetry.metrics;
        if metrics.level != "none" {
            let registry = telemetry.registry.clone();
            let router = axum::Router::new()
                .route(
                    "/metrics",
                    axum::routing::get(move || {
                        let registry = registry.clone();
                        async move {
                            (
                                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                                registry.render(),
                            )
                        }
                    }),
                )
                .merge(plugin_routes(plugins.clone()));
            admin.push(
                serve_admin(
                    "metrics",
                    metrics.address,
                    router,
                    &stop_admin,
                    "service.telemetry.metrics",
                )
                .await?,
            );
        }
        for id in &config.service.extensions {
            if let Some(ExtensionConfig::HealthCheck(check)) = config.extensions.get(id) {
                let router = health::router(check, telemetry.health.clone());
                admin.push(
                    serve_admin(
                        &id.to_string(),
                        check.endpoint,
                        router,
                        &stop_admin,
                        "health_check",
                    )
                    .await?,
                );
            }
        }
        for server in listening.iter().chain(&admin) {
            tracing::info!(server = %server.name, address = %server.address, "listening");
        }
        telemetry.health.set_serving(true);
        Ok(Service {
            telemetry,
            plugins,
            listening,
            admin,
            exporters: exporter_tasks,
            stop_receivers,
            stop_exporters,
            abort_exporters,
            stop_admin,
            shutdown_timeout: config.service.shutdown_timeout,
        })
    }

    /// Re-reads every plugin file and swaps in those that changed (SIGHUP does this).
    pub async fn reload_plugins(&self) {
        reload_all(self.plugins.clone()).await;
    }

    /// Where each server listens, by name (`otlp (grpc)`, `zipkin`, `metrics`, …).
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.listening
            .iter()
            .chain(&self.admin)
            .map(|l| (l.name.clone(), l.address))
            .collect()
    }

    /// Stops in stages within the configured deadline; returns whether everything drained.
    pub async fn shutdown(self) -> bool {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.telemetry.health.set_serving(false);
        tracing::info!(
            timeout_s = self.shutdown_timeout.as_secs_f64(),
            "shutting down: receivers stop accepting"
        );
        self.stop_receivers.cancel();
        let receivers = futures::future::join_all(self.listening.into_iter().map(|l| l.task));
        let receivers_done = tokio::time::timeout_at(deadline, receivers).await.is_ok();
        tracing::info!("draining exporter queues");
        self.stop_exporters.cancel();
        let mut exporters = futures::future::join_all(self.exporters);
        let drained = tokio::time::timeout_at(deadline, &mut exporters)
            .await
            .is_ok();
        if !drained {
            tracing::error!(
                "shutdown deadline passed with data still queued or retrying; dropping it"
            );
            self.abort_exporters.cancel();
            exporters.await;
        }
        self.stop_admin.cancel();
        futures::future::join_all(self.admin.into_iter().map(|l| l.task)).await;
        tracing::info!(drained, "stopped");
        receivers_done && drained
    }
}

/// How often plugin files are checked for changes. The check follows symlinks, so kubelet's
/// atomic `..data` swap of a ConfigMap volume counts as a change.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// What identifies a file's content cheaply: modification time, length and inode.
fn fingerprint(path: &std::path::Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// Reloads a plugin whenever its file changes.
async fn watch_plugins(plugins: Arc<Vec<Arc<WasmProcessor>>>, stop: CancellationToken) {
    let mut seen: Vec<_> = plugins.iter().map(|p| fingerprint(&p.path())).collect();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        for (plugin, last) in plugins.iter().zip(seen.iter_mut()) {
            let now = fingerprint(&plugin.path());
            if now != *last && now.is_some() {
                *last = now;
                let plugin = plugin.clone();
                let _ = tokio::task::spawn_blocking(move || plugin.reload()).await;
            }
        }
    }
}

async fn reload_all(plugins: Arc<Vec<Arc<WasmProcessor>>>) -> Vec<serde_json::Value> {
    let mut results = Vec::new();
    for plugin in plugins.iter() {
        let plugin = plugin.clone();
        let id = plugin.id().to_string();
        let outcome = tokio::task::spawn_blocking(move || plugin.reload()).await;
        results.push(match outcome {
            Ok(Ok(swapped)) => serde_json::json!({"processor": id, "swapped": swapped}),
            Ok(Err(error)) => serde_json::json!({"processor": id, "error": error.to_string()}),
            Err(error) => serde_json::json!({"processor": id, "error": error.to_string()}),
        });
    }
    results
}

/// `GET /plugins` lists every loaded plugin; `POST /reload` re-reads every plugin file.
fn plugin_routes(plugins: Arc<Vec<Arc<WasmProcessor>>>) -> axum::Router {
    let listed = plugins.clone();
    axum::Router::new()
        .route(
            "/plugins",
            axum::routing::get(move || {
                let listed = listed.clone();
                async move { axum::Json(listed.iter().map(|p| p.status()).collect::<Vec<_>>()) }
            }),
        )
        .route(
            "/reload",
            axum::routing::post(move || {
                let plugins = plugins.clone();
                async move { axum::Json(reload_all(plugins).await) }
            }),
        )
}

/// Serves an admin router (metrics, health), naming the config section if it cannot bind.
async fn serve_admin(
    name: &str,
    address: SocketAddr,
    router: axum::Router,
    stop: &CancellationToken,
    what: &'static str,
) -> Result<Listening, StartError> {
    receivers::serve_http(name.to_string(), &address.to_string(), router, stop.clone())
        .await
        .map_err(|source| StartError::Admin { what, source })
}
