//! The watch tasks that fill the [`Store`]: kube-rs watchers (list, then watch with
//! bookmarks, relisting after a 410 Gone) with kube's default backoff, so an API-server outage
//! only pauses updates; the cache keeps answering from what it has.

use super::discovery::{self, ApiServer, Connection, NodeSet, NodeWatch, PodSet, PodWatch};
use super::store::{self, Kind, Store};
use super::{AuthType, IGNORE_ANNOTATIONS, Settings};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{
    Event as _, WatchFailed, WatchInstruments, WatchListed, WatchResumed,
};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch as signal;

/// How often deleted pods past their grace period are dropped when no event does it.
const EXPIRY_TICK: Duration = Duration::from_secs(5);

/// Spawns a watch task per kind the settings need. The returned flag turns true once every
/// one of them has finished its first list. The pod watch also fills `discovered`, when a
/// `prometheus` receiver's discovery shares it.
pub async fn spawn(
    settings: Settings,
    store: Arc<Store>,
    discovered: Option<Arc<PodSet>>,
    telemetry: &Telemetry,
) -> signal::Receiver<bool> {
    let (registry, supervisor) = (&telemetry.registry, &telemetry.supervisor);
    let (synced_tx, synced) = signal::channel(false);
    let client = match client(settings.auth_type).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no Kubernetes API server to watch: k8sattributes passes data through unenriched");
            return synced;
        }
    };
    let settings = Arc::new(settings);
    let kinds = [
        (Kind::Pods, true),
        (Kind::Namespaces, settings.watch_namespaces),
        (Kind::Nodes, settings.watch_nodes),
        (Kind::ReplicaSets, settings.watch_replicasets),
    ];
    let waiting = Arc::new(AtomicUsize::new(kinds.iter().filter(|(_, on)| *on).count()));
    let synced_tx = Arc::new(synced_tx);
    for (kind, on) in kinds {
        if !on {
            continue;
        }
        let sync = FirstList {
            waiting: waiting.clone(),
            tx: synced_tx.clone(),
            done: false,
            events: WatchInstruments::new(registry, kind.as_str()),
        };
        let (client, settings, store) = (client.clone(), settings.clone(), store.clone());
        let discovered = discovered.clone();
        supervisor.spawn(
            format!("kubernetes watch {}", kind.as_str()),
            watch_kind(kind, client, settings, store, discovered, sync),
        );
    }
    let expiring = store.clone();
    supervisor.spawn("kubernetes expiry", async move {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        loop {
            tick.tick().await;
            expiring.expire(Instant::now());
        }
    });
    synced
}

/// Follows one kind of object into the store, for as long as trailhead runs.
async fn watch_kind(
    kind: Kind,
    client: Client,
    settings: Arc<Settings>,
    store: Arc<Store>,
    discovered: Option<Arc<PodSet>>,
    sync: FirstList,
) {
    match kind {
        Kind::Pods => watch_pods(client, settings, store, discovered, sync).await,
        Kind::Namespaces | Kind::Nodes => {
            let (labels, annotations) = settings.keep_for(kind);
            let update = |store: &Store, name: &str, meta: Option<&ObjectMeta>| {
                store.set_meta(kind, name, meta.map(|m| to_meta(m, labels, annotations)))
            };
            if kind == Kind::Namespaces {
                let api = Api::<PartialObjectMeta<Namespace>>::all(client);
                follow_metadata(api, kind, &store, sync, update).await
            } else {
                let api = Api::<PartialObjectMeta<Node>>::all(client);
                follow_metadata(api, kind, &store, sync, update).await
            }
        }
        Kind::ReplicaSets => {
            let api = match &settings.namespace {
                Some(ns) => Api::<PartialObjectMeta<ReplicaSet>>::namespaced(client, ns),
                None => Api::<PartialObjectMeta<ReplicaSet>>::all(client),
            };
            let update = |store: &Store, uid: &str, meta: Option<&ObjectMeta>| {
                let deployment = meta
                    .and_then(|m| m.owner_references.as_ref())
                    .and_then(|owners| owners.iter().find(|o| o.kind == "Deployment"))
                    .map(|o| o.uid.as_str());
                store.set_deployment_of(uid, deployment);
            };
            follow_metadata(api, kind, &store, sync, update).await
        }
    }
}

pub(super) async fn client(auth: AuthType) -> Result<Client, String> {
    connect(&Connection::for_auth(auth)).await
}

