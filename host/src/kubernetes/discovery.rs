//! Pods (and nodes) as Prometheus' Kubernetes service discovery reads them, for the
//! `prometheus` receiver's `kubernetes_sd_configs`: whole label and annotation sets, container
//! ports, readiness, the controller. Kept only when a receiver asks for it.
//!
//! One pod watch per cluster and scope, shared: [`Discovery::pods`] hands out the set of a
//! running watch that lists every pod the caller wants (the `k8sattributes` cache's watch, when
//! the plan told it to keep these pods too, or another receiver's), and starts a watch only
//! when none does. A second watch of the same cluster starts only for a different namespace
//! (RBAC may allow one namespace and refuse a cluster-wide list) or different selectors (the
//! API server filters them, exactly as Prometheus has it do).

use k8s_openapi::api::core::v1::Pod;
use kube::api::ObjectMeta;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch as signal;

/// How a watch reaches its API server: two watches share only with the same connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The pod's service account (`k8sattributes` `auth_type: serviceAccount`; a Prometheus
    /// config with neither `api_server` nor `kubeconfig_file`).
    InCluster,
    /// `KUBECONFIG` or `~/.kube/config`, as `k8sattributes` `auth_type: kubeconfig` reads it.
    DefaultKubeconfig,
    /// One kubeconfig file (Prometheus' `kubeconfig_file`).
    Kubeconfig(PathBuf),
    /// `k8sattributes` `auth_type: none`: `KUBERNETES_SERVICE_HOST` without credentials.
    ServiceHostEnv,
    /// Prometheus' `api_server` with its HTTP client settings.
    ApiServer(ApiServer),
}

impl Connection {
    /// How the `k8sattributes` cache connects with `auth_type`.
    pub fn for_auth(auth: super::AuthType) -> Connection {
        match auth {
            super::AuthType::ServiceAccount => Connection::InCluster,
            super::AuthType::Kubeconfig => Connection::DefaultKubeconfig,
            super::AuthType::None => Connection::ServiceHostEnv,
        }
    }

    /// Whether both reach the same cluster as the same user.
    pub fn same_as(&self, other: &Connection) -> bool {
        let default_path = || match std::env::var_os("KUBECONFIG") {
            Some(paths) if !paths.is_empty() => {
                let paths: Vec<PathBuf> = std::env::split_paths(&paths).collect();
                (paths.len() == 1).then(|| paths[0].clone())
            }
            _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")),
        };
        match (self, other) {
            (Connection::DefaultKubeconfig, Connection::Kubeconfig(path))
            | (Connection::Kubeconfig(path), Connection::DefaultKubeconfig) => {
                default_path().as_ref() == Some(path)
            }
            _ => self == other,
        }
    }
}

/// An API server URL and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiServer {
    pub url: String,
    /// A bearer token, or the file it is (re-)read from.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// The CA that signs the API server's certificate (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub server_name: Option<String>,
}

/// What one pod watch lists: a cluster, one namespace or all, and the API server's selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodWatch {
    pub connection: Connection,
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
}

impl PodWatch {
    /// Whether this watch lists every pod `wanted` lists (the caller filters by namespace).
    pub fn covers(&self, wanted: &PodWatch) -> bool {
        self.connection.same_as(&wanted.connection)
            && self.label_selector == wanted.label_selector
            && self.field_selector == wanted.field_selector
            && (self.namespace.is_none() || self.namespace == wanted.namespace)
    }
}

/// What one node watch lists (for `attach_metadata.node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWatch {
    pub connection: Connection,
    pub label_selector: String,
    pub field_selector: String,
}

/// A pod as discovery reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveredPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Empty while the pod starts or after it was evicted: no targets then.
    pub ip: String,
    pub phase: String,
    /// The Ready condition's status, lower-case; `unknown` without one.
    pub ready: String,
    pub node_name: String,
    pub host_ip: String,
    /// The owner reference marked `controller`: kind and name.
    pub controller: Option<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// The containers, then the init containers.
    pub containers: Vec<DiscoveredContainer>,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveredContainer {
    pub name: String,
    pub image: String,
    /// From the pod's status; empty until the container runs.
    pub id: String,
    pub init: bool,
    pub ports: Vec<DiscoveredPort>,
}

/// One declared container port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveredPort {
    pub name: String,
    pub number: i32,
    pub protocol: String,
}

