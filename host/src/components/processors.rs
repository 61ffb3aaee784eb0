//! Processors: Wasm plugins, open-ended by type. The host keeps `plugin`, `sha256`,
//! `on_failure` and `limits` and hands the rest to the plugin. Built-in types are found at load
//! time (see [`crate::processors::built_in_dirs`]); `memory_limiter` is the host's own.

use crate::config::Typed;
use crate::pipeline::memory_limiter;
use crate::processors::{BUILT_IN, HostSettings, split_settings};
use serde::{Deserialize, Deserializer};

/// A processor's settings: its type, and the body as the plugin will read it.
#[derive(Debug)]
pub struct ProcessorConfig {
    pub kind: String,
    pub settings: serde_json::Value,
}

impl ProcessorConfig {
    /// The host's settings and the plugin's own config as JSON.
    pub fn host_settings(&self) -> Result<(HostSettings, String), String> {
        split_settings(&self.settings)
    }

    /// Whether the processor names a plugin: a `plugin:` path, or a built-in type.
    pub fn availability(&self) -> Result<(), String> {
        if self.kind == memory_limiter::KIND {
            return Ok(()); // the host's own; its settings are checked with the pipelines
        }
        let (host, _) = self.host_settings()?;
        if host.plugin.is_some() || BUILT_IN.contains(&self.kind.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "`{}` is not a built-in processor; give its `plugin:` path",
                self.kind
            ))
        }
    }
}

impl Typed for ProcessorConfig {
    const SECTION: &'static str = "processor";
    fn known() -> Vec<&'static str> {
        BUILT_IN.to_vec()
    }
    /// Any type may name a plugin; `availability` reports a missing `plugin:` with its line.
    fn accepts(_kind: &str) -> bool {
        true
    }
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(ProcessorConfig {
            kind: kind.to_string(),
            settings: serde_json::Value::deserialize(d)?,
        })
    }
}