/// A client for `connection`.
pub(super) async fn connect(connection: &Connection) -> Result<Client, String> {
    let config = match connection {
        Connection::InCluster => {
            kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?
        }
        Connection::DefaultKubeconfig => {
            kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig: {e}"))?
        }
        Connection::Kubeconfig(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig_file {}: {e}", path.display()))?;
            let options = kube::config::KubeConfigOptions::default();
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("kubeconfig_file {}: {e}", path.display()))?
        }
        Connection::ApiServer(server) => api_server_config(server)?,
        Connection::ServiceHostEnv => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST")
                .map_err(|_| "auth_type none: KUBERNETES_SERVICE_HOST is not set".to_string())?;
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let url = format!("https://{host}:{port}")
                .parse()
                .map_err(|e| format!("auth_type none: {e}"))?;
            kube::Config::new(url)
        }
    };
    Client::try_from(config).map_err(|e| e.to_string())
}

/// Counts this watcher's first full list towards the cache being synced, and its failures.
struct FirstList {
    waiting: Arc<AtomicUsize>,
    tx: Arc<signal::Sender<bool>>,
    done: bool,
    events: WatchInstruments,
}

impl FirstList {
    fn listed(&mut self) {
        if !std::mem::replace(&mut self.done, true)
            && self.waiting.fetch_sub(1, Ordering::SeqCst) == 1
        {
            self.tx.send_replace(true);
            tracing::info!("Kubernetes metadata synced");
        }
    }
}

/// Drives a watch stream for good, logging the first error of an outage and its end.
async fn follow<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    mut sync: FirstList,
    mut apply: impl FnMut(Event<K>) + Send,
) {
    let mut stream = std::pin::pin!(stream.default_backoff());
    let mut failing = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                // Every retry starts with `Init` before its list fails again: only an object
                // or a finished list shows the API server is back.
                if !matches!(event, Event::Init) && std::mem::take(&mut failing) {
                    WatchResumed.emit(&sync.events);
                }
                let listed = matches!(event, Event::InitDone);
                apply(event);
                if listed {
                    WatchListed.emit(&sync.events);
                    sync.listed();
                }
            }
            Err(error) => {
                let first_of_outage = !std::mem::replace(&mut failing, true);
                WatchFailed {
                    error: &error,
                    first_of_outage,
                }
                .emit(&sync.events);
            }
        }
    }
}

/// Objects per page of a (re)list. A page is parsed whole before the watcher reduces its pods,
/// so it sets the transient memory of a relist: 500 (kube's default) realistic pods are ~15 MB
/// of objects, which the allocator then keeps; 50 are ~1.5 MB, for ten times the round trips
/// of a rare event.
const LIST_PAGE: u32 = 50;

async fn watch_pods(
    client: Client,
    settings: Arc<Settings>,
    store: Arc<Store>,
    discovered: Option<Arc<PodSet>>,
    sync: FirstList,
) {
    let api = match &settings.namespace {
        Some(ns) => Api::<Pod>::namespaced(client, ns),
        None => Api::<Pod>::all(client),
    };
    let mut config = watcher::Config::default().page_size(LIST_PAGE);
    if let Some(node) = &settings.node {
        config = config.fields(&format!("spec.nodeName={node}"));
    }
    follow(watcher::watcher(api, config), sync, |event| {
        if let Some(set) = &discovered {
            to_discovery(set, &event);
        }
        let now = Instant::now();
        match event {
            Event::Init => store.relist_started(Kind::Pods),
            Event::InitDone => store.relist_done(Kind::Pods, now),
            Event::Apply(pod) | Event::InitApply(pod) => match slim(&pod, &settings, &store) {
                Some(slim) => store.apply_pod(slim, now),
                None => {
                    if let Some(uid) = &pod.metadata.uid {
                        store.delete_pod(uid, now);
                    }
                }
            },
            Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    store.delete_pod(uid, now);
                }
            }
        }
    })
    .await;
}

/// A pod event, as discovery keeps it: every pod, whole, gone at once when deleted.
fn to_discovery(set: &PodSet, event: &Event<Pod>) {
    match event {
        Event::Init => set.relist_started(),
        Event::InitDone => set.relist_done(),
        Event::Apply(pod) | Event::InitApply(pod) => {
            set.apply(discovery::pod_key(pod), discovery::discovered_pod(pod))
        }
        Event::Delete(pod) => set.remove(&discovery::pod_key(pod)),
    }
}

/// A first list that no one waits for: discovery watches start after the service does.
fn unawaited(events: WatchInstruments) -> FirstList {
    FirstList {
        waiting: Arc::new(AtomicUsize::new(1)),
        tx: Arc::new(signal::channel(false).0),
        done: false,
        events,
    }
}

