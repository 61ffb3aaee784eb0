//! Sampling-policy plugins (`wit/sampler`, `mathtrail:sampler@0.1.0`): a component given one
//! whole trace that returns a decision. It runs under a processor plugin's sandbox (the
//! runtime's engine, linker, compiled cache, memory limit and CPU deadline), with one instance
//! kept per policy.

use super::host::PluginState;
use super::{FORBIDDEN_IMPORTS, Limits, Runtime, deadline};
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

/// A loaded sampling plugin: its checked component and its one instance.
pub struct SamplerPlugin {
    id: Arc<str>,
    pub path: PathBuf,
    pub sha256: String,
    config_json: String,
    limits: Limits,
    pre: bindings::SamplerPre<PluginState>,
    runtime: Arc<Runtime>,
    /// `None` after a trap: the next decision instantiates afresh.
    instance: Option<Instance>,
}

impl std::fmt::Debug for SamplerPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerPlugin")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Runtime {
    /// Reads, pins, compiles and checks a sampling plugin against the `sampler` world, then
    /// initialises its instance with `config_json`. The error says which step failed.
    pub fn load_sampler(
        self: &Arc<Self>,
        id: &str,
        path: &Path,
        pin: Option<&str>,
        config_json: &str,
    ) -> Result<SamplerPlugin, String> {
        let shown = path.display();
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read plugin `{shown}`: {e}"))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pinned) = pin.filter(|p| !p.eq_ignore_ascii_case(&sha256)) {
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
            id: Arc::from(id),
            path: path.to_path_buf(),
            sha256,
            config_json: config_json.to_string(),
            limits: Limits::default(),
            pre,
            runtime: self.clone(),
            instance: None,
        };
        let instance = plugin
            .instantiate()
            .map_err(|e| format!("plugin `{shown}` rejected its config: {e}"))?;
        plugin.instance = Some(instance);
        Ok(plugin)
    }
}

impl SamplerPlugin {
    /// A new instance with `init` called under the CPU deadline.
    fn instantiate(&self) -> Result<Instance, String> {
        let _deadline = deadline::arm(&self.runtime.engine, self.limits.timeout)?;
        let mut store = self.runtime.sandbox(&self.id, self.limits);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("{e:#}"))?;
        bindings
            .call_init(&mut store, &self.config_json)
            .map_err(|e| format!("{e:#}"))??;
        Ok((store, bindings))
    }

    /// Decides one trace from its encoded spans. A trap or a deadline is the error, and the
    /// instance is dropped so the next call starts fresh. Blocking: a CPU-bound call.
    pub fn decide(&mut self, trace: &[u8]) -> Result<Decision, String> {
        // A plugin that writes to stdout or stderr (a panic message) does blocking WASI I/O,
        // which panics on an async worker: leave the worker first, or use a thread of its own.
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.call(trace)),
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| self.call(trace))
                    .join()
                    .unwrap_or_else(|_| Err("the sampling call's thread panicked".into()))
            }),
            Err(_) => self.call(trace),
        }
    }

    fn call(&mut self, trace: &[u8]) -> Result<Decision, String> {
        let (mut store, bindings) = match self.instance.take() {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        store.set_epoch_deadline(1);
        let outcome = match deadline::arm(&self.runtime.engine, self.limits.timeout) {
            Ok(_deadline) => bindings
                .call_decide(&mut store, trace)
                .map_err(|e| super::describe(&e)),
            Err(message) => Err(message),
        };
        if outcome.is_ok() {
            self.instance = Some((store, bindings));
        }
        outcome
    }
}
