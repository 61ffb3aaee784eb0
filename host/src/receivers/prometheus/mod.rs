//! The `prometheus` receiver: scrapes Prometheus targets as the collector's contrib receiver
//! (v0.161.0) does, with the Prometheus scrape and relabel semantics it embeds, and turns each
//! scrape into one OTLP metrics request.
//!
//! This file is its config: the collector's `config:` key holds a Prometheus configuration
//! (`global`, `scrape_configs`), read with Prometheus' defaults and checks. A Prometheus key
//! trailhead does not implement is refused where it is written, with why, never ignored.
//! The scrape loop is in `scrape`, relabeling in `relabel`, the mapping to OTLP in `to_otlp`,
//! Kubernetes discovery's config and targets in `kubernetes_sd`, and following discovered
//! targets in `discovered`; the exposition parser is [`crate::pdata::exposition`], shared with
//! trailhead's own metrics.

pub mod discovered;
pub mod kubernetes_sd;
pub mod relabel;
pub mod scrape;
pub mod to_otlp;

use relabel::RelabelConfig;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

/// `receivers: prometheus:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(dead_code, reason = "a refused key is read only to fail")]
pub struct PrometheusReceiverConfig {
    /// The Prometheus configuration: `global` and `scrape_configs`.
    pub config: PromConfig,
    /// The collector's key, default false: `true` (trim `_total` and unit suffixes from metric
    /// names) is refused, not implemented.
    #[serde(deserialize_with = "untrimmed")]
    pub trim_metric_suffixes: bool,
    /// Refused: the target allocator is an operator-side service trailhead does not talk to.
    #[serde(default)]
    target_allocator: Option<Refused<TargetAllocator>>,
    /// Refused: the collector's Prometheus-compatible API server.
    #[serde(default)]
    api_server: Option<Refused<ApiServer>>,
}

/// The Prometheus configuration under `config:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(dead_code, reason = "a refused key is read only to fail")]
pub struct PromConfig {
    /// Defaults for every scrape config, and labels added to every sample.
    pub global: GlobalConfig,
    /// The jobs to scrape.
    #[serde(deserialize_with = "scrape_configs")]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Refused: scrape configs read from other files.
    #[serde(default)]
    scrape_config_files: Option<Refused<ConfigFiles>>,
    /// Refused, as the collector refuses it.
    #[serde(default)]
    remote_write: Option<Refused<Unsupported>>,
    /// Refused, as the collector refuses it.
    #[serde(default)]
    remote_read: Option<Refused<Unsupported>>,
    /// Refused, as the collector refuses it.
    #[serde(default)]
    rule_files: Option<Refused<Unsupported>>,
    /// Refused, as the collector refuses it.
    #[serde(default)]
    alerting: Option<Refused<Unsupported>>,
}

/// `config.global`, with Prometheus' defaults (1m interval, 10s timeout).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// How often to scrape by default.
    #[serde(deserialize_with = "prom_duration")]
    pub scrape_interval: Duration,
    /// How long a scrape may take by default (at most `scrape_interval`).
    #[serde(deserialize_with = "optional_prom_duration")]
    pub scrape_timeout: Option<Duration>,
    /// Labels set on every sample (over a label of the same name, as the collector sets them).
    pub external_labels: BTreeMap<String, String>,
    /// Accepted and unused: trailhead evaluates no rules.
    #[serde(deserialize_with = "optional_prom_duration")]
    pub evaluation_interval: Option<Duration>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: None,
            external_labels: BTreeMap::new(),
            evaluation_interval: None,
        }
    }
}

impl GlobalConfig {
    /// The global timeout as Prometheus settles it: 10s, or the interval if that is shorter.
    fn timeout(&self) -> Result<Duration, String> {
        match self.scrape_timeout {
            Some(timeout) if timeout > self.scrape_interval => {
                Err("global scrape timeout greater than scrape interval".into())
            }
            Some(timeout) => Ok(timeout),
            None => Ok(DEFAULT_SCRAPE_TIMEOUT.min(self.scrape_interval)),
        }
    }
}