/// Connects, or logs why not and waits for good: discovery without a cluster finds no
/// targets, and trailhead keeps running, as Prometheus does.
async fn connect_or_idle(connection: &Connection, what: &str) -> Client {
    match connect(connection).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, what, "Kubernetes discovery cannot reach its API server; it finds no targets");
            std::future::pending().await
        }
    }
}

/// Starts the pod watch `watch` describes, into `set`, for discovery.
pub(super) fn spawn_pod_discovery(watch: PodWatch, set: Arc<PodSet>, telemetry: &Telemetry) {
    let sync = unawaited(WatchInstruments::new(&telemetry.registry, "pods"));
    telemetry
        .supervisor
        .spawn("kubernetes discovery pods", async move {
            let client = connect_or_idle(&watch.connection, "pods").await;
            let api = match &watch.namespace {
                Some(ns) => Api::<Pod>::namespaced(client, ns),
                None => Api::<Pod>::all(client),
            };
            let config = selected(&watch.label_selector, &watch.field_selector);
            follow(watcher::watcher(api, config), sync, |event| {
                to_discovery(&set, &event)
            })
            .await
        });
}

/// Starts the node watch `watch` describes, into `set`, for discovery.
pub(super) fn spawn_node_discovery(watch: NodeWatch, set: Arc<NodeSet>, telemetry: &Telemetry) {
    let sync = unawaited(WatchInstruments::new(&telemetry.registry, "nodes"));
    telemetry
        .supervisor
        .spawn("kubernetes discovery nodes", async move {
            let client = connect_or_idle(&watch.connection, "nodes").await;
            let api = Api::<PartialObjectMeta<Node>>::all(client);
            let config = selected(&watch.label_selector, &watch.field_selector);
            follow(watcher::watcher(api, config), sync, |event| match event {
                Event::Init => set.relist_started(),
                Event::InitDone => set.relist_done(),
                Event::Apply(node) | Event::InitApply(node) => {
                    let node = discovery::discovered_node(node.meta());
                    set.apply(node.name.clone(), node)
                }
                Event::Delete(node) => set.remove(node.meta().name.as_deref().unwrap_or("")),
            })
            .await
        });
}

/// A watch config with the API server's selectors, when set.
fn selected(labels: &str, fields: &str) -> watcher::Config {
    let mut config = watcher::Config::default().page_size(LIST_PAGE);
    if !labels.is_empty() {
        config = config.labels(labels);
    }
    if !fields.is_empty() {
        config = config.fields(fields);
    }
    config
}

/// A client config for Prometheus' `api_server` and its HTTP client keys.
fn api_server_config(server: &ApiServer) -> Result<kube::Config, String> {
    let url = (server.url.parse()).map_err(|e| format!("api_server {:?}: {e}", server.url))?;
    let mut config = kube::Config::new(url);
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    config.root_cert_file = server.ca_file.clone();
    config.accept_invalid_certs = server.insecure_skip_verify;
    config.tls_server_name = server.server_name.clone();
    config.auth_info.token = server.token.clone().map(Into::into);
    config.auth_info.token_file = path(&server.token_file);
    config.auth_info.client_certificate = path(&server.cert_file);
    config.auth_info.client_key = path(&server.key_file);
    Ok(config)
}

/// Follows a metadata-only watch (namespaces, nodes, ReplicaSets): relists, and each object
/// or deletion (`None`) handed to `update` under its key.
async fn follow_metadata<M>(
    api: Api<M>,
    kind: Kind,
    store: &Store,
    sync: FirstList,
    update: impl Fn(&Store, &str, Option<&ObjectMeta>) + Send + Sync,
) where
    M: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let stream = watcher::watcher(api, watcher::Config::default().page_size(LIST_PAGE));
    follow(stream, sync, |event| match event {
        Event::Init => store.relist_started(kind),
        Event::InitDone => store.relist_done(kind, Instant::now()),
        Event::Apply(object) | Event::InitApply(object) => {
            update(store, &relist_key(kind, object.meta()), Some(object.meta()))
        }
        Event::Delete(object) => update(store, &relist_key(kind, object.meta()), None),
    })
    .await
}

/// Namespaces and nodes are keyed by name, ReplicaSets by UID.
fn relist_key(kind: Kind, meta: &ObjectMeta) -> String {
    let key = if kind == Kind::ReplicaSets {
        &meta.uid
    } else {
        &meta.name
    };
    key.clone().unwrap_or_default()
}

