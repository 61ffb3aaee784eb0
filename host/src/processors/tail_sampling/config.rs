//! The `tail_sampling` processor's config: the collector's keys (v0.161.0) with their
//! defaults and their zero values, plus trailhead's own byte bound. Read from the processor
//! entry's JSON; an error starts with its key path (`policies[1].latency.threshold_ms: …`)
//! so the diagnostic points at that line.

use crate::config::values;
use serde::Deserialize;
use std::time::Duration;

/// A `tail_sampling` processor entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span its spans are held before the policies decide.
    #[serde(deserialize_with = "values::duration")]
    pub decision_wait: Duration,
    /// When above zero: once a root span arrives, the decision comes at most this long after.
    #[serde(deserialize_with = "values::duration")]
    pub decision_wait_after_root_received: Duration,
    /// How many traces are kept (waiting, or decided without a decision cache); a new trace
    /// beyond it evicts the oldest.
    pub num_traces: u64,
    /// Expected new traces a second: sizes the trace table up front.
    pub expected_new_traces_per_sec: u64,
    /// The collector's back-pressure switch; trailhead evicts instead, so only `false` is taken.
    pub block_on_overflow: bool,
    /// Stop evaluating at the first policy that samples.
    pub sample_on_first_match: bool,
    /// `trace-complete` (decide after `decision_wait`); `span-ingest` is refused.
    pub sampling_strategy: String,
    /// On shutdown, drop the traces still waiting instead of deciding them at once.
    pub drop_pending_traces_on_shutdown: bool,
    /// When above zero, a trace that grows past this many bytes is not sampled.
    pub maximum_trace_size_bytes: u64,
    /// The collector's shard count (1 to 256); trailhead's one table gives the same decisions.
    pub num_shards: u32,
    /// Remembers decided trace IDs so late spans follow the decision.
    pub decision_cache: DecisionCacheConfig,
    /// The policies, evaluated in order (drop policies first).
    pub policies: Vec<PolicyConfig>,
    /// trailhead's own key, not the collector's: the most bytes of spans held waiting for
    /// decisions (0: no bound beyond `num_traces`). Past it the oldest traces are evicted and
    /// counted in `trailhead_tail_sampling_evicted_traces_total{reason="max_held_bytes"}`.
    pub max_held_bytes: u64,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            decision_wait: Duration::from_secs(30),
            decision_wait_after_root_received: Duration::ZERO,
            num_traces: 50_000,
            expected_new_traces_per_sec: 0,
            block_on_overflow: false,
            sample_on_first_match: false,
            sampling_strategy: "trace-complete".into(),
            drop_pending_traces_on_shutdown: false,
            maximum_trace_size_bytes: 0,
            num_shards: 1,
            decision_cache: DecisionCacheConfig::default(),
            policies: Vec::new(),
            max_held_bytes: 0,
        }
    }
}

/// `decision_cache:`; a size of zero or less keeps no cache.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheConfig {
    /// How many sampled trace IDs are remembered.
    pub sampled_cache_size: i64,
    /// How many trace IDs not sampled are remembered.
    pub non_sampled_cache_size: i64,
}

/// One policy, at any level (top, `composite`, `and`, `drop`, `not` sub-policies); which
/// types each level takes is checked when the policies are built.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The policy's name; top-level names are unique and label the decision metrics.
    pub name: String,
    /// The policy's type: `always_sample`, `latency`, `status_code`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `latency:` settings.
    pub latency: LatencyConfig,
    /// `numeric_attribute:` settings.
    pub numeric_attribute: NumericAttributeConfig,
    /// `probabilistic:` settings.
    pub probabilistic: ProbabilisticConfig,
    /// `status_code:` settings.
    pub status_code: StatusCodeConfig,
    /// `string_attribute:` settings.
    pub string_attribute: StringAttributeConfig,
    /// `rate_limiting:` settings.
    pub rate_limiting: RateLimitingConfig,
    /// `bytes_limiting:` settings (refused: not in trailhead yet).
    pub bytes_limiting: Option<serde_json::Value>,
    /// `span_count:` settings.
    pub span_count: SpanCountConfig,
    /// `trace_state:` settings.
    pub trace_state: TraceStateConfig,
    /// `boolean_attribute:` settings.
    pub boolean_attribute: BooleanAttributeConfig,
    /// `ottl_condition:` settings.
    pub ottl_condition: OttlConditionConfig,
    /// `composite:` settings (top level only).
    pub composite: CompositeConfig,
    /// `and:` settings (top level and in `composite`).
    pub and: AndConfig,
    /// `not:` settings (top level, in `and` and in `drop`).
    pub not: Option<Box<NotConfig>>,
    /// `drop:` settings (top level only).
    pub drop: DropConfig,
    /// `plugin:` settings, trailhead's own type: a Wasm sampling plugin decides.
    pub plugin: PluginPolicyConfig,
}

/// `plugin:` (trailhead's own policy type): a component of the `sampler` world
/// (`wit/sampler`) given each whole trace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginPolicyConfig {
    /// Path to the plugin's `.wasm` component.
    pub path: String,
    /// When set, the component's sha256 must equal it, or the config is refused.
    pub sha256: String,
    /// The plugin's own settings, handed to its `init` as JSON.
    pub config: Option<serde_json::Value>,
    /// The plugin's memory and CPU time per call (`init` and each decision): a processor
    /// plugin's `limits:` keys, with its defaults (`memory_mib: 64`, `timeout_ms: 100`).
    pub limits: crate::processors::LimitSettings,
}

