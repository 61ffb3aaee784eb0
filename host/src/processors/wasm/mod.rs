//! The Wasm processor runtime: one engine and linker for the process, plugins compiled once and
//! pinned by sha256, and calls run in place on the async worker with a reusable store per instance.
//!
//! Sandbox per plugin: a memory cap (growing past it traps), a CPU deadline per batch (a timer
//! on the calling thread's CPU clock that interrupts through the epoch), a stack cap, and WASI with nothing granted. A component that
//! imports a forbidden interface (sockets, HTTP, filesystem) is refused at load. A trap drops
//! the store; the next call instantiates afresh. The batch is lent on a working copy, so a
//! failed call changes nothing.

pub mod batch;
mod deadline;
pub mod encoded;
pub mod host;
pub mod items;
pub mod v0_1;

use crate::pdata::{Batch, Payload, Signal};
use host::PluginState;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use v0_1::bindings::mathtrail::trailhead::types::{PluginInfo, Signal as WitSignal};
use v0_1::bindings::{Processor as Bindings, ProcessorPre};
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

// The one unsafe call in trailhead: wasmtime cannot check that serialized code is its own.
#[allow(unsafe_code)]
fn compile_in_child(engine: &Engine, exe: &Path, wasm: &[u8]) -> wasmtime::Result<Component> {
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
    // SAFETY: the artifact comes from this same executable, run by us on bytes we hold and
    // have pinned, through pipes no one else can write to.
    unsafe { Component::deserialize(engine, &output.stdout) }
}

/// The process-wide engine and linker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    /// Compiled components by the sha256 of their bytes.
    compiled: Mutex<std::collections::HashMap<String, Component>>,
    /// The Kubernetes cache every plugin instance reads.
    metadata: Arc<crate::kubernetes::Store>,
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
        "plugin `{path}` does not implement trailhead's processor world (mathtrail:trailhead@0.1.0): {reason}"
    )]
    Contract { path: PathBuf, reason: String },
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
    /// A runtime whose plugins see an empty Kubernetes cache.
    pub fn new() -> wasmtime::Result<Arc<Runtime>> {
        Self::with_metadata(Arc::default())
    }

    pub fn with_metadata(
        metadata: Arc<crate::kubernetes::Store>,
    ) -> wasmtime::Result<Arc<Runtime>> {
        let engine = Engine::new(&engine_config())?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Bindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |state| state)?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            compiled: Mutex::default(),
            metadata,
        }))
    }

    /// Compiles a component, or returns the one compiled before from the same bytes: swapping
    /// back to a previous version, or loading one file for two processors, compiles once.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(component) = cache.get(sha256) {
            return Ok(component.clone());
        }
        let component = match CHILD_COMPILER.get() {
            Some(exe) => compile_in_child(&self.engine, exe, bytes)?,
            None => Component::new(&self.engine, bytes)?,
        };
        if cache.len() >= COMPILED_CACHE {
            cache.clear();
        }
        cache.insert(sha256.to_string(), component.clone());
        Ok(component)
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
        let component = self
            .compile(&sha256, &bytes)
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
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(ProcessorPre::new)
            .map_err(|e| LoadError::Contract {
                path: path.into(),
                reason: format!("{e:#}"),
            })?;
        let plugin = Plugin {
            id: Arc::from(id),
            path: path.to_path_buf(),
            pin: pin.map(str::to_string),
            loaded_at: std::time::SystemTime::now(),
            pre,
            sha256,
            config_json: config_json.to_string(),
            limits,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                signals: Vec::new(),
            },
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

/// One initialised instance: its store, bindings, and what `init` said.
type Instance = (Store<PluginState>, Bindings, PluginInfo);

/// A loaded plugin version.
pub struct Plugin {
    pub id: Arc<str>,
    /// Where it was read from and the pin it was checked against, to reload it.
    pub path: PathBuf,
    pin: Option<String>,
    pub loaded_at: std::time::SystemTime,
    pre: ProcessorPre<PluginState>,
    pub sha256: String,
    config_json: String,
    pub limits: Limits,
    pub info: PluginInfo,
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

fn wit_signal(signal: Signal) -> WitSignal {
    match signal {
        Signal::Traces => WitSignal::Traces,
        Signal::Metrics => WitSignal::Metrics,
        Signal::Logs => WitSignal::Logs,
    }
}

impl Plugin {
    fn instantiate(&self) -> Result<Instance, String> {
        let _deadline = deadline::arm(&self.runtime.engine, self.limits.timeout)?;
        let state = PluginState::new(
            self.id.clone(),
            self.limits.memory_bytes,
            self.runtime.metadata.clone(),
        );
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| deadline::on_epoch());
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("{e:#}"))?;
        let info = bindings
            .call_init(&mut store, &self.config_json)
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
        self.info.signals.contains(&wit_signal(signal))
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
                    message: format!("{error:#}"),
                    output,
                })
            }
        }
    }
}

/// Lends the batch to the plugin and returns the journal applied on `ok`, with its item count.
fn run(
    store: &mut Store<PluginState>,
    bindings: &Bindings,
    batch: &Batch,
) -> wasmtime::Result<Result<(Payload, usize), String>> {
    macro_rules! lend {
        ($work:ty, $call:ident) => {{
            let work = <$work>::lend(batch.payload.clone())?;
            let own = store.data_mut().table.push(work)?;
            let outcome = bindings.$call(&mut *store, Resource::new_borrow(own.rep()));
            let work = store.data_mut().table.delete(own)?;
            outcome.map(|result| {
                result
                    .map(|()| work.into_counted(batch.items))
                    .map_err(|e| e.message)
            })
        }};
    }
    match batch.signal {
        Signal::Traces => lend!(batch::SpanWork, call_process_spans),
        Signal::Logs => lend!(batch::LogWork, call_process_logs),
        Signal::Metrics => lend!(batch::MetricWork, call_process_metrics),
    }
}

/// One span, log record or metric point, for canary calls.
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
