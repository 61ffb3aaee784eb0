//! What the plugin asks of the host: the Kubernetes cache and the request's context. A trait,
//! because natively (in `cargo test`) there is no host to import them from: the tests give a
//! cluster of their own.

use trailhead_plugin::host::{
    self, RequestContext,
    kubernetes::{self, ObjectMeta, Pod},
};

pub trait Cluster {
    fn pod_by_ip(&self, ip: &str) -> Option<Pod>;
    fn pod_by_uid(&self, uid: &str) -> Option<Pod>;
    fn pod_by_name(&self, namespace: &str, name: &str) -> Option<Pod>;
    fn namespace_by_name(&self, name: &str) -> Option<ObjectMeta>;
    fn node_by_name(&self, name: &str) -> Option<ObjectMeta>;
    /// Changes whenever anything in the cache does: what was looked up under one generation
    /// holds until it changes.
    fn generation(&self) -> u64;
    /// Where the batch being processed came from.
    fn context(&self) -> RequestContext;
}

/// The host's one cache, through the contract's `kubernetes` import.
#[derive(Default)]
pub struct Host;

impl Cluster for Host {
    fn pod_by_ip(&self, ip: &str) -> Option<Pod> {
        kubernetes::pod_by_ip(ip)
    }
    fn pod_by_uid(&self, uid: &str) -> Option<Pod> {
        kubernetes::pod_by_uid(uid)
    }
    fn pod_by_name(&self, namespace: &str, name: &str) -> Option<Pod> {
        kubernetes::pod_by_name(namespace, name)
    }
    fn namespace_by_name(&self, name: &str) -> Option<ObjectMeta> {
        kubernetes::namespace_by_name(name)
    }
    fn node_by_name(&self, name: &str) -> Option<ObjectMeta> {
        kubernetes::node_by_name(name)
    }
    fn generation(&self) -> u64 {
        kubernetes::generation()
    }
    fn context(&self) -> RequestContext {
        host::context()
    }
}
