//! `service.telemetry.metrics.readers`: the collector's current way to say where its own
//! metrics go (the OpenTelemetry configuration schema's meter provider). trailhead serves its
//! metrics for scraping at one address: at most one `pull` reader with a `prometheus` exporter
//! at `host:port`. Any number of `periodic` readers push the same metrics over OTLP
//! (`telemetry::push`), each every `interval`.

use super::otelconf::{Periodic, PushExporter};
use crate::pdata::Signal;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// One reader of `readers:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricReader {
    /// Scraped: `exporter: {prometheus: {host, port}}` serves `/metrics` at `host:port`.
    #[serde(default)]
    pub pull: Option<PullReader>,
    /// Pushed over OTLP every `interval` milliseconds (60000 by default).
    #[serde(default)]
    pub periodic: Option<PeriodicReader>,
}

/// `periodic:` (otelconf's `PeriodicMetricReader`); times in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodicReader {
    /// Where the metrics go.
    pub exporter: PushExporter,
    /// Time between pushes; 60000 by default, as the schema says.
    #[serde(default)]
    pub interval: Option<i64>,
    /// Deadline of one push; 30000 by default. The exporter's own `timeout` bounds each send.
    #[serde(default)]
    pub timeout: Option<i64>,
}

/// `pull:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullReader {
    /// The one exporter a pull reader has.
    pub exporter: PullExporter,
}

/// `pull.exporter:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullExporter {
    /// Prometheus text exposition at `host:port`, path `/metrics`.
    pub prometheus: Option<PrometheusExporter>,
}

/// `pull.exporter.prometheus:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusExporter {
    /// The host or address to listen on; required, as the schema requires it. `localhost`
    /// listens on loopback; `0.0.0.0` or `::` on every interface.
    pub host: Option<String>,
    /// The port; required.
    pub port: Option<i64>,
    /// Naming switches of the collector's Go exporter. Accepted without effect: trailhead's
    /// metric names are its own, documented in README, whatever these say.
    #[serde(default)]
    pub without_units: Option<bool>,
    /// As `without_units`: accepted without effect.
    #[serde(default)]
    pub without_type_suffix: Option<bool>,
    /// As `without_units`: accepted without effect.
    #[serde(default)]
    pub without_scope_info: Option<bool>,
    /// As `without_units`: accepted without effect.
    #[serde(default)]
    pub with_resource_constant_labels: Option<serde_json::Value>,
}

/// A problem with a reader: the key under `metrics` (`readers[1].periodic`), and why.
pub type Problem = (String, String);

/// What the readers ask for: where trailhead's metrics are served (when a pull reader says),
/// and where they are pushed; or what is wrong with them.
pub fn settle(
    readers: &[MetricReader],
) -> Result<(Option<SocketAddr>, Vec<Periodic>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut address = None;
    let mut pushed = Vec::new();
    for (index, reader) in readers.iter().enumerate() {
        let at = format!("readers[{index}]");
        if let Some(periodic) = &reader.periodic {
            match periodic_reader(periodic, &format!("{at}.periodic")) {
                Ok(settled) => pushed.push(settled),
                Err(problem) => problems.push(problem),
            }
        }
        let Some(pull) = &reader.pull else {
            if reader.periodic.is_none() {
                problems.push((at, "a reader needs `pull` or `periodic`".into()));
            }
            continue;
        };
        let Some(prometheus) = &pull.exporter.prometheus else {
            let why = "a pull reader needs a `prometheus` exporter";
            problems.push((format!("{at}.pull.exporter"), why.into()));
            continue;
        };
        match (listen_address(prometheus), address) {
            (Err((key, why)), _) => problems.push((format!("{at}.pull.exporter.prometheus.{key}"), why)),
            (Ok(_), Some(first)) => problems.push((at, format!("trailhead serves its metrics at one address, which an earlier reader already sets ({first}); keep one pull reader"))),
            (Ok(found), None) => address = Some(found),
        }
    }
    match (address, pushed.is_empty(), problems.is_empty()) {
        (None, true, true) => Err(vec![(
            "readers".into(),
            "no reader says where trailhead's metrics are served or pushed".into(),
        )]),
        (_, _, true) => Ok((address, pushed)),
        _ => Err(problems),
    }
}

/// One periodic reader settled, or its first problem.
fn periodic_reader(periodic: &PeriodicReader, at: &str) -> Result<Periodic, Problem> {
    let interval = match periodic.interval {
        None => Duration::from_secs(60),
        Some(n) if n <= 0 => {
            return Err((
                format!("{at}.interval"),
                format!("{n} must be positive (milliseconds)"),
            ));
        }
        Some(n) => Duration::from_millis(n as u64),
    };
    if let Some(n) = periodic.timeout.filter(|n| *n < 0) {
        return Err((
            format!("{at}.timeout"),
            format!("{n} is negative; give milliseconds"),
        ));
    }
    let destination = periodic
        .exporter
        .destination(&format!("{at}.exporter"), Signal::Metrics)?;
    Ok(Periodic {
        interval,
        destination,
    })
}

