//! Sampling-policy plugins (`wit/sampler`, `mathtrail:sampler@0.1.0`): a component given one
//! whole trace that returns a decision. It runs under a processor plugin's sandbox (the
//! runtime's engine, linker, compiled cache, memory limit and CPU deadline, both from the
//! policy's `limits:`), with one instance kept per policy.
//!
//! A version is loaded whole or not at all: read, pin, compile, type-check, `init`, then a
//! canary trace decided without trapping. [`SamplerPlugin::reload`] runs the same steps on
//! the file as it now is, so a swap can only install a version that got that far.

use super::host::PluginState;
use super::{FORBIDDEN_IMPORTS, Limits, Runtime, deadline};
use crate::pdata::Signal;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::Store;

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/sampler",
        world: "sampler",
    });
}

pub use bindings::mathtrail::sampler::types::Decision;

/// One live instance and its store.
type Instance = (Store<PluginState>, bindings::Sampler);

/// What a sampling plugin is loaded from; kept so the file can be loaded again when it changes.
#[derive(Debug, Clone)]
pub struct SamplerSpec {
    /// The sandbox's id in logs: the policy's name.
    pub id: String,
    pub path: PathBuf,
    /// The sha256 the config pins, if any: every version loaded must match it.
    pub pin: Option<String>,
    /// The policy's `plugin.config`, as the JSON `init` gets.
    pub config_json: String,
    pub limits: Limits,
}

/// How a decision failed: the `kind` label of the sampling plugin failures metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin trapped (a panic, an unreachable, a bad memory access).
    Trap,
    /// The call ran out of its CPU budget (`limits.timeout_ms`).
    Timeout,
    /// The plugin's memory would have grown past `limits.memory_mib`.
    OutOfMemory,
}

impl FailureKind {
    pub const ALL: [FailureKind; 3] = [
        FailureKind::Trap,
        FailureKind::Timeout,
        FailureKind::OutOfMemory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out_of_memory",
        }
    }

    /// A processor's finer classification, folded: a panic is a trap here.
    fn of(error: &wasmtime::Error, output: &str) -> FailureKind {
        match super::classify(error, output) {
            super::FailureKind::Timeout => FailureKind::Timeout,
            super::FailureKind::OutOfMemory => FailureKind::OutOfMemory,
            _ => FailureKind::Trap,
        }
    }
}

/// A failed decision (or a failed re-instantiation before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// A loaded sampling plugin: its checked component and its one instance.
pub struct SamplerPlugin {
    spec: Arc<SamplerSpec>,
    pub sha256: String,
    pre: bindings::SamplerPre<PluginState>,
    runtime: Arc<Runtime>,
    /// `None` after a trap: the next decision instantiates afresh.
    instance: Option<Instance>,
}

