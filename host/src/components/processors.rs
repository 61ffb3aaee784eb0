//! Processors: Wasm plugins, open-ended by type. The host keeps `plugin`, `sha256`,
//! `on_failure` and `limits` and hands the rest to the plugin. Built-in types are found at load
//! time (see [`crate::processors::built_in_dirs`]); `memory_limiter`, `batch` and
//! `tail_sampling` are the host's own (`pipeline::memory_limiter`, `pipeline::batch`,
//! `processors::tail_sampling`).

use super::Config;
use crate::config::Typed;
use crate::pdata::Signal;
use crate::pipeline::{batch, memory_limiter};
use crate::processors::{
    ALIASES, BUILT_IN, BUILT_IN_FOR_PROFILES, HostSettings, TRANSLATED, canonical, split_settings,
    tail_sampling,
};
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

    /// Whether it may sit in a profiles pipeline, as far as the config tells: the host's
    /// memory limiter, a built-in that declares `profiles`, or a `plugin:` (whether that one
    /// declares it is known once it is loaded: `service::reload` refuses it then). See
    /// `processors::PROFILES_REFUSAL`.
    pub fn takes_profiles(&self) -> bool {
        let kind = self.kind.as_str();
        if kind == memory_limiter::KIND {
            return true;
        }
        if [batch::KIND, tail_sampling::KIND].contains(&kind) || TRANSLATED.contains(&kind) {
            return false; // the host's own, or detected by the host: never for profiles
        }
        self.host_settings()
            .is_ok_and(|(host, _)| host.plugin.is_some() || BUILT_IN_FOR_PROFILES.contains(&kind))
    }

    /// Whether the processor names a plugin: a `plugin:` path, or a built-in type.
    pub fn availability(&self) -> Result<(), String> {
        if [memory_limiter::KIND, batch::KIND, tail_sampling::KIND].contains(&self.kind.as_str()) {
            return Ok(()); // the host's own; its settings are checked with the pipelines
        }
        let (host, _) = self.host_settings()?;
        if TRANSLATED.contains(&self.kind.as_str()) {
            return match host.plugin {
                Some(_) => Err(format!(
                    "`{}` is detected by the host; it takes no `plugin:`",
                    self.kind
                )),
                None => Ok(()),
            };
        }
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

impl Config {
    /// Which `batch` processor sets the batching of each exporter instance (exporter id and
    /// signal) the pipelines feed through one; see [`batch::assign`].
    pub fn batching(&self) -> Result<batch::Assignment, batch::Refusal> {
        let fed = self.service.pipelines.iter().filter_map(|(id, pipeline)| {
            let batches = pipeline.processors.iter().filter_map(|id| {
                let processor = self.processors.get(id)?;
                (processor.kind == batch::KIND).then_some((id, &processor.settings))
            });
            Some(batch::Fed {
                signal: Signal::parse(&id.kind)?,
                batches: batches.collect(),
                exporters: &pipeline.exporters,
            })
        });
        batch::assign(fed)
    }
}

impl Typed for ProcessorConfig {
    const SECTION: &'static str = "processor";
    fn known() -> Vec<&'static str> {
        let aliases = ALIASES.iter().map(|(alias, _)| *alias);
        let translated = TRANSLATED.iter().copied();
        BUILT_IN
            .iter()
            .copied()
            .chain(translated)
            .chain(aliases)
            .collect()
    }
    /// Any type may name a plugin; `availability` reports a missing `plugin:` with its line.
    fn accepts(_kind: &str) -> bool {
        true
    }
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(ProcessorConfig {
            // An alias (`k8s_attributes`) is its built-in from here on.
            kind: canonical(kind).to_string(),
            settings: serde_json::Value::deserialize(d)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::components::Config;
    use std::path::Path;

    const CONFIG: &str = "
receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}
processors:
  k8s_attributes/pods: {passthrough: true}
  attributes: {actions: [{key: a, action: delete}]}
  resource: {attributes: [{key: a, action: delete}]}
exporters: {debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [k8s_attributes/pods, attributes, resource], exporters: [debug]}
";

    // The collector's 2026 name `k8s_attributes` is the built-in k8sattributes in every
    // respect: no `plugin:` path needed, its plugin file, and the Kubernetes cache's settings
    // (which are looked up by type). attributes and resource are built in too.
    #[test]
    fn aliases_and_new_built_ins_need_no_plugin_path() {
        let config =
            Config::from_text(CONFIG, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<&str> = config
            .processors
            .iter()
            .map(|(_, p)| p.kind.as_str())
            .collect();
        assert!(
            kinds.contains(&"k8sattributes") && !kinds.contains(&"k8s_attributes"),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&"attributes") && kinds.contains(&"resource"),
            "{kinds:?}"
        );
        let listed: Vec<String> = config
            .listed("k8sattributes")
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(listed, ["k8s_attributes/pods"]);
        assert_eq!(config.configured("k8sattributes").count(), 1);
    }

    const BATCHED: &str = "
receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}
processors:
  batch: {send_batch_size: 1000, timeout: 50ms}
  batch/logs:
exporters: {otlp: {endpoint: a:4317}, otlp/b: {endpoint: b:4317}, debug: {}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [otlp, otlp/b]}
    logs: {receivers: [otlp], processors: [batch/logs], exporters: [otlp]}
    metrics: {receivers: [otlp], exporters: [debug]}
";

    // A `batch` entry is the host's own, like `memory_limiter`: it validates with the
    // collector's keys and no `plugin:` path, and sets the batching of each exporter instance
    // its pipeline feeds, per signal; an exporter no batch processor feeds keeps its own.
    #[test]
    fn batch_is_accepted_and_assigned_per_exporter_instance() {
        use crate::config::ComponentId;
        use crate::pdata::Signal;
        let config =
            Config::from_text(BATCHED, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let batching = config.batching().unwrap();
        let id = |text: &str| ComponentId::parse(text).unwrap();
        let at = |exporter: &str, signal| {
            let assigned = &batching[&(id(exporter), signal)];
            (
                assigned.processors.clone(),
                assigned.settings.send_batch_size,
            )
        };
        assert_eq!(batching.len(), 3, "{batching:?}");
        assert_eq!(at("otlp", Signal::Traces), (vec![id("batch")], 1000));
        assert_eq!(at("otlp/b", Signal::Traces), (vec![id("batch")], 1000));
        assert_eq!(at("otlp", Signal::Logs), (vec![id("batch/logs")], 8192));
        assert!(!batching.contains_key(&(id("debug"), Signal::Metrics)));
    }
}
