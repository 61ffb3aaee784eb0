//! The host's one Kubernetes metadata cache, which `k8sattributes` plugins read through the
//! `pod-by-*` imports: no plugin needs RBAC, a network, or its own copy.
//!
//! What is watched follows the config. Pods always (kept whole as well when a `prometheus`
//! receiver's `kubernetes_sd_configs` shares the watch: see `discovery`); namespaces, nodes and ReplicaSets only when
//! a `k8sattributes` processor extracts their labels, annotations or UIDs. Only the label and
//! annotation keys some rule can match are kept. With no cluster reachable trailhead still
//! starts, logs it once, and the plugins pass data through.

pub mod discovery;
pub mod endpoint_slices;
pub mod node;
mod store;
mod watch;

pub use store::{DELETE_GRACE, IGNORE_ANNOTATIONS, KeyFilter, Meta, Owner, Pod, Store};
pub use watch::slim;

use crate::config::ComponentId;
use crate::telemetry::{Telemetry, catalog};
pub use k8sattributes_settings::AuthType;
use k8sattributes_settings::{Config as Processor, FieldRule, Key, Source};
use std::sync::Arc;
use std::time::Duration;

/// The processor type whose settings configure the cache.
pub const PROCESSOR: &str = "k8sattributes";

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
    /// Whether the pod watch also keeps pods whole for a `prometheus` receiver's discovery.
    pub feeds_discovery: bool,
}

/// The collector's default for `wait_for_metadata_timeout`.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

impl Settings {
    /// The cache the listed `k8sattributes` processors need (`(id, the plugin's settings as
    /// JSON)`, in pipeline order): `None` when there are none. All of them share one cache, so
    /// they must agree on how to reach and filter it. An error names the processor; its
    /// message starts with where in its settings, as the plugin's own would.
    pub fn from_processors<'a>(
        listed: impl IntoIterator<Item = (&'a ComponentId, String)>,
    ) -> Result<Option<Settings>, (ComponentId, String)> {
        let mut first: Option<(&ComponentId, Processor)> = None;
        let mut settings = Settings::default();
        for (id, text) in listed {
            let processor = Processor::parse(&text).map_err(|e| (id.clone(), e))?;
            let shared = |p: &Processor| (p.auth_type, p.filter.clone(), p.wait_for_metadata);
            if let Some((_, first)) = &first
                && shared(first) != shared(&processor)
            {
                return Err((id.clone(), "every k8sattributes processor shares one cache, so auth_type, filter and wait_for_metadata must be the same in all of them".into()));
            }
            settings.add_rules(&processor);
            first.get_or_insert((id, processor));
        }
        let Some((id, processor)) = first else {
            return Ok(None);
        };
        settings.auth_type = processor.auth_type;
        settings.namespace = processor.filter.namespace.clone();
        settings.node = processor.filter.node.clone();
        settings.node_env_var = processor.filter.node_from_env_var.clone();
        if processor.wait_for_metadata {
            settings.wait_for_metadata = Some(match &processor.wait_for_metadata_timeout {
                Some(text) => crate::config::values::parse_duration(text)
                    .map_err(|e| (id.clone(), format!("wait_for_metadata_timeout: {e}")))?,
                None => DEFAULT_WAIT,
            });
        }
        Ok(Some(settings))
    }

    fn add_rules(&mut self, processor: &Processor) {
        let wants = |name: &str| processor.metadata.iter().any(|n| n == name);
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
        let labels = processor.labels.iter().map(|rule| (rule, true));
        let annotations = processor.annotations.iter().map(|rule| (rule, false));
        for (rule, is_label) in labels.chain(annotations) {
            self.keep(rule, is_label);
        }
        self.watch_namespaces |=
            !self.namespace_labels.is_empty() || !self.namespace_annotations.is_empty();
        self.watch_nodes |= !self.node_labels.is_empty() || !self.node_annotations.is_empty();
    }

    /// Keeps the label (or annotation) keys `rule` can match.
    fn keep(&mut self, rule: &FieldRule, is_label: bool) {
        let filter = match (rule.from, is_label) {
            (Source::Pod, true) => &mut self.pod_labels,
            (Source::Pod, false) => &mut self.pod_annotations,
            (Source::Namespace, true) => &mut self.namespace_labels,
            (Source::Namespace, false) => &mut self.namespace_annotations,
            (Source::Node, true) => &mut self.node_labels,
            (Source::Node, false) => &mut self.node_annotations,
        };
        match &rule.key {
            Key::Exact(key) => {
                filter.exact.insert(key.clone());
            }
            Key::Pattern(pattern) => filter.patterns.push(pattern.clone()),
        }
    }

    /// What the pod watch lists, in discovery's terms.
    pub fn pod_watch(&self) -> discovery::PodWatch {
        let from_env = || std::env::var(self.node_env_var.as_ref()?).ok();
        let node = self.node.clone().or_else(from_env);
        discovery::PodWatch {
            connection: discovery::Connection::for_auth(self.auth_type),
            namespace: self.namespace.clone(),
            label_selector: String::new(),
            field_selector: node.map_or(String::new(), |n| format!("spec.nodeName={n}")),
        }
    }

    /// Has the pod watch keep pods whole too when it lists what one of `wanted` (a
    /// `prometheus` receiver's discovery) lists, so that discovery needs no watch of its own.
    pub fn share_pods_with(&mut self, wanted: &[discovery::PodWatch]) {
        let watch = self.pod_watch();
        self.feeds_discovery = wanted.iter().any(|w| watch.covers(w));
    }