/// A node's name, labels and annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveredNode {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// The pod reduced to what discovery reads.
pub fn discovered_pod(pod: &Pod) -> DiscoveredPod {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("unknown".to_string(), |c| c.status.to_lowercase());
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()));
    let container_id = |init: bool, name: &str| {
        let statuses = status.and_then(|s| match init {
            false => s.container_statuses.as_ref(),
            true => s.init_container_statuses.as_ref(),
        });
        let found = statuses.and_then(|all| all.iter().find(|s| s.name == name));
        found
            .and_then(|s| s.container_id.clone())
            .unwrap_or_default()
    };
    let regular = spec.map(|s| &s.containers[..]).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let flagged = regular.iter().map(|c| (c, false));
    let containers = flagged
        .chain(init.iter().map(|c| (c, true)))
        .map(|(c, init)| DiscoveredContainer {
            name: c.name.clone(),
            image: text(c.image.as_ref()),
            id: container_id(init, &c.name),
            init,
            ports: (c.ports.iter().flatten())
                .map(|p| DiscoveredPort {
                    name: text(p.name.as_ref()),
                    number: p.container_port,
                    protocol: text(p.protocol.as_ref()),
                })
                .collect(),
        })
        .collect();
    DiscoveredPod {
        namespace: text(meta.namespace.as_ref()),
        name: text(meta.name.as_ref()),
        uid: text(meta.uid.as_ref()),
        ip: text(status.and_then(|s| s.pod_ip.as_ref())),
        phase: text(status.and_then(|s| s.phase.as_ref())),
        ready,
        node_name: text(spec.and_then(|s| s.node_name.as_ref())),
        host_ip: text(status.and_then(|s| s.host_ip.as_ref())),
        controller,
        labels: pairs(meta.labels.as_ref()),
        annotations: pairs(meta.annotations.as_ref()),
        containers,
    }
}

/// The node's metadata as discovery reads it.
pub fn discovered_node(meta: &ObjectMeta) -> DiscoveredNode {
    DiscoveredNode {
        name: meta.name.clone().unwrap_or_default(),
        labels: pairs(meta.labels.as_ref()),
        annotations: pairs(meta.annotations.as_ref()),
    }
}

