//! The cache's indexes: pods by IP, UID and namespace/name, plus namespace and node metadata
//! and the ReplicaSet → Deployment links, each kept only when the config asks for it.
//!
//! A pod keeps only what enrichment reads (a few hundred bytes), not the API object. A deleted
//! pod stays findable for [`DELETE_GRACE`], because its last spans arrive after it is gone; when
//! it expires, an index entry is removed only if it still belongs to that pod's UID, so an IP
//! already reused by a new pod keeps pointing at the new one.

use regex::Regex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a deleted pod stays in the cache (the collector's value).
pub const DELETE_GRACE: Duration = Duration::from_secs(120);

/// Pods annotated with one of these set to "true" are not cached. The first is the collector's
/// key, which has two slashes: the API server refuses it as an annotation key, so no pod can
/// carry it. The second is a key a pod can carry.
pub const IGNORE_ANNOTATIONS: [&str; 2] = [
    "opentelemetry.io/k8s-processor/ignore",
    "opentelemetry.io/k8s-processor-ignore",
];

/// A pod, reduced to what enrichment reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pod {
    pub name: Box<str>,
    pub namespace: Arc<str>,
    pub uid: Box<str>,
    /// When the pod was created, RFC 3339 (what the collector reports as its start time).
    pub start_time: Box<str>,
    pub node_name: Arc<str>,
    /// Empty until assigned.
    pub ip: Box<str>,
    /// hostNetwork pods share their node's IP, so they are never found by IP.
    pub host_network: bool,
    pub owners: Box<[Owner]>,
    pub labels: Box<[(Box<str>, Box<str>)]>,
    pub annotations: Box<[(Box<str>, Box<str>)]>,
    /// Container name and image, kept only when `container.image.*` is extracted.
    pub containers: Box<[(Box<str>, Box<str>)]>,
}

/// A workload that owns the pod, directly or (Deployment, CronJob) through its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `ReplicaSet`, `Deployment`, `StatefulSet`, `DaemonSet`, `Job` or `CronJob`.
    pub kind: &'static str,
    pub name: Box<str>,
    /// Empty where the pod does not carry it (a Deployment's, unless ReplicaSets are watched).
    pub uid: Box<str>,
}

/// Namespace or node metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub uid: Box<str>,
    pub labels: Box<[(Box<str>, Box<str>)]>,
    pub annotations: Box<[(Box<str>, Box<str>)]>,
}

/// Which label or annotation keys to keep: those the config's rules can match.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub exact: HashSet<String>,
    pub patterns: Vec<Regex>,
}

impl KeyFilter {
    pub fn keeps(&self, key: &str) -> bool {
        self.exact.contains(key) || self.patterns.iter().any(|p| p.is_match(key))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.patterns.is_empty()
    }

    /// The pairs whose key this filter keeps.
    pub fn keep<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Box<[(Box<str>, Box<str>)]> {
        if self.is_empty() {
            return Box::default();
        }
        pairs
            .into_iter()
            .filter(|(k, _)| self.keeps(k))
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect()
    }
}

/// Which kind of object an event is about, for relists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pods,
    Namespaces,
    Nodes,
    ReplicaSets,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pods => "pods",
            Kind::Namespaces => "namespaces",
            Kind::Nodes => "nodes",
            Kind::ReplicaSets => "replicasets",
        }
    }
}

#[derive(Default)]
struct Indexes {
    by_uid: HashMap<Box<str>, Arc<Pod>>,
    by_ip: HashMap<Box<str>, Arc<Pod>>,
    by_name: HashMap<(Arc<str>, Box<str>), Arc<Pod>>,
    /// Deleted pods, oldest first, with when they expire.
    deleted: VecDeque<(Instant, Arc<Pod>)>,
    namespaces: HashMap<Box<str>, Arc<Meta>>,
    nodes: HashMap<Box<str>, Arc<Meta>>,
    /// ReplicaSet UID → its Deployment's UID.
    deployment_uids: HashMap<Box<str>, Box<str>>,
    /// Names or UIDs seen since each kind's relist began.
    relisting: HashMap<Kind, HashSet<Box<str>>>,
}

