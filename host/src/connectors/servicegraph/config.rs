//! The `servicegraph` connector's config: the collector's keys (contrib
//! `connector/servicegraphconnector`, as its sources stand after v0.154.0 removed the legacy
//! feature gates) with their defaults and its `Validate` checks, each error naming its key.

use crate::config::values;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The default latency buckets, in seconds.
pub const DEFAULT_BUCKETS_S: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// A `servicegraph` connector entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceGraphConfig {
    /// Deprecated in the collector and without effect: the metrics pipeline names the exporter.
    pub metrics_exporter: String,
    /// Latency bucket bounds (durations, reported in seconds).
    #[serde(deserialize_with = "durations")]
    pub latency_histogram_buckets: Option<Vec<Duration>>,
    /// Exponential latency histograms of at most this many buckets instead (0: explicit buckets).
    pub exponential_histogram_max_size: i32,
    /// Span or resource attributes added to the series as `client_<name>` and `server_<name>`.
    pub dimensions: Vec<String>,
    /// The store pairing client and server spans.
    pub store: StoreConfig,
    /// How often series not updated for 15 minutes are dropped (0 or less: every minute).
    #[serde(deserialize_with = "signed_duration")]
    pub cache_loop: i128,
    /// How often unpaired edges past their `store.ttl` are expired (0 or less: every 2s).
    #[serde(deserialize_with = "signed_duration")]
    pub store_expiration_loop: i128,
    /// Span attributes naming an uninstrumented peer, highest priority first.
    pub virtual_node_peer_attributes: Option<Vec<String>>,
    /// Add `virtual_node` (`client`, `server` or empty) to the series.
    pub virtual_node_extra_label: bool,
    /// How often the metrics are sent on; 0 sends them after every request of spans.
    #[serde(deserialize_with = "optional_signed_duration")]
    pub metrics_flush_interval: Option<i128>,
    /// Attributes naming a database: a client span with one is an edge to that database.
    pub database_name_attributes: Vec<String>,
    /// Metric timestamps are this long before the flush.
    #[serde(deserialize_with = "values::duration")]
    pub metrics_timestamp_offset: Duration,
}

impl Default for ServiceGraphConfig {
    fn default() -> Self {
        ServiceGraphConfig {
            metrics_exporter: String::new(),
            latency_histogram_buckets: None,
            exponential_histogram_max_size: 0,
            dimensions: Vec::new(),
            store: StoreConfig::default(),
            cache_loop: 60_000_000_000,
            store_expiration_loop: 2_000_000_000,
            virtual_node_peer_attributes: None,
            virtual_node_extra_label: false,
            metrics_flush_interval: None,
            database_name_attributes: Vec::new(),
            metrics_timestamp_offset: Duration::ZERO,
        }
    }
}

/// `store:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The most unpaired edges held; a new one beyond it is dropped unless the oldest expired.
    pub max_items: i64,
    /// How long an edge waits for its other span.
    #[serde(deserialize_with = "signed_duration")]
    pub ttl: i128,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_items: 1000,
            ttl: 2_000_000_000,
        }
    }
}

/// A duration in nanoseconds that may be negative (the collector takes `-1s` for these keys).
fn signed_duration<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Nanoseconds(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Nanoseconds(n) => Ok(n as i128),
        Raw::Text(text) => {
            let (sign, rest) = match text.trim().strip_prefix('-') {
                Some(rest) => (-1, rest.to_string()),
                None => (1, text),
            };
            let duration = values::parse_duration(&rest).map_err(serde::de::Error::custom)?;
            Ok(sign * duration.as_nanos() as i128)
        }
    }
}

fn optional_signed_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i128>, D::Error> {
    signed_duration(d).map(Some)
}

/// A list of bucket durations.
fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    #[derive(Deserialize)]
    struct Bound(#[serde(deserialize_with = "values::duration")] Duration);
    let bounds = Option::<Vec<Bound>>::deserialize(d)?;
    Ok(bounds.map(|list| list.into_iter().map(|b| b.0).collect()))
}

impl ServiceGraphConfig {
    /// Reads an entry's JSON (the tests hold their configs as JSON); the error starts with
    /// the key path.
    pub fn from_value(value: &serde_json::Value) -> Result<ServiceGraphConfig, String> {
        crate::connectors::from_value(value, ServiceGraphConfig::problems)
    }

    /// What the collector's `Validate` refuses, as (key path, why).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let max_size = self.exponential_histogram_max_size;
        if self.latency_histogram_buckets.is_none() && max_size < 0 {
            problems.push((
                "exponential_histogram_max_size".into(),
                "`exponential_histogram_max_size` can not be negative".into(),
            ));
        }
        if self.latency_histogram_buckets.is_some() && max_size > 0 {
            problems.push((
                "exponential_histogram_max_size".into(),
                "use either `latency_histogram_buckets` or `exponential_histogram_max_size`".into(),
            ));
        }
        problems
    }

    /// The explicit bounds in seconds, or `None` for exponential histograms (a non-zero max size).
    pub fn bounds(&self) -> Option<Vec<f64>> {
        if self.exponential_histogram_max_size != 0 {
            return None;
        }
        Some(match &self.latency_histogram_buckets {
            Some(list) => list.iter().map(Duration::as_secs_f64).collect(),
            None => DEFAULT_BUCKETS_S.to_vec(),
        })
    }

    /// The peer attributes, `peer.service`, `db.name`, `db.system` when not set.
    pub fn peer_attributes(&self) -> Vec<String> {
        match &self.virtual_node_peer_attributes {
            Some(list) => list.clone(),
            None => ["peer.service", "db.name", "db.system"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// The database name attributes, `db.name` when empty.
    pub fn database_attributes(&self) -> Vec<String> {
        match self.database_name_attributes.is_empty() {
            true => vec!["db.name".into()],
            false => self.database_name_attributes.clone(),
        }
    }

    /// The flush interval; zero (or less) flushes after every request of spans.
    pub fn flush_interval(&self) -> Duration {
        match self.metrics_flush_interval {
            None => Duration::from_secs(60),
            Some(n) if n <= 0 => Duration::ZERO,
            Some(n) => Duration::from_nanos(n as u64),
        }
    }

    /// The store expiration and cache cleaning periods, with the collector's fallbacks.
    pub fn loops(&self) -> (Duration, Duration) {
        let or = |n: i128, default: u64| match n {
            n if n <= 0 => Duration::from_nanos(default),
            n => Duration::from_nanos(n as u64),
        };
        (
            or(self.store_expiration_loop, 2_000_000_000),
            or(self.cache_loop, 60_000_000_000),
        )
    }
}
