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

pub use crate::components::StartError;
use crate::components::{Build, Config, Instance, PipelineConfig, open_storage};
use crate::config::ComponentId;
use crate::exporters::{DiskQueue, ExporterHandle, ExporterSpec, spawn_exporter};
use crate::kubernetes;
use crate::pdata::Signal;
use crate::pipeline::batch;
use crate::pipeline::connector::Connector;
use crate::pipeline::memory_limiter::{self, MemoryLimiter};
use crate::pipeline::{Downstream, Fanout, Pipeline, Processor};
use crate::processors::tail_sampling::{TailSampling, TailSamplingConfig};
use crate::receivers::{self, Consumers, Listening, ServeOptions};
use crate::secrets::Secrets;
use crate::telemetry::traces::SelfTracer;
use crate::telemetry::{ReceiverMetrics, Telemetry};
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

mod console;
mod plan;
mod reload;
mod running;
pub mod tap;

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
    /// The tail_sampling processors, flushed at shutdown before the exporters drain.
    samplers: Samplers,
    /// The connector instances, flushed after the samplers.
    connectors: Connectors,
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
        start_own_telemetry(config, &mut telemetry, &secrets, &mut exporters)?;
        let processors = plan.processors;
        let stop_limiter = CancellationToken::new();
        let limiter = start_memory_limiter(plan.limiter, &telemetry, &stop_limiter);
        let build = Build {
            config,
            secrets: &secrets,
            telemetry: &telemetry,
            discovery: cache.discovery.clone(),
        };
        let mut samplers = Samplers::default();
        let mut connectors = Connectors::default();
        let pipelines = build_pipelines(
            &build,
            (&processors, &plan.tail_sampling),
            &plan.batching,
            &mut exporters,
            (&mut samplers, &mut connectors),
        )?;
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
            &samplers.running,
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
        let listening =
            start_receivers(&build, &pipelines, limiter.as_ref(), &stop_receivers).await?;
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
            samplers,
            connectors,
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
        self.samplers.flush(deadline).await;
        self.connectors.flush(deadline).await;
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

/// `service.telemetry`'s pushes: each through an exporter of its own, spawned before the
/// tracer exists, so its sends are not traced; the log exporter's events are not logged over
/// OTLP (`telemetry::logs_export`).
fn start_own_telemetry(
    config: &Config,
    telemetry: &mut Telemetry,
    secrets: &Secrets,
    exporters: &mut Exporters,
) -> Result<(), StartError> {
    use crate::components::otelconf::Destination;
    let push = &config.service.telemetry.push;
    let stop = exporters.stop.clone();
    let mut spawn = |id: &str, signal: Signal, to: &Destination, telemetry: &Telemetry| {
        let resolve = |p: &PathBuf| config.resolve_path(p);
        let spec =
            to.build(id, signal, resolve, secrets)
                .map_err(|source| StartError::Exporter {
                    id: id.into(),
                    source,
                })?;
        Ok::<_, StartError>(exporters.spawn(spec, None, telemetry))
    };
    if let Some(traces) = &push.traces {
        let handle = spawn(
            "self-traces",
            Signal::Traces,
            &traces.destination,
            telemetry,
        )?;
        let tracer = SelfTracer::new(handle, &telemetry.registry);
        let tracer = Arc::new(tracer.with(push.resource.clone(), traces.delay, traces.max_queue));
        let tracing = tracer.clone().run(stop.clone());
        telemetry.supervisor.spawn("self tracer", tracing);
        telemetry.tracer = Some(tracer);
    }
    for (index, reader) in push.metrics.iter().enumerate() {
        let id = format!("service.telemetry.metrics.readers[{index}]");
        let handle = spawn(&id, Signal::Metrics, &reader.destination, telemetry)?;
        let pusher = crate::telemetry::push::MetricPusher {
            id,
            registry: telemetry.registry.clone(),
            exporter: Box::new(handle),
            resource: push.resource.clone(),
            interval: reader.interval,
        };
        telemetry
            .supervisor
            .spawn("metric pusher", pusher.run(stop.clone()));
    }
    let held = crate::telemetry::logs_export::installed();
    if let (Some(logs), Some(held)) = (&push.logs, held) {
        let id = crate::telemetry::logs_export::EXPORTER_ID;
        let handle = spawn(id, Signal::Logs, &logs.destination, telemetry)?;
        let settings = (logs.delay, logs.max_batch, push.resource.clone());
        let sending = held.run(Box::new(handle), settings, telemetry.registry.clone(), stop);
        telemetry.supervisor.spawn("log sender", sending);
    }
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

type BuiltPipelines<'c> = Vec<(Signal, Arc<Pipeline>, &'c PipelineConfig)>;

