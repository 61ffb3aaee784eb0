//! Builds a running trailhead from a [`Config`] and stops it in stages.
//!
//! Start: the [`Plan`] (checked without side effects, as `trailhead validate` checks it), the
//! Kubernetes cache and the processors, exporters (one per exporter id and signal),
//! pipelines, the admin servers (metrics, health answering 503), the wait for Kubernetes
//! metadata when configured, then receivers, so nothing is accepted before it has somewhere to
//! go; health turns 200 last. Stop (SIGTERM):
//! health 503, receivers stop accepting and finish in-flight requests, exporter queues close
//! and drain, and whatever is still unsent at the deadline is counted as failed. A long-lived
//! task that dies while serving ([`crate::telemetry::supervisor`]) starts the same stop.

use crate::config::{Config, ExporterConfig, ExtensionConfig, ReceiverConfig};
use crate::exporters::otlp::BuildError;
use crate::exporters::{
    DiskQueue, ExporterHandle, ExporterSpec, FileStorageConfig, spawn_exporter,
};
use crate::kubernetes;
use crate::pdata::Signal;
use crate::pipeline::memory_limiter::{self, MemoryLimiter};
use crate::pipeline::{Fanout, Pipeline};
use crate::receivers::auth::{AuthConfig, BearerToken, BearerTokenConfig};
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::tls::TlsServerConfig;
use crate::receivers::{self, Consumers, Listening, ServeOptions};
use crate::secrets::{Rotating, Secrets};
use crate::telemetry::traces::SelfTracer;
use crate::telemetry::{ReceiverMetrics, Telemetry, health};
pub use plan::Plan;
use reload::Reloader;
pub use reload::{PluginReload, ReloadOutcome};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod plan;
mod reload;
pub mod tap;

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
    #[error("{0}")]
    Kubernetes(String),
    #[error("receiver `{id}`: {message}")]
    Listener { id: String, message: String },
    #[error("exporter `{id}`: sending_queue.storage: {message}")]
    Storage { id: String, message: String },
}

/// A running trailhead.
pub struct Service {
    pub telemetry: Telemetry,
    reloader: Arc<Reloader>,
    listening: Vec<Listening>,
    admin: Vec<Listening>,
    exporters: Vec<JoinHandle<()>>,
    stop_receivers: CancellationToken,
    stop_exporters: CancellationToken,
    abort_exporters: CancellationToken,
    stop_admin: CancellationToken,
    /// Stops the memory limiter's checks when the service goes.
    _stop_limiter: tokio_util::sync::DropGuard,
    shutdown_timeout: Duration,
}

impl Service {
    pub async fn start(config: &Config) -> Result<Service, StartError> {
        let telemetry = Telemetry::default();
        let supervisor = telemetry.supervisor.clone();
        let started = Self::build(config, telemetry).await;
        if started.is_err() {
            supervisor.stopping(); // what was spawned goes with the runtime; no failure to report
        }
        started
    }

    async fn build(config: &Config, mut telemetry: Telemetry) -> Result<Service, StartError> {
        // The cache lists what it watches while the plugins compile.
        let watched = plan::KubernetesPlan::new(config)?;
        let settings = watched.settings.clone();
        let mut cache = kubernetes::Cache::start(settings, &watched.metadata, &telemetry)
            .await
            .map_err(StartError::Kubernetes)?;
        let plan = Plan::after(watched, config, &telemetry.registry)?;
        let secrets = Arc::new(Secrets::new(telemetry.registry.clone()));
        let mut exporters = Exporters::default();
        if let Some(traces) = &config.service.telemetry.traces {
            start_self_tracer(config, traces, &mut telemetry, &secrets, &mut exporters)?;
        }
        let processors = plan.processors;
        let stop_limiter = CancellationToken::new();
        let limiter = start_memory_limiter(plan.limiter, &telemetry, &stop_limiter);
        let pipelines = build_pipelines(config, &processors, &telemetry, &secrets, &mut exporters)?;
        let by_id: BTreeMap<String, Arc<Pipeline>> = pipelines
            .iter()
            .map(|(_, built, _)| (built.id.clone(), built.clone()))
            .collect();
        let reloader = Arc::new(Reloader::new(
            config,
            processors,
            by_id.clone(),
            &telemetry,
            &cache.store,
        ));
        let stop_admin = CancellationToken::new();
        let polling = reloader.clone().watch(stop_admin.clone());
        telemetry.supervisor.spawn("reload poller", polling);
        let admin = start_admin(config, &telemetry, &reloader, by_id, &stop_admin).await?;
        // Health answers 503 meanwhile; nothing is accepted before it can be enriched.
        cache
            .wait_for_metadata()
            .await
            .map_err(StartError::Kubernetes)?;
        let stop_receivers = CancellationToken::new();
        let listening = start_receivers(
            config,
            &pipelines,
            &telemetry,
            limiter.as_ref(),
            &stop_receivers,
            &secrets,
        )
        .await?;
        let watching = secrets.run(stop_admin.clone());
        telemetry.supervisor.spawn("secret watcher", watching);
        for server in listening.iter().chain(&admin) {
            tracing::info!(server = %server.name, address = %server.address, "listening");
        }
        telemetry.health.set_serving(true);
        Ok(Service {
            telemetry,
            reloader,
            listening,
            admin,
            exporters: exporters.tasks,
            stop_receivers,
            stop_exporters: exporters.stop,
            abort_exporters: exporters.abort,
            stop_admin,
            _stop_limiter: stop_limiter.drop_guard(),
            shutdown_timeout: config.service.shutdown_timeout,
        })
    }

