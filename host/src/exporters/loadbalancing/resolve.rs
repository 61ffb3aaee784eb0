//! The resolvers that tell the balancer its members: `static` once, `dns` every `interval`,
//! `k8s` on every change of the Service's EndpointSlices. A resolver that fails keeps the
//! members it last had, as the collector's do.

use super::{Balancer, DEFAULT_PORT, DnsResolver, K8sResolver, ResolverSettings};
use crate::kubernetes::endpoint_slices::{self, SliceEndpoint};
use std::net::IpAddr;
use std::sync::{Arc, Weak};

/// `host[:port]` with the port made explicit (4317 when missing); an IPv6 address in brackets.
pub fn with_port(host: &str) -> Result<String, ()> {
    if host.is_empty() {
        return Err(());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(join(&ip.to_string(), DEFAULT_PORT));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() => {
            port.parse::<u16>().map_err(|_| ())?;
            Ok(host.to_string())
        }
        Some(_) => Err(()),
        None => Ok(join(host, DEFAULT_PORT)),
    }
}

/// `host:port`, bracketing an IPv6 address.
fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Starts the configured resolver for `balancer`; the static one sets its members at once.
pub fn start(balancer: &Arc<Balancer>, settings: &ResolverSettings) {
    if let Some(fixed) = &settings.static_ {
        let endpoints = fixed.hostnames.iter().filter_map(|h| with_port(h).ok());
        balancer.set_endpoints(endpoints.collect());
    } else if let Some(dns) = &settings.dns {
        tokio::spawn(follow_dns(Arc::downgrade(balancer), dns.clone()));
    } else if let Some(k8s) = &settings.k8s {
        tokio::spawn(follow_k8s(Arc::downgrade(balancer), k8s.clone()));
    }
}

/// Resolves the name every `interval` until the balancer stops.
async fn follow_dns(balancer: Weak<Balancer>, dns: DnsResolver) {
    let port: u16 = dns.port.parse().unwrap_or(DEFAULT_PORT);
    let mut tick = tokio::time::interval(dns.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(strong) = balancer.upgrade() else {
            return;
        };
        if strong.stop.is_cancelled() {
            return;
        }
        let lookup = tokio::net::lookup_host((dns.hostname.as_str(), port));
        match tokio::time::timeout(dns.timeout, lookup).await {
            Ok(Ok(addresses)) => {
                let mut endpoints: Vec<String> =
                    addresses.map(|a| join(&a.ip().to_string(), port)).collect();
                endpoints.sort();
                endpoints.dedup();
                strong.set_endpoints(endpoints);
            }
            Ok(Err(error)) => {
                tracing::warn!(hostname = %dns.hostname, %error, "loadbalancing dns resolver: lookup failed; keeping the backends it had")
            }
            Err(_) => {
                tracing::warn!(hostname = %dns.hostname, timeout = ?dns.timeout, "loadbalancing dns resolver: lookup timed out; keeping the backends it had")
            }
        }
    }
}

/// Follows the Service's EndpointSlices until the balancer stops.
async fn follow_k8s(balancer: Weak<Balancer>, k8s: K8sResolver) {
    let (name, namespace) = match k8s.service.split_once('.') {
        Some((name, namespace)) => (name.to_string(), namespace.to_string()),
        None => (k8s.service.clone(), endpoint_slices::own_namespace()),
    };
    let ports: Vec<u16> = if k8s.ports.is_empty() {
        vec![DEFAULT_PORT]
    } else {
        k8s.ports
            .iter()
            .filter_map(|p| u16::try_from(*p).ok())
            .collect()
    };
    let Some(stop) = balancer.upgrade().map(|b| b.stop.clone()) else {
        return;
    };
    let update = |ready: Vec<SliceEndpoint>| {
        let Some(balancer) = balancer.upgrade() else {
            return;
        };
        let mut endpoints = Vec::new();
        for endpoint in ready {
            let host = match (&endpoint.hostname, k8s.return_hostnames) {
                (Some(hostname), true) => format!("{hostname}.{name}.{namespace}"),
                _ => endpoint.address.clone(),
            };
            endpoints.extend(ports.iter().map(|&port| join(&host, port)));
        }
        endpoints.sort();
        endpoints.dedup();
        balancer.set_endpoints(endpoints);
    };
    let timeout = k8s.timeout.as_secs().max(1) as u32;
    tokio::select! {
        () = endpoint_slices::follow(&namespace, &name, timeout, update) => {}
        () = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The collector's endpoint forms: a missing port is 4317; IPv6 goes in brackets.
    #[test]
    fn endpoints_get_a_port() {
        assert_eq!(with_port("a").unwrap(), "a:4317");
        assert_eq!(with_port("a:55690").unwrap(), "a:55690");
        assert_eq!(with_port("::1").unwrap(), "[::1]:4317");
        assert_eq!(with_port("[::1]:5").unwrap(), "[::1]:5");
        assert!(with_port("a:x").is_err() && with_port("").is_err() && with_port(":1").is_err());
    }
}
