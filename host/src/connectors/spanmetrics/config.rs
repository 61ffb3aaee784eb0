//! The `spanmetrics` connector's config: every key of the collector's (contrib
//! `connector/spanmetricsconnector` v0.161.0) with its defaults, and the checks its `Validate`
//! and its constructor make. A check's error names the key it is about, so the diagnostic points
//! at that line.

use crate::config::values;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The collector's delta temporality; any other text means cumulative, as in the collector.
pub const DELTA: &str = "AGGREGATION_TEMPORALITY_DELTA";
/// The collector's default namespace of the metric names.
pub const DEFAULT_NAMESPACE: &str = "traces.span.metrics";
/// The default explicit buckets, in milliseconds.
pub const DEFAULT_BUCKETS_MS: [f64; 16] = [
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10_000.0, 15_000.0,
];
/// The attributes every series carries; a `dimensions` entry may not repeat one.
pub const RESERVED: [&str; 5] = [
    "service.name",
    "span.kind",
    "status.code",
    "span.name",
    "collector.instance.id",
];

/// A `spanmetrics` connector entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    /// Span (then resource) attributes added to both metrics' series.
    pub dimensions: Vec<Dimension>,
    /// Attributes added to the `calls` series only.
    pub calls_dimensions: Vec<Dimension>,
    /// Built-in attributes left out (`service.name`, `span.name`, `span.kind`, `status.code`…).
    pub exclude_dimensions: Vec<String>,
    /// Deprecated in the collector since v0.130.0 and without effect there; accepted and warned.
    pub dimensions_cache_size: i64,
    /// How many resources are aggregated at once; the least recently seen is dropped beyond it.
    pub resource_metrics_cache_size: i64,
    /// The resource attributes that identify a resource (all of them when empty).
    pub resource_metrics_key_attributes: Vec<String>,
    /// `AGGREGATION_TEMPORALITY_CUMULATIVE` (default) or `AGGREGATION_TEMPORALITY_DELTA`.
    pub aggregation_temporality: String,
    /// The `duration` histogram.
    pub histogram: HistogramConfig,
    /// How often the metrics are sent on.
    #[serde(deserialize_with = "values::duration")]
    pub metrics_flush_interval: Duration,
    /// A resource not seen for this long is no longer sent (0: never expires; cumulative only).
    #[serde(deserialize_with = "values::duration")]
    pub metrics_expiration: Duration,
    /// A series not updated for this long is no longer sent (0: never expires; cumulative only).
    #[serde(deserialize_with = "values::duration")]
    pub series_expiration: Duration,
    /// How many delta series remember the time they were last sent, their next start time.
    pub metric_timestamp_cache_size: Option<i64>,
    /// The prefix of the metric names (`<namespace>.calls`); empty for none.
    pub namespace: String,
    /// Trace and span ids of the spans counted, on the data points.
    pub exemplars: ExemplarsConfig,
    /// The `events` sum, one count per span event.
    pub events: EventsConfig,
    /// Instrumentation scope names whose name and version become series attributes.
    pub include_instrumentation_scope: Vec<String>,
    /// Most series per metric and resource (0: no limit); beyond it spans count in one overflow series.
    pub aggregation_cardinality_limit: i64,
    /// Copy the spans' resource attributes onto the metrics' resource (they are copied anyway
    /// while the collector's `excludeResourceMetrics` feature gate is off, its default).
    pub add_resource_attributes: bool,
    /// Add `sampling.method` (`extrapolated` or `counted`) to the series.
    pub enable_metrics_sampling_method: bool,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            dimensions: Vec::new(),
            calls_dimensions: Vec::new(),
            exclude_dimensions: Vec::new(),
            dimensions_cache_size: 0,
            resource_metrics_cache_size: 1000,
            resource_metrics_key_attributes: Vec::new(),
            aggregation_temporality: "AGGREGATION_TEMPORALITY_CUMULATIVE".into(),
            histogram: HistogramConfig::default(),
            metrics_flush_interval: Duration::from_secs(60),
            metrics_expiration: Duration::ZERO,
            series_expiration: Duration::ZERO,
            metric_timestamp_cache_size: None,
            namespace: DEFAULT_NAMESPACE.into(),
            exemplars: ExemplarsConfig::default(),
            events: EventsConfig::default(),
            include_instrumentation_scope: Vec::new(),
            aggregation_cardinality_limit: 0,
            add_resource_attributes: false,
            enable_metrics_sampling_method: false,
        }
    }
}

