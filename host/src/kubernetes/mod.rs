//! The host's one Kubernetes metadata cache, which `k8sattributes` plugins read through the
//! `pod-by-*` imports: no plugin needs RBAC, a network, or its own copy.
//!
//! What is watched follows the config. Pods always; namespaces, nodes and ReplicaSets only when
//! a `k8sattributes` processor extracts their labels, annotations or UIDs. Only the label and
//! annotation keys some rule can match are kept. With no cluster reachable trailhead still
//! starts, logs it once, and the plugins pass data through.

mod store;
mod watch;

pub use store::{DELETE_GRACE, IGNORE_ANNOTATIONS, KeyFilter, Meta, Owner, Pod, Store};
pub use watch::slim;

use crate::config::ComponentId;
use crate::telemetry::{Telemetry, catalog};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The processor type whose settings configure the cache.
pub const PROCESSOR: &str = "k8sattributes";

/// How to reach the API server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum AuthType {
    /// The pod's service account (in-cluster).
    #[default]
    #[serde(rename = "serviceAccount")]
    ServiceAccount,
    /// `$KUBECONFIG` or `~/.kube/config`.
    #[serde(rename = "kubeconfig", alias = "kubeConfig")]
    Kubeconfig,
    /// The in-cluster address with no credentials.
    #[serde(rename = "none")]
    None,
}

/// `filter:` of a k8sattributes processor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Filter {
    /// Only this node's pods (DaemonSet mode), named by an environment variable.
    pub node_from_env_var: Option<String>,
    /// Only this node's pods, named directly.
    pub node: Option<String>,
    /// Only this namespace's pods.
    pub namespace: Option<String>,
}

/// A label or annotation rule, as far as the cache needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct FieldRule {
    /// The label or annotation to copy.
    pub key: Option<String>,
    /// Copy every label or annotation whose key matches this regex.
    pub key_regex: Option<String>,
    /// Read it from the `pod` (default), its `namespace` or its `node`.
    pub from: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Extract {
    /// Which `k8s.*` attributes to set; the collector's default set when absent.
    pub metadata: Option<Vec<String>>,
    /// Labels to copy as attributes.
    pub labels: Vec<FieldRule>,
    /// Annotations to copy as attributes.
    pub annotations: Vec<FieldRule>,
}

/// The keys of a `k8sattributes` processor the host reads; the plugin validates all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
struct ProcessorKeys {
    auth_type: AuthType,
    filter: Filter,
    wait_for_metadata: bool,
    wait_for_metadata_timeout: Option<String>,
    passthrough: bool,
    extract: Extract,
}

/// What the cache watches and keeps, merged from every `k8sattributes` processor in use.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub auth_type: AuthType,
    /// The node whose pods alone are watched: `filter.node`, or read from the environment
    /// variable `filter.node_from_env_var` names when the cache starts.
    pub node: Option<String>,
    pub node_env_var: Option<String>,
    pub namespace: Option<String>,
    pub wait_for_metadata: Option<Duration>,
    pub pod_labels: KeyFilter,
    pub pod_annotations: KeyFilter,
    pub namespace_labels: KeyFilter,
    pub namespace_annotations: KeyFilter,
    pub node_labels: KeyFilter,
    pub node_annotations: KeyFilter,
    pub watch_namespaces: bool,
    pub watch_nodes: bool,
    pub watch_replicasets: bool,
    pub containers: bool,
}

/// The collector's default for `wait_for_metadata_timeout`.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