/// `ottl_condition:`; a trace is sampled when any span meets any `span` condition or any
/// span event meets any `spanevent` condition (at least one list must be set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OttlConditionConfig {
    /// What a condition that fails to evaluate does: `propagate` (the policy fails for the
    /// trace, sampling nothing), `ignore` (it is false, with a warning) or `silent` (it is
    /// false); unset behaves as `silent`, as in the collector.
    pub error_mode: String,
    /// OTTL conditions in the span context (`name`, `attributes["k"]`, `resource.…`).
    pub span: Vec<String>,
    /// OTTL conditions in the spanevent context (`name`, `attributes["k"]`, `span.…`).
    pub spanevent: Vec<String>,
}

/// `latency:`; the trace's duration is its earliest start to its latest end.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Sample a trace longer than this (milliseconds).
    pub threshold_ms: i64,
    /// When above zero, sample only up to this duration (milliseconds, inclusive).
    pub upper_threshold_ms: i64,
}

/// `numeric_attribute:`; a value of 0 leaves that bound open.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericAttributeConfig {
    /// The attribute key, on the resource or a span.
    pub key: String,
    /// The smallest value that matches (inclusive); 0 means no lower bound.
    pub min_value: i64,
    /// The largest value that matches (inclusive); 0 means no upper bound.
    pub max_value: i64,
    /// Sample traces where nothing matches instead.
    pub invert_match: bool,
}

/// `probabilistic:`; the collector's FNV-1a hash of salt and trace ID, so decisions match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticConfig {
    /// Salt for the hash; empty means the collector's `default-hash-seed`.
    pub hash_salt: String,
    /// Percentage of traces sampled.
    pub sampling_percentage: f64,
}

/// `status_code:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusCodeConfig {
    /// Any of `OK`, `ERROR`, `UNSET`: a span with one of them samples the trace.
    pub status_codes: Vec<String>,
}

/// `string_attribute:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StringAttributeConfig {
    /// The attribute key, on the resource or a span.
    pub key: String,
    /// Values that match exactly, or regular expressions with `enabled_regex_matching`.
    pub values: Vec<String>,
    /// Treat `values` as regular expressions (unanchored, as Go's `MatchString`).
    pub enabled_regex_matching: bool,
    /// Size of the cache of regex results (accepted for compatibility; results are not cached).
    pub cache_max_size: i64,
    /// Sample traces where nothing matches instead.
    pub invert_match: bool,
}

/// `rate_limiting:`; a token bucket of spans.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitingConfig {
    /// Spans a second the bucket refills with.
    pub spans_per_second: i64,
    /// The bucket's size; zero or less means twice `spans_per_second`.
    pub burst_capacity: i64,
}

/// `span_count:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanCountConfig {
    /// Sample a trace with at least this many spans.
    pub min_spans: i32,
    /// When above zero, and at most this many.
    pub max_spans: i32,
}

/// `trace_state:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceStateConfig {
    /// The W3C tracestate key.
    pub key: String,
    /// Values of that key that sample the trace.
    pub values: Vec<String>,
}

/// `boolean_attribute:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BooleanAttributeConfig {
    /// The attribute key, on the resource or a span.
    pub key: String,
    /// The value that matches.
    pub value: bool,
    /// Sample traces where nothing matches instead.
    pub invert_match: bool,
}

/// `composite:`; sub-policies in order, each with a share of the spans a second.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompositeConfig {
    /// Spans a second all sub-policies together may sample.
    pub max_total_spans_per_second: i64,
    /// The order the sub-policies are listed in (accepted; `composite_sub_policy` order rules).
    pub policy_order: Vec<String>,
    /// The sub-policies.
    pub composite_sub_policy: Vec<PolicyConfig>,
    /// Each sub-policy's percentage of `max_total_spans_per_second`; others get an equal share.
    pub rate_allocation: Vec<RateAllocationConfig>,
}

/// One `rate_allocation` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateAllocationConfig {
    /// The sub-policy's name.
    pub policy: String,
    /// Its percentage; zero or less means an equal share.
    pub percent: i64,
}

/// `and:`; samples when every sub-policy samples.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AndConfig {
    /// The sub-policies.
    pub and_sub_policy: Vec<PolicyConfig>,
}

/// `not:`; inverts its sub-policy's sampled or not.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotConfig {
    /// The sub-policy.
    pub not_sub_policy: PolicyConfig,
}

/// `drop:`; drops the trace when every sub-policy samples it, whatever other policies say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    /// The sub-policies.
    pub drop_sub_policy: Vec<PolicyConfig>,
}

impl TailSamplingConfig {
    /// Reads an entry's JSON; the error starts with the key path.
    pub fn from_value(value: &serde_json::Value) -> Result<TailSamplingConfig, String> {
        let value = match value {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => other.clone(),
        };
        let config: TailSamplingConfig =
            serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
                path if path == "." => e.inner().to_string(),
                path => format!("{path}: {}", e.inner()),
            })?;
        config.check()?;
        Ok(config)
    }

    /// What the collector's `Validate` refuses, and what trailhead does not do.
    fn check(&self) -> Result<(), String> {
        match self.sampling_strategy.as_str() {
            "trace-complete" => {}
            "span-ingest" => {
                return Err("sampling_strategy: `span-ingest` is not supported by trailhead; use `trace-complete`".into());
            }
            other => {
                return Err(format!(
                    "sampling_strategy: invalid `{other}`, expected one of `trace-complete` or `span-ingest`"
                ));
            }
        }
        if self.num_shards > 256 {
            return Err(format!(
                "num_shards: {} must not exceed 256",
                self.num_shards
            ));
        }
        if self.block_on_overflow {
            return Err("block_on_overflow: trailhead evicts the oldest trace when `num_traces` is reached (counted in trailhead_tail_sampling_evicted_traces_total) and does not block; leave it false".into());
        }
        Ok(())
    }
}