/// The cache. Watch tasks write; plugin calls read, never waiting on the API server.
#[derive(Default)]
pub struct Store {
    indexes: RwLock<Indexes>,
    /// Names shared by many pods (namespace, node) are stored once.
    interned: RwLock<HashSet<Arc<str>>>,
    /// Bumped on every write, so a plugin may trust what it looked up while it stays the same.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pods", &self.pod_count())
            .finish()
    }
}

impl Store {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Indexes> {
        self.indexes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Indexes> {
        let guard = self.indexes.write().unwrap_or_else(|e| e.into_inner());
        // Bumped while the lock is held: a reader that sees the new number reads after the
        // change, because its lookup waits for this guard.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        guard
    }

    /// A number that changes whenever the cache may have changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// One shared copy of a namespace or node name.
    pub fn intern(&self, name: &str) -> Arc<str> {
        if let Some(found) = self
            .interned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return found.clone();
        }
        let mut interned = self.interned.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = interned.get(name) {
            return found.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        interned.insert(shared.clone());
        shared
    }

    pub fn pod_by_ip(&self, ip: &str) -> Option<Arc<Pod>> {
        self.read().by_ip.get(ip).cloned()
    }

    pub fn pod_by_uid(&self, uid: &str) -> Option<Arc<Pod>> {
        self.read().by_uid.get(uid).cloned()
    }

    pub fn pod_by_name(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let key = (Arc::from(namespace), Box::from(name));
        self.read().by_name.get(&key).cloned()
    }

    pub fn namespace(&self, name: &str) -> Option<Arc<Meta>> {
        self.read().namespaces.get(name).cloned()
    }

    pub fn node(&self, name: &str) -> Option<Arc<Meta>> {
        self.read().nodes.get(name).cloned()
    }

    pub fn deployment_uid(&self, replicaset_uid: &str) -> Option<Box<str>> {
        self.read().deployment_uids.get(replicaset_uid).cloned()
    }

    /// Pods cached, deleted ones still in their grace period included.
    pub fn pod_count(&self) -> usize {
        self.read().by_uid.len()
    }

    /// A pod was added or changed.
    pub fn apply_pod(&self, pod: Pod, now: Instant) {
        let mut ix = self.write();
        ix.expire(now);
        if let Some(seen) = ix.relisting.get_mut(&Kind::Pods) {
            seen.insert(pod.uid.clone());
        }
        let pod = Arc::new(pod);
        if let Some(old) = ix.by_uid.insert(pod.uid.clone(), pod.clone())
            && old.ip != pod.ip
        {
            ix.forget_ip(&old);
        }
        if !pod.host_network && !pod.ip.is_empty() {
            ix.by_ip.insert(pod.ip.clone(), pod.clone());
        }
        ix.by_name
            .insert((pod.namespace.clone(), pod.name.clone()), pod);
    }

    /// A pod is gone from the API server (or now carries the ignore annotation). It stays
    /// findable for the grace period.
    pub fn delete_pod(&self, uid: &str, now: Instant) {
        let mut ix = self.write();
        ix.expire(now);
        if let Some(pod) = ix.by_uid.get(uid).cloned()
            && !ix.is_queued(&pod)
        {
            ix.deleted.push_back((now + DELETE_GRACE, pod));
        }
    }

    /// Drops deleted pods whose grace period has passed.
    pub fn expire(&self, now: Instant) {
        self.write().expire(now);
    }

    /// A relist begins: what it does not mention afterwards is gone.
    pub fn relist_started(&self, kind: Kind) {
        self.write().relisting.insert(kind, HashSet::new());
    }