    /// Re-reads the config and every plugin file, and swaps in what changed (SIGHUP and
    /// `POST /reload` do this).
    pub async fn reload(&self) -> ReloadOutcome {
        self.reloader.clone().reload().await
    }

    /// Where each server listens, by name (`otlp (grpc)`, `zipkin`, `metrics`, …).
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.listening
            .iter()
            .chain(&self.admin)
            .map(|l| (l.name.clone(), l.address))
            .collect()
    }

    /// Resolves when a long-lived task has died: which one, and how. Health is 503 by then;
    /// the caller shuts down and exits non-zero.
    pub async fn failed(&self) -> String {
        self.telemetry.supervisor.failed().await
    }

    /// Stops in stages within the configured deadline; returns whether everything drained.
    pub async fn shutdown(self) -> bool {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.telemetry.supervisor.stopping();
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

/// The exporter tasks spawned so far, one per exporter id and signal, and the tokens that
/// close and abort them all.
#[derive(Default)]
struct Exporters {
    tasks: Vec<JoinHandle<()>>,
    by_id: BTreeMap<(String, Signal), ExporterHandle>,
    stop: CancellationToken,
    abort: CancellationToken,
}

impl Exporters {
    fn spawn(
        &mut self,
        spec: ExporterSpec,
        storage: Option<Arc<DiskQueue>>,
        telemetry: &Telemetry,
    ) -> ExporterHandle {
        let (stop, abort) = (self.stop.clone(), self.abort.clone());
        let (handle, task) = spawn_exporter(spec, storage, telemetry, stop, abort);
        self.tasks.push(task);
        handle
    }
}

/// `service.telemetry.traces`: its own exporter, spawned before the tracer exists, so its
/// sends are not traced.
fn start_self_tracer(
    config: &Config,
    traces: &crate::exporters::otlp::OtlpExporterConfig,
    telemetry: &mut Telemetry,
    secrets: &Secrets,
    exporters: &mut Exporters,
) -> Result<(), StartError> {
    let id = "self-traces";
    let resolve = |p: &PathBuf| config.resolve_path(p);
    let spec = traces
        .build(id, Signal::Traces, resolve, None, secrets)
        .map_err(|source| StartError::Exporter {
            id: id.into(),
            source,
        })?;
    let handle = exporters.spawn(spec, None, telemetry);
    let tracer = Arc::new(SelfTracer::new(handle, &telemetry.registry));
    let tracing = tracer.clone().run(exporters.stop.clone());
    telemetry.supervisor.spawn("self tracer", tracing);
    telemetry.tracer = Some(tracer);
    Ok(())
}

/// The memory limiter, checking, when a pipeline lists one.
fn start_memory_limiter(
    settings: Option<memory_limiter::Settings>,
    telemetry: &Telemetry,
    stop: &CancellationToken,
) -> Option<Arc<MemoryLimiter>> {
    let limiter = settings.map(|settings| MemoryLimiter::new(settings, &telemetry.registry));
    if let Some(limiter) = &limiter {
        limiter.spawn(&telemetry.supervisor, stop.clone());
    }
    limiter
}

type BuiltPipelines<'c> = Vec<(Signal, Arc<Pipeline>, &'c crate::config::PipelineConfig)>;