/// One dimension: an attribute `name` (with an optional `default`) or a `glob` of names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dimension {
    /// The attribute looked up on the span, then on its resource (or event).
    pub name: String,
    /// The value used when neither has it; without one, the attribute is left out.
    #[serde(deserialize_with = "scalar_text")]
    pub default: Option<String>,
    /// A pattern of attribute names (`*` within a dot-separated part, `**` across parts).
    pub glob: String,
}

/// `histogram:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistogramConfig {
    /// No `duration` histogram at all.
    pub disable: bool,
    /// `ms` (default) or `s`: the unit of the durations and the buckets.
    #[serde(deserialize_with = "unit")]
    pub unit: Unit,
    /// Exponential buckets instead of explicit ones.
    pub exponential: Option<ExponentialConfig>,
    /// Explicit bucket bounds.
    pub explicit: Option<ExplicitConfig>,
    /// Attributes added to the `duration` series only.
    pub dimensions: Vec<Dimension>,
}

/// `histogram.exponential:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExponentialConfig {
    /// The most buckets per sign (0: the default, 160).
    pub max_size: i32,
}

/// `histogram.explicit:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplicitConfig {
    /// Bucket upper bounds as durations; left out, the histogram has one bucket (as in the collector).
    pub buckets: Option<Vec<Bound>>,
}

/// One explicit bucket bound.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Bound(#[serde(deserialize_with = "values::duration")] pub Duration);

/// `exemplars:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    /// Record exemplars.
    pub enabled: bool,
    /// The most exemplars on one data point per flush.
    pub max_per_data_point: i64,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig {
            enabled: false,
            max_per_data_point: 5,
        }
    }
}

/// `events:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Count span events in an `events` sum.
    pub enabled: bool,
    /// The event (then resource) attributes that label the `events` series.
    pub dimensions: Vec<Dimension>,
}

/// The unit of the `duration` histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unit {
    #[default]
    Milliseconds,
    Seconds,
}

impl Unit {
    /// The metric's unit text.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
        }
    }

    /// Nanoseconds in one unit.
    pub fn nanos(self) -> f64 {
        match self {
            Unit::Milliseconds => 1e6,
            Unit::Seconds => 1e9,
        }
    }
}

/// `ms` or `s`, any case, as the collector reads it.
fn unit<'de, D: Deserializer<'de>>(d: D) -> Result<Unit, D::Error> {
    let text = String::deserialize(d)?.to_lowercase();
    match text.as_str() {
        "ms" => Ok(Unit::Milliseconds),
        "s" => Ok(Unit::Seconds),
        _ => Err(serde::de::Error::custom(format!(
            "unknown Unit \"{text}\", allowed units are \"ms\" and \"s\""
        ))),
    }
}

/// A scalar read as text, as the collector's weakly typed decoding turns `default: 200` into "200".
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(
        Option::<Scalar>::deserialize(d)?.map(|scalar| match scalar {
            Scalar::Text(text) => text,
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }),
    )
}

impl SpanMetricsConfig {
    /// Reads an entry's JSON (the tests hold their configs as JSON); the error starts with
    /// the key path.
    pub fn from_value(value: &serde_json::Value) -> Result<SpanMetricsConfig, String> {
        crate::connectors::from_value(value, SpanMetricsConfig::problems)
    }

    /// Whether the metrics are delta (otherwise cumulative).
    pub fn is_delta(&self) -> bool {
        self.aggregation_temporality == DELTA
    }