    /// A relist ended. Pods it did not list are deleted (with the grace period); namespaces,
    /// nodes and ReplicaSets it did not list are dropped.
    pub fn relist_done(&self, kind: Kind, now: Instant) {
        let mut ix = self.write();
        let Some(seen) = ix.relisting.remove(&kind) else {
            return;
        };
        match kind {
            Kind::Pods => {
                let gone: Vec<Arc<Pod>> = ix
                    .by_uid
                    .values()
                    .filter(|p| !seen.contains(&p.uid) && !ix.is_queued(p))
                    .cloned()
                    .collect();
                for pod in gone {
                    ix.deleted.push_back((now + DELETE_GRACE, pod));
                }
            }
            Kind::Namespaces => ix.namespaces.retain(|name, _| seen.contains(name)),
            Kind::Nodes => ix.nodes.retain(|name, _| seen.contains(name)),
            Kind::ReplicaSets => ix.deployment_uids.retain(|uid, _| seen.contains(uid)),
        }
    }

    /// A namespace or node appeared or changed (`Some`), or went away (`None`).
    pub fn set_meta(&self, kind: Kind, name: &str, meta: Option<Meta>) {
        let mut ix = self.write();
        ix.note_seen(kind, name);
        let map = match kind {
            Kind::Namespaces => &mut ix.namespaces,
            Kind::Nodes => &mut ix.nodes,
            Kind::Pods | Kind::ReplicaSets => return,
        };
        match meta {
            Some(meta) => map.insert(name.into(), Arc::new(meta)),
            None => map.remove(name),
        };
    }

    /// Which Deployment a ReplicaSet belongs to; `None` when none (or it was deleted).
    pub fn set_deployment_of(&self, replicaset_uid: &str, deployment_uid: Option<&str>) {
        let mut ix = self.write();
        ix.note_seen(Kind::ReplicaSets, replicaset_uid);
        match deployment_uid {
            Some(d) => ix.deployment_uids.insert(replicaset_uid.into(), d.into()),
            None => ix.deployment_uids.remove(replicaset_uid),
        };
    }
}

impl Indexes {
    fn note_seen(&mut self, kind: Kind, key: &str) {
        if let Some(seen) = self.relisting.get_mut(&kind) {
            seen.insert(key.into());
        }
    }

    /// Whether this version of the pod is already waiting to be forgotten.
    fn is_queued(&self, pod: &Arc<Pod>) -> bool {
        self.deleted.iter().any(|(_, p)| Arc::ptr_eq(p, pod))
    }

    fn forget_ip(&mut self, pod: &Pod) {
        if self.by_ip.get(&pod.ip).is_some_and(|p| p.uid == pod.uid) {
            self.by_ip.remove(&pod.ip);
        }
    }

    fn expire(&mut self, now: Instant) {
        while self.deleted.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, pod)) = self.deleted.pop_front() else {
                break;
            };
            // A pod seen again after it was queued (a relist that raced a watch) is not gone.
            if !self
                .by_uid
                .get(&pod.uid)
                .is_some_and(|p| Arc::ptr_eq(p, &pod))
            {
                continue;
            }
            self.by_uid.remove(&pod.uid);
            self.forget_ip(&pod);
            let key = (pod.namespace.clone(), pod.name.clone());
            if self.by_name.get(&key).is_some_and(|p| p.uid == pod.uid) {
                self.by_name.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, ip: &str) -> Pod {
        Pod {
            name: name.into(),
            namespace: "mathtrail".into(),
            uid: uid.into(),
            ip: ip.into(),
            ..Pod::default()
        }
    }

    // A deleted pod is still found during its grace period, and gone after it.
    #[test]
    fn deleted_pods_linger_for_the_grace_period() {
        let store = Store::default();
        let start = Instant::now();
        store.apply_pod(pod("a", "uid-a", "10.0.0.1"), start);
        store.delete_pod("uid-a", start);
        store.expire(start + DELETE_GRACE - Duration::from_secs(1));
        assert!(store.pod_by_ip("10.0.0.1").is_some());
        assert!(store.pod_by_name("mathtrail", "a").is_some());
        store.expire(start + DELETE_GRACE);
        assert!(store.pod_by_ip("10.0.0.1").is_none());
        assert!(store.pod_by_uid("uid-a").is_none());
        assert!(store.pod_by_name("mathtrail", "a").is_none());
    }

