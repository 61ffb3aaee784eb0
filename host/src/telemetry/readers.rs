//! `service.telemetry.metrics.readers`: the collector's current way to say where its own
//! metrics go (the OpenTelemetry configuration schema's meter provider). trailhead serves its
//! metrics for scraping at one address, so a config's readers come down to that address: one
//! `pull` reader with a `prometheus` exporter at `host:port`. A `periodic` reader (OTLP push)
//! is refused with the reason rather than accepted and silently not pushed.

use serde::Deserialize;
use std::net::SocketAddr;

/// One reader of `readers:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricReader {
    /// Scraped: `exporter: {prometheus: {host, port}}` serves `/metrics` at `host:port`.
    #[serde(default)]
    pub pull: Option<PullReader>,
    /// Pushed every `interval` (OTLP): refused, trailhead's metrics are scraped only.
    #[serde(default)]
    pub periodic: Option<serde_json::Value>,
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

/// Where the readers ask for trailhead's metrics to be served, or what is wrong with them.
pub fn pull_address(readers: &[MetricReader]) -> Result<SocketAddr, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut address = None;
    for (index, reader) in readers.iter().enumerate() {
        let at = format!("readers[{index}]");
        if reader.periodic.is_some() {
            problems.push((format!("{at}.periodic"), "a periodic reader pushes the collector's own metrics over OTLP; trailhead serves its metrics for scraping only, so use a `pull` reader with a `prometheus` exporter and scrape it".into()));
        }
        let Some(pull) = &reader.pull else {
            if reader.periodic.is_none() {
                problems.push((at, "a reader needs `pull` (or `periodic`)".into()));
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
            (Ok(_), Some(first)) => problems.push((at, format!("trailhead serves its metrics at one address, which readers[0] already sets ({first}); keep one pull reader"))),
            (Ok(found), None) => address = Some(found),
        }
    }
    match (address, problems.is_empty()) {
        (Some(address), true) => Ok(address),
        (None, true) => Err(vec![(
            "readers".into(),
            "no pull reader says where trailhead's metrics are served".into(),
        )]),
        _ => Err(problems),
    }
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
        let periodic =
            problems("- periodic: {exporter: {otlp: {protocol: grpc, endpoint: 'http://x:4317'}}}");
        assert_eq!(periodic[0].0, "readers[0].periodic");
        assert!(periodic[0].1.contains("scraping only"));
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