/// Every pipeline with its processors and exporters; each exporter id and signal is spawned
/// once and shared by the pipelines that list it.
fn build_pipelines<'c>(
    config: &'c Config,
    processors: &reload::Loaded,
    telemetry: &Telemetry,
    secrets: &Secrets,
    exporters: &mut Exporters,
) -> Result<BuiltPipelines<'c>, StartError> {
    let mut pipelines = Vec::new();
    for (pipeline_id, pipeline) in &config.service.pipelines {
        let Some(signal) = Signal::parse(&pipeline_id.kind) else {
            continue;
        };
        let mut handles = Vec::new();
        for exporter_id in &pipeline.exporters {
            let key = (exporter_id.to_string(), signal);
            if !exporters.by_id.contains_key(&key) {
                let Some(exporter) = config.exporters.get(exporter_id) else {
                    continue;
                };
                let spec = exporter_spec(config, exporter, &key.0, signal, secrets)?;
                let storage = open_storage(config, exporter, &key.0, signal)?;
                let handle = exporters.spawn(spec, storage, telemetry);
                exporters.by_id.insert(key.clone(), handle);
            }
            handles.push(exporters.by_id[&key].clone());
        }
        let chain = reload::chain(&pipeline.processors, processors);
        let built = Pipeline {
            id: pipeline_id.to_string(),
            processors: arc_swap::ArcSwap::from_pointee(chain),
            exporters: handles,
            taps: Default::default(),
        };
        pipelines.push((signal, Arc::new(built), pipeline));
    }
    Ok(pipelines)
}

/// What one exporter id sends one signal with.
fn exporter_spec(
    config: &Config,
    exporter: &ExporterConfig,
    id: &str,
    signal: Signal,
    secrets: &Secrets,
) -> Result<ExporterSpec, StartError> {
    let otlp = match exporter {
        ExporterConfig::Otlp(otlp) => otlp,
        ExporterConfig::Debug(debug) => return Ok(debug.build(id, signal)),
    };
    let failed = |source| StartError::Exporter {
        id: id.to_string(),
        source,
    };
    let token = match &otlp.auth {
        Some(auth) => {
            Some(bearer_token_config(config, auth).map_err(|e| failed(BuildError::Auth(e)))?)
        }
        None => None,
    };
    let resolve = |p: &PathBuf| config.resolve_path(p);
    otlp.build(id, signal, resolve, token, secrets)
        .map_err(failed)
}

