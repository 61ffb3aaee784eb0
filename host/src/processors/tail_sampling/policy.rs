//! The sampling policies, each with the collector's semantics (v0.161.0,
//! `internal/sampling`): what a span or resource must hold to match, how attribute values of
//! another type read (a string key read as a number is 0, as pdata's `Int()` gives), and the
//! state the rate-limited ones keep. Built from the config once; a policy that cannot be built
//! is refused with its key path.

use super::config::{PolicyConfig, RateAllocationConfig};
use super::trace::{AttrValue, SpanView, TraceData, key_value};
use crate::processors::ottl::trace_state_lookup;
use ottl::OttlCondition;
use regex::Regex;
use std::collections::HashSet;
use std::time::Instant;

mod ottl;

/// What a policy says about a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Sampled,
    NotSampled,
    Dropped,
}

impl Decision {
    /// The label value in the decision metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Sampled => "sampled",
            Decision::NotSampled => "not_sampled",
            Decision::Dropped => "dropped",
        }
    }
}

/// Where a policy may stand, which decides the types it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Composite,
    And,
    Not,
}

/// A built policy.
#[derive(Debug)]
pub enum Policy {
    AlwaysSample,
    Latency {
        threshold_ms: i64,
        upper_ms: i64,
    },
    StatusCode(Vec<i32>),
    StringAttribute {
        key: String,
        matcher: Matcher,
        invert: bool,
    },
    NumericAttribute {
        key: String,
        min: i64,
        max: i64,
        invert: bool,
    },
    BooleanAttribute {
        key: String,
        value: bool,
        invert: bool,
    },
    Probabilistic {
        salt: String,
        threshold: u64,
    },
    RateLimiting(Bucket),
    SpanCount {
        min: i64,
        max: i64,
    },
    TraceState {
        key: String,
        values: HashSet<String>,
    },
    TraceFlags,
    /// `ottl_condition`: OTTL conditions on spans and span events.
    Ottl(Box<OttlCondition>),
    And(Vec<Policy>),
    Not(Box<Policy>),
    Drop(Vec<Policy>),
    Composite(Composite),
    /// trailhead's own `plugin` type: a Wasm sampling plugin decides.
    Plugin(Box<super::plugin::PluginPolicy>),
}

/// How `string_attribute` compares values.
#[derive(Debug)]
pub enum Matcher {
    /// Exact values; the empty string never matches.
    Exact(HashSet<String>),
    /// Unanchored regular expressions, any of which matches.
    Regex(Vec<Regex>),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(values) => values.contains(value),
            Matcher::Regex(list) => list.iter().any(|r| r.is_match(value)),
        }
    }
}

/// A token bucket of spans, as `golang.org/x/time/rate` keeps one: full at first, refilled at
/// `rate` a second up to `burst`; a request larger than the burst never passes.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: i64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(rate: i64, burst: i64) -> Bucket {
        Bucket {
            rate: rate as f64,
            burst,
            tokens: burst as f64,
            last: None,
        }
    }

    fn allow(&mut self, n: i64, now: Instant) -> bool {
        let elapsed = self.last.map_or(f64::INFINITY, |l| {
            now.saturating_duration_since(l).as_secs_f64()
        });
        let refill = if self.rate > 0.0 {
            elapsed * self.rate
        } else {
            0.0
        };
        let tokens = (self.tokens + refill).min(self.burst as f64) - n as f64;
        let ok = n <= self.burst && tokens >= 0.0;
        if ok {
            self.last = Some(now);
            self.tokens = tokens;
        }
        ok
    }
}

/// `composite`: sub-policies in order, each allowed a share of spans per wall-clock second.
#[derive(Debug)]
pub struct Composite {
    subs: Vec<(Policy, i64)>,
    max_total: i64,
    second: i64,
    sampled: Vec<i64>,
}