/// The running tail_sampling processors (one per pipeline listing one) and the token that
/// stops their release tasks.
#[derive(Default)]
struct Samplers {
    running: Vec<Arc<TailSampling>>,
    stop: CancellationToken,
}

impl Samplers {
    /// A pipeline's tail_sampling processors, built from their checked settings.
    fn build(
        &mut self,
        ids: &[ComponentId],
        settings: &BTreeMap<ComponentId, TailSamplingConfig>,
        build: &Build<'_>,
    ) -> Result<Vec<Arc<TailSampling>>, StartError> {
        let mut built = Vec::new();
        for id in ids {
            let Some(config) = settings.get(id) else {
                continue;
            };
            let registry = &build.telemetry.registry;
            let sampler = TailSampling::new(&id.to_string(), config.clone(), registry).map_err(
                |message| {
                    let diagnostic =
                        build
                            .config
                            .processor_diagnostic(id, &message, message.clone());
                    StartError::Processor(diagnostic)
                },
            )?;
            built.push(sampler);
        }
        Ok(built)
    }

    /// Gives each sampler where it sends, and starts its release task.
    fn start(
        &mut self,
        built: Vec<Arc<TailSampling>>,
        pipeline: &Arc<Pipeline>,
        telemetry: &Telemetry,
    ) {
        for sampler in built {
            sampler.attach(Downstream::new(pipeline, sampler.id()));
            sampler.state_crash_exposure();
            let name = format!("tail_sampling {} in {}", sampler.id(), pipeline.id);
            let task = sampler.clone().run(self.stop.clone());
            telemetry.supervisor.spawn(name, task);
            self.running.push(sampler);
        }
    }

    /// Stops the release tasks, then decides and sends what is still held (receivers have
    /// stopped, exporters still take data).
    async fn flush(&self, deadline: tokio::time::Instant) {
        self.stop.cancel();
        for sampler in &self.running {
            sampler.flush(deadline).await;
        }
    }
}