/// The admin servers: metrics (with `/plugins`, `/reload` and `/tap`) and each health check.
async fn start_admin(
    config: &Config,
    telemetry: &Telemetry,
    reloader: &Arc<Reloader>,
    pipelines: BTreeMap<String, Arc<Pipeline>>,
    stop: &CancellationToken,
) -> Result<Vec<Listening>, StartError> {
    let mut admin = Vec::new();
    let metrics = &config.service.telemetry.metrics;
    if metrics.level != "none" {
        let registry = telemetry.registry.clone();
        let scrape = move || {
            let registry = registry.clone();
            async move {
                let text = [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")];
                (text, registry.render())
            }
        };
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .merge(reload::routes(reloader.clone()))
            .merge(tap::routes(pipelines));
        let what = "service.telemetry.metrics";
        admin.push(serve_admin(telemetry, "metrics", metrics.address, router, stop, what).await?);
    }
    for id in &config.service.extensions {
        if let Some(ExtensionConfig::HealthCheck(check)) = config.extensions.get(id) {
            let router = health::router(check, telemetry.health.clone());
            let name = id.to_string();
            let served = serve_admin(
                telemetry,
                &name,
                check.endpoint,
                router,
                stop,
                "health_check",
            );
            admin.push(served.await?);
        }
    }
    Ok(admin)
}

/// Starts each receiver that feeds a pipeline, with one fan-out per signal it carries.
async fn start_receivers(
    config: &Config,
    pipelines: &BuiltPipelines<'_>,
    telemetry: &Telemetry,
    limiter: Option<&Arc<MemoryLimiter>>,
    stop_receivers: &CancellationToken,
    secrets: &Secrets,
) -> Result<Vec<Listening>, StartError> {
    let mut listening = Vec::new();
    for (id, receiver) in config.receivers.iter() {
        let consumers = consumers(id, pipelines, telemetry, limiter);
        if Signal::ALL.iter().all(|s| consumers.get(*s).is_none()) {
            tracing::warn!(receiver = %id, "receiver is not used by any pipeline; not starting it");
            continue;
        }
        let id_text = id.to_string();
        let failed = |source| StartError::Receiver {
            id: id_text.clone(),
            source,
        };
        for (name, endpoint, router, options) in
            receiver_servers(config, &id_text, receiver, &consumers, secrets)?
        {
            let stop = stop_receivers.clone();
            let server = receivers::serve(name, endpoint, router, options, telemetry, stop);
            listening.push(server.await.map_err(failed)?);
        }
    }
    Ok(listening)
}

/// What receiver `id` feeds, per signal: the pipelines that list it, behind the memory limiter
/// when one of them lists that.
fn consumers(
    id: &crate::config::ComponentId,
    pipelines: &BuiltPipelines<'_>,
    telemetry: &Telemetry,
    limiter: Option<&Arc<MemoryLimiter>>,
) -> Consumers {
    let mut consumers = Consumers::default();
    for signal in Signal::ALL {
        let fed = || {
            pipelines
                .iter()
                .filter(|(s, _, p)| *s == signal && p.receivers.contains(id))
        };
        let feeding: Vec<Arc<Pipeline>> = fed().map(|(_, built, _)| built.clone()).collect();
        if feeding.is_empty() {
            continue;
        }
        let metrics = ReceiverMetrics::new(&telemetry.registry, &id.to_string(), signal);
        let limited =
            fed().any(|(_, _, p)| p.processors.iter().any(|p| p.kind == memory_limiter::KIND));
        let fanout = Fanout::new(signal, feeding, metrics)
            .with_memory_limiter(limiter.filter(|_| limited).cloned());
        consumers.set(signal, Arc::new(fanout));
    }
    consumers
}

/// A server a receiver listens with: its name, endpoint, routes and how it serves.
type ReceiverServer<'c> = (String, &'c String, axum::Router, ServeOptions);

/// The servers of one receiver: gRPC and HTTP for OTLP, one for Zipkin.
fn receiver_servers<'c>(
    config: &Config,
    id: &str,
    receiver: &'c ReceiverConfig,
    consumers: &Consumers,
    secrets: &Secrets,
) -> Result<Vec<ReceiverServer<'c>>, StartError> {
    let mut servers = Vec::new();
    match receiver {
        ReceiverConfig::Otlp(otlp) => {
            if let Some(grpc) = &otlp.protocols.grpc {
                let router = receivers::otlp::grpc::router(id, grpc, consumers);
                let name = format!("{id} (grpc)");
                let protocol = Protocol {
                    tls: &grpc.tls,
                    auth: &grpc.auth,
                    limits: &grpc.limits,
                    max_concurrent_streams: grpc.max_concurrent_streams,
                };
                let options = serve_options(config, id, &name, protocol, secrets)?;
                servers.push((name, &grpc.endpoint, router, options));
            }
            if let Some(http) = &otlp.protocols.http {
                let router = receivers::otlp::http::router(id, http, consumers);
                let name = format!("{id} (http)");
                let protocol = Protocol {
                    tls: &http.tls,
                    auth: &http.auth,
                    limits: &http.limits,
                    max_concurrent_streams: None,
                };
                let options = serve_options(config, id, &name, protocol, secrets)?;
                servers.push((name, &http.endpoint, router, options));
            }
        }
        ReceiverConfig::Zipkin(zipkin) => {
            if let Some(router) = receivers::zipkin::router(id, zipkin, consumers) {
                let protocol = Protocol {
                    tls: &zipkin.tls,
                    auth: &zipkin.auth,
                    limits: &zipkin.limits,
                    max_concurrent_streams: None,
                };
                let options = serve_options(config, id, id, protocol, secrets)?;
                servers.push((id.to_string(), &zipkin.endpoint, router, options));
            }
        }
    }
    Ok(servers)
}

/// What one receiver protocol serves with: its TLS and bearer token (read, checked, and
/// watched for rotation) and its limits.
struct Protocol<'a> {
    tls: &'a Option<TlsServerConfig>,
    auth: &'a Option<AuthConfig>,
    limits: &'a ConnectionLimits,
    max_concurrent_streams: Option<u32>,
}