    // An IP reused by a new pod points at the new pod at once, and the old pod's expiry does
    // not take the IP away from it.
    #[test]
    fn a_reused_ip_belongs_to_the_new_pod() {
        let store = Store::default();
        let start = Instant::now();
        store.apply_pod(pod("old", "uid-old", "10.0.0.7"), start);
        store.delete_pod("uid-old", start);
        store.apply_pod(pod("new", "uid-new", "10.0.0.7"), start);
        assert_eq!(&*store.pod_by_ip("10.0.0.7").unwrap().name, "new");
        store.expire(start + DELETE_GRACE);
        assert_eq!(&*store.pod_by_ip("10.0.0.7").unwrap().name, "new");
        assert!(store.pod_by_uid("uid-old").is_none());
    }

    // hostNetwork pods are findable by UID and name, never by IP; an IP change moves the entry.
    #[test]
    fn ip_index_skips_host_network_and_follows_changes() {
        let store = Store::default();
        let now = Instant::now();
        store.apply_pod(
            Pod {
                host_network: true,
                ..pod("node-agent", "uid-h", "192.168.1.5")
            },
            now,
        );
        assert!(store.pod_by_ip("192.168.1.5").is_none());
        assert!(store.pod_by_uid("uid-h").is_some());
        store.apply_pod(pod("p", "uid-p", ""), now);
        store.apply_pod(pod("p", "uid-p", "10.0.0.9"), now);
        store.apply_pod(pod("p", "uid-p", "10.0.0.10"), now);
        assert!(store.pod_by_ip("10.0.0.9").is_none());
        assert_eq!(&*store.pod_by_ip("10.0.0.10").unwrap().uid, "uid-p");
    }

    // After a relist (a watch that expired, an API server that came back), pods the list no
    // longer has are deleted with the grace period; the rest stay.
    #[test]
    fn a_relist_deletes_what_it_does_not_list() {
        let store = Store::default();
        let now = Instant::now();
        store.apply_pod(pod("stays", "uid-1", "10.0.0.1"), now);
        store.apply_pod(pod("went", "uid-2", "10.0.0.2"), now);
        store.relist_started(Kind::Pods);
        store.apply_pod(pod("stays", "uid-1", "10.0.0.1"), now);
        store.relist_done(Kind::Pods, now);
        assert!(store.pod_by_ip("10.0.0.2").is_some());
        store.expire(now + DELETE_GRACE);
        assert!(store.pod_by_ip("10.0.0.2").is_none());
        assert!(store.pod_by_ip("10.0.0.1").is_some());

        store.set_meta(Kind::Namespaces, "a", Some(Meta::default()));
        store.set_meta(Kind::Namespaces, "b", Some(Meta::default()));
        store.relist_started(Kind::Namespaces);
        store.set_meta(Kind::Namespaces, "a", Some(Meta::default()));
        store.relist_done(Kind::Namespaces, now);
        assert!(store.namespace("a").is_some() && store.namespace("b").is_none());
    }

    #[test]
    fn key_filter_keeps_exact_and_matching_keys() {
        let filter = KeyFilter {
            exact: ["app".to_string()].into(),
            patterns: vec![Regex::new("^team/(.*)$").unwrap()],
        };
        let labels: std::collections::BTreeMap<String, String> = [
            ("app", "lessons"),
            ("team/owner", "core"),
            ("pod-template-hash", "7c9f"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept = filter.keep(&labels);
        let keys: Vec<&str> = kept.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["app", "team/owner"]);
        assert!(KeyFilter::default().keep(&labels).is_empty());
    }
}
