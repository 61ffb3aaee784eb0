//! What `trailhead run` will start, built and checked from the config without binding a port
//! or spawning a task: the Kubernetes cache's settings, every processor loaded (plugins
//! compiled, their configs accepted), the memory limiter's settings, which batch processor
//! batches each exporter, and each tail_sampling processor's settings. `trailhead validate`
//! builds this same plan and stops there; [`super::Service::start`] builds it in two steps so
//! the cache can list pods while the plugins compile.

use super::StartError;
use super::reload::{self, Loaded};
use crate::components::Config;
use crate::config::ComponentId;
use crate::kubernetes;
use crate::pdata::Signal;
use crate::pipeline::{batch, memory_limiter};
use crate::processors::plugin_settings;
use crate::processors::tail_sampling::{self, TailSamplingConfig};
use crate::telemetry::metrics::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The checked parts of a start.
pub struct Plan {
    pub kubernetes: KubernetesPlan,
    /// Every processor the pipelines list, loaded.
    pub processors: Loaded,
    /// The memory limiter's settings, when a pipeline lists one.
    pub limiter: Option<memory_limiter::Settings>,
    /// The batch processor whose settings each exporter instance batches with.
    pub batching: batch::Assignment,
    /// Each tail_sampling processor a pipeline lists, checked.
    pub tail_sampling: BTreeMap<ComponentId, TailSamplingConfig>,
}

/// The plan's first step: what the one Kubernetes cache watches, and the store it fills.
pub struct KubernetesPlan {
    /// Set when a pipeline runs `k8sattributes`.
    pub settings: Option<kubernetes::Settings>,
    /// The store the cache fills and the processors read.
    pub metadata: Arc<kubernetes::Store>,
}

impl KubernetesPlan {
    pub fn new(config: &Config) -> Result<KubernetesPlan, StartError> {
        let listed = config.listed(kubernetes::PROCESSOR);
        let listed = listed.map(|(id, settings)| (id, plugin_settings(settings)));
        let mut settings =
            kubernetes::Settings::from_processors(listed).map_err(|(id, message)| {
                StartError::Processor(config.processor_diagnostic(&id, &message, message.clone()))
            })?;
        if let Some(settings) = &mut settings {
            settings.share_pods_with(&config.discovery_pod_watches());
        }
        Ok(KubernetesPlan {
            settings,
            metadata: Arc::new(kubernetes::Store::default()),
        })
    }
}

impl Plan {
    /// The whole plan; the first problem found is the error.
    pub fn new(config: &Config, registry: &Arc<Registry>) -> Result<Plan, StartError> {
        Plan::after(KubernetesPlan::new(config)?, config, registry)
    }

    /// The rest of the plan after its first step.
    pub fn after(
        kubernetes: KubernetesPlan,
        config: &Config,
        registry: &Arc<Registry>,
    ) -> Result<Plan, StartError> {
        let processors = reload::load_processors(config, registry, &kubernetes.metadata)?;
        let limiter = memory_limiter::from_processors(config.listed(memory_limiter::KIND))
            .map_err(|(id, message)| {
                StartError::Processor(config.processor_diagnostic(&id, "", message))
            })?;
        let batching = config.batching().map_err(|refused| {
            let at = match refused.key.as_str() {
                "" => String::new(),
                key => format!("{key}: "),
            };
            let diagnostic = config.processor_diagnostic(&refused.processor, &at, refused.message);
            StartError::Processor(diagnostic)
        })?;
        Ok(Plan {
            kubernetes,
            processors,
            limiter,
            batching,
            tail_sampling: tail_sampling_settings(config)?,
        })
    }
}

/// Each listed tail_sampling processor's settings; an error is placed on its key. It samples
/// traces only, as the collector's does.
fn tail_sampling_settings(
    config: &Config,
) -> Result<BTreeMap<ComponentId, TailSamplingConfig>, StartError> {
    let mut found = BTreeMap::new();
    for (pipeline_id, pipeline) in &config.service.pipelines {
        for id in &pipeline.processors {
            if id.kind != tail_sampling::KIND {
                continue;
            }
            if Signal::parse(&pipeline_id.kind) != Some(Signal::Traces) {
                let message = format!(
                    "samples traces only; pipeline `{pipeline_id}` carries {}",
                    pipeline_id.kind
                );
                return Err(StartError::Processor(
                    config.processor_diagnostic(id, "", message),
                ));
            }
            let Some(processor) = config.processors.get(id) else {
                continue; // the wiring checks name an undefined processor
            };
            let settings = resolve_plugin_paths(&processor.settings, config);
            let settings = tail_sampling::settings(&settings).map_err(|message| {
                StartError::Processor(config.processor_diagnostic(id, &message, message.clone()))
            })?;
            found.insert(id.clone(), settings);
        }
    }
    Ok(found)
}