    /// What the collector refuses (its `Validate` and its constructor), as (key path, why).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let lists = [
            ("dimensions", &self.dimensions),
            ("calls_dimensions", &self.calls_dimensions),
            ("histogram.dimensions", &self.histogram.dimensions),
        ];
        for (key, list) in lists {
            if let Err((i, why)) = check_dimensions(list) {
                problems.push((format!("{key}[{i}]"), why));
            }
        }
        if self.events.enabled {
            if self.events.dimensions.is_empty() {
                problems.push((
                    "events.dimensions".into(),
                    "no dimensions configured for events".into(),
                ));
            } else if let Err((i, why)) = check_dimensions(&self.events.dimensions) {
                problems.push((format!("events.dimensions[{i}]"), why));
            }
        }
        if self.histogram.explicit.is_some() && self.histogram.exponential.is_some() {
            problems.push((
                "histogram.exponential".into(),
                "use either `explicit` or `exponential` buckets histogram".into(),
            ));
        }
        if self.metrics_flush_interval.is_zero() {
            problems.push((
                "metrics_flush_interval".into(),
                "must be more than zero (the collector cannot start a flush ticker of zero)".into(),
            ));
        }
        if self.resource_metrics_cache_size <= 0 {
            problems.push((
                "resource_metrics_cache_size".into(),
                format!(
                    "{} must be positive (the collector cannot build a cache of that size)",
                    self.resource_metrics_cache_size
                ),
            ));
        }
        if self.is_delta() && self.delta_timestamp_cache_size() <= 0 {
            problems.push(("metric_timestamp_cache_size".into(), format!("invalid delta timestamp cache size: {}, the maximum number of the items in the cache should be positive", self.delta_timestamp_cache_size())));
        }
        if self.aggregation_cardinality_limit < 0 {
            problems.push((
                "aggregation_cardinality_limit".into(),
                format!(
                    "invalid aggregation_cardinality_limit: {}, the limit should be positive",
                    self.aggregation_cardinality_limit
                ),
            ));
        }
        if self.exemplars.enabled && self.exemplars.max_per_data_point < 0 {
            problems.push((
                "exemplars.max_per_data_point".into(),
                format!(
                    "invalid max_per_data_point: {}, the value should be positive",
                    self.exemplars.max_per_data_point
                ),
            ));
        }
        problems
    }

    /// The size of the delta start-time cache (default 1000).
    pub fn delta_timestamp_cache_size(&self) -> i64 {
        self.metric_timestamp_cache_size.unwrap_or(1000)
    }

    /// The explicit bucket bounds in the histogram's unit, or `None` for exponential buckets.
    pub fn explicit_bounds(&self) -> Option<Vec<f64>> {
        if self.histogram.exponential.is_some() {
            return None;
        }
        let unit = self.histogram.unit;
        Some(match &self.histogram.explicit {
            Some(explicit) => explicit
                .buckets
                .iter()
                .flatten()
                .map(|b| b.0.as_nanos() as f64 / unit.nanos())
                .collect(),
            None => DEFAULT_BUCKETS_MS
                .iter()
                .map(|ms| ms * 1e6 / unit.nanos())
                .collect(),
        })
    }
}

/// The collector's dimension checks: one of `name` or `glob`; no name twice, nor a reserved
/// one; no glob matching a name. The error is (the entry's index, why).
fn check_dimensions(list: &[Dimension]) -> Result<(), (usize, String)> {
    let mut names: Vec<&str> = RESERVED.to_vec();
    let mut globs = Vec::new();
    for (i, d) in list.iter().enumerate() {
        match (d.name.is_empty(), d.glob.is_empty()) {
            (false, false) => {
                return Err((
                    i,
                    format!(
                        "dimension entry must set only one of `name` or `glob`, got both: name={:?} glob={:?}",
                        d.name, d.glob
                    ),
                ));
            }
            (true, true) => {
                return Err((i, "dimension entry must set one of `name` or `glob`".into()));
            }
            (false, true) => {
                if names.contains(&d.name.as_str()) {
                    return Err((i, format!("duplicate dimension name {:?}", d.name)));
                }
                names.push(&d.name);
            }
            (true, false) => {
                if d.default.is_some() {
                    return Err((
                        i,
                        format!(
                            "`default` is not supported on `glob` dimension {:?}",
                            d.glob
                        ),
                    ));
                }
                let pattern = super::glob::Glob::new(&d.glob)
                    .map_err(|why| (i, format!("invalid dimension glob {:?}: {why}", d.glob)))?;
                globs.push((i, pattern));
            }
        }
    }
    for name in names {
        if let Some((i, glob)) = globs.iter().find(|(_, g)| g.is_match(name)) {
            return Err((
                *i,
                format!(
                    "duplicate dimension name {name:?} conflicting with glob {:?}",
                    glob.text()
                ),
            ));
        }
    }
    Ok(())
}