const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// One job: what to scrape, how, and how to relabel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(dead_code, reason = "a refused key is read only to fail")]
pub struct ScrapeConfig {
    /// The job name: the `job` label, and `service.name` on the resource.
    pub job_name: String,
    /// Keep the scraped labels where they clash with target labels (else they are renamed
    /// `exported_<name>`).
    pub honor_labels: bool,
    /// Use the timestamps the target exposes (default true).
    pub honor_timestamps: bool,
    /// How often to scrape (default: `global.scrape_interval`).
    #[serde(deserialize_with = "optional_prom_duration")]
    pub scrape_interval: Option<Duration>,
    /// How long a scrape may take (default: `global.scrape_timeout`, at most the interval).
    #[serde(deserialize_with = "optional_prom_duration")]
    pub scrape_timeout: Option<Duration>,
    /// The HTTP path scraped (default `/metrics`).
    pub metrics_path: String,
    /// `http` (default) or `https`.
    pub scheme: String,
    /// URL query parameters sent with each scrape.
    pub params: BTreeMap<String, Vec<String>>,
    /// The formats asked for, in order of preference (Accept header).
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// The format assumed when a target sends no usable Content-Type.
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// Targets listed in the config, with their labels.
    pub static_configs: Vec<StaticConfig>,
    /// Relabeling of targets, before they are scraped.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples, before they are sent.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Targets found in Kubernetes (`role: pod`).
    #[serde(deserialize_with = "kubernetes_sd_configs")]
    pub kubernetes_sd_configs: Vec<kubernetes_sd::KubernetesSdConfig>,
    /// Refused: see why in the error.
    #[serde(default)]
    file_sd_configs: Option<Refused<OtherSd>>,
    /// Refused: see why in the error.
    #[serde(default)]
    dns_sd_configs: Option<Refused<OtherSd>>,
    /// Refused: see why in the error.
    #[serde(default)]
    http_sd_configs: Option<Refused<OtherSd>>,
    /// Refused: see why in the error.
    #[serde(default)]
    consul_sd_configs: Option<Refused<OtherSd>>,
    /// Refused: see why in the error.
    #[serde(default)]
    ec2_sd_configs: Option<Refused<OtherSd>>,
    /// Refused: see why in the error.
    #[serde(default)]
    basic_auth: Option<Refused<ScrapeAuth>>,
    /// Refused: see why in the error.
    #[serde(default)]
    authorization: Option<Refused<ScrapeAuth>>,
    /// Refused: see why in the error.
    #[serde(default)]
    oauth2: Option<Refused<ScrapeAuth>>,
    /// Refused: see why in the error.
    #[serde(default)]
    tls_config: Option<Refused<ScrapeAuth>>,
    /// Refused: see why in the error.
    #[serde(default)]
    proxy_url: Option<Refused<ScrapeAuth>>,
    /// Refused: see why in the error.
    #[serde(default)]
    sample_limit: Option<Refused<Limits>>,
    /// Refused: see why in the error.
    #[serde(default)]
    label_limit: Option<Refused<Limits>>,
    /// Refused: see why in the error.
    #[serde(default)]
    target_limit: Option<Refused<Limits>>,
    /// Refused: see why in the error.
    #[serde(default)]
    body_size_limit: Option<Refused<Limits>>,
    /// Refused: see why in the error.
    #[serde(default)]
    scrape_native_histograms: Option<Refused<NativeHistograms>>,
    /// Refused: see why in the error.
    #[serde(default)]
    convert_classic_histograms_to_nhcb: Option<Refused<NativeHistograms>>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            job_name: String::new(),
            honor_labels: false,
            honor_timestamps: true,
            scrape_interval: None,
            scrape_timeout: None,
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            params: BTreeMap::new(),
            scrape_protocols: None,
            fallback_scrape_protocol: None,
            static_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            kubernetes_sd_configs: Vec::new(),
            file_sd_configs: None,
            dns_sd_configs: None,
            http_sd_configs: None,
            consul_sd_configs: None,
            ec2_sd_configs: None,
            basic_auth: None,
            authorization: None,
            oauth2: None,
            tls_config: None,
            proxy_url: None,
            sample_limit: None,
            label_limit: None,
            target_limit: None,
            body_size_limit: None,
            scrape_native_histograms: None,
            convert_classic_histograms_to_nhcb: None,
        }
    }
}