/// The settings with each `plugin` policy's path taken relative to the config file, as a
/// processor's `plugin:` path is.
fn resolve_plugin_paths(settings: &serde_json::Value, config: &Config) -> serde_json::Value {
    let mut settings = settings.clone();
    let policies = settings.get_mut("policies").and_then(|p| p.as_array_mut());
    for policy in policies.into_iter().flatten() {
        if let Some(path) = policy.pointer_mut("/plugin/path")
            && let Some(given) = path.as_str()
        {
            let resolved = config.resolve_path(std::path::Path::new(given));
            *path = resolved.display().to_string().into();
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shipped tail_sampling example plans as written: its block is read and every policy
    // built.
    #[test]
    fn the_tail_sampling_example_plans() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/examples/tail-sampling.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let config = Config::from_text(&text, std::path::Path::new(path)).unwrap();
        let planned = tail_sampling_settings(&config).unwrap_or_else(|e| panic!("{e}"));
        let settings = planned.values().next().expect("a tail_sampling entry");
        assert_eq!(
            (settings.policies.len(), settings.max_held_bytes),
            (5, 512 << 20)
        );
    }

    // A sampling plugin's relative path is the config file's folder's, as a processor's is.
    #[test]
    fn a_sampling_plugin_path_is_relative_to_the_config() {
        let text = "processors:\n  tail_sampling:\n    policies:\n      - {name: p, type: plugin, plugin: {path: s.wasm}}\n      - {name: q, type: plugin, plugin: {path: /abs/s.wasm}}\nreceivers: {otlp: {}}\nexporters: {debug: {}}\nservice: {pipelines: {traces: {receivers: [otlp], processors: [tail_sampling], exporters: [debug]}}}\n";
        let config =
            Config::from_text(text, std::path::Path::new("/etc/trailhead/t.yaml")).unwrap();
        let (_, processor) = config.processors.iter().next().unwrap();
        let settings = resolve_plugin_paths(&processor.settings, &config);
        let paths: Vec<_> = (0..2)
            .map(|i| {
                settings
                    .pointer(&format!("/policies/{i}/plugin/path"))
                    .unwrap()
                    .clone()
            })
            .collect();
        assert_eq!(paths, ["/etc/trailhead/s.wasm", "/abs/s.wasm"]);
    }

    // tail_sampling samples traces only; listed in a logs pipeline it is refused in place.
    #[test]
    fn tail_sampling_outside_traces_is_refused() {
        let text = "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\nprocessors:\n  tail_sampling:\nexporters: {debug: {}}\nservice:\n  pipelines:\n    logs: {receivers: [otlp], processors: [tail_sampling], exporters: [debug]}\n";
        let config = Config::from_text(text, std::path::Path::new("t.yaml")).unwrap();
        let Err(error) = tail_sampling_settings(&config) else {
            panic!("tail_sampling in a logs pipeline was accepted");
        };
        let error = error.to_string();
        assert!(
            error.contains("processor `tail_sampling`: samples traces only"),
            "{error}"
        );
    }

    // The host reads the k8sattributes settings before any plugin loads; its error is placed
    // on the key, as the plugin's own would be.
    #[test]
    fn a_bad_k8sattributes_setting_is_placed_on_its_key() {
        let text = "receivers:\n  otlp:\nprocessors:\n  k8sattributes:\n    on_failure: pass\n    extract:\n      labels:\n        - key: app\n          from: pods\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [k8sattributes]\n      exporters: [debug]\n";
        let config = Config::from_text(text, std::path::Path::new("t.yaml")).unwrap();
        let Err(error) = KubernetesPlan::new(&config) else {
            panic!("the plan took `from: pods`")
        };
        assert_eq!(
            error.to_string(),
            "t.yaml:9:11: processor `k8sattributes`: extract.labels[0].from: `pods` is not one of pod, namespace, node"
        );
    }

    /// The plan's error for `processors` (YAML under `processors:`) in a two-pipeline config.
    fn batch_error(processors: &str) -> String {
        let text = format!(
            "receivers:\n  otlp:\nprocessors:\n{processors}exporters:\n  otlp:\n    endpoint: a:4317\n  otlp/b:\n    endpoint: b:4317\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp]\n    traces/b:\n      receivers: [otlp]\n      processors: [batch/b]\n      exporters: [otlp, otlp/b]\n"
        );
        let config = Config::from_text(&text, std::path::Path::new("t.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        match Plan::new(&config, &Arc::new(Registry::default())) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    // Batch processors plan without a plugin; what the collector refuses, what the exporters'
    // batching cannot do and two different batchings of one exporter are refused at `validate`,
    // each placed on its key and naming the processor (and, for the conflict, the exporter and
    // both processors).
    #[test]
    fn batch_processors_are_planned_or_refused_in_place() {
        let same = "  batch:\n    timeout: 50ms\n  batch/b:\n    timeout: 50ms\n";
        assert_eq!(batch_error(same), "");
        let cases = [
            (
                "  batch:\n    send_batch_size: 100\n    send_batch_max_size: 10\n  batch/b:\n",
                "t.yaml:6:5: processor `batch`: send_batch_max_size must be greater or equal to send_batch_size",
            ),
            (
                "  batch:\n    metadata_keys: [tenant]\n  batch/b:\n",
                "t.yaml:5:5: processor `batch`: metadata_keys (`tenant`) is not supported",
            ),
            (
                "  batch:\n    send_batch_sizes: 10\n  batch/b:\n",
                "t.yaml:5:5: processor `batch`: unknown field `send_batch_sizes`",
            ),
            (
                "  batch:\n  batch/b:\n    timeout: 1s\n",
                "t.yaml:5:3: processor `batch/b`: exporter `otlp` (traces) is fed through batch processors `batch` and `batch/b` with different settings",
            ),
        ];
        for (processors, want) in cases {
            let got = batch_error(processors);
            assert!(got.starts_with(want), "{processors}: {got}");
        }
    }
}