fn unix_second() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Policy {
    /// Builds a top-level policy; `at` is its key path (`policies[2]`).
    pub fn build(config: &PolicyConfig, at: &str) -> Result<Policy, String> {
        build(config, at, Level::Top)
    }

    /// Whether this is a `drop` policy, which the processor evaluates before the others.
    pub fn is_drop(&self) -> bool {
        matches!(self, Policy::Drop(_))
    }

    /// The policy's decision on `trace`; `now` is when the tick started. A policy that
    /// fails to evaluate samples nothing, as the collector counts an error apart and goes on.
    pub fn evaluate(&mut self, trace: &TraceData, now: Instant) -> Decision {
        self.decide(trace, now).unwrap_or_else(|error| {
            tracing::debug!(error = %error, "sampling policy error");
            Decision::NotSampled
        })
    }

    /// The decision, or the evaluation error that `and`, `not`, `drop` and `composite` pass
    /// up as they are, without deciding (only `ottl_condition` with `error_mode: propagate`
    /// fails).
    fn decide(&mut self, trace: &TraceData, now: Instant) -> Result<Decision, String> {
        let sampled = |yes: bool| match yes {
            true => Decision::Sampled,
            false => Decision::NotSampled,
        };
        Ok(match self {
            Policy::AlwaysSample => Decision::Sampled,
            Policy::Latency {
                threshold_ms,
                upper_ms,
            } => sampled(latency(trace, *threshold_ms, *upper_ms)),
            Policy::StatusCode(codes) => {
                sampled(any_span(trace, |s| codes.contains(&s.status_code())))
            }
            Policy::StringAttribute {
                key,
                matcher,
                invert,
            } => {
                let on_resource = |v: AttrValue| matcher.matches(str_of(v));
                let on_span = |v: AttrValue| {
                    let s = str_of(v);
                    !s.is_empty() && matcher.matches(s)
                };
                sampled(matched(trace, key, on_resource, on_span) != *invert)
            }
            Policy::NumericAttribute {
                key,
                min,
                max,
                invert,
            } => {
                let hit = |v: AttrValue| (*min..=*max).contains(&int_of(v));
                sampled(matched(trace, key, hit, hit) != *invert)
            }
            Policy::BooleanAttribute { key, value, invert } => {
                let hit = |v: AttrValue| bool_of(v) == *value;
                sampled(matched(trace, key, hit, hit) != *invert)
            }
            Policy::Probabilistic { salt, threshold } => {
                sampled(fnv1a(salt.as_bytes(), &trace.id) <= *threshold)
            }
            Policy::RateLimiting(bucket) => sampled(bucket.allow(trace.span_count, now)),
            Policy::SpanCount { min, max } => {
                let n = trace.span_count;
                sampled(n >= *min && (*max == 0 || n <= *max))
            }
            Policy::TraceState { key, values } => sampled(any_span(trace, |s| {
                trace_state_get(s.trace_state(), key).is_some_and(|v| values.contains(v))
            })),
            Policy::TraceFlags => sampled(any_span(trace, |s| s.flags() & 1 != 0)),
            Policy::Ottl(condition) => sampled(condition.evaluate(trace)?),
            Policy::And(subs) => sampled(all_sampled(subs, trace, now)?),
            Policy::Not(sub) => match sub.decide(trace, now)? {
                Decision::Sampled => Decision::NotSampled,
                Decision::NotSampled => Decision::Sampled,
                other => other,
            },
            Policy::Drop(subs) => match all_sampled(subs, trace, now)? {
                true => Decision::Dropped,
                false => Decision::NotSampled,
            },
            Policy::Composite(composite) => composite.decide(trace, now)?,
            Policy::Plugin(plugin) => plugin.evaluate(trace),
        })
    }
}