impl ScrapeConfig {
    /// The interval and timeout this job scrapes with, as Prometheus settles them.
    pub fn timing(&self, global: &GlobalConfig) -> Result<(Duration, Duration), String> {
        let interval = self.scrape_interval.unwrap_or(global.scrape_interval);
        let timeout = match self.scrape_timeout {
            Some(timeout) => timeout,
            None => global.timeout()?.min(interval),
        };
        if timeout > interval {
            return Err(format!(
                "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                self.job_name
            ));
        }
        if interval.is_zero() {
            return Err(format!(
                "scrape interval must be more than zero for job {:?}",
                self.job_name
            ));
        }
        Ok((interval, timeout))
    }

    /// Prometheus' checks of one scrape config.
    fn check(&self) -> Result<(), String> {
        if self.job_name.is_empty() {
            return Err("job_name is empty".into());
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(format!(
                "scheme {:?} for job {:?}: use http or https",
                self.scheme, self.job_name
            ));
        }
        if !self.metrics_path.starts_with('/') {
            return Err(format!(
                "metrics_path {:?} for job {:?} must start with /",
                self.metrics_path, self.job_name
            ));
        }
        Ok(())
    }
}

/// One `static_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// `host:port` of each target.
    pub targets: Vec<String>,
    /// Labels every one of these targets gets.
    pub labels: BTreeMap<String, String>,
}

/// An exposition format a scrape may ask for, by Prometheus' name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ScrapeProtocol {
    /// `text/plain;version=0.0.4`.
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
    /// `text/plain;version=1.0.0`.
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    /// `application/openmetrics-text;version=0.0.1`.
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    /// `application/openmetrics-text;version=1.0.0`.
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
}

impl ScrapeProtocol {
    /// Prometheus' default order: OpenMetrics first.
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// Its media type in an Accept header.
    pub fn media_type(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0;escaping=allow-utf-8",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => {
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            }
        }
    }

    /// Whether it is an OpenMetrics format.
    pub fn is_openmetrics(self) -> bool {
        matches!(
            self,
            ScrapeProtocol::OpenMetricsText0_0_1 | ScrapeProtocol::OpenMetricsText1_0_0
        )
    }
}

/// Reads `scrape_configs` and checks the list: each config, and job names unique.
fn scrape_configs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ScrapeConfig>, D::Error> {
    let configs = Vec::<ScrapeConfig>::deserialize(d)?;
    let mut seen = std::collections::BTreeSet::new();
    for config in &configs {
        config.check().map_err(de::Error::custom)?;
        if !seen.insert(config.job_name.as_str()) {
            return Err(de::Error::custom(format!(
                "found multiple scrape configs with job name {:?}",
                config.job_name
            )));
        }
    }
    Ok(configs)
}

/// Reads `kubernetes_sd_configs`, each checked as Prometheus checks it.
fn kubernetes_sd_configs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<kubernetes_sd::KubernetesSdConfig>, D::Error> {
    let configs = Vec::<kubernetes_sd::KubernetesSdConfig>::deserialize(d)?;
    for config in &configs {
        config.check().map_err(de::Error::custom)?;
    }
    Ok(configs)
}

/// A Prometheus duration (`1m30s`, `10s`, `1d`, `500ms`): units y, w, d, h, m, s, ms, each at
/// most once, largest first, integers only; `0` alone is zero.
pub fn parse_prom_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || {
        format!(
            "not a valid duration string: {text:?} (Prometheus durations: 1m30s, 10s, 500ms, 1d)"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut next_unit = 0;
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let at = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(bad)?;
        let (_, scale) = UNITS[next_unit + at];
        next_unit += at + 1;
        millis = number
            .checked_mul(scale)
            .and_then(|m| m.checked_add(millis))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    if text.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_millis(millis))
}

