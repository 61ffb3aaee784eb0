//! The Wasm processor runtime: one engine and linker for the process, plugins compiled once and
//! pinned by sha256, and calls run in place on the async worker with a reusable store per instance.
//!
//! Sandbox per plugin: a memory cap (growing past it traps), a CPU deadline per batch (a timer
//! on the calling thread's CPU clock that interrupts through the epoch), a stack cap, and WASI
//! with nothing granted: a component that imports sockets or HTTP is refused at load, and the
//! filesystem links with no directory preopened. A trap drops
//! the store; the next call instantiates afresh. The batch is lent on a working copy, so a
//! failed call changes nothing.

mod attr_edits;
pub mod batch;
pub mod cache;
mod contract;
mod deadline;
pub mod encoded;
pub mod host;
pub mod items;
pub mod profiles;
pub mod sampler;
pub mod v0_1;
pub mod v0_2;

use crate::pdata::{Batch, Payload, Signal};
pub use contract::Info;
use contract::{Bound, Pre};
use host::PluginState;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Config, Engine, Store, Trap};

/// Interfaces no plugin may import: they would reach outside the sandbox.
/// Network interfaces are refused outright. `wasi:filesystem` is linked but grants nothing:
/// no directory is preopened, so there is no path to open. Language runtimes (CPython,
/// StarlingMonkey) import it whether or not the plugin touches a file.
const FORBIDDEN_IMPORTS: &[&str] = &["wasi:sockets/", "wasi:http/"];

/// The engine's settings. A child process compiling for this engine must use the same ones,
/// or wasmtime refuses its output.
fn engine_config() -> Config {
    let mut pooling = wasmtime::PoolingAllocationConfig::default();
    pooling
        .total_component_instances(256)
        .total_core_instances(1024)
        .total_memories(512)
        .total_tables(512);
    pooling.max_memory_size(1 << 30);
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 << 10);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    // Names plugin code for `perf` (in /tmp/perf-PID.map), so an author can see where a
    // plugin's time goes in a profile of the running gateway.
    if std::env::var_os("TRAILHEAD_WASM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// The `trailhead` executable that compiles components in a child process, when set.
static CHILD_COMPILER: OnceLock<PathBuf> = OnceLock::new();

/// From now on, compile components in a child process (`exe compile-component`). Cranelift's
/// working memory for an ~880 KB component is ~70 MiB, and the allocator keeps most of it
/// after compiling; in a child it goes back to the system when the child exits, and this
/// process keeps only the compiled code.
pub fn compile_in_child_process(exe: PathBuf) {
    let _ = CHILD_COMPILER.set(exe);
}

/// The child's side: compiles a component for this build's engine settings and returns the
/// serialized artifact.
pub fn precompile(wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    Engine::new(&engine_config())?.precompile_component(wasm)
}

/// Compiles a component in a child process: the serialized artifact.
fn compile_in_child(exe: &Path, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(exe)
        .arg("compile-component")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The child reads all of its input before it writes, so writing first cannot deadlock.
    child.stdin.take().expect("piped").write_all(wasm)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        wasmtime::bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(output.stdout)
}

// The one unsafe call in trailhead: wasmtime cannot check that serialized code is its own.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: an artifact comes from one of two places. Either this same executable compiled
    // it, run by us on bytes we hold and have pinned, through pipes no one else can write to;
    // or it is a disk-cache entry whose sha256 matched (cache.rs), in a directory that only
    // trailhead may write, as the docs require. wasmtime checks its own header on top.
    unsafe { Component::deserialize(engine, artifact) }
}

/// Where a plugin's compiled code came from, for `GET /plugins` and the load log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled now.
    Fresh,
    /// Compiled before by this process (a swap back, or one file for two processors).
    Memory,
    /// Read from the disk cache (`TRAILHEAD_PLUGIN_CACHE`).
    Disk,
}

impl Compiled {
    pub fn as_str(self) -> &'static str {
        match self {
            Compiled::Fresh => "fresh",
            Compiled::Memory => "memory",
            Compiled::Disk => "disk",
        }
    }
}

