//! Built-in `k8sattributes`: finds the pod each resource came from and adds its Kubernetes
//! metadata, as the collector's k8sattributes processor does. Pods come from the host's cache
//! (`pod-by-ip`, `pod-by-uid`, `pod-by-name`), so the plugin needs no network and no RBAC.
//!
//! It only reads and writes resource attributes, so the host never decodes a span, data point
//! or log record for it. It never overwrites an attribute that is set, and it always writes
//! `k8s.pod.ip` (the pod's, else the sender's), so Alloy's own k8sattributes downstream, which
//! associates by `k8s.pod.ip` first, credits the sender and not trailhead's pod.
//!
//! The one idea: a sender sends batch after batch, and its pod changes far more rarely, so
//! what a lookup found is kept per lookup key ([`Memo`]) while the cache's generation stays
//! the same; a batch from a known sender then costs one `generation()` call instead of a
//! pod record copied across the boundary.

mod cluster;
mod extract;
#[cfg(test)]
mod tests;

pub use cluster::{Cluster, Host};
use extract::{Added, pod_attributes};
use k8sattributes_settings::{Association, Config};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use trailhead_plugin::{
    AnyValue, Batch, Error, KeyValue, Level, LogBatch, MetricBatch, Plugin, ProfileBatch, Signal,
    SpanBatch,
};

/// The processor: its settings, the cluster it asks, and what it has found so far.
pub struct K8sAttributes<C = Host> {
    config: Config,
    cluster: C,
    memo: Memo,
}

impl<C: Cluster + Default + 'static> Plugin for K8sAttributes<C> {
    /// The settings as written: the settings crate (which the host shares) checks them.
    type Config = Box<RawValue>;
    const NAME: &'static str = "k8sattributes";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(json: Box<RawValue>) -> Result<Self, String> {
        let config = Config::parse(json.get())?;
        Ok(K8sAttributes {
            config,
            cluster: C::default(),
            memo: Memo::default(),
        })
    }
    fn signals(&self) -> Vec<Signal> {
        vec![
            Signal::Traces,
            Signal::Metrics,
            Signal::Logs,
            Signal::Profiles,
        ]
    }
    fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
        self.enrich(batch)
    }
    fn process_logs(&mut self, batch: &impl LogBatch) -> Result<(), Error> {
        self.enrich(batch)
    }
    fn process_metrics(&mut self, batch: &impl MetricBatch) -> Result<(), Error> {
        self.enrich(batch)
    }
    /// A profile's resource, the same as any other batch's.
    fn process_profiles(&mut self, batch: &impl ProfileBatch) -> Result<(), Error> {
        self.enrich_resources(
            batch.count(Level::Resource),
            |res| batch.attrs(Level::Resource, res),
            |res, added| batch.set_attrs(Level::Resource, res, added),
        )
    }
}

trailhead_plugin::export!(K8sAttributes<Host>);

impl<C: Cluster> K8sAttributes<C> {
    fn enrich(&mut self, batch: &impl Batch) -> Result<(), Error> {
        self.enrich_resources(
            batch.count(Level::Resource),
            |res| batch.attrs(Level::Resource, res),
            |res, added| batch.set_attrs(Level::Resource, res, added),
        )
    }

    /// Enriches `resources` resources, read with `attrs` and written with `set_attrs`: every
    /// batch type's resources, a profile batch's included, which shares no trait with them.
    fn enrich_resources(
        &mut self,
        resources: u32,
        attrs: impl Fn(u32) -> Vec<KeyValue>,
        set_attrs: impl Fn(u32, &[KeyValue]),
    ) -> Result<(), Error> {
        if !self.config.passthrough {
            self.memo.keep_if(self.cluster.generation());
        }
        let sender = sender_ip(&self.config, &self.cluster);
        for res in 0..resources {
            let existing = attrs(res);
            let added = self.attributes_for(&existing, sender.as_deref());
            if !added.is_empty() {
                set_attrs(res, &added);
            }
        }
        Ok(())
    }

    /// The attributes to add to one resource: only those not already set.
    fn attributes_for(&mut self, existing: &[KeyValue], sender: Option<&str>) -> Vec<KeyValue> {
        let mut out = Added {
            existing,
            attrs: Vec::new(),
        };
        let mut ip = None;
        let mut pod_ip = None;
        if let Some(lookup) = identify(&self.config, existing, sender) {
            if !self.config.passthrough {
                let container = string_attr(existing, "k8s.container.name").map(str::to_string);
                let found = self.found(&lookup, container);
                for kv in &found.attrs {
                    out.add_value(&kv.key, kv.value.clone());
                }
                pod_ip.clone_from(&found.pod_ip);
            }
            ip = lookup.into_ip();
        }
        if let Some(ip) = pod_ip.or(ip).or_else(|| sender.map(str::to_string)) {
            out.add("k8s.pod.ip", ip);
        }
        out.attrs
    }