/// Every pipeline with its processors and exporters; each exporter id and signal is spawned
/// once and shared by the pipelines that list it, batching as `batching` says.
fn build_pipelines<'c>(
    build: &Build<'c>,
    (processors, tail_sampling): (&reload::Loaded, &BTreeMap<ComponentId, TailSamplingConfig>),
    batching: &batch::Assignment,
    exporters: &mut Exporters,
    (samplers, connectors): (&mut Samplers, &mut Connectors),
) -> Result<BuiltPipelines<'c>, StartError> {
    let config = build.config;
    let mut pipelines = Vec::new();
    // How each exporter instance took its batch processor's settings.
    let mut took: BTreeMap<(String, Signal), batch::Took> = BTreeMap::new();
    // Built downstream first: a pipeline holds the connectors it exports to, and they hold
    // the pipelines they feed.
    let mut built_by_id = BTreeMap::new();
    for pipeline_id in config.pipelines_downstream_first() {
        let pipeline = &config.service.pipelines[pipeline_id];
        let Some(signal) = Signal::parse(&pipeline_id.kind) else {
            continue;
        };
        let mut handles = Vec::new();
        for exporter_id in &pipeline.exporters {
            let key = (exporter_id.to_string(), signal);
            if !exporters.by_id.contains_key(&key) {
                let Some(exporter) = config.exporters.get(exporter_id) else {
                    continue; // a connector
                };
                let mut spec = exporter.behaviour().spec(&key.0, signal, build)?;
                if let Some(assigned) = batching.get(&(exporter_id.clone(), signal)) {
                    took.insert(key.clone(), batch_exporter(&mut spec, assigned, exporter));
                }
                let storage = open_storage(build, exporter, &key.0, signal)?;
                let handle = exporters.spawn(spec, storage, build.telemetry);
                exporters.by_id.insert(key.clone(), handle);
            }
            handles.push(exporters.by_id[&key].clone());
        }
        let connectors = connectors.exported_by(pipeline_id, &built_by_id, build)?;
        let own = samplers.build(&pipeline.processors, tail_sampling, build)?;
        let own_list: Vec<Arc<dyn Processor>> = own
            .iter()
            .map(|s| s.clone() as Arc<dyn Processor>)
            .collect();
        let chain = reload::chain(&pipeline.processors, processors, &own_list);
        let built = Arc::new(Pipeline {
            id: pipeline_id.to_string(),
            processors: arc_swap::ArcSwap::from_pointee(chain),
            exporters: handles,
            connectors,
            taps: Default::default(),
        });
        samplers.start(own, &built, build.telemetry);
        built_by_id.insert(pipeline_id.clone(), built.clone());
        pipelines.push((signal, built, pipeline));
    }
    log_batching(batching, &took);
    Ok(pipelines)
}

/// Sets an exporter's batching from the batch processor assigned to it, unless it keeps its
/// own batch keys; says which it did.
fn batch_exporter(
    spec: &mut ExporterSpec,
    assigned: &batch::Batching,
    exporter: &crate::components::ExporterConfig,
) -> batch::Took {
    match exporter.behaviour().own_batch() {
        Some(own) => batch::Took::KeepsOwn(own),
        None => {
            // The exporter's byte bound stays: a processor never lifts it.
            let max_request_bytes = spec.batch.bound.bytes;
            spec.batch = assigned.settings.policy(max_request_bytes);
            batch::Took::Batches { max_request_bytes }
        }
    }
}

/// The connector instances, each built once for the pipelines exporting to it, with the
/// token that stops their own tasks.
#[derive(Default)]
struct Connectors {
    /// Downstream first, as they are built.
    running: Vec<Arc<dyn Connector>>,
    by_instance: BTreeMap<Instance, Arc<dyn Connector>>,
    stop: CancellationToken,
}

impl Connectors {
    /// The instances pipeline `pipeline_id` exports to, built on first use; every pipeline
    /// they feed is in `built` already.
    fn exported_by(
        &mut self,
        pipeline_id: &ComponentId,
        built: &BTreeMap<ComponentId, Arc<Pipeline>>,
        build: &Build<'_>,
    ) -> Result<Vec<Arc<dyn Connector>>, StartError> {
        let config = build.config;
        let signal = Signal::parse(&pipeline_id.kind);
        let listed = &config.service.pipelines[pipeline_id].exporters;
        let mut found = Vec::new();
        for instance in config.connector_instances() {
            if Some(instance.from) != signal || !listed.contains(&instance.id) {
                continue;
            }
            if let Some(running) = self.by_instance.get(&instance) {
                found.push(running.clone());
                continue;
            }
            let downstream: BTreeMap<ComponentId, Arc<Pipeline>> = built
                .iter()
                .filter(|(pid, _)| Signal::parse(&pid.kind) == Some(instance.to))
                .filter(|(pid, _)| {
                    config.service.pipelines[*pid]
                        .receivers
                        .contains(&instance.id)
                })
                .map(|(pid, p)| (pid.clone(), p.clone()))
                .collect();
            let Some(connector) = config.connectors.get(&instance.id) else {
                continue;
            };
            let signals = (instance.from, instance.to);
            let id = instance.id.to_string();
            let made = connector
                .behaviour()
                .build(&id, signals, &downstream, build)?;
            if let Some(task) = made.clone().run(self.stop.clone()) {
                let name = format!("connector {id} ({} to {})", instance.from, instance.to);
                build.telemetry.supervisor.spawn(name, task);
            }
            self.running.push(made.clone());
            self.by_instance.insert(instance, made.clone());
            found.push(made);
        }
        Ok(found)
    }

