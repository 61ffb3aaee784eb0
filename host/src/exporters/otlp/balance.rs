//! `endpoint: dns:///name:port` with `balancer_name`, as grpc-go reads them for the collector:
//! the name's addresses, re-resolved every [`RESOLVE_INTERVAL`], each with its own channel, and
//! each send on the next one (`round_robin`) or always on the first (`pick_first`).
//!
//! The one idea: a send picks a channel when it starts, so its retries pick again. An address
//! that goes away takes only the sends in flight on it with it, and those are retried on the
//! addresses that remain; the queue and the retry stay per request, not per address.

use super::BuildError;
use arc_swap::ArcSwap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How often the name is resolved again. grpc-go re-resolves when a connection fails; a fixed
/// period also picks up addresses added while all connections are healthy (a scale-up).
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);

/// `balancer_name`: how a send picks among the resolved addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    RoundRobin,
    PickFirst,
}

impl Policy {
    /// The collector's names; `""` is grpc-go's default, `pick_first`.
    pub fn parse(name: &str) -> Result<Policy, String> {
        match name {
            "round_robin" => Ok(Policy::RoundRobin),
            "pick_first" | "" => Ok(Policy::PickFirst),
            other => Err(format!(
                "`{other}` is not supported; use round_robin or pick_first"
            )),
        }
    }
}

/// What a `dns:///` endpoint names: the host to resolve and the port.
pub fn parse_target(endpoint: &str) -> Option<Result<(String, u16), String>> {
    let rest = endpoint.strip_prefix("dns://")?;
    let Some(target) = rest.strip_prefix('/') else {
        return Some(Err(
            "a DNS server in the target (dns://server/name:port) is not supported; use dns:///name:port"
                .into(),
        ));
    };
    let parsed = match target.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse::<u16>()
            .map(|port| (host.trim_matches(['[', ']']).to_string(), port))
            .map_err(|_| format!("`{port}` is not a port")),
        _ => Err("expected dns:///name:port".into()),
    };
    Some(parsed)
}

/// How a channel to one address is made: the scheme, TLS (verified against the name) and the
/// deadline.
#[derive(Clone)]
pub struct Template {
    pub https: bool,
    pub tls: Option<ClientTlsConfig>,
    pub timeout: Duration,
}

/// The channels of a name's addresses, replaced as the name resolves.
pub struct Balanced {
    host: String,
    port: u16,
    policy: Policy,
    template: Template,
    channels: ArcSwap<Vec<(IpAddr, Channel)>>,
    next: AtomicUsize,
}

impl Balanced {
    /// Starts resolving `host` now and every [`RESOLVE_INTERVAL`] until the value is dropped.
    pub fn start(host: String, port: u16, policy: Policy, template: Template) -> Arc<Balanced> {
        let balanced = Arc::new(Balanced {
            host,
            port,
            policy,
            template,
            channels: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(resolve_forever(Arc::downgrade(&balanced)));
        }
        balanced
    }

    /// The channel of the next send, or why there is none yet.
    pub fn pick(&self) -> Result<Channel, String> {
        let channels = self.channels.load();
        if channels.is_empty() {
            return Err(format!(
                "dns:///{}:{} has no address yet",
                self.host, self.port
            ));
        }
        let index = match self.policy {
            Policy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % channels.len(),
            Policy::PickFirst => 0,
        };
        Ok(channels[index].1.clone())
    }

    /// The addresses in use.
    #[cfg(test)]
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.channels.load().iter().map(|(ip, _)| *ip).collect()
    }