fn untrimmed<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match bool::deserialize(d)? {
        false => Ok(false),
        true => Err(de::Error::custom(
            "trim_metric_suffixes: true is not implemented by trailhead: metric names keep their suffixes",
        )),
    }
}

fn prom_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_prom_duration(&text).map_err(de::Error::custom)
}

fn optional_prom_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    prom_duration(d).map(Some)
}

/// Why a key is refused.
pub trait Reason {
    const WHY: &'static str;
}

/// A key trailhead knows and does not implement: reading it fails with its reason, at its
/// line and column.
#[derive(Debug)]
pub struct Refused<R>(PhantomData<R>);

impl<'de, R: Reason> Deserialize<'de> for Refused<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Err(de::Error::custom(R::WHY))
    }
}

macro_rules! reasons {
    ($($name:ident => $why:literal,)+) => {
        $(
            #[derive(Debug)]
            struct $name;
            impl Reason for $name {
                const WHY: &'static str = $why;
            }
        )+
    };
}

reasons! {
    TargetAllocator => "target_allocator is not implemented by trailhead: list targets in config.scrape_configs",
    ApiServer => "api_server (the collector's Prometheus-compatible API) is not implemented by trailhead",
    ConfigFiles => "scrape_config_files is not implemented by trailhead: write the scrape configs under config.scrape_configs",
    Unsupported => "the collector's prometheus receiver refuses this Prometheus feature, and so does trailhead",
    OtherSd => "this service discovery is not implemented by trailhead: list targets in static_configs",
    ScrapeAuth => "scrape authentication, TLS and proxies are not implemented by trailhead: scrape plain http targets",
    Limits => "scrape limits are not implemented by trailhead: a scrape is never cut short by them",
    NativeHistograms => "native histograms need the protobuf exposition format, which trailhead does not scrape",
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::from_str;

    #[test]
    fn prometheus_durations() {
        let ms = |t| parse_prom_duration(t).map(|d| d.as_millis());
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("1d"), Ok(86_400_000));
        assert_eq!(ms("1h2m3s4ms"), Ok(3_723_004));
        assert_eq!(ms("0"), Ok(0));
        for bad in ["", "10", "1.5s", "30s1m", "1s1s", "-1s", "5x", "s"] {
            assert!(ms(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn defaults_and_timing_follow_prometheus() {
        let config: PrometheusReceiverConfig = from_str(
            "config:\n  scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    static_configs:\n    - targets: ['h:1']\n",
        )
        .unwrap();
        let job = &config.config.scrape_configs[0];
        assert_eq!(job.metrics_path, "/metrics");
        assert!(job.honor_timestamps);
        let timing = job.timing(&config.config.global).unwrap();
        assert_eq!(timing, (Duration::from_secs(5), Duration::from_secs(5)));
        let slow = ScrapeConfig {
            scrape_timeout: Some(Duration::from_secs(20)),
            ..ScrapeConfig::default()
        };
        assert_eq!(
            slow.timing(&GlobalConfig::default()).unwrap().0,
            Duration::from_secs(60)
        );
        let wrong = ScrapeConfig {
            scrape_interval: Some(Duration::from_secs(5)),
            scrape_timeout: Some(Duration::from_secs(6)),
            ..ScrapeConfig::default()
        };
        assert!(wrong.timing(&GlobalConfig::default()).is_err());
    }

    #[test]
    fn refused_keys_say_why() {
        let read = |text: &str| from_str::<PrometheusReceiverConfig>(text).unwrap_err();
        let error = read("target_allocator:\n  endpoint: http://ta\n");
        assert!(
            error.contains("target_allocator is not implemented"),
            "{error}"
        );
        let error = read("config:\n  scrape_configs:\n  - job_name: a\n    file_sd_configs: []\n");
        assert!(
            error.contains("service discovery is not implemented"),
            "{error}"
        );
        let error = read("config:\n  scrape_configs:\n  - job_name: a\n  - job_name: a\n");
        assert!(error.contains("multiple scrape configs"), "{error}");
        let error = read("config:\n  scrape_configs:\n  - job_name: a\n    scheme: ftp\n");
        assert!(error.contains("use http or https"), "{error}");
    }
}