    /// Stops their own tasks, then each sends what it still holds, upstream first so what
    /// one sends reaches the ones below it before they flush.
    async fn flush(&self, deadline: tokio::time::Instant) {
        self.stop.cancel();
        for connector in self.running.iter().rev() {
            connector.flush(deadline).await;
        }
    }
}

/// One line per batch processor: where its batching went (each exporter it feeds, named once
/// whatever the signals) and how its keys map.
fn log_batching(batching: &batch::Assignment, took: &BTreeMap<(String, Signal), batch::Took>) {
    let mut by_processor = BTreeMap::new();
    for ((exporter, signal), assigned) in batching {
        let Some(how) = took.get(&(exporter.to_string(), *signal)) else {
            continue;
        };
        for processor in &assigned.processors {
            let (_, exporters) = by_processor
                .entry(processor)
                .or_insert_with(|| (&assigned.settings, BTreeMap::new()));
            exporters.insert(exporter.to_string(), how.clone());
        }
    }
    for (processor, (settings, exporters)) in by_processor {
        let exporters: Vec<(String, batch::Took)> = exporters.into_iter().collect();
        let line = batch::describe(processor, settings, &exporters);
        tracing::info!(processor = %processor, "{line}");
    }
}

/// The admin servers: metrics (with `/plugins`, `/reload`, `/tap` and the console at `/`) and
/// each health check.
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
                let text = [(
                    http::header::CONTENT_TYPE,
                    crate::telemetry::metrics::Registry::CONTENT_TYPE,
                )];
                (text, registry.render())
            }
        };
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .merge(reload::routes(reloader.clone()))
            .merge(tap::routes(pipelines))
            .merge(console::routes(config, telemetry, reloader));
        let what = "service.telemetry.metrics";
        admin.push(serve_admin(telemetry, "metrics", metrics.address, router, stop, what).await?);
    }
    for id in &config.service.extensions {
        let Some(extension) = config.extensions.get(id) else {
            continue;
        };
        if let Some((address, router)) = extension.behaviour().admin_for(config, telemetry) {
            let name = id.to_string();
            let served = serve_admin(telemetry, &name, address, router, stop, &id.kind);
            admin.push(served.await?);
        }
    }
    Ok(admin)
}

/// Starts each receiver that feeds a pipeline, with one fan-out per signal it carries.
async fn start_receivers(
    build: &Build<'_>,
    pipelines: &BuiltPipelines<'_>,
    limiter: Option<&Arc<MemoryLimiter>>,
    stop_receivers: &CancellationToken,
) -> Result<Vec<Listening>, StartError> {
    let telemetry = build.telemetry;
    let mut listening = Vec::new();
    for (id, receiver) in build.config.receivers.iter() {
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
            receiver.behaviour().servers(&id_text, &consumers, build)?
        {
            let stop = stop_receivers.clone();
            let server = receivers::serve(name, endpoint, router, options, telemetry, stop);
            listening.push(server.await.map_err(failed)?);
        }
        let own =
            receiver
                .behaviour()
                .start_own(&id_text, &consumers, build, stop_receivers.clone());
        listening.extend(own.await?);
    }
    Ok(listening)
}

/// What receiver `id` feeds, per signal: the pipelines that list it, behind the memory limiter
/// when one of them lists that.
fn consumers(
    id: &ComponentId,
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

/// Serves an admin router (metrics, health), naming the config section if it cannot bind.
async fn serve_admin(
    telemetry: &Telemetry,
    name: &str,
    address: SocketAddr,
    router: axum::Router,
    stop: &CancellationToken,
    what: &str,
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
    server.await.map_err(|source| StartError::Admin {
        what: what.to_string(),
        source,
    })
}
