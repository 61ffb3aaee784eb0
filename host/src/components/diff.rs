//! What a reload changes, per component: which ids of each section were added, removed or
//! changed (their settings as written, after expansion), which pipelines' processor lists
//! changed, and whether the parts fixed at start changed (the rest of `service`, the one
//! Kubernetes cache, the one memory limit, the exporters' batching that batch processors set). Vector's `config/diff.rs` is the model. A reload
//! applies processor changes and refuses the rest, naming each.

use super::{
    Config, ConnectorConfig, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig,
};
use crate::config::{ComponentId, Components, Typed};
use crate::kubernetes;
use crate::pipeline::{batch, memory_limiter};
use crate::processors;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What a reload compares of one config.
#[derive(Debug)]
pub struct Snapshot {
    /// Each component's settings, by section (`receiver`, …) and id.
    components: BTreeMap<(&'static str, ComponentId), Value>,
    /// Each pipeline's processors, in order.
    processor_lists: BTreeMap<ComponentId, Vec<ComponentId>>,
    /// Each key of `service`, with the processor lists taken out of the pipelines.
    service: BTreeMap<String, Value>,
    /// What the Kubernetes cache reads of the k8sattributes processors.
    kubernetes_cache: Value,
    /// The memory limit, and the pipelines whose receivers obey it.
    memory_limit: (MemoryLimit, BTreeSet<ComponentId>),
    /// How each exporter instance batches because of batch processors. Exporters are built
    /// once, at start, so a change here needs a restart like an exporter's own batch keys.
    batching: Result<batch::Assignment, batch::Refusal>,
    /// Each pipeline's tail_sampling processors with their settings: they hold traces and
    /// are built once, at start.
    tail_sampling: BTreeMap<ComponentId, Vec<(ComponentId, Value)>>,
}

type MemoryLimit = Result<Option<memory_limiter::Settings>, (ComponentId, String)>;

/// How one component changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Added,
    Removed,
    Changed,
}

/// One component that differs between two configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub section: &'static str,
    pub id: ComponentId,
    pub how: How,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.how {
            How::Added => "added",
            How::Removed => "removed",
            How::Changed => "changed",
        };
        write!(f, "{} `{}` {how}", self.section, self.id)
    }
}

/// Everything that differs between the running config and a new one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub components: Vec<Change>,
    /// Pipelines whose processor lists changed.
    pub processor_lists: Vec<ComponentId>,
    /// Keys of `service` that changed, outside the processor lists (`service.pipelines.traces`).
    pub service: Vec<String>,
    pub kubernetes_cache: bool,
    pub memory_limit: bool,
    /// A batch processor's settings, or which exporters one feeds, changed.
    pub batching: bool,
    /// A tail_sampling processor's settings, or which pipelines list one, changed.
    pub tail_sampling: bool,
}

impl Snapshot {
    pub fn of(config: &Config) -> Snapshot {
        let mut components = BTreeMap::new();
        add_section::<ReceiverConfig>(config, &config.receivers, "receivers", &mut components);
        add_section::<ProcessorConfig>(config, &config.processors, "processors", &mut components);
        add_section::<ExporterConfig>(config, &config.exporters, "exporters", &mut components);
        add_section::<ExtensionConfig>(config, &config.extensions, "extensions", &mut components);
        // A connector is wiring, as a pipeline's receivers and exporters are: a change to one
        // needs a restart, so a reload never rebuilds part of the graph under data in flight.
        add_section::<ConnectorConfig>(config, &config.connectors, "connectors", &mut components);
        let pipelines = &config.service.pipelines;
        let processor_lists = pipelines
            .iter()
            .map(|(id, p)| (id.clone(), p.processors.clone()))
            .collect();
        let limited = pipelines
            .iter()
            .filter(|(_, p)| {
                p.processors
                    .iter()
                    .any(|id| id.kind == memory_limiter::KIND)
            })
            .map(|(id, _)| id.clone())
            .collect();
        Snapshot {
            components,
            processor_lists,
            service: service_keys(config),
            kubernetes_cache: kubernetes::Settings::fingerprint(
                config
                    .configured(kubernetes::PROCESSOR)
                    .map(processors::plugin_settings),
            ),
            memory_limit: (
                memory_limiter::from_processors(config.listed(memory_limiter::KIND)),
                limited,
            ),
            batching: config.batching(),
            tail_sampling: tail_sampling(config),
        }
    }
}