/// The TLS, bearer token and limits of one receiver protocol (served as `server`), read,
/// checked, and re-read when their files change.
fn serve_options(
    config: &Config,
    receiver: &str,
    server: &str,
    protocol: Protocol<'_>,
    secrets: &Secrets,
) -> Result<ServeOptions, StartError> {
    let failed = |message: String| StartError::Listener {
        id: receiver.to_string(),
        message,
    };
    protocol.limits.validate().map_err(failed)?;
    let tls = match protocol.tls {
        Some(tls) => {
            let tls = tls.resolved(&|p| config.resolve_path(p));
            let what = format!("receiver {server} tls");
            let watched = secrets.watch(what, tls.files(), move || tls.load(&|p| p.into()));
            Some(watched.map_err(failed)?)
        }
        None => None,
    };
    let auth = match protocol.auth {
        Some(auth) => Some(
            bearer_token(config, auth, &format!("receiver {server}"), secrets).map_err(failed)?,
        ),
        None => None,
    };
    let (limits, max_concurrent_streams) = (protocol.limits, protocol.max_concurrent_streams);
    Ok(ServeOptions {
        tls,
        auth,
        limits: limits.clone(),
        max_concurrent_streams,
    })
}

/// The token of the `bearertokenauth` extension `auth` names, re-read when its file changes;
/// `user` says who uses it, in logs and metrics.
fn bearer_token(
    config: &Config,
    auth: &AuthConfig,
    user: &str,
    secrets: &Secrets,
) -> Result<Arc<Rotating<BearerToken>>, String> {
    let extension = &auth.authenticator;
    let token = bearer_token_config(config, auth)?.resolved(&|p| config.resolve_path(p));
    let what = format!("{user} {extension}");
    secrets
        .watch(what, token.files(), move || token.load(&|p| p.into()))
        .map_err(|e| format!("extension `{extension}`: {e}"))
}

/// The settings of the `bearertokenauth` extension `auth` names.
fn bearer_token_config(config: &Config, auth: &AuthConfig) -> Result<BearerTokenConfig, String> {
    match config.extensions.get(&auth.authenticator) {
        Some(ExtensionConfig::BearerToken(token)) => Ok(token.clone()),
        _ => Err(format!(
            "auth.authenticator `{}` is not a bearertokenauth extension",
            auth.authenticator
        )),
    }
}

/// Opens the persistent queue of one exporter and signal, when its config asks for one.
fn open_storage(
    config: &Config,
    exporter: &ExporterConfig,
    id: &str,
    signal: Signal,
) -> Result<Option<Arc<DiskQueue>>, StartError> {
    let Some(queue) = exporter.sending_queue() else {
        return Ok(None);
    };
    let Some(ExtensionConfig::FileStorage(storage)) = queue
        .storage
        .as_ref()
        .and_then(|s| config.extensions.get(s))
    else {
        return Ok(None); // validation saw to a storage id naming something else
    };
    let failed = |message: String| StartError::Storage {
        id: id.to_string(),
        message,
    };
    let directory = config.resolve_path(&storage.directory);
    if !directory.is_dir() {
        if !storage.create_directory {
            return Err(failed(format!(
                "directory {} does not exist (create it, or set create_directory: true)",
                directory.display()
            )));
        }
        std::fs::create_dir_all(&directory)
            .map_err(|e| failed(format!("cannot create {}: {e}", directory.display())))?;
    }
    let folder = FileStorageConfig::queue_dir(&directory, id, signal.as_str());
    DiskQueue::open(&folder, storage.fsync, queue.disk_limits())
        .map(Some)
        .map_err(|e| failed(e.to_string()))
}

/// Serves an admin router (metrics, health), naming the config section if it cannot bind.
async fn serve_admin(
    telemetry: &Telemetry,
    name: &str,
    address: SocketAddr,
    router: axum::Router,
    stop: &CancellationToken,
    what: &'static str,
) -> Result<Listening, StartError> {
    let endpoint = address.to_string();
    let server = receivers::serve(
        name.to_string(),
        &endpoint,
        router,
        ServeOptions::default(),
        telemetry,
        stop.clone(),
    );
    server
        .await
        .map_err(|source| StartError::Admin { what, source })
}
