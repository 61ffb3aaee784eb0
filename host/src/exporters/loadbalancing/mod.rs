//! The `loadbalancing` exporter: routes each span (log record, metric, or metric data point) to
//! one backend by a routing key, over a consistent-hash [`ring`], with the collector's keys.
//!
//! The one idea: every backend is an ordinary otlp exporter with its own queue and retry
//! ([`backends`]), and its sink checks membership on every attempt. While its backend is a
//! member it sends there; once the resolver has dropped it, the same attempt hands the request
//! back to the balancer, which routes it to the keys' new owners. So a retry goes only to the
//! backend that failed, and what was queued or in flight for a backend that left is re-routed
//! rather than dropped.

mod backends;
mod resolve;
pub mod ring;

pub use backends::{BackendStorage, Balancer, Template};

use super::otlp::OtlpExporterConfig;
use super::{QueueSettings, RetrySettings};
use crate::config::values;
use crate::pdata::Signal;
use crate::pdata::route::RouteBy;
use crate::pdata::route_metrics::{MetricKey, RoutingKey};
use serde::Deserialize;
use std::time::Duration;

/// `exporters: loadbalancing/NAME:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancingConfig {
    /// How each backend is reached: `otlp:` takes every key of the `otlp` exporter but
    /// `endpoint`, which is each backend's address. Absent or empty, the otlp exporter's
    /// defaults, as in the collector.
    #[serde(default, deserialize_with = "protocol_or_defaults")]
    pub protocol: Protocol,
    /// Where the backends are: exactly one of `static`, `dns` or `k8s`.
    pub resolver: ResolverSettings,
    /// `traceID` (traces and logs' default), `service` (metrics' default) or `resource`; for
    /// metrics also `metric` (each metric name to one backend) and `streamID` (each data point
    /// stream to one backend, a metric's points split between backends).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// The collector's composite key of attributes; refused as not implemented.
    #[serde(default)]
    pub routing_attributes: Option<Vec<String>>,
    /// The collector's deadline of one export through the balancer. Handing a request to the
    /// backends' queues never waits, so it bounds nothing here; each backend's deadline is
    /// `protocol.otlp.timeout`.
    #[serde(default = "default_timeout", deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// A queue in front of the routing, off unless given (as in the collector). Each backend
    /// has its own queue: `protocol.otlp.sending_queue`.
    #[serde(default = "no_queue")]
    pub sending_queue: QueueSettings,
    /// Backoff while every backend's queue is full or none is resolved yet.
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn no_queue() -> QueueSettings {
    QueueSettings {
        enabled: false,
        ..QueueSettings::default()
    }
}

/// `protocol:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// The otlp exporter's settings, used for every backend (its defaults when absent or empty).
    #[serde(default = "otlp_defaults", deserialize_with = "otlp_or_defaults")]
    pub otlp: OtlpExporterConfig,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol {
            otlp: otlp_defaults(),
        }
    }
}

fn otlp_defaults() -> OtlpExporterConfig {
    crate::config::tree::from_str("{}").expect("the otlp exporter's keys all have defaults")
}

fn protocol_or_defaults<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    Ok(Option::<Protocol>::deserialize(d)?.unwrap_or_default())
}

fn otlp_or_defaults<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<OtlpExporterConfig, D::Error> {
    Ok(Option::<OtlpExporterConfig>::deserialize(d)?.unwrap_or_else(otlp_defaults))
}

/// `resolver:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverSettings {
    /// A fixed list of backends.
    #[serde(default, rename = "static")]
    pub static_: Option<StaticResolver>,
    /// The A/AAAA records of a name, resolved every `interval`.
    #[serde(default)]
    pub dns: Option<DnsResolver>,
    /// The ready endpoints of a Kubernetes Service's EndpointSlices, watched.
    #[serde(default)]
    pub k8s: Option<K8sResolver>,
    /// The collector's AWS Cloud Map resolver; refused as not implemented.
    #[serde(default)]
    pub aws_cloud_map: Option<serde::de::IgnoredAny>,
}

/// `resolver.static:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResolver {
    /// `host[:port]` of each backend; the port defaults to 4317.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// `resolver.dns:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsResolver {
    /// The name whose addresses are the backends.
    #[serde(default)]
    pub hostname: String,
    /// The backends' port (default 4317).
    #[serde(default = "default_port")]
    pub port: String,
    /// How often the name is resolved again (default 5s).
    #[serde(default = "five_seconds", deserialize_with = "values::duration")]
    pub interval: Duration,
    /// The deadline of one resolution (default 1s); on failure the last backends stay.
    #[serde(default = "one_second", deserialize_with = "values::duration")]
    pub timeout: Duration,
}