/// The process-wide engine and linker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    /// Compiled components by the sha256 of their bytes.
    compiled: Mutex<std::collections::HashMap<String, Component>>,
    /// The Kubernetes cache every plugin instance reads.
    metadata: Arc<crate::kubernetes::Store>,
    /// Compiled components on disk, across restarts.
    disk: Option<cache::DiskCache>,
}

/// Compiled components kept; beyond this the cache starts over (versions pile up on swaps).
const COMPILED_CACHE: usize = 16;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{path}` has sha256 {actual}, but the config pins {pinned}")]
    Pin {
        path: PathBuf,
        actual: String,
        pinned: String,
    },
    #[error("plugin `{path}` is not a valid component: {reason}")]
    Compile { path: PathBuf, reason: String },
    #[error("plugin `{path}` imports `{import}`, which plugins may not use (no sockets or HTTP)")]
    Forbidden { path: PathBuf, import: String },
    #[error(
        "plugin `{path}` does not implement trailhead's processor world ({}): {reason}",
        contract::VERSIONS
    )]
    Contract { path: PathBuf, reason: String },
    #[error(
        "plugin `{path}` does not declare `profiles` in its signals, and a profiles pipeline \
         runs it"
    )]
    Profiles { path: PathBuf },
    #[error("plugin `{path}` rejected its config: {reason}")]
    Init { path: PathBuf, reason: String },
    #[error("plugin `{path}` failed its canary batch: {reason}")]
    Canary { path: PathBuf, reason: String },
}

/// Per-plugin resource limits (`limits:` in the processor's config).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            timeout: Duration::from_millis(100),
        }
    }
}

impl Runtime {
    /// A plugin's store: its memory bound, and the epoch deadline that ends a call which
    /// overruns the timeout (armed around each call by [`deadline::arm`]).
    fn sandbox(&self, id: &Arc<str>, limits: Limits) -> Store<PluginState> {
        let state = PluginState::new(id.clone(), limits.memory_bytes, self.metadata.clone());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| deadline::on_epoch());
        store
    }

    /// A runtime whose plugins see an empty Kubernetes cache.
    pub fn new() -> wasmtime::Result<Arc<Runtime>> {
        Self::with_metadata(Arc::default())
    }

    /// A runtime reading `metadata`, with the disk cache `TRAILHEAD_PLUGIN_CACHE` names.
    pub fn with_metadata(
        metadata: Arc<crate::kubernetes::Store>,
    ) -> wasmtime::Result<Arc<Runtime>> {
        Self::with_cache(metadata, cache::from_env().as_deref())
    }

    /// A runtime that keeps compiled components in `disk_cache`, if given.
    pub fn with_cache(
        metadata: Arc<crate::kubernetes::Store>,
        disk_cache: Option<&Path>,
    ) -> wasmtime::Result<Arc<Runtime>> {
        let engine = Engine::new(&engine_config())?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        v0_1::bindings::Processor::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )?;
        // 0.2.1's imports serve 0.2.0 components too (see `v0_2`).
        v0_2::bindings::Processor::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )?;
        let disk = disk_cache.and_then(|dir| match cache::DiskCache::open(dir, &engine) {
            Ok(disk) => Some(disk),
            Err(why) => {
                // The cache only saves time: serve the plugins, and say why each start compiles.
                tracing::warn!(dir = %dir.display(), "{why}");
                None
            }
        });
        Ok(Arc::new(Runtime {
            engine,
            linker,
            disk,
            compiled: Mutex::default(),
            metadata,
        }))
    }

    /// Compiles a component, or returns the one compiled before from the same bytes: swapping
    /// back to a previous version, or loading one file for two processors, compiles once.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<(Component, Compiled)> {
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(component) = cache.get(sha256) {
            return Ok((component.clone(), Compiled::Memory));
        }
        let (component, compiled) = match &self.disk {
            Some(disk) => self.compile_through(disk, sha256, bytes)?,
            None => match CHILD_COMPILER.get() {
                Some(exe) => (
                    deserialize(&self.engine, &compile_in_child(exe, bytes)?)?,
                    Compiled::Fresh,
                ),
                None => (Component::new(&self.engine, bytes)?, Compiled::Fresh),
            },
        };
        if cache.len() >= COMPILED_CACHE {
            cache.clear();
        }
        cache.insert(sha256.to_string(), component.clone());
        Ok((component, compiled))
    }

    /// The disk cache's entry if it is sound, else the component compiled and stored there.
    fn compile_through(
        &self,
        disk: &cache::DiskCache,
        sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Compiled)> {
        let entry = disk.path(sha256);
        match disk.get(sha256) {
            cache::Lookup::Hit(artifact) => match deserialize(&self.engine, &artifact) {
                Ok(component) => return Ok((component, Compiled::Disk)),
                Err(e) => {
                    tracing::warn!(entry = %entry.display(), error = format!("{e:#}"), "compiled-component cache entry refused by wasmtime; compiling again");
                    disk.remove(sha256);
                }
            },
            cache::Lookup::Corrupt => {
                tracing::warn!(entry = %entry.display(), "compiled-component cache entry failed its sha256 check; deleted, compiling again");
            }
            cache::Lookup::Miss => {}
        }
        let artifact = match CHILD_COMPILER.get() {
            Some(exe) => compile_in_child(exe, bytes)?,
            None => self.engine.precompile_component(bytes)?,
        };
        if let Err(e) = disk.put(sha256, &artifact) {
            // The cache only saves time: serve the plugin, and say why the next start compiles.
            tracing::warn!(dir = %disk.dir().display(), error = %e, "cannot write the compiled-component cache");
        }
        Ok((deserialize(&self.engine, &artifact)?, Compiled::Fresh))
    }

    /// Reads, pins, compiles and type-checks a component: everything before an instance.
    fn prepare(&self, path: &Path, pin: Option<&str>) -> Result<Prepared, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.into(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pinned) = pin.filter(|p| !p.eq_ignore_ascii_case(&sha256)) {
            return Err(LoadError::Pin {
                path: path.into(),
                actual: sha256,
                pinned: pinned.into(),
            });
        }
        let (component, compiled) =
            self.compile(&sha256, &bytes)
                .map_err(|e| LoadError::Compile {
                    path: path.into(),
                    reason: format!("{e:#}"),
                })?;
        for (name, _) in component.component_type().imports(&self.engine) {
            if FORBIDDEN_IMPORTS.iter().any(|f| name.starts_with(f)) {
                return Err(LoadError::Forbidden {
                    path: path.into(),
                    import: name.to_string(),
                });
            }
        }
        let pre =
            Pre::new(&self.engine, &self.linker, &component).map_err(|e| LoadError::Contract {
                path: path.into(),
                reason: format!("{e:#}"),
            })?;
        Ok(Prepared {
            sha256,
            compiled,
            pre,
        })
    }

    /// `trailhead plugin compile`: compiles and checks a component ahead of time, into the
    /// disk cache if there is one. Its entry's path (if any) and the contract version it speaks.
    pub fn compile_ahead(&self, path: &Path) -> Result<(Option<PathBuf>, &'static str), LoadError> {
        let prepared = self.prepare(path, None)?;
        let entry = self.disk.as_ref().map(|d| d.path(&prepared.sha256));
        Ok((entry, prepared.pre.contract()))
    }

    /// Reads, pins, compiles, type-checks and initialises a plugin (one instance, kept).
    pub fn load(
        self: &Arc<Self>,
        id: &str,
        path: &Path,
        pin: Option<&str>,
        config_json: &str,
        limits: Limits,
    ) -> Result<Plugin, LoadError> {
        let Prepared {
            sha256,
            compiled,
            pre,
        } = self.prepare(path, pin)?;
        let plugin = Plugin {
            id: Arc::from(id),
            path: path.to_path_buf(),
            pin: pin.map(str::to_string),
            loaded_at: std::time::SystemTime::now(),
            pre,
            sha256,
            compiled,
            config_json: config_json.to_string(),
            limits,
            info: Info::default(),
            idle: Mutex::new(Vec::new()),
            runtime: self.clone(),
            blocking_io: Default::default(),
        };
        let instance = plugin.instantiate().map_err(|reason| LoadError::Init {
            path: path.into(),
            reason,
        })?;
        let info = instance.2.clone();
        plugin
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(instance);
        let plugin = Plugin { info, ..plugin };
        plugin.canary().map_err(|reason| LoadError::Canary {
            path: path.into(),
            reason,
        })?;
        Ok(plugin)
    }
}

/// A component checked and ready to instantiate.
struct Prepared {
    sha256: String,
    compiled: Compiled,
    pre: Pre,
}

/// One initialised instance: its store, bindings, and what `init` said.
type Instance = (Store<PluginState>, Bound, Info);

/// A loaded plugin version.
pub struct Plugin {
    pub id: Arc<str>,
    /// Where it was read from and the pin it was checked against, to reload it.
    pub path: PathBuf,
    pin: Option<String>,
    pub loaded_at: std::time::SystemTime,
    pre: Pre,
    pub sha256: String,
    /// Where its compiled code came from.
    pub compiled: Compiled,
    config_json: String,
    pub limits: Limits,
    pub info: Info,
    /// Instances between calls; one per concurrent caller at most.
    idle: Mutex<Vec<Instance>>,
    runtime: Arc<Runtime>,
    /// Set once a call did blocking WASI I/O (it wrote output), which cannot run on an async
    /// worker: its calls go to the blocking pool from then on.
    pub blocking_io: std::sync::atomic::AtomicBool,
}

/// How a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    OutOfMemory,
    Panic,
    Trap,
    PluginError,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Timeout,
        FailureKind::OutOfMemory,
        FailureKind::Panic,
        FailureKind::Trap,
        FailureKind::PluginError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::Panic => "panic",
            FailureKind::Trap => "trap",
            FailureKind::PluginError => "plugin_error",
        }
    }
}

/// A failed call: its kind, the message, and the tail of what the plugin printed.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub output: String,
}

impl Plugin {
    fn instantiate(&self) -> Result<Instance, String> {
        let _deadline = deadline::arm(&self.runtime.engine, self.limits.timeout)?;
        let mut store = self.runtime.sandbox(&self.id, self.limits);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("{e:#}"))?;
        let info = bindings
            .init(&mut store, &self.config_json)
            .map_err(|e| format!("{e:#}"))??;
        Ok((store, bindings, info))
    }

    /// Runs one small batch of every signal the plugin handles under production limits. A trap
    /// rejects the version; a plugin error does not (it may be the plugin's answer to the data).
    fn canary(&self) -> Result<(), String> {
        for signal in Signal::ALL.into_iter().filter(|s| self.handles(*s)) {
            let batch = canary_batch(signal);
            if let Err(failure) = self.call(&batch)
                && failure.kind != FailureKind::PluginError
            {
                return Err(format!("{}: {}", failure.kind.as_str(), failure.message));
            }
        }
        Ok(())
    }

    /// Loads the file again if its content changed: `Ok(None)` when it did not.
    pub fn reload(&self) -> Result<Option<Plugin>, LoadError> {
        let bytes = std::fs::read(&self.path).map_err(|source| LoadError::Read {
            path: self.path.clone(),
            source,
        })?;
        if hex::encode(Sha256::digest(&bytes)) == self.sha256 {
            return Ok(None);
        }
        let id = self.id.clone();
        self.runtime
            .load(
                &id,
                &self.path,
                self.pin.as_deref(),
                &self.config_json,
                self.limits,
            )
            .map(Some)
    }

    /// Whether the plugin asked to see `signal`.
    pub fn handles(&self, signal: Signal) -> bool {
        self.info.signals.contains(&signal)
    }

    /// Runs the plugin on a batch: the encoded result. Blocking: call it off the async executor.
    pub fn call(&self, batch: &Batch) -> Result<bytes::Bytes, Failure> {
        self.process(batch).map(|out| out.payload.to_bytes())
    }

    /// Runs the plugin on a batch: the batch that comes out, with its items counted from the
    /// plugin's changes where they tell, else over the rebuilt scopes alone.
    pub fn process(&self, batch: &Batch) -> Result<Batch, Failure> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut store, bindings, info) = match taken {
            Some(instance) => instance,
            None => self.instantiate().map_err(|message| Failure {
                kind: FailureKind::Trap,
                message,
                output: String::new(),
            })?,
        };
        store.data_mut().context = Some(batch.context.clone());
        store.set_epoch_deadline(1);
        let result = match deadline::arm(&self.runtime.engine, self.limits.timeout) {
            Ok(_deadline) => run(&mut store, &bindings, batch),
            Err(message) => Err(wasmtime::Error::msg(message)),
        };
        store.data_mut().context = None;
        match result {
            Ok(Ok((payload, items))) => {
                self.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((store, bindings, info));
                Ok(Batch {
                    payload,
                    items,
                    ..batch.clone()
                })
            }
            Ok(Err(message)) => {
                let output = store.data().output.take();
                self.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((store, bindings, info));
                Err(Failure {
                    kind: FailureKind::PluginError,
                    message,
                    output,
                })
            }
            Err(error) => {
                // A trapped store is poisoned: drop it; the next call instantiates afresh.
                let output = store.data().output.take();
                Err(Failure {
                    kind: classify(&error, &output),
                    message: describe(&error),
                    output,
                })
            }
        }
    }
}

/// Lends the batch to the plugin and returns the journal applied on `ok`, with its item count.
fn run(
    store: &mut Store<PluginState>,
    bindings: &Bound,
    batch: &Batch,
) -> wasmtime::Result<Result<(Payload, usize), String>> {
    macro_rules! lend {
        ($work:ty, $call:ident) => {{
            let work = <$work>::lend(batch.payload.clone())?;
            let own = store.data_mut().table.push(work)?;
            let outcome = bindings.$call(&mut *store, Resource::new_borrow(own.rep()));
            let work = store.data_mut().table.delete(own)?;
            outcome.map(|result| result.map(|()| work.into_counted(batch.items)))
        }};
    }
    match batch.signal {
        Signal::Traces => lend!(batch::SpanWork, process_spans),
        Signal::Logs => lend!(batch::LogWork, process_logs),
        Signal::Metrics => lend!(batch::MetricWork, process_metrics),
        Signal::Profiles => {
            let work = profiles::ProfileWork::lend(batch.payload.clone())?;
            let own = store.data_mut().table.push(work)?;
            let outcome = bindings.process_profiles(&mut *store, Resource::new_borrow(own.rep()));
            let work = store.data_mut().table.delete(own)?;
            match outcome? {
                // No sample can be removed: the count stays.
                Ok(()) => Ok(Ok((
                    work.into_encoded().map_err(wasmtime::Error::msg)?,
                    batch.items,
                ))),
                Err(message) => Ok(Err(message)),
            }
        }
    }
}

/// One span, log record, metric point or profile sample, for canary calls.
fn canary_batch(signal: Signal) -> Batch {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let context = crate::pdata::RequestContext::internal("canary");
    match signal {
        Signal::Traces => Batch::from_message(
            signal,
            &ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            name: "canary".into(),
                            trace_id: vec![1; 16],
                            span_id: vec![1; 8],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            context,
        ),
        Signal::Logs => Batch::from_message(
            signal,
            &ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: vec![LogRecord::default()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            context,
        ),
        Signal::Metrics => Batch::from_message(
            signal,
            &ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: "canary".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint::default()],
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            context,
        ),
        Signal::Profiles => Batch::from_message(signal, &canary_profiles(), context),
    }
}

/// One resource with one profile of one sample.
fn canary_profiles()
-> opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest {
    use opentelemetry_proto::tonic::profiles::v1development::{
        Profile, ProfilesDictionary, ResourceProfiles, Sample, ScopeProfiles,
    };
    opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            scope_profiles: vec![ScopeProfiles {
                profiles: vec![Profile {
                    samples: vec![Sample::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        dictionary: Some(ProfilesDictionary {
            string_table: vec![String::new()],
            ..Default::default()
        }),
    }
}

/// A failure's message. A trap the host raised (a bad index, a list of the wrong length) is
/// its own message, naming the method: the guest's backtrace would only bury it.
fn describe(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        None => error.root_cause().to_string(),
        Some(_) => format!("{error:#}"),
    }
}

fn classify(error: &wasmtime::Error, output: &str) -> FailureKind {
    let text = format!("{error:#}");
    if text.contains("forcing trap when growing memory") || output.contains("memory allocation of")
    {
        return FailureKind::OutOfMemory;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => FailureKind::Timeout,
        Some(Trap::UnreachableCodeReached) if output.contains("panicked") => FailureKind::Panic,
        _ => FailureKind::Trap,
    }
}