/// `host:port` as the address to listen on: (the key, why) when it cannot be.
fn listen_address(prometheus: &PrometheusExporter) -> Result<SocketAddr, (&'static str, String)> {
    let host = prometheus
        .host
        .as_deref()
        .ok_or(("host", "host must be specified".to_string()))?;
    let port = prometheus
        .port
        .ok_or(("port", "port must be specified".to_string()))?;
    let port = u16::try_from(port)
        .map_err(|_| ("port", format!("port {port} is not between 0 and 65535")))?;
    // Read as every other listening address is: an empty host is every interface.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    };
    crate::config::values::parse_listen_address(&address).map_err(|why| ("host", why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers(text: &str) -> Vec<MetricReader> {
        crate::config::tree::from_str(text).unwrap()
    }

    fn pull_address(readers: &[MetricReader]) -> Result<SocketAddr, Vec<Problem>> {
        settle(readers).map(|(address, _)| address.unwrap())
    }

    // The chart's internalTelemetryViaOTLP shape: periodic readers next to a pull reader, each
    // with the schema's defaults unless given.
    #[test]
    fn periodic_readers_push() {
        let both = readers(
            "- pull: {exporter: {prometheus: {host: localhost, port: 8888}}}\n- periodic: {exporter: {otlp: {endpoint: 'http://localhost:4318', protocol: http/protobuf}}}\n- periodic: {interval: 250, exporter: {otlp: {endpoint: 'http://localhost:4317', protocol: grpc, temporality_preference: cumulative}}}",
        );
        let (address, pushed) = settle(&both).unwrap();
        assert_eq!(address, Some("127.0.0.1:8888".parse().unwrap()));
        assert_eq!(pushed.len(), 2);
        assert_eq!(pushed[0].interval, Duration::from_secs(60));
        assert_eq!(pushed[1].interval, Duration::from_millis(250));
        assert!(matches!(
            pushed[0].destination,
            super::super::otelconf::Destination::Http(_)
        ));
        assert!(matches!(
            pushed[1].destination,
            super::super::otelconf::Destination::Grpc(_)
        ));
        let alone = readers(
            "- periodic: {exporter: {otlp: {endpoint: 'http://x:4318', protocol: http/protobuf}}}",
        );
        assert_eq!(settle(&alone).unwrap().0, None);
    }

    // An exporter's `timeout` is milliseconds; `0` is no deadline, as the schema says and the
    // Go SDK does, not the 10 s default.
    #[test]
    fn exporter_timeout_zero_is_no_deadline() {
        let timeout = |given: &str| {
            let text = format!(
                "- periodic: {{exporter: {{otlp: {{protocol: grpc, endpoint: 'http://x:4317'{given}}}}}}}"
            );
            match &settle(&readers(&text)).unwrap().1[0].destination {
                super::super::otelconf::Destination::Grpc(otlp) => otlp.timeout,
                _ => panic!("grpc"),
            }
        };
        assert_eq!(timeout(""), Duration::from_secs(10));
        assert_eq!(timeout(", timeout: 2500"), Duration::from_millis(2500));
        assert_eq!(timeout(", timeout: 0"), Duration::ZERO);
    }

    // The chart's shape: one pull reader; `localhost` is loopback, `0.0.0.0` every interface.
    #[test]
    fn a_pull_reader_gives_the_address() {
        let one = readers(
            "- pull: {exporter: {prometheus: {host: localhost, port: 8888, without_units: true}}}",
        );
        assert_eq!(
            pull_address(&one).unwrap(),
            "127.0.0.1:8888".parse().unwrap()
        );
        assert!(settle(&one).unwrap().1.is_empty());
        let all = readers(
            "- pull:\n    exporter:\n      prometheus:\n        host: '0.0.0.0'\n        port: 9999\n",
        );
        assert_eq!(pull_address(&all).unwrap(), "0.0.0.0:9999".parse().unwrap());
        let v6 = readers("- pull: {exporter: {prometheus: {host: '::1', port: 1}}}");
        assert_eq!(pull_address(&v6).unwrap(), "[::1]:1".parse().unwrap());
    }

    // What trailhead cannot do, or the schema refuses, is named by its key and reason.
    #[test]
    fn refusals_name_the_key() {
        let problems = |text: &str| pull_address(&readers(text)).unwrap_err();
        let zero = problems(
            "- periodic: {interval: 0, exporter: {otlp: {protocol: grpc, endpoint: 'http://x:4317'}}}",
        );
        assert_eq!(zero[0].0, "readers[0].periodic.interval");
        let console = problems("- periodic: {exporter: {console: {}}}");
        assert_eq!(console[0].0, "readers[0].periodic.exporter.console");
        let delta = problems(
            "- periodic: {exporter: {otlp: {protocol: grpc, endpoint: 'x:1', temporality_preference: delta}}}",
        );
        assert_eq!(
            delta[0].0,
            "readers[0].periodic.exporter.otlp.temporality_preference"
        );
        let json = problems(
            "- periodic: {exporter: {otlp: {protocol: http/json, endpoint: 'http://x:1'}}}",
        );
        assert_eq!(json[0].0, "readers[0].periodic.exporter.otlp.protocol");
        let two = problems(
            "- pull: {exporter: {prometheus: {host: localhost, port: 1}}}\n- pull: {exporter: {prometheus: {host: localhost, port: 2}}}",
        );
        assert_eq!(two[0].0, "readers[1]");
        let no_port = problems("- pull: {exporter: {prometheus: {host: localhost}}}");
        assert_eq!(
            no_port[0],
            (
                "readers[0].pull.exporter.prometheus.port".into(),
                "port must be specified".into()
            )
        );
        let negative = problems("- pull: {exporter: {prometheus: {host: localhost, port: -1}}}");
        assert!(negative[0].1.contains("-1"));
        assert_eq!(problems("[]")[0].0, "readers");
    }
}