fn to_meta(
    meta: &ObjectMeta,
    labels: &store::KeyFilter,
    annotations: &store::KeyFilter,
) -> store::Meta {
    store::Meta {
        uid: meta.uid.as_deref().unwrap_or_default().into(),
        labels: labels.keep(meta.labels.iter().flatten()),
        annotations: annotations.keep(meta.annotations.iter().flatten()),
    }
}

/// The pod reduced to what enrichment reads; `None` for a pod that opted out.
pub fn slim(pod: &Pod, settings: &Settings, store: &Store) -> Option<store::Pod> {
    let meta = &pod.metadata;
    let annotations = meta.annotations.as_ref();
    let ignored = IGNORE_ANNOTATIONS
        .iter()
        .filter_map(|key| annotations?.get(*key))
        .any(|v| v.trim().eq_ignore_ascii_case("true"));
    if ignored {
        return None;
    }
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let owners = owners(meta);
    let containers = match (settings.containers, spec) {
        (true, Some(spec)) => spec
            .containers
            .iter()
            .map(|c| {
                (
                    c.name.as_str().into(),
                    c.image.as_deref().unwrap_or_default().into(),
                )
            })
            .collect(),
        _ => Box::default(),
    };
    Some(store::Pod {
        name: meta.name.as_deref().unwrap_or_default().into(),
        namespace: store.intern(meta.namespace.as_deref().unwrap_or_default()),
        uid: meta.uid.as_deref().unwrap_or_default().into(),
        // The collector reports the creation time as k8s.pod.start_time; so does trailhead.
        start_time: meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default()
            .into(),
        node_name: store.intern(
            spec.and_then(|s| s.node_name.as_deref())
                .unwrap_or_default(),
        ),
        ip: status
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap_or_default()
            .into(),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        owners,
        labels: settings.pod_labels.keep(meta.labels.iter().flatten()),
        annotations: settings
            .pod_annotations
            .keep(annotations.into_iter().flatten()),
        containers,
    })
}

/// The pod's owners the collector names (ReplicaSet, StatefulSet, DaemonSet, Job), each followed
/// by the Deployment or CronJob its name implies.
fn owners(meta: &ObjectMeta) -> Box<[store::Owner]> {
    let template_hash = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    let mut owners = Vec::new();
    for owner in meta.owner_references.iter().flatten() {
        let kind = match owner.kind.as_str() {
            "ReplicaSet" => "ReplicaSet",
            "StatefulSet" => "StatefulSet",
            "DaemonSet" => "DaemonSet",
            "Job" => "Job",
            _ => continue,
        };
        owners.push(store::Owner {
            kind,
            name: owner.name.as_str().into(),
            uid: owner.uid.as_str().into(),
        });
        let parent = match kind {
            "ReplicaSet" => deployment_name(&owner.name, template_hash.map(String::as_str))
                .map(|n| ("Deployment", n)),
            "Job" => cronjob_name(&owner.name).map(|n| ("CronJob", n)),
            _ => None,
        };
        if let Some((kind, name)) = parent {
            owners.push(store::Owner {
                kind,
                name: name.into(),
                uid: Box::default(),
            });
        }
    }
    owners.into()
}

/// A Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>`.
pub fn deployment_name(replicaset: &str, template_hash: Option<&str>) -> Option<String> {
    match template_hash {
        Some(hash) => replicaset
            .strip_suffix(hash)?
            .strip_suffix('-')
            .map(str::to_string),
        None => {
            let (name, suffix) = replicaset.rsplit_once('-')?;
            (!suffix.is_empty()
                && suffix.len() <= 10
                && suffix.chars().all(|c| c.is_ascii_alphanumeric()))
            .then(|| name.to_string())
        }
    }
}

/// A CronJob's Job is named `<cronjob>-<scheduled time in minutes>`.
pub fn cronjob_name(job: &str) -> Option<String> {
    let (name, suffix) = job.rsplit_once('-')?;
    (!suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit())).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_follow_the_controllers_naming() {
        assert_eq!(
            deployment_name("lessons-7c9f8b6d4", Some("7c9f8b6d4")).as_deref(),
            Some("lessons")
        );
        assert_eq!(
            deployment_name("my-app-5d4f", None).as_deref(),
            Some("my-app")
        );
        // A ReplicaSet made by hand, not by a Deployment: its name does not end in the hash.
        assert_eq!(deployment_name("standalone", Some("abc")), None);
        assert_eq!(
            cronjob_name("nightly-report-29170560").as_deref(),
            Some("nightly-report")
        );
        assert_eq!(cronjob_name("migrate"), None);
    }
}