/// Whether no sub-policy says NotSampled, stopping at the first that does, or fails.
fn all_sampled(subs: &mut [Policy], trace: &TraceData, now: Instant) -> Result<bool, String> {
    for sub in subs {
        if sub.decide(trace, now)? == Decision::NotSampled {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Composite {
    /// A failing sub-policy fails the composite at once, later ones unasked, as the
    /// collector's does.
    fn decide(&mut self, trace: &TraceData, now: Instant) -> Result<Decision, String> {
        let second = unix_second();
        if second != self.second {
            self.second = second;
            self.sampled.iter_mut().for_each(|s| *s = 0);
        }
        for (i, (sub, allocated)) in self.subs.iter_mut().enumerate() {
            if sub.decide(trace, now)? == Decision::Sampled {
                let if_sampled = self.sampled[i] + trace.span_count;
                if if_sampled <= *allocated && if_sampled <= self.max_total {
                    self.sampled[i] = if_sampled;
                    return Ok(Decision::Sampled);
                }
                return Ok(Decision::NotSampled);
            }
        }
        Ok(Decision::NotSampled)
    }
}

/// The latency policy as the collector runs it: the span range grows span by span in arrival
/// order, and the first span at which it is in the band samples the trace.
fn latency(trace: &TraceData, threshold_ms: i64, upper_ms: i64) -> bool {
    let (mut min, mut max) = (0u64, 0u64);
    any_span(trace, |span| {
        let (start, end) = (span.start_time_unix_nano(), span.end_time_unix_nano());
        if min == 0 || start < min {
            min = start;
        }
        if max == 0 || end > max {
            max = end;
        }
        // Go's time.Sub saturates, and Milliseconds truncates toward zero.
        let nanos =
            (max as i64 as i128 - min as i64 as i128).clamp(i64::MIN as i128, i64::MAX as i128);
        let ms = (nanos / 1_000_000) as i64;
        if upper_ms == 0 {
            ms > threshold_ms
        } else {
            threshold_ms < ms && ms <= upper_ms
        }
    })
}

/// Whether any span of the trace meets `check`, in arrival order (stopping at the first).
fn any_span(trace: &TraceData, check: impl FnMut(SpanView<'_>) -> bool) -> bool {
    trace.resources().flat_map(|rs| rs.spans()).any(check)
}

/// Whether a resource's attribute `key` meets `on_resource`, or a span's meets `on_span`.
fn matched(
    trace: &TraceData,
    key: &str,
    on_resource: impl Fn(AttrValue) -> bool,
    on_span: impl Fn(AttrValue) -> bool,
) -> bool {
    trace.resources().any(|rs| {
        attribute(rs.attributes(), key).is_some_and(&on_resource)
            || rs
                .spans()
                .any(|s| attribute(s.attributes(), key).is_some_and(&on_span))
    })
}

/// The first attribute named `key`, as pdata's `Map.Get` finds it; a key with no value reads
/// as an empty value.
fn attribute<'a>(attributes: impl Iterator<Item = &'a [u8]>, key: &str) -> Option<AttrValue<'a>> {
    attributes
        .map(key_value)
        .find(|(k, _)| *k == key.as_bytes())
        .map(|(_, value)| value)
}

/// pdata's `Str()`: the string, or "" for any other type (or text that is not UTF-8, which
/// the collector's receivers refuse).
fn str_of(v: AttrValue<'_>) -> &str {
    match v {
        AttrValue::Str(s) => std::str::from_utf8(s).unwrap_or_default(),
        _ => "",
    }
}

/// pdata's `Int()`: the integer, or 0 for any other type.
fn int_of(v: AttrValue) -> i64 {
    match v {
        AttrValue::Int(i) => i,
        _ => 0,
    }
}

/// pdata's `Bool()`: the boolean, or false for any other type.
fn bool_of(v: AttrValue) -> bool {
    v == AttrValue::Bool(true)
}

/// FNV-1a, 64 bits, over the salt then the trace ID: the collector's `hashTraceID`.
pub fn fnv1a(salt: &[u8], id: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt.iter().chain(id) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `MaxUint64 × ratio` as the collector computes it with `big.Float`: the product rounded to
/// 64 significant bits (to nearest, ties to even), then truncated to an integer, saturating.
pub fn threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio.is_infinite() {
        return u64::MAX;
    }
    // ratio = mantissa × 2^exponent, exactly.
    let bits = ratio.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = match raw_exp {
        0 => (fraction, -1074),
        _ => (fraction | (1 << 52), raw_exp - 1075),
    };
    let product = u128::from(u64::MAX) * u128::from(mantissa);
    let width = 128 - product.leading_zeros() as i32;
    let (mut q, mut shift) = (product, 0);
    if width > 64 {
        shift = width - 64;
        q = product >> shift;
        let rest = product & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        if rest > half || (rest == half && q & 1 == 1) {
            q += 1;
            if q == 1u128 << 64 {
                q >>= 1;
                shift += 1;
            }
        }
    }
    let k = shift + exponent;
    if k >= 0 {
        if k >= 64 || q > u128::from(u64::MAX) >> k {
            return u64::MAX;
        }
        (q << k) as u64
    } else if -k >= 128 {
        0
    } else {
        (q >> -k) as u64
    }
}

/// The value of `key` in a W3C tracestate, as Go's `trace.ParseTraceState` then `Get` give
/// it: `None` for a tracestate that does not parse or a key it lacks.
fn trace_state_get<'a>(state: &'a str, key: &str) -> Option<&'a str> {
    trace_state_lookup(state, key).flatten()
}