fn pairs(map: Option<&std::collections::BTreeMap<String, String>>) -> Vec<(String, String)> {
    let pairs = map.into_iter().flatten();
    pairs.map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The objects one watch sees, by key (`namespace/name`, or a node's name), with a signal
/// that changes after every change a reader should act on.
#[derive(Debug)]
pub struct ObjectSet<T> {
    objects: RwLock<HashMap<String, Arc<T>>>,
    /// Keys seen since a relist began; `None` outside one.
    relisting: Mutex<Option<HashSet<String>>>,
    changed: signal::Sender<u64>,
}

/// The pods of one watch.
pub type PodSet = ObjectSet<DiscoveredPod>;
/// The nodes of one watch.
pub type NodeSet = ObjectSet<DiscoveredNode>;

impl<T> Default for ObjectSet<T> {
    fn default() -> Self {
        ObjectSet {
            objects: RwLock::default(),
            relisting: Mutex::default(),
            changed: signal::channel(0).0,
        }
    }
}

impl<T> ObjectSet<T> {
    /// A receiver that sees a new value after each change.
    pub fn changes(&self) -> signal::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Every object now.
    pub fn snapshot(&self) -> Vec<Arc<T>> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects.values().cloned().collect()
    }

    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects.get(key).cloned()
    }

    fn relisting(&self) -> std::sync::MutexGuard<'_, Option<HashSet<String>>> {
        self.relisting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An object was added or changed. Within a relist readers hear of it at its end.
    pub fn apply(&self, key: String, object: T) {
        let quiet = match self.relisting().as_mut() {
            Some(seen) => seen.insert(key.clone()) || true,
            None => false,
        };
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        objects.insert(key, Arc::new(object));
        drop(objects);
        if !quiet {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// An object is gone.
    pub fn remove(&self, key: &str) {
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        if objects.remove(key).is_some() {
            drop(objects);
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// A (re)list begins: what it does not list is gone at its end.
    pub fn relist_started(&self) {
        *self.relisting() = Some(HashSet::new());
    }

    /// A (re)list ended: drops what it did not list, and tells readers.
    pub fn relist_done(&self) {
        if let Some(seen) = self.relisting().take() {
            let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
            objects.retain(|key, _| seen.contains(key));
        }
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The key discovery keeps a pod under, as Prometheus' informers do.
pub fn pod_key(pod: &Pod) -> String {
    let meta = &pod.metadata;
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default())
}

/// The running discovery watches, shared by every receiver that asks for the same one.
#[derive(Debug, Default)]
pub struct Discovery {
    pods: Mutex<Vec<(PodWatch, Arc<PodSet>)>>,
    nodes: Mutex<Vec<(NodeWatch, Arc<NodeSet>)>>,
    /// Where new watches run (set when the cache starts; a plan-only cache starts none).
    spawner: Mutex<Option<crate::telemetry::Telemetry>>,
}

impl Discovery {
    /// Records a pod watch already running (the `k8sattributes` cache's), to be shared.
    pub(super) fn register(&self, watch: PodWatch, set: Arc<PodSet>) {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((watch, set));
    }

    pub(super) fn set_telemetry(&self, telemetry: &crate::telemetry::Telemetry) {
        *self.spawner.lock().unwrap_or_else(|e| e.into_inner()) = Some(telemetry.clone());
    }

    /// The pods `wanted` lists, from a running watch that covers it or from a new one. The
    /// set may hold pods of other namespaces (a cluster-wide watch): filter by namespace.
    pub fn pods(&self, wanted: &PodWatch) -> Arc<PodSet> {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let namespace = wanted.namespace.as_deref().unwrap_or("(all)");
        if let Some((_, set)) = pods.iter().find(|(running, _)| running.covers(wanted)) {
            tracing::info!(namespace, "Kubernetes discovery shares a running pod watch");
            return set.clone();
        }
        tracing::info!(namespace, "Kubernetes discovery starts a pod watch");
        let set = Arc::new(PodSet::default());
        pods.push((wanted.clone(), set.clone()));
        if let Some(telemetry) = &*self.spawner.lock().unwrap_or_else(|e| e.into_inner()) {
            super::watch::spawn_pod_discovery(wanted.clone(), set.clone(), telemetry);
        }
        set
    }

    /// The nodes `wanted` lists, from a running watch of the same ones or from a new one.
    /// (Not the `k8sattributes` node watch: that one keeps only the label keys its rules read.)
    pub fn nodes(&self, wanted: &NodeWatch) -> Arc<NodeSet> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let same = |running: &NodeWatch| {
            running.connection.same_as(&wanted.connection)
                && running.label_selector == wanted.label_selector
                && running.field_selector == wanted.field_selector
        };
        if let Some((_, set)) = nodes.iter().find(|(running, _)| same(running)) {
            return set.clone();
        }
        let set = Arc::new(NodeSet::default());
        nodes.push((wanted.clone(), set.clone()));
        if let Some(telemetry) = &*self.spawner.lock().unwrap_or_else(|e| e.into_inner()) {
            super::watch::spawn_node_discovery(wanted.clone(), set.clone(), telemetry);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(connection: Connection, namespace: Option<&str>, labels: &str) -> PodWatch {
        PodWatch {
            connection,
            namespace: namespace.map(str::to_string),
            label_selector: labels.into(),
            field_selector: String::new(),
        }
    }

    #[test]
    fn a_watch_covers_what_it_lists() {
        let all = watch(Connection::InCluster, None, "");
        assert!(all.covers(&watch(Connection::InCluster, Some("a"), "")));
        assert!(!all.covers(&watch(Connection::InCluster, None, "app=x")));
        let one = watch(Connection::InCluster, Some("a"), "");
        assert!(!one.covers(&watch(Connection::InCluster, None, "")));
        assert!(!one.covers(&watch(Connection::InCluster, Some("b"), "")));
        let file = Connection::Kubeconfig("/k".into());
        assert!(!all.covers(&watch(file, None, "")));
    }

    #[test]
    fn a_relist_drops_what_it_did_not_list_and_signals_once() {
        let set = ObjectSet::<u32>::default();
        let mut changes = set.changes();
        set.apply("a".into(), 1);
        set.apply("b".into(), 2);
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        set.relist_started();
        set.apply("a".into(), 3);
        assert!(!changes.has_changed().unwrap(), "quiet within a relist");
        set.relist_done();
        assert!(changes.has_changed().unwrap());
        assert_eq!(set.get("a").as_deref(), Some(&3));
        assert!(set.get("b").is_none());
    }
}