    /// What `lookup` finds (a missing pod included), from the memo or from the cache.
    fn found(&mut self, lookup: &Lookup<'_>, container: Option<String>) -> Rc<Found> {
        let key = (lookup.to_key(), container);
        if let Some(found) = self.memo.found.get(&key) {
            return found.clone();
        }
        let cluster = &self.cluster;
        let pod = match lookup {
            Lookup::Ip(ip) => cluster.pod_by_ip(ip),
            Lookup::Uid(uid) => cluster.pod_by_uid(uid),
            Lookup::Name(ns, name) => cluster.pod_by_name(ns, name),
        };
        let found = Rc::new(match pod {
            Some(pod) => Found {
                attrs: pod_attributes(&self.config, cluster, &pod, key.1.as_deref()),
                pod_ip: Some(pod.ip).filter(|ip| !ip.is_empty()),
            },
            None => Found::default(),
        });
        self.memo.insert(key, found.clone());
        found
    }
}

/// What a lookup found: everything the config extracts from the pod, and the pod's IP. Empty
/// when the pod is not cached.
#[derive(Default)]
struct Found {
    attrs: Vec<KeyValue>,
    pod_ip: Option<String>,
}

/// A lookup key, and the `k8s.container.name` the container image attributes depend on.
type MemoKey = (Key, Option<String>);

/// What was found per key, valid for one generation of the host's cache.
#[derive(Default)]
struct Memo {
    generation: Option<u64>,
    found: HashMap<MemoKey, Rc<Found>>,
}

impl Memo {
    /// Senders behind one gateway instance number in the hundreds; past this many keys the
    /// memo starts over rather than grow without bound (pod IPs get reused by new pods).
    const LIMIT: usize = 4096;

    /// Forgets everything when the cache has changed since it was filled.
    fn keep_if(&mut self, generation: u64) {
        if self.generation != Some(generation) {
            self.found.clear();
            self.generation = Some(generation);
        }
    }

    fn insert(&mut self, key: MemoKey, found: Rc<Found>) {
        if self.found.len() >= Self::LIMIT {
            self.found.clear();
        }
        self.found.insert(key, found);
    }
}

/// The sender's IP for this batch: the connection's, or the first X-Forwarded-For address
/// when the config trusts it.
fn sender_ip(config: &Config, cluster: &impl Cluster) -> Option<String> {
    let context = cluster.context();
    if config.trust_forwarded_for
        && let Some(forwarded) = context.forwarded_for.as_deref()
        && let Ok(ip) = forwarded.trim().parse::<IpAddr>()
    {
        return Some(canonical(ip));
    }
    let peer: SocketAddr = context.peer_address?.parse().ok()?;
    Some(canonical(peer.ip()))
}

/// IPv4 clients of a dual-stack listener show up as `::ffff:a.b.c.d`; pods have plain IPv4.
fn canonical(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            AnyValue::Str(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
}

/// How this resource identifies its pod: the first association rule that can be evaluated
/// (as in the collector, later rules are not tried when that pod is not cached).
fn identify<'a>(
    config: &Config,
    attrs: &'a [KeyValue],
    sender: Option<&str>,
) -> Option<Lookup<'a>> {
    config
        .associations
        .iter()
        .find_map(|association| match association {
            Association::Connection => sender.map(|ip| Lookup::Ip(ip.to_string())),
            Association::IpAttribute(name) => string_attr(attrs, name)
                .and_then(|v| v.parse::<IpAddr>().ok())
                .map(|ip| Lookup::Ip(canonical(ip))),
            Association::Uid => string_attr(attrs, "k8s.pod.uid").map(Lookup::Uid),
            Association::Name => string_attr(attrs, "k8s.namespace.name")
                .zip(string_attr(attrs, "k8s.pod.name"))
                .map(|(ns, name)| Lookup::Name(ns, name)),
        })
}

/// How a resource's pod is looked up.
enum Lookup<'a> {
    Ip(String),
    Uid(&'a str),
    Name(&'a str, &'a str),
}

/// A [`Lookup`], owned, as the memo keys it.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(String),
    Uid(String),
    Name(String, String),
}

impl Lookup<'_> {
    fn into_ip(self) -> Option<String> {
        match self {
            Lookup::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    fn to_key(&self) -> Key {
        match self {
            Lookup::Ip(ip) => Key::Ip(ip.clone()),
            Lookup::Uid(uid) => Key::Uid(uid.to_string()),
            Lookup::Name(ns, name) => Key::Name(ns.to_string(), name.to_string()),
        }
    }
}