impl std::fmt::Debug for SamplerPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerPlugin")
            .field("path", &self.spec.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Runtime {
    /// Reads, pins, compiles and checks a sampling plugin against the `sampler` world,
    /// initialises an instance with the spec's config and has it decide a canary trace. The
    /// error says which step failed.
    pub fn load_sampler(self: &Arc<Self>, spec: &SamplerSpec) -> Result<SamplerPlugin, String> {
        let shown = spec.path.display();
        let bytes =
            std::fs::read(&spec.path).map_err(|e| format!("cannot read plugin `{shown}`: {e}"))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pinned) = spec
            .pin
            .as_deref()
            .filter(|p| !p.eq_ignore_ascii_case(&sha256))
        {
            return Err(format!(
                "plugin `{shown}` has sha256 {sha256}, but the config pins {pinned}"
            ));
        }
        let (component, _) = self
            .compile(&sha256, &bytes)
            .map_err(|e| format!("plugin `{shown}` is not a valid component: {e:#}"))?;
        for (name, _) in component.component_type().imports(&self.engine) {
            if FORBIDDEN_IMPORTS.iter().any(|f| name.starts_with(f)) {
                return Err(format!(
                    "plugin `{shown}` imports `{name}`, which plugins may not use (no sockets or HTTP)"
                ));
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::SamplerPre::new)
            .map_err(|e| {
                format!("plugin `{shown}` does not implement mathtrail:sampler@0.1.0: {e:#}")
            })?;
        let mut plugin = SamplerPlugin {
            spec: Arc::new(spec.clone()),
            sha256,
            pre,
            runtime: self.clone(),
            instance: None,
        };
        plugin.instance = Some(
            plugin
                .instantiate()
                .map_err(|e| format!("plugin `{shown}` rejected its config: {}", e.message))?,
        );
        plugin
            .decide(&canary_trace())
            .map_err(|e| format!("plugin `{shown}` failed its canary trace: {e}"))?;
        // The canary's decision must not show in a stateful plugin's later ones.
        plugin.instance = None;
        Ok(plugin)
    }
}

/// One span named `canary`, as an encoded request: what every version decides before use.
fn canary_trace() -> Vec<u8> {
    super::canary_batch(Signal::Traces)
        .payload
        .to_bytes()
        .to_vec()
}

/// A version's spec, content hash and runtime: enough to load the file again.
pub struct Source {
    spec: Arc<SamplerSpec>,
    sha256: String,
    runtime: Arc<Runtime>,
}

impl Source {
    /// Loads the file again with the same spec: `None` when its content (sha256) is the one
    /// running, else the new version, loaded and canaried. Blocking (it may compile).
    pub fn reload(&self) -> Result<Option<SamplerPlugin>, String> {
        let shown = self.spec.path.display();
        let bytes = std::fs::read(&self.spec.path)
            .map_err(|e| format!("cannot read plugin `{shown}`: {e}"))?;
        if hex::encode(Sha256::digest(&bytes)) == self.sha256 {
            return Ok(None);
        }
        self.runtime.load_sampler(&self.spec).map(Some)
    }

    /// The running version's sha256.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

impl SamplerPlugin {
    /// The component file.
    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    /// The memory and CPU bounds it runs under.
    pub fn limits(&self) -> Limits {
        self.spec.limits
    }

    /// What loading the file again needs, so the load runs without holding this version.
    pub fn source(&self) -> Source {
        Source {
            spec: self.spec.clone(),
            sha256: self.sha256.clone(),
            runtime: self.runtime.clone(),
        }
    }

    /// A new instance with `init` called under the CPU deadline.
    fn instantiate(&self) -> Result<Instance, Failure> {
        let trap = |message: String| Failure {
            kind: FailureKind::Trap,
            message,
        };
        let _deadline =
            deadline::arm(&self.runtime.engine, self.spec.limits.timeout).map_err(trap)?;
        let id: Arc<str> = Arc::from(self.spec.id.as_str());
        let mut store = self.runtime.sandbox(&id, self.spec.limits);
        let failed = |store: &Store<PluginState>, e: wasmtime::Error| {
            let output = store.data().output.take();
            Failure {
                kind: FailureKind::of(&e, &output),
                message: format!("{e:#}"),
            }
        };
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(bindings) => bindings,
            Err(e) => return Err(failed(&store, e)),
        };
        match bindings.call_init(&mut store, &self.spec.config_json) {
            Ok(Ok(())) => Ok((store, bindings)),
            Ok(Err(refused)) => Err(trap(refused)),
            Err(e) => Err(failed(&store, e)),
        }
    }

    /// Decides one trace from its encoded spans. A trap or a deadline is the error, and the
    /// instance is dropped so the next call starts fresh. Blocking: a CPU-bound call.
    pub fn decide(&mut self, trace: &[u8]) -> Result<Decision, Failure> {
        // A plugin that writes to stdout or stderr (a panic message) does blocking WASI I/O,
        // which panics on an async worker: leave the worker first, or use a thread of its own.
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.call(trace)),
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| self.call(trace)).join().unwrap_or_else(|_| {
                    Err(Failure {
                        kind: FailureKind::Trap,
                        message: "the sampling call's thread panicked".into(),
                    })
                })
            }),
            Err(_) => self.call(trace),
        }
    }

    fn call(&mut self, trace: &[u8]) -> Result<Decision, Failure> {
        let (mut store, bindings) = match self.instance.take() {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        store.set_epoch_deadline(1);
        let outcome = match deadline::arm(&self.runtime.engine, self.spec.limits.timeout) {
            Ok(_deadline) => bindings.call_decide(&mut store, trace).map_err(|e| {
                let output = store.data().output.take();
                Failure {
                    kind: FailureKind::of(&e, &output),
                    message: super::describe(&e),
                }
            }),
            Err(message) => Err(Failure {
                kind: FailureKind::Trap,
                message,
            }),
        };
        if outcome.is_ok() {
            self.instance = Some((store, bindings));
        }
        outcome
    }
}