/// `resolver.k8s:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sResolver {
    /// `name.namespace` of the Service; without a namespace, the pod's own (else `default`).
    #[serde(default)]
    pub service: String,
    /// The backends' ports: every ready address is a backend on each (default [4317]).
    #[serde(default)]
    pub ports: Vec<i64>,
    /// The API server's watch timeout (default 1s, whole seconds, at least 1).
    #[serde(default = "one_second", deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// Use `hostname.service.namespace` instead of the address, for endpoints that have a
    /// hostname (a StatefulSet behind a headless Service).
    #[serde(default)]
    pub return_hostnames: bool,
}

fn default_port() -> String {
    "4317".into()
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// The collector's routing keys, all implemented.
const ROUTING_KEYS: [&str; 5] = ["traceID", "service", "resource", "metric", "streamID"];

fn unknown_key(key: &str) -> String {
    format!("routing_key: unknown `{key}`; expected traceID, service, resource, metric or streamID")
}

/// The collector's default backend port.
pub const DEFAULT_PORT: u16 = 4317;

impl LoadBalancingConfig {
    /// Starts the resolver that gives `balancer` its members (the static one does at once).
    pub fn start(&self, balancer: &std::sync::Arc<Balancer>) {
        resolve::start(balancer, &self.resolver);
    }

    /// The routing key for `signal`, or why it does not apply to it (the collector refuses
    /// such a key when it creates that signal's exporter).
    pub fn route_by(&self, signal: Signal) -> Result<RoutingKey, String> {
        let key = self.routing_key.as_deref().unwrap_or("");
        match (key, signal) {
            ("" | "traceID", Signal::Traces | Signal::Logs) => {
                Ok(RoutingKey::Item(RouteBy::TraceId))
            }
            ("" | "service", _) => Ok(RoutingKey::Item(RouteBy::Service)),
            ("resource", _) => Ok(RoutingKey::Item(RouteBy::Resource)),
            ("metric", Signal::Metrics) => Ok(RoutingKey::Metric(MetricKey::Name)),
            ("streamID", Signal::Metrics) => Ok(RoutingKey::Metric(MetricKey::Stream)),
            ("traceID", Signal::Metrics) => Err(
                "routing_key: `traceID` does not apply to metrics; use `service` or `resource`"
                    .into(),
            ),
            ("metric" | "streamID", _) => Err(format!(
                "routing_key: `{key}` applies to metrics only, not {signal}; use `traceID`, `service` or `resource`"
            )),
            (other, _) => Err(unknown_key(other)),
        }
    }

    /// Settings the collector refuses, and those trailhead does not implement, as (key, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        // Whether a known key fits a signal is checked where the signal is known (`route_by`).
        if let Some(key) = self.routing_key.as_deref()
            && !key.is_empty()
            && !ROUTING_KEYS.contains(&key)
        {
            problems.push(("routing_key", unknown_key(key)));
        }
        if self
            .routing_attributes
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            problems.push((
                "routing_attributes",
                "routing_attributes is not implemented in trailhead; use routing_key".into(),
            ));
        }
        problems.extend(
            self.resolver
                .problems()
                .into_iter()
                .map(|p| ("resolver", p)),
        );
        let otlp = &self.protocol.otlp;
        let sending = otlp.sending_problems().into_iter();
        problems.extend(sending.map(|(key, why)| ("protocol", format!("otlp.{key}: {why}"))));
        problems.extend(super::sending_problems(
            &None,
            &self.sending_queue,
            &self.retry_on_failure,
        ));
        problems
    }
}