    /// Makes `addresses` the set in use, keeping the channels of those that stay.
    fn update(&self, mut addresses: Vec<IpAddr>) -> Result<(), BuildError> {
        addresses.sort();
        addresses.dedup();
        let current = self.channels.load();
        if current
            .iter()
            .map(|(ip, _)| *ip)
            .eq(addresses.iter().copied())
        {
            return Ok(());
        }
        let mut channels = Vec::with_capacity(addresses.len());
        for ip in addresses {
            let kept = current.iter().find(|(old, _)| *old == ip);
            let channel = match kept {
                Some((_, channel)) => channel.clone(),
                None => self.connect(ip)?,
            };
            channels.push((ip, channel));
        }
        let listed: Vec<String> = channels.iter().map(|(ip, _)| ip.to_string()).collect();
        tracing::info!(target = %format!("dns:///{}:{}", self.host, self.port), addresses = ?listed, "otlp exporter addresses changed");
        self.channels.store(Arc::new(channels));
        Ok(())
    }

    /// A lazily connecting channel to one address, its TLS checked against the name.
    fn connect(&self, ip: IpAddr) -> Result<Channel, BuildError> {
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let scheme = if self.template.https { "https" } else { "http" };
        let uri = format!("{scheme}://{host}:{}", self.port);
        let failed = |reason: String| BuildError::Endpoint {
            endpoint: uri.clone(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| failed(e.to_string()))?;
        if let Some(tls) = &self.template.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| failed(e.to_string()))?;
        }
        if !self.template.timeout.is_zero() {
            let timeout = self.template.timeout;
            endpoint = endpoint.timeout(timeout).connect_timeout(timeout);
        }
        Ok(endpoint.connect_lazy())
    }
}

/// Resolves the name until the [`Balanced`] is dropped (a TLS rotation replaces it). A failed
/// lookup keeps the addresses in use.
async fn resolve_forever(balanced: Weak<Balanced>) {
    let mut tick = tokio::time::interval(RESOLVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(strong) = balanced.upgrade() else {
            return;
        };
        let lookup = tokio::net::lookup_host((strong.host.as_str(), strong.port));
        match tokio::time::timeout(RESOLVE_INTERVAL, lookup).await {
            Ok(Ok(found)) => {
                if let Err(error) = strong.update(found.map(|a| a.ip()).collect()) {
                    tracing::error!(%error, host = %strong.host, "otlp exporter: cannot connect to a resolved address");
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, host = %strong.host, "otlp exporter: lookup failed; keeping the addresses in use")
            }
            Err(_) => {
                tracing::warn!(host = %strong.host, "otlp exporter: lookup timed out; keeping the addresses in use")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The collector's target forms.
    #[test]
    fn targets_and_policies() {
        assert_eq!(parse_target("alloy:4317"), None);
        assert_eq!(
            parse_target("dns:///alloy.monitoring:4317"),
            Some(Ok(("alloy.monitoring".into(), 4317)))
        );
        assert!(matches!(
            parse_target("dns://8.8.8.8/alloy:4317"),
            Some(Err(_))
        ));
        assert!(matches!(parse_target("dns:///alloy"), Some(Err(_))));
        assert_eq!(Policy::parse("round_robin"), Ok(Policy::RoundRobin));
        assert_eq!(Policy::parse(""), Ok(Policy::PickFirst));
        assert!(Policy::parse("grpclb").is_err());
    }

    // Sends take the addresses in turn; a re-resolution keeps the channels that stay.
    #[tokio::test]
    async fn round_robin_takes_each_address_in_turn() {
        let template = Template {
            https: false,
            tls: None,
            timeout: Duration::from_secs(1),
        };
        let balanced =
            Balanced::start("nowhere.invalid".into(), 4317, Policy::RoundRobin, template);
        assert!(balanced.pick().is_err());
        let ips: Vec<IpAddr> = ["10.0.0.2", "10.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        balanced.update(ips).unwrap();
        assert_eq!(balanced.addresses()[0].to_string(), "10.0.0.1");
        let picks: Vec<usize> = (0..4)
            .map(|_| {
                balanced.pick().unwrap();
                balanced.next.load(Ordering::Relaxed) % 2
            })
            .collect();
        assert_eq!(picks, [1, 0, 1, 0]);
    }
}