/// Each pipeline's tail_sampling processors and their settings.
fn tail_sampling(config: &Config) -> BTreeMap<ComponentId, Vec<(ComponentId, Value)>> {
    let pipelines = config.service.pipelines.iter();
    pipelines
        .map(|(id, p)| {
            let listed = p
                .processors
                .iter()
                .filter(|p| p.kind == processors::tail_sampling::KIND);
            let with = listed.map(|p| {
                let settings = config.processors.get(p).map(|c| c.settings.clone());
                (p.clone(), settings.unwrap_or_default())
            });
            (id.clone(), with.collect())
        })
        .filter(|(_, listed): &(ComponentId, Vec<_>)| !listed.is_empty())
        .collect()
}

/// Each component of one section with its settings as written.
fn add_section<T: Typed>(
    config: &Config,
    section: &Components<T>,
    key: &str,
    into: &mut BTreeMap<(&'static str, ComponentId), Value>,
) {
    for (id, _) in section.iter() {
        let written = config.tree.get(&[key, &id.to_string()]);
        into.insert(
            (T::SECTION, id.clone()),
            written.map_or(Value::Null, |t| t.value()),
        );
    }
}

/// `service`'s keys as written, each pipeline on its own and without its processor list.
fn service_keys(config: &Config) -> BTreeMap<String, Value> {
    let mut keys = BTreeMap::new();
    let Some(Value::Object(service)) = config.tree.get(&["service"]).map(|t| t.value()) else {
        return keys;
    };
    for (key, value) in service {
        match (key.as_str(), value) {
            ("pipelines", Value::Object(pipelines)) => {
                for (id, mut pipeline) in pipelines {
                    if let Some(pipeline) = pipeline.as_object_mut() {
                        pipeline.remove("processors");
                    }
                    keys.insert(format!("service.pipelines.{id}"), pipeline);
                }
            }
            (_, value) => {
                keys.insert(format!("service.{key}"), value);
            }
        }
    }
    keys
}

impl ConfigDiff {
    pub fn new(old: &Snapshot, new: &Snapshot) -> ConfigDiff {
        let mut components = Vec::new();
        for ((section, id), settings) in &old.components {
            match new.components.get(&(section, id.clone())) {
                None => components.push(change(section, id, How::Removed)),
                Some(now) if now != settings => components.push(change(section, id, How::Changed)),
                Some(_) => {}
            }
        }
        for (section, id) in new.components.keys() {
            if !old.components.contains_key(&(section, id.clone())) {
                components.push(change(section, id, How::Added));
            }
        }
        ConfigDiff {
            components,
            processor_lists: changed_keys(&old.processor_lists, &new.processor_lists),
            service: changed_keys(&old.service, &new.service),
            kubernetes_cache: old.kubernetes_cache != new.kubernetes_cache,
            memory_limit: old.memory_limit != new.memory_limit,
            batching: old.batching != new.batching,
            tail_sampling: old.tail_sampling != new.tail_sampling,
        }
    }

    /// What a reload cannot apply, each named; empty when it may go ahead. Processors and the
    /// pipelines' processor lists change live; everything else is built once, at start.
    pub fn needs_restart(&self) -> Vec<String> {
        let mut fixed: Vec<String> = self
            .components
            .iter()
            .filter(|c| c.section != ProcessorConfig::SECTION)
            .map(Change::to_string)
            .collect();
        fixed.extend(self.service.iter().map(|key| format!("{key} changed")));
        if self.kubernetes_cache {
            fixed.push("the Kubernetes cache (k8sattributes auth_type, filter, wait_for_metadata or what extract reads) changed".into());
        }
        if self.memory_limit {
            fixed.push(
                "the memory limit (memory_limiter settings, or which pipelines list it) changed"
                    .into(),
            );
        }
        if self.batching {
            fixed.push(
                "the exporters' batching (a batch processor's settings, or which exporters its pipelines feed) changed"
                    .into(),
            );
        }
        if self.tail_sampling {
            fixed.push("a tail_sampling processor (its settings, or which pipelines list it) changed: it holds traces waiting for decisions".into());
        }
        fixed
    }
}

fn change(section: &'static str, id: &ComponentId, how: How) -> Change {
    Change {
        section,
        id: id.clone(),
        how,
    }
}

/// The keys whose values differ, or that only one side has.
fn changed_keys<K: Ord + Clone, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> Vec<K> {
    let keys: BTreeSet<&K> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(k) != new.get(k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn snapshot(processors: &str, listed: &str) -> Snapshot {
        let text = format!(
            "receivers: {{otlp: }}\nprocessors: {{{processors}}}\nexporters: {{otlp: {{endpoint: a:4317}}}}\n\
             service: {{pipelines: {{traces: {{receivers: [otlp], processors: [{listed}], exporters: [otlp]}}}}}}\n"
        );
        Snapshot::of(&Config::from_text(&text, Path::new("t.yaml")).unwrap())
    }

    // A batch processor sets an exporter's batching, and exporters are built at start: so a
    // change to its settings, or listing it or not, needs a restart (a reload never keeps the
    // old batching silently), while an unchanged one, or one no pipeline lists, does not.
    #[test]
    fn a_batch_processor_change_needs_a_restart() {
        let running = snapshot("batch: {timeout: 50ms}", "batch");
        let restart = |diff: ConfigDiff| diff.needs_restart();
        let batching = "the exporters' batching (a batch processor's settings, or which exporters its pipelines feed) changed";
        let unchanged = snapshot("batch: {timeout: 50ms}", "batch");
        assert!(restart(ConfigDiff::new(&running, &unchanged)).is_empty());
        let changed = snapshot("batch: {timeout: 1s}", "batch");
        assert_eq!(restart(ConfigDiff::new(&running, &changed)), [batching]);
        let unlisted = snapshot("batch: {timeout: 50ms}", "");
        assert_eq!(restart(ConfigDiff::new(&running, &unlisted)), [batching]);
        let unused = snapshot(
            "batch: {timeout: 50ms}, batch/spare: {timeout: 1s}",
            "batch",
        );
        assert!(restart(ConfigDiff::new(&running, &unused)).is_empty());
    }
}

#[cfg(test)]
mod connector_tests {
    use super::*;
    use std::path::Path;

    fn snapshot(route_to: &str) -> Snapshot {
        let text = format!(
            "receivers: {{otlp: }}\nexporters: {{debug: }}\nconnectors: {{routing: {{table: [{{condition: 'true', pipelines: [{route_to}]}}]}}}}\n\
             service: {{pipelines: {{traces/in: {{receivers: [otlp], exporters: [routing]}}, traces/a: {{receivers: [routing], exporters: [debug]}}, traces/b: {{receivers: [routing], exporters: [debug]}}}}}}\n"
        );
        Snapshot::of(&Config::from_text(&text, Path::new("t.yaml")).unwrap())
    }

    // A connector is wiring: changing its settings needs a restart, as changing a pipeline's
    // receivers or exporters does, so a reload never rebuilds the graph under data in flight.
    #[test]
    fn a_connector_change_needs_a_restart() {
        let running = snapshot("traces/a");
        assert!(
            ConfigDiff::new(&running, &snapshot("traces/a"))
                .needs_restart()
                .is_empty()
        );
        let changed = ConfigDiff::new(&running, &snapshot("traces/b")).needs_restart();
        assert_eq!(changed, ["connector `routing` changed"]);
    }
}