/// Builds one policy at `level`; errors start with `at`, the policy's key path.
fn build(config: &PolicyConfig, at: &str, level: Level) -> Result<Policy, String> {
    let kind = config.kind.as_str();
    let allowed = match level {
        Level::Top => true,
        Level::Composite => !matches!(kind, "composite" | "drop" | "not"),
        Level::And => !matches!(kind, "composite" | "and" | "drop"),
        Level::Not => !matches!(kind, "composite" | "and" | "drop" | "not"),
    };
    if !allowed {
        return Err(format!("{at}.type: `{kind}` cannot be a sub-policy here"));
    }
    Ok(match kind {
        "always_sample" => Policy::AlwaysSample,
        "latency" => Policy::Latency {
            threshold_ms: config.latency.threshold_ms,
            upper_ms: config.latency.upper_threshold_ms,
        },
        "status_code" => status_code(&config.status_code.status_codes, at)?,
        "string_attribute" => {
            let c = &config.string_attribute;
            let matcher = match c.enabled_regex_matching {
                true => Matcher::Regex(
                    c.values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            Regex::new(v).map_err(|e| {
                                format!(
                                    "{at}.string_attribute.values[{i}]: invalid regex `{v}`: {e}"
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                false => {
                    Matcher::Exact(c.values.iter().filter(|v| !v.is_empty()).cloned().collect())
                }
            };
            Policy::StringAttribute {
                key: c.key.clone(),
                matcher,
                invert: c.invert_match,
            }
        }
        "numeric_attribute" => {
            let c = &config.numeric_attribute;
            if c.min_value == 0 && c.max_value == 0 {
                return Err(format!(
                    "{at}.numeric_attribute: set min_value or max_value (0 leaves a bound open; with neither the collector's policy cannot be built)"
                ));
            }
            Policy::NumericAttribute {
                key: c.key.clone(),
                min: if c.min_value == 0 {
                    i64::MIN
                } else {
                    c.min_value
                },
                max: if c.max_value == 0 {
                    i64::MAX
                } else {
                    c.max_value
                },
                invert: c.invert_match,
            }
        }
        "boolean_attribute" => Policy::BooleanAttribute {
            key: config.boolean_attribute.key.clone(),
            value: config.boolean_attribute.value,
            invert: config.boolean_attribute.invert_match,
        },
        "probabilistic" => {
            let c = &config.probabilistic;
            let salt = match c.hash_salt.as_str() {
                "" => "default-hash-seed".to_string(),
                s => s.to_string(),
            };
            Policy::Probabilistic {
                salt,
                threshold: threshold(c.sampling_percentage / 100.0),
            }
        }
        "rate_limiting" => {
            let c = &config.rate_limiting;
            let burst = match c.burst_capacity {
                b if b > 0 => b,
                _ => c.spans_per_second.saturating_mul(2),
            };
            Policy::RateLimiting(Bucket::new(c.spans_per_second, burst))
        }
        "span_count" => Policy::SpanCount {
            min: i64::from(config.span_count.min_spans),
            max: i64::from(config.span_count.max_spans),
        },
        "trace_state" => {
            let c = &config.trace_state;
            let values = c
                .values
                .iter()
                .filter(|v| !v.is_empty() && c.key.len() + v.len() < 256);
            Policy::TraceState {
                key: c.key.clone(),
                values: values.cloned().collect(),
            }
        }
        "trace_flags" => Policy::TraceFlags,
        "and" => Policy::And(subs(
            &config.and.and_sub_policy,
            &format!("{at}.and.and_sub_policy"),
            Level::And,
        )?),
        "drop" => Policy::Drop(subs(
            &config.drop.drop_sub_policy,
            &format!("{at}.drop.drop_sub_policy"),
            Level::And,
        )?),
        "not" => {
            let sub = config.not.as_deref().map(|n| &n.not_sub_policy);
            let sub = sub.ok_or_else(|| format!("{at}.not: needs a `not_sub_policy`"))?;
            Policy::Not(Box::new(build(
                sub,
                &format!("{at}.not.not_sub_policy"),
                Level::Not,
            )?))
        }
        "composite" => composite(config, at)?,
        "ottl_condition" => {
            Policy::Ottl(Box::new(OttlCondition::build(&config.ottl_condition, at)?))
        }
        "bytes_limiting" => {
            return Err(format!(
                "{at}.type: `bytes_limiting` is not supported by trailhead's tail_sampling yet"
            ));
        }
        "plugin" => Policy::Plugin(Box::new(super::plugin::PluginPolicy::build(
            &config.name,
            &config.plugin,
            at,
        )?)),
        "" => return Err(format!("{at}.type: a policy needs a type")),
        other => return Err(format!("{at}.type: unknown sampling policy type `{other}`")),
    })
}

fn status_code(codes: &[String], at: &str) -> Result<Policy, String> {
    if codes.is_empty() {
        return Err(format!(
            "{at}.status_code.status_codes: expected at least one status code to filter on"
        ));
    }
    let codes = codes.iter().enumerate().map(|(i, code)| match code.as_str() {
        "UNSET" => Ok(0),
        "OK" => Ok(1),
        "ERROR" => Ok(2),
        other => Err(format!("{at}.status_code.status_codes[{i}]: unknown status code `{other}`, supported: OK, ERROR, UNSET")),
    });
    Ok(Policy::StatusCode(codes.collect::<Result<_, _>>()?))
}

fn subs(configs: &[PolicyConfig], at: &str, level: Level) -> Result<Vec<Policy>, String> {
    let built = configs.iter().enumerate();
    built
        .map(|(i, c)| build(c, &format!("{at}[{i}]"), level))
        .collect()
}

/// `composite`: each sub-policy's spans a second, as the collector allocates them (a share in
/// percent, else an equal share, truncated to an integer).
fn composite(config: &PolicyConfig, at: &str) -> Result<Policy, String> {
    let c = &config.composite;
    let subs_at = format!("{at}.composite.composite_sub_policy");
    let max_total = c.max_total_spans_per_second;
    let default = max_total as f64 / c.composite_sub_policy.len() as f64;
    let percent = |name: &str| {
        let given = c
            .rate_allocation
            .iter()
            .rev()
            .find(|a: &&RateAllocationConfig| a.policy == name);
        given.map(|a| a.percent).filter(|p| *p > 0)
    };
    let mut subs = Vec::new();
    for (i, sub) in c.composite_sub_policy.iter().enumerate() {
        let policy = build(sub, &format!("{subs_at}[{i}]"), Level::Composite)?;
        let allocated = match percent(&sub.name) {
            Some(p) => p as f64 / 100.0 * max_total as f64,
            None => default,
        };
        subs.push((policy, allocated as i64));
    }
    let sampled = vec![0; subs.len()];
    Ok(Policy::Composite(Composite {
        subs,
        max_total,
        second: 0,
        sampled,
    }))
}

#[cfg(test)]
mod tests;
