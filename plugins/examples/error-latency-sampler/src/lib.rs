//! A `tail_sampling` policy of type `plugin`: samples a trace when any span has status ERROR
//! or when the trace lasts longer than `threshold_ms`, which is what the collector's
//! `status_code: [ERROR]` and `latency: {threshold_ms}` policies together decide.
//!
//! Config (`plugin.config`): `{"threshold_ms": 500, "panic_on_span_named": "…"}`; the
//! second key exists so tests can make the plugin trap on purpose.

mod wire;

wit_bindgen::generate!({
    path: "../../../wit/sampler",
    world: "sampler",
});

use serde::Deserialize;
use std::cell::RefCell;

/// The plugin's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Sample a trace longer than this (milliseconds), as the collector's latency policy.
    pub threshold_ms: i64,
    /// A span of this name makes `decide` panic (a test hook; empty: never).
    pub panic_on_span_named: String,
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
}

struct Plugin;

impl Guest for Plugin {
    fn init(config: String) -> Result<(), String> {
        let parsed: Config = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        CONFIG.with(|c| *c.borrow_mut() = parsed);
        Ok(())
    }

    fn decide(trace: Vec<u8>) -> Decision {
        CONFIG.with(|c| match keep(&c.borrow(), &trace) {
            true => Decision::Sampled,
            false => Decision::NotSampled,
        })
    }
}

export!(Plugin);

/// Whether the trace is kept: an ERROR span, or a duration over the threshold computed as the
/// collector does (earliest start to latest end, Go's saturating, truncating milliseconds).
pub fn keep(config: &Config, trace: &[u8]) -> bool {
    let spans = wire::spans(trace);
    if !config.panic_on_span_named.is_empty()
        && spans.iter().any(|s| s.name == config.panic_on_span_named)
    {
        panic!("asked to panic on span `{}`", config.panic_on_span_named);
    }
    if spans.iter().any(|s| s.status_code == 2) {
        return true;
    }
    let (mut min, mut max) = (0u64, 0u64);
    spans.iter().any(|span| {
        if min == 0 || span.start < min {
            min = span.start;
        }
        if max == 0 || span.end > max {
            max = span.end;
        }
        let nanos =
            (max as i64 as i128 - min as i64 as i128).clamp(i64::MIN as i128, i64::MAX as i128);
        (nanos / 1_000_000) as i64 > config.threshold_ms
    })
}