impl ResolverSettings {
    /// The collector's checks: exactly one resolver, with what it needs.
    fn problems(&self) -> Vec<String> {
        let given = [
            self.static_.is_some(),
            self.dns.is_some(),
            self.k8s.is_some(),
            self.aws_cloud_map.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            0 => return vec!["no resolver given: set one of static, dns or k8s".into()],
            1 => {}
            _ => return vec!["give exactly one of static, dns, k8s and aws_cloud_map".into()],
        }
        let mut problems = Vec::new();
        if self.aws_cloud_map.is_some() {
            problems.push("aws_cloud_map is not implemented in trailhead; use dns or k8s".into());
        }
        if let Some(s) = &self.static_ {
            if s.hostnames.is_empty() {
                problems.push("static.hostnames: no backends given".into());
            }
            for host in &s.hostnames {
                if resolve::with_port(host).is_err() {
                    problems.push(format!("static.hostnames: `{host}` is not host[:port]"));
                }
            }
        }
        if let Some(dns) = &self.dns {
            if dns.hostname.is_empty() {
                problems.push("dns.hostname: required".into());
            }
            if dns.port.parse::<u16>().is_err() {
                problems.push(format!("dns.port: `{}` is not a port number", dns.port));
            }
            if dns.interval.is_zero() {
                problems.push("dns.interval: must be more than 0".into());
            }
            if dns.timeout.is_zero() {
                problems.push("dns.timeout: must be more than 0".into());
            }
        }
        if let Some(k8s) = &self.k8s {
            if k8s.service.is_empty() {
                problems.push("k8s.service: required (name.namespace)".into());
            }
            for port in &k8s.ports {
                if !(1..=65535).contains(port) {
                    problems.push(format!("k8s.ports: {port} is not a port number"));
                }
            }
            if k8s.timeout.is_zero() {
                problems.push("k8s.timeout: must be more than 0".into());
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> LoadBalancingConfig {
        crate::config::tree::from_str(text).unwrap()
    }

    // The collector's keys parse; defaults are the collector's.
    #[test]
    fn reads_the_collectors_keys() {
        let config = parse(
            "protocol: {otlp: {tls: {insecure: true}, timeout: 2s}}\n\
             resolver: {dns: {hostname: samplers}}\n",
        );
        let dns = config.resolver.dns.as_ref().unwrap();
        assert_eq!((dns.port.as_str(), dns.interval), ("4317", five_seconds()));
        assert!(!config.sending_queue.enabled);
        let item = RoutingKey::Item;
        assert_eq!(config.route_by(Signal::Traces), Ok(item(RouteBy::TraceId)));
        assert_eq!(config.route_by(Signal::Metrics), Ok(item(RouteBy::Service)));
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let config = parse(
            "protocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}\nsending_queue: {queue_size: 5}",
        );
        assert!(config.sending_queue.enabled, "a given queue is on");
    }

    // As in the collector, `protocol` and `protocol.otlp` may be absent or empty: the otlp
    // exporter's defaults (two of opentelemetry.io's gateway examples write them so).
    #[test]
    fn protocol_defaults_to_the_otlp_exporters() {
        for text in [
            "resolver: {static: {hostnames: [a]}}",
            "protocol:\nresolver: {static: {hostnames: [a]}}",
            "protocol: {otlp: }\nresolver: {static: {hostnames: [a]}}",
        ] {
            let config = parse(text);
            assert!(
                !config.protocol.otlp.tls.insecure,
                "{text}: TLS stays on, as the otlp exporter's default"
            );
            assert!(
                config.problems().is_empty(),
                "{text}: {:?}",
                config.problems()
            );
        }
    }

    // Each refusal names its key.
    #[test]
    fn refusals_name_the_key() {
        let problems = |text: &str| parse(text).problems();
        let none = problems("protocol: {otlp: {}}\nresolver: {}");
        assert_eq!(none[0].0, "resolver");
        let two = problems(
            "protocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}, dns: {hostname: b}}",
        );
        assert!(two[0].1.contains("exactly one"), "{two:?}");
        let key = problems(
            "protocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}\nrouting_key: spanID",
        );
        assert_eq!(key[0].0, "routing_key");
        assert!(key[0].1.contains("unknown `spanID`"), "{key:?}");
        let zero = problems("protocol: {otlp: {}}\nresolver: {dns: {hostname: a, interval: 0s}}");
        assert!(zero[0].1.contains("dns.interval"), "{zero:?}");
        let queue = problems(
            "protocol: {otlp: {sending_queue: {num_consumers: 0}}}\nresolver: {static: {hostnames: [a]}}",
        );
        assert!(queue[0].1.starts_with("otlp.sending_queue: "), "{queue:?}");
        let metrics = parse(
            "protocol: {otlp: {}}\nresolver: {static: {hostnames: [a]}}\nrouting_key: traceID",
        );
        assert!(metrics.route_by(Signal::Metrics).is_err());
    }

    // `metric` and `streamID` route metrics; on traces and logs they are refused when that
    // signal's exporter is built, as the collector refuses them, but the key itself is valid.
    #[test]
    fn metric_keys_apply_to_metrics_only() {
        let with = |key: &str| {
            parse(&format!(
                "protocol: {{otlp: {{}}}}\nresolver: {{static: {{hostnames: [a]}}}}\nrouting_key: {key}"
            ))
        };
        let metric = RoutingKey::Metric;
        for (key, by) in [("metric", MetricKey::Name), ("streamID", MetricKey::Stream)] {
            let config = with(key);
            assert!(config.problems().is_empty(), "{:?}", config.problems());
            assert_eq!(config.route_by(Signal::Metrics), Ok(metric(by)));
            for signal in [Signal::Traces, Signal::Logs] {
                let why = config.route_by(signal).unwrap_err();
                assert!(why.contains("applies to metrics only"), "{why}");
                assert!(why.contains(&format!("`{key}`")), "{why}");
            }
        }
        assert_eq!(
            with("resource").route_by(Signal::Metrics),
            Ok(RoutingKey::Item(RouteBy::Resource))
        );
    }
}