    /// The label and annotation filters for namespace or node metadata.
    pub fn keep_for(&self, kind: store::Kind) -> (&KeyFilter, &KeyFilter) {
        match kind {
            store::Kind::Nodes => (&self.node_labels, &self.node_annotations),
            _ => (&self.namespace_labels, &self.namespace_annotations),
        }
    }

    /// What a reload may not change without a restart, from the plugin settings of every
    /// `k8sattributes` processor defined: the cache is built once.
    pub fn fingerprint(configured: impl IntoIterator<Item = String>) -> serde_json::Value {
        let parsed = configured.into_iter().map(|text| Processor::parse(&text));
        // One that does not parse cannot run either: its load reports it.
        let inputs = parsed.filter_map(Result::ok).map(|p| p.cache_inputs());
        serde_json::Value::Array(inputs.collect())
    }
}

/// The running cache: the store plugins read, and whether its first full sync is done.
#[derive(Debug)]
pub struct Cache {
    pub store: Arc<Store>,
    /// The pod and node watches `prometheus` receivers discover targets with.
    pub discovery: Arc<discovery::Discovery>,
    synced: tokio::sync::watch::Receiver<bool>,
    wait: Option<Duration>,
}

impl Cache {
    /// An empty cache, for a config without `k8sattributes` and for offline plugin runs.
    pub fn empty() -> Cache {
        Cache {
            store: Arc::new(Store::default()),
            discovery: Arc::default(),
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
        let discovery = Arc::new(discovery::Discovery::default());
        discovery.set_telemetry(telemetry);
        let Some(mut settings) = settings else {
            return Ok(Cache {
                store: store.clone(),
                discovery,
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
        let discovered = settings.feeds_discovery.then(|| {
            let pods = Arc::new(discovery::PodSet::default());
            discovery.register(settings.pod_watch(), pods.clone());
            pods
        });
        let synced = watch::spawn(settings.clone(), store.clone(), discovered, telemetry).await;
        Ok(Cache {
            store,
            discovery,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(processors: &[(&str, &str)]) -> Result<Option<Settings>, (ComponentId, String)> {
        let ids: Vec<ComponentId> = processors
            .iter()
            .map(|(id, _)| ComponentId::parse(id).unwrap())
            .collect();
        Settings::from_processors(
            ids.iter()
                .zip(processors.iter().map(|(_, s)| s.to_string())),
        )
    }

    #[test]
    fn the_cache_keeps_what_every_processor_reads() {
        let settings = merged(&[
            (
                "k8sattributes",
                r#"{"extract": {"labels": [{"key": "app"}]}}"#,
            ),
            (
                "k8sattributes/ns",
                r#"{"extract": {"metadata": ["k8s.pod.name", "k8s.node.uid"],
                    "annotations": [{"key_regex": "team/.*", "from": "namespace"}]}}"#,
            ),
        ])
        .unwrap()
        .unwrap();
        assert!(settings.pod_labels.keeps("app") && !settings.pod_labels.keeps("apps"));
        // The pattern matches whole keys, as the plugin's does.
        assert!(settings.namespace_annotations.keeps("team/owner"));
        assert!(!settings.namespace_annotations.keeps("x-team/owner"));
        assert!(settings.watch_namespaces && settings.watch_nodes);
        assert!(!settings.watch_replicasets && !settings.containers);
        assert_eq!(merged(&[]).unwrap().map(|_| ()), None);
    }

    #[test]
    fn errors_name_the_processor_and_where_in_it() {
        let (id, message) = merged(&[
            ("k8sattributes", "{}"),
            (
                "k8sattributes/b",
                r#"{"extract": {"labels": [{"key": "a", "from": "pods"}]}}"#,
            ),
        ])
        .unwrap_err();
        assert_eq!(id.to_string(), "k8sattributes/b");
        assert_eq!(
            message,
            "extract.labels[0].from: `pods` is not one of pod, namespace, node"
        );
        let (id, message) = merged(&[
            ("k8sattributes", "{}"),
            ("k8sattributes/b", r#"{"auth_type": "kubeconfig"}"#),
        ])
        .unwrap_err();
        assert_eq!(id.to_string(), "k8sattributes/b");
        assert!(message.contains("shares one cache"), "{message}");
        let (_, message) = merged(&[(
            "k8sattributes",
            r#"{"wait_for_metadata": true, "wait_for_metadata_timeout": "soon"}"#,
        )])
        .unwrap_err();
        assert!(
            message.starts_with("wait_for_metadata_timeout: "),
            "{message}"
        );
    }

    #[test]
    fn the_fingerprint_changes_with_what_the_cache_reads_only() {
        let fingerprint = |settings: &str| Settings::fingerprint([settings.to_string()]);
        let base = fingerprint(r#"{"extract": {"labels": [{"key": "app", "tag_name": "a"}]}}"#);
        let renamed = fingerprint(r#"{"extract": {"labels": [{"key": "app", "tag_name": "b"}]}}"#);
        let other_key = fingerprint(r#"{"extract": {"labels": [{"key": "team"}]}}"#);
        let node =
            fingerprint(r#"{"filter": {"node": "n1"}, "extract": {"labels": [{"key": "app"}]}}"#);
        assert_eq!(base, renamed, "tag_name is the plugin's alone");
        assert_ne!(base, other_key);
        assert_ne!(renamed, node);
    }
}