impl Settings {
    /// The cache the listed `k8sattributes` processors need (`(id, settings)`, in pipeline
    /// order): `None` when there are none. All of them share one cache, so they must agree on
    /// how to reach and filter it.
    pub fn from_processors<'a>(
        listed: impl IntoIterator<Item = (&'a ComponentId, &'a serde_json::Value)>,
    ) -> Result<Option<Settings>, String> {
        let mut shared: Option<ProcessorKeys> = None;
        let mut settings = Settings::default();
        for (id, processor) in listed {
            let keys: ProcessorKeys = serde_json::from_value(processor.clone())
                .map_err(|e| format!("processor `{id}`: {e}"))?;
            match &shared {
                Some(first)
                    if (&first.auth_type, &first.filter, first.wait_for_metadata)
                        != (&keys.auth_type, &keys.filter, keys.wait_for_metadata) =>
                {
                    return Err(format!(
                        "processor `{id}`: every k8sattributes processor shares one cache, so auth_type, filter and wait_for_metadata must be the same in all of them"
                    ));
                }
                _ => {}
            }
            settings.add_rules(id.to_string(), &keys)?;
            shared.get_or_insert(keys);
        }
        let Some(keys) = shared else {
            return Ok(None);
        };
        settings.auth_type = keys.auth_type;
        settings.namespace = keys.filter.namespace.clone();
        settings.node = keys.filter.node.clone();
        settings.node_env_var = keys.filter.node_from_env_var.clone();
        if keys.wait_for_metadata {
            settings.wait_for_metadata = Some(match &keys.wait_for_metadata_timeout {
                Some(text) => crate::config::values::parse_duration(text)
                    .map_err(|e| format!("k8sattributes wait_for_metadata_timeout: {e}"))?,
                None => DEFAULT_WAIT,
            });
        }
        Ok(Some(settings))
    }

    fn add_rules(&mut self, id: String, keys: &ProcessorKeys) -> Result<(), String> {
        let wants = |name: &str| {
            keys.extract
                .metadata
                .as_ref()
                .is_some_and(|m| m.iter().any(|n| n == name))
        };
        self.watch_namespaces |= wants("k8s.namespace.uid");
        self.watch_nodes |= wants("k8s.node.uid");
        self.watch_replicasets |= wants("k8s.deployment.uid");
        self.containers |= [
            "container.image.name",
            "container.image.tag",
            "container.image.tags",
        ]
        .iter()
        .any(|name| wants(name));
        for (rules, what) in [
            (&keys.extract.labels, "labels"),
            (&keys.extract.annotations, "annotations"),
        ] {
            for (i, rule) in rules.iter().enumerate() {
                let filter = match (rule.from.as_deref().unwrap_or("pod"), what) {
                    ("pod", "labels") => &mut self.pod_labels,
                    ("pod", _) => &mut self.pod_annotations,
                    ("namespace", "labels") => &mut self.namespace_labels,
                    ("namespace", _) => &mut self.namespace_annotations,
                    ("node", "labels") => &mut self.node_labels,
                    ("node", _) => &mut self.node_annotations,
                    (other, _) => {
                        return Err(format!(
                            "processor `{id}`: extract.{what}[{i}].from: `{other}` is not one of pod, namespace, node"
                        ));
                    }
                };
                match (&rule.key, &rule.key_regex) {
                    (Some(key), _) => {
                        filter.exact.insert(key.clone());
                    }
                    (None, Some(pattern)) => {
                        filter
                            .patterns
                            .push(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                                format!("processor `{id}`: extract.{what}[{i}].key_regex: {e}")
                            })?)
                    }
                    (None, None) => {
                        return Err(format!(
                            "processor `{id}`: extract.{what}[{i}]: give `key` or `key_regex`"
                        ));
                    }
                }
            }
        }
        self.watch_namespaces |=
            !self.namespace_labels.is_empty() || !self.namespace_annotations.is_empty();
        self.watch_nodes |= !self.node_labels.is_empty() || !self.node_annotations.is_empty();
        Ok(())
    }

    /// The label and annotation filters for namespace or node metadata.
    pub fn keep_for(&self, kind: store::Kind) -> (&KeyFilter, &KeyFilter) {
        match kind {
            store::Kind::Nodes => (&self.node_labels, &self.node_annotations),
            _ => (&self.namespace_labels, &self.namespace_annotations),
        }
    }

    /// What a reload may not change without a restart: the cache is built once.
    pub fn fingerprint<'a>(
        configured: impl IntoIterator<Item = &'a serde_json::Value>,
    ) -> serde_json::Value {
        let mut keys: Vec<serde_json::Value> = Vec::new();
        for processor in configured {
            if let Ok(parsed) = serde_json::from_value::<ProcessorKeys>(processor.clone()) {
                keys.push(serde_json::to_value(parsed).unwrap_or_default());
            }
        }
        serde_json::Value::Array(keys)
    }
}

/// The running cache: the store plugins read, and whether its first full sync is done.
#[derive(Debug)]
pub struct Cache {
    pub store: Arc<Store>,
    synced: tokio::sync::watch::Receiver<bool>,
    wait: Option<Duration>,
}

impl Cache {
    /// An empty cache, for a config without `k8sattributes` and for offline plugin runs.
    pub fn empty() -> Cache {
        Cache {
            store: Arc::new(Store::default()),
            synced: tokio::sync::watch::channel(true).1,
            wait: None,
        }
    }

    /// Starts watching what `settings` asks for, into `store`; returns at once.
    pub async fn start(
        settings: Option<Settings>,
        store: &Arc<Store>,
        telemetry: &Telemetry,
    ) -> Result<Cache, String> {
        let Some(mut settings) = settings else {
            return Ok(Cache {
                store: store.clone(),
                ..Cache::empty()
            });
        };
        if let Some(var) = &settings.node_env_var {
            settings.node = Some(std::env::var(var).map_err(|_| {
                format!("k8sattributes filter.node_from_env_var: the environment variable `{var}` is not set (set it from spec.nodeName with the downward API)")
            })?);
        }
        let store = store.clone();
        let pods = Arc::downgrade(&store);
        telemetry
            .registry
            .gauge_fn(&catalog::KUBERNETES_PODS, &[], move || {
                pods.upgrade().map_or(0.0, |s| s.pod_count() as f64)
            });
        let synced = watch::spawn(settings.clone(), store.clone(), telemetry).await;
        Ok(Cache {
            store,
            synced,
            wait: settings.wait_for_metadata,
        })
    }

    /// With `wait_for_metadata`, waits for the first full sync; past the timeout this is an
    /// error, and trailhead stops rather than export unenriched data (as the collector does).
    pub async fn wait_for_metadata(&mut self) -> Result<(), String> {
        let Some(timeout) = self.wait else {
            return Ok(());
        };
        tracing::info!(
            ?timeout,
            "waiting for the Kubernetes metadata before accepting data"
        );
        match tokio::time::timeout(timeout, self.synced.wait_for(|done| *done)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "k8sattributes: the Kubernetes metadata did not sync within wait_for_metadata_timeout ({timeout:?})"
            )),
        }
    }
}
