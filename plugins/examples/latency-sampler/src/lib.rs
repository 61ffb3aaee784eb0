//! latency-sampler: keeps the spans worth keeping and samples the rest by trace.
//!
//! Config (every field optional):
//! `{"min_duration_ms": 100, "keep_percent": 25, "keep_errors": true}`.
//!
//! Each span is
//! - **kept** if its status is `ERROR` and `keep_errors` is on (the default): errors are what
//!   someone will look for;
//! - **dropped** if it took less than `min_duration_ms` (default 0);
//! - otherwise **kept** for `keep_percent` percent of traces (default 100).
//!
//! Every kept span gets `latency.duration_ms` (a double), so a backend can query latency
//! without computing it.
//!
//! The sampling decision is made on the trace ID alone, so every span of a trace gets the same
//! one, in this instance, in every other instance and in every other gateway sampling the same
//! way: a trace is never kept in pieces. As in OpenTelemetry's consistent probability sampling
//! (the collector's probabilistic sampler, OTEP 235), the number read is the trace ID's last
//! 7 bytes, the 56 bits W3C Trace Context Level 2 makes random. A trace is kept when that
//! number is at least the rejection threshold `(1 - keep_percent / 100) × 2^56`: all traces at
//! 100 %, none at 0 %.

use serde::Deserialize;
use std::time::Duration;
use trailhead_plugin::{Error, Level, Plugin, Signal, SpanBatch, StatusCode, TraceId, double, kv};

/// The processor's config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Spans shorter than this are dropped (unless kept as errors).
    min_duration_ms: u64,
    /// The share of traces kept among the spans that are long enough, 0 to 100.
    keep_percent: f64,
    /// Whether a span with status `ERROR` is always kept.
    keep_errors: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_duration_ms: 0,
            keep_percent: 100.0,
            keep_errors: true,
        }
    }
}

/// The attribute every kept span gets.
const DURATION_ATTR: &str = "latency.duration_ms";

/// The number of distinct values of a trace ID's random part (56 bits).
const RANDOMNESS_RANGE: f64 = (1u64 << 56) as f64;

struct LatencySampler {
    min_duration: Duration,
    /// A trace is kept when its randomness is at least this.
    rejection_threshold: u64,
    keep_errors: bool,
}

impl LatencySampler {
    fn sampled(&self, trace: TraceId) -> bool {
        trace.randomness() >= self.rejection_threshold
    }
}

impl Plugin for LatencySampler {
    type Config = Config;
    const NAME: &'static str = "latency-sampler";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        if !(0.0..=100.0).contains(&config.keep_percent) {
            return Err(format!(
                "keep_percent: must be between 0 and 100, not {}",
                config.keep_percent
            ));
        }
        let rejected = 1.0 - config.keep_percent / 100.0;
        Ok(LatencySampler {
            min_duration: Duration::from_millis(config.min_duration_ms),
            rejection_threshold: (rejected * RANDOMNESS_RANGE).round() as u64,
            keep_errors: config.keep_errors,
        })
    }

    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces]
    }

    fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
        let durations = batch.durations();
        let traces = batch.trace_id_list(Level::Item);
        let statuses = batch.status_codes();
        let mut dropped = Vec::new();
        for (i, duration) in durations.iter().enumerate() {
            let error = self.keep_errors && statuses[i] == StatusCode::Error;
            if error || (*duration >= self.min_duration && self.sampled(traces[i])) {
                let millis = duration.as_nanos() as f64 / 1e6;
                batch.set_attrs(Level::Item, i as u32, &[kv(DURATION_ATTR, double(millis))]);
            } else {
                dropped.push(i as u32);
            }
        }
        batch.remove(Level::Item, &dropped);
        Ok(())
    }
}

trailhead_plugin::export!(LatencySampler);

#[cfg(test)]
mod tests {
    use super::*;
    use trailhead_plugin::testing::{self, Spans, otlp};

    /// Two traces from `checkout` (one of them with an error) and one from `cache`. Trace
    /// `4bf9…` has the highest randomness there is, `5b8e…` and `0af7…` nearly the lowest.
    const FIXTURE: &str = include_str!("../testdata/spans.json");

    /// Runs the plugin with `config` over the fixture; the names of the spans left, in order.
    fn kept(
        config: &str,
    ) -> (
        Vec<String>,
        otlp::collector::trace::v1::ExportTraceServiceRequest,
    ) {
        let mut plugin: LatencySampler = testing::init(config).expect("config is valid");
        let mut spans = Spans::from_json(FIXTURE).expect("fixture is OTLP JSON");
        spans.run(&mut plugin).expect("process_spans returns Ok");
        let request = spans.request();
        let names = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect();
        (names, request)
    }

    fn duration_attr(span: &otlp::trace::v1::Span) -> Option<f64> {
        use otlp::common::v1::any_value::Value;
        let kv = span.attributes.iter().find(|kv| kv.key == DURATION_ATTR)?;
        match kv.value.as_ref()?.value {
            Some(Value::DoubleValue(d)) => Some(d),
            _ => None,
        }
    }

    // Short spans go, the short error stays, and `cache`'s resource, left empty, goes too.
    #[test]
    fn drops_short_spans_but_keeps_errors() {
        let (names, request) = kept(r#"{"min_duration_ms": 100}"#);
        assert_eq!(names, ["POST /checkout", "POST /checkout", "charge card"]);
        assert_eq!(request.resource_spans.len(), 1);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(duration_attr(&spans[0]), Some(250.0));
        assert_eq!(duration_attr(&spans[1]), Some(300.0));
        assert_eq!(duration_attr(&spans[2]), Some(1.0));
    }

    // Without keep_errors, an error is judged by its duration like any span.
    #[test]
    fn errors_can_be_dropped() {
        let (names, _) = kept(r#"{"min_duration_ms": 100, "keep_errors": false}"#);
        assert_eq!(names, ["POST /checkout", "POST /checkout"]);
    }

    // Sampling keeps or drops whole traces: at 50 %, the trace with high randomness stays
    // entire, the others go but for their error.
    #[test]
    fn samples_whole_traces() {
        let (names, _) = kept(r#"{"keep_percent": 50}"#);
        assert_eq!(names, ["POST /checkout", "cache lookup", "charge card"]);
        let (none, _) = kept(r#"{"keep_percent": 0, "keep_errors": false}"#);
        assert!(none.is_empty());
    }

    // The default config keeps everything and only stamps durations.
    #[test]
    fn default_keeps_all() {
        let (names, request) = kept("");
        assert_eq!(names.len(), 5);
        let cache = &request.resource_spans[1].scope_spans[0].spans[0];
        assert_eq!(duration_attr(cache), Some(1.0));
    }

    // A bad config is refused with the field at fault, as trailhead reports it.
    #[test]
    fn bad_config_names_the_field() {
        let error = testing::init::<LatencySampler>(r#"{"min_duration_ms": "x"}"#)
            .err()
            .unwrap();
        assert!(
            error.starts_with(r#"min_duration_ms: invalid type: string "x", expected u64"#),
            "{error}"
        );
        let error = testing::init::<LatencySampler>(r#"{"keep_percent": 150}"#)
            .err()
            .unwrap();
        assert_eq!(error, "keep_percent: must be between 0 and 100, not 150");
        let error = testing::init::<LatencySampler>(r#"{"keep": 1}"#)
            .err()
            .unwrap();
        assert!(error.contains("unknown field `keep`"), "{error}");
    }
}
