//! Following one Service's EndpointSlices (`discovery.k8s.io/v1`), for the `loadbalancing`
//! exporter's `k8s` resolver: the ready endpoints of every slice labelled
//! `kubernetes.io/service-name=NAME`, reported whole after each change.
//!
//! Same watch style as the metadata cache: kube-rs's watcher (list, then watch, relisting
//! after a 410) with the default backoff, so an API-server outage only pauses updates and the
//! exporter keeps the backends it has.

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::BTreeMap;

/// One ready endpoint of a slice: an address, and the pod's hostname when it has one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SliceEndpoint {
    pub address: String,
    pub hostname: Option<String>,
}

/// Where an in-cluster pod's namespace is written.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace this pod runs in, or `default` outside a cluster (as the collector does).
pub fn own_namespace() -> String {
    std::fs::read_to_string(NAMESPACE_FILE)
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Watches the slices of Service `name` in `namespace` for good, calling `update` with every
/// ready endpoint (sorted, without duplicates) after the first list and after each change.
/// The client comes from the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the pod's service
/// account, as client-go's default does; `timeout` is the server-side watch timeout.
pub async fn follow(
    namespace: &str,
    name: &str,
    timeout: u32,
    mut update: impl FnMut(Vec<SliceEndpoint>) + Send,
) {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, service = %name, "loadbalancing k8s resolver: no Kubernetes API server; no backends");
            return;
        }
    };
    let api = Api::<EndpointSlice>::namespaced(client, namespace);
    let config = watcher::Config::default()
        .labels(&format!("kubernetes.io/service-name={name}"))
        .timeout(timeout);
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut slices: BTreeMap<String, Vec<SliceEndpoint>> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Vec<SliceEndpoint>>> = None;
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, service = %name, "loadbalancing k8s resolver: watch failing; keeping the backends it had");
                }
                continue;
            }
        };
        failing = false;
        match event {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(slice) => {
                if let Some(listing) = &mut listing {
                    listing.insert(slice_name(&slice), ready(&slice));
                }
            }
            Event::InitDone => {
                slices = listing.take().unwrap_or_default();
                update(flatten(&slices));
            }
            Event::Apply(slice) => {
                slices.insert(slice_name(&slice), ready(&slice));
                update(flatten(&slices));
            }
            Event::Delete(slice) => {
                slices.remove(&slice_name(&slice));
                update(flatten(&slices));
            }
        }
    }
}

fn slice_name(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

/// A slice's ready endpoints: `conditions.ready` unset counts as ready, as the API says.
fn ready(slice: &EndpointSlice) -> Vec<SliceEndpoint> {
    let mut ready = Vec::new();
    for endpoint in &slice.endpoints {
        let is_ready = endpoint
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true);
        if !is_ready {
            continue;
        }
        for address in &endpoint.addresses {
            ready.push(SliceEndpoint {
                address: address.clone(),
                hostname: endpoint.hostname.clone(),
            });
        }
    }
    ready
}

fn flatten(slices: &BTreeMap<String, Vec<SliceEndpoint>>) -> Vec<SliceEndpoint> {
    let mut all: Vec<SliceEndpoint> = slices.values().flatten().cloned().collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn endpoint(address: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![address.into()],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            hostname: Some(format!("h-{address}")),
            ..Default::default()
        }
    }

    // Not-ready endpoints are left out; an unset condition is ready.
    #[test]
    fn only_ready_endpoints_count() {
        let slice = EndpointSlice {
            endpoints: vec![
                endpoint("10.0.0.1", Some(true)),
                endpoint("10.0.0.2", Some(false)),
                endpoint("10.0.0.3", None),
            ],
            ..Default::default()
        };
        let addresses: Vec<String> = ready(&slice).into_iter().map(|e| e.address).collect();
        assert_eq!(addresses, ["10.0.0.1", "10.0.0.3"]);
    }
}
