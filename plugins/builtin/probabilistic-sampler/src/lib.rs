//! The built-in `probabilistic_sampler` processor: keeps a percentage of traces and log
//! records, deciding exactly as the collector's probabilisticsamplerprocessor (v0.161.0) does.
//!
//! ```yaml
//! processors:
//!   probabilistic_sampler:
//!     sampling_percentage: 25
//!     mode: proportional        # or hash_seed (the default), equalizing
//! ```
//!
//! The one idea: a decision is a pure function of the item (its trace ID, its trace state or
//! sampling attributes) and the config, so every span of a trace gets the same one, in any
//! request and any instance. Each mode finds a *randomness* and a *threshold* and keeps the
//! item when `threshold <= randomness` ([`sampling`]); a kept item carries its threshold on
//! (`ot=th:…` in the span's trace state, `sampling.threshold` on a log record), and in
//! `hash_seed` mode the randomness it was given (`rv:…`, `sampling.randomness`).

mod config;
mod sampling;
mod tracestate;

use config::{Config, Sampler};
use sampling::{Randomness, Threshold};
use tracestate::TraceState;
use trailhead_plugin::{
    Error, KeyValue, Level, LogBatch, Plugin, Signal, SpanBatch, TraceId, Value, string,
};

/// The processor: one sampler per signal.
pub struct ProbabilisticSampler {
    traces: Sampler,
    logs: Sampler,
    fail_closed: bool,
    precision: i32,
    sampling_priority: String,
}

impl Plugin for ProbabilisticSampler {
    type Config = Config;
    const NAME: &'static str = "probabilistic_sampler";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        config.validate()?;
        Ok(ProbabilisticSampler {
            traces: config.sampler(false),
            logs: config.sampler(true),
            fail_closed: config.fail_closed,
            precision: config.sampling_precision as i32,
            sampling_priority: config.sampling_priority,
        })
    }

    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces, Signal::Logs]
    }

    fn process_spans(&mut self, b: &impl SpanBatch) -> Result<(), Error> {
        let ids = b.trace_id_list(Level::Item);
        let states = b.trace_states(Level::Item);
        let priorities = b.attr_column(Level::Item, "sampling.priority");
        let mut dropped = Vec::new();
        let (mut changed, mut written) = (Vec::new(), Vec::new());
        for (i, id) in ids.iter().enumerate() {
            let before = states.get(i);
            let priority = span_priority(priorities.get(i));
            match self.decide_span(id, before, priority) {
                None => dropped.push(i as u32),
                Some(after) if after != before => {
                    changed.push(i as u32);
                    written.push(after);
                }
                Some(_) => {}
            }
        }
        if !changed.is_empty() {
            b.set_trace_states(Level::Item, &changed, &written);
        }
        if !dropped.is_empty() {
            b.remove(Level::Item, &dropped);
        }
        Ok(())
    }

    fn process_logs(&mut self, b: &impl LogBatch) -> Result<(), Error> {
        let ids = TraceId::split(&b.trace_ids()).collect::<Vec<_>>();
        let thresholds = b.attr_column(Level::Item, THRESHOLD_ATTR);
        let randomness = b.attr_column(Level::Item, RANDOMNESS_ATTR);
        let source = match &self.logs {
            Sampler::Hash { from_attribute, .. } if !from_attribute.is_empty() => {
                Some(b.attr_column(Level::Item, from_attribute))
            }
            _ => None,
        };
        let priorities = (!self.sampling_priority.is_empty())
            .then(|| b.attr_column(Level::Item, &self.sampling_priority));
        let mut dropped = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let record = Record {
                trace_id: id.0,
                threshold: thresholds.str(i).unwrap_or(""),
                randomness: randomness.str(i).unwrap_or(""),
                source: source.as_ref().and_then(|c| c.get(i)),
                priority: priorities.as_ref().and_then(|c| c.get(i)),
            };
            match self.decide_record(&record) {
                None => dropped.push(i as u32),
                Some(writes) => {
                    let i = i as u32;
                    for write in writes {
                        match write {
                            Write::Set(key, value) => b.set_attrs(
                                Level::Item,
                                i,
                                &[KeyValue {
                                    key: key.into(),
                                    value: string(value),
                                }],
                            ),
                            Write::Remove(key) => {
                                b.remove_attrs(Level::Item, &[i], &[key.to_string()])
                            }
                        }
                    }
                }
            }
        }
        if !dropped.is_empty() {
            b.remove(Level::Item, &dropped);
        }
        Ok(())
    }
}

const THRESHOLD_ATTR: &str = "sampling.threshold";
const RANDOMNESS_ATTR: &str = "sampling.randomness";

/// A span's `sampling.priority` (OpenTracing): 0 drops it, more than 0 keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Defer,
    Keep,
    Drop,
}

fn span_priority(value: Option<Value>) -> Priority {
    let number = match value {
        Some(Value::Int(i)) => i as f64,
        Some(Value::Double(d)) => d,
        Some(Value::Str(s)) => match go_parse_float(s) {
            Some(f) => f,
            None => return Priority::Defer,
        },
        _ => return Priority::Defer,
    };
    if number == 0.0 {
        Priority::Drop
    } else if number > 0.0 {
        Priority::Keep
    } else {
        Priority::Defer
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input: a result out of range is an error there.
fn go_parse_float(s: &str) -> Option<f64> {
    let f: f64 = s.parse().ok()?;
    let literal_infinity = s
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    (f.is_finite() || literal_infinity || f.is_nan()).then_some(f)
}

/// What a log record carries for the decision.
struct Record<'a> {
    trace_id: [u8; 16],
    threshold: &'a str,
    randomness: &'a str,
    source: Option<Value<'a>>,
    priority: Option<Value<'a>>,
}

/// A change to a kept log record's attributes, in the collector's order.
#[derive(Debug, PartialEq)]
enum Write {
    Set(&'static str, String),
    Remove(&'static str),
}

/// A log record's `sampling.threshold` and `sampling.randomness`, as read.
#[derive(Default)]
struct RecordCarrier {
    th: Option<Threshold>,
    rv: Option<Randomness>,
    writes: Vec<Write>,
}

impl RecordCarrier {
    /// The carrier, and whether either attribute failed to parse.
    fn read(record: &Record) -> (RecordCarrier, bool) {
        let mut carrier = RecordCarrier::default();
        let mut bad = false;
        if !record.threshold.is_empty() {
            match Threshold::parse(record.threshold) {
                Some(t) => carrier.th = Some(t),
                None => bad = true,
            }
        }
        if !record.randomness.is_empty() {
            match Randomness::parse(record.randomness) {
                Some(r) => carrier.rv = Some(r),
                None => bad = true,
            }
        }
        (carrier, bad)
    }
}

/// An item's sampling information: its trace state, or its record's attributes.
trait Carrier {
    fn threshold(&self) -> Option<Threshold>;
    fn clear_threshold(&mut self);
    fn update_threshold(&mut self, th: Threshold);
}

impl Carrier for TraceState {
    fn threshold(&self) -> Option<Threshold> {
        self.ot.threshold()
    }
    fn clear_threshold(&mut self) {
        self.ot.clear_threshold()
    }
    fn update_threshold(&mut self, th: Threshold) {
        self.ot.update_threshold(th)
    }
}

impl Carrier for RecordCarrier {
    fn threshold(&self) -> Option<Threshold> {
        self.th
    }
    fn clear_threshold(&mut self) {
        self.th = None;
        self.writes.push(Write::Remove(THRESHOLD_ATTR));
    }
    fn update_threshold(&mut self, th: Threshold) {
        if let Some(existing) = self.th
            && th < existing
        {
            return;
        }
        self.th = Some(th);
        self.writes.push(Write::Set(THRESHOLD_ATTR, th.tvalue()));
    }
}

/// What a mode found: the randomness (`None`: missing), the carrier to update if the item is
/// kept (`None`: leave it alone), and whether reading failed.
struct Found<C> {
    rnd: Option<Randomness>,
    carrier: Option<C>,
    failed: bool,
}

impl ProbabilisticSampler {
    /// A span's fate: `None` drops it; `Some(trace state)` keeps it with that trace state.
    fn decide_span(&self, id: &TraceId, state: &str, priority: Priority) -> Option<String> {
        let parsed = TraceState::parse(state);
        let has_id = id.is_valid();
        let found = match &self.traces {
            Sampler::Never => Found {
                rnd: Some(Randomness::ALL),
                failed: parsed.is_err(),
                carrier: Some(parsed.unwrap_or_else(|partial| partial)),
            },
            Sampler::Hash { seed, .. } => {
                let rnd = has_id.then(|| Randomness::from_hash(&id.0, *seed));
                match parsed {
                    // An item that has consistent sampling information is left as it is.
                    Ok(ts) if ts.ot.rv.is_none() && ts.ot.th.is_none() => {
                        let mut ts = ts;
                        ts.ot.set_randomness(rnd.unwrap_or(Randomness::ALL));
                        Found {
                            rnd,
                            carrier: Some(ts),
                            failed: false,
                        }
                    }
                    _ => Found {
                        rnd,
                        carrier: None,
                        failed: true,
                    },
                }
            }
            Sampler::Equalizing(_) | Sampler::Proportional { .. } => match parsed {
                Ok(ts) => Found {
                    rnd: ts
                        .ot
                        .randomness()
                        .or_else(|| has_id.then(|| Randomness::from_trace_id(&id.0))),
                    carrier: Some(ts),
                    failed: false,
                },
                Err(_) => Found {
                    rnd: None,
                    carrier: None,
                    failed: true,
                },
            },
        };
        let priority = |th| match priority {
            Priority::Defer => th,
            Priority::Keep => Threshold::ALWAYS,
            Priority::Drop => Threshold::NEVER,
        };
        let carrier = self.decide(&self.traces, found, priority)?;
        Some(match carrier {
            Some(ts) => ts.serialize(),
            None => state.to_string(),
        })
    }

    /// A log record's fate: `None` drops it; `Some(writes)` keeps it with those changes.
    fn decide_record(&self, record: &Record) -> Option<Vec<Write>> {
        let (mut carrier, bad) = RecordCarrier::read(record);
        let has_id = record.trace_id != [0; 16];
        let found = match &self.logs {
            Sampler::Never => Found {
                rnd: Some(Randomness::ALL),
                carrier: Some(carrier),
                failed: bad,
            },
            Sampler::Hash {
                seed,
                trace_id,
                from_attribute,
                ..
            } => {
                let mut rnd =
                    (*trace_id && has_id).then(|| Randomness::from_hash(&record.trace_id, *seed));
                if rnd.is_none() && !from_attribute.is_empty() {
                    let bytes = match &record.source {
                        Some(Value::Bytes(b)) => b.to_vec(),
                        Some(v) => pdata_text::as_string(v).into_bytes(),
                        None => Vec::new(),
                    };
                    if !bytes.is_empty() {
                        rnd = Some(Randomness::from_hash(&bytes, *seed));
                    }
                }
                if bad || carrier.rv.is_some() || carrier.th.is_some() {
                    Found {
                        rnd,
                        carrier: None,
                        failed: true,
                    }
                } else {
                    if let Some(r) = rnd {
                        carrier.rv = Some(r);
                        carrier.writes.push(Write::Set(RANDOMNESS_ATTR, r.rvalue()));
                    }
                    Found {
                        rnd,
                        carrier: Some(carrier),
                        failed: false,
                    }
                }
            }
            Sampler::Equalizing(_) | Sampler::Proportional { .. } => {
                if bad {
                    Found {
                        rnd: None,
                        carrier: None,
                        failed: true,
                    }
                } else {
                    Found {
                        rnd: carrier.rv.or_else(|| {
                            has_id.then(|| Randomness::from_trace_id(&record.trace_id))
                        }),
                        carrier: Some(carrier),
                        failed: false,
                    }
                }
            }
        };
        let priority = |th| self.record_priority(record).unwrap_or(th);
        let carrier = self.decide(&self.logs, found, priority)?;
        Some(carrier.map(|c| c.writes).unwrap_or_default())
    }

    /// A log record's `sampling_priority` attribute, as a threshold that replaces the decided
    /// one: a percentage, int or double, in (0, 100].
    fn record_priority(&self, record: &Record) -> Option<Threshold> {
        let percent = match record.priority? {
            Value::Double(d) => d,
            Value::Int(i) => i as f64,
            _ => 0.0,
        };
        let fraction = percent / 100.0;
        if fraction == 0.0 {
            return None;
        }
        sampling::probability_to_threshold(fraction, self.precision)
    }

    /// The steps every mode shares: check the arriving threshold against the randomness,
    /// fail open or closed, decide, apply priority, compare, and raise the kept item's
    /// threshold. `None` drops the item; `Some(carrier)` keeps it.
    fn decide<C: Carrier>(
        &self,
        sampler: &Sampler,
        mut found: Found<C>,
        priority: impl Fn(Threshold) -> Threshold,
    ) -> Option<Option<C>> {
        let mut failed = found.failed;
        if !failed {
            match (found.rnd, found.carrier.as_mut()) {
                (None, _) => failed = true,
                (Some(rnd), Some(carrier)) => {
                    // A threshold the randomness does not pass is a lie: cleared.
                    if let Some(th) = carrier.threshold()
                        && !th.should_sample(rnd)
                    {
                        carrier.clear_threshold();
                        failed = true;
                    }
                }
                (Some(_), None) => {}
            }
        }
        let threshold = if failed {
            if self.fail_closed {
                Threshold::NEVER
            } else {
                Threshold::ALWAYS
            }
        } else {
            let incoming = found.carrier.as_ref().and_then(|c| c.threshold());
            match sampler {
                Sampler::Never => Threshold::NEVER,
                Sampler::Hash { threshold, .. } => *threshold,
                Sampler::Equalizing(threshold) => match incoming {
                    Some(tv) if *threshold < tv => tv,
                    _ => *threshold,
                },
                Sampler::Proportional { ratio, precision } => {
                    let incoming = incoming.map_or(1.0, Threshold::probability);
                    sampling::probability_to_threshold(incoming * ratio, *precision)
                        .unwrap_or(Threshold::NEVER)
                }
            }
        };
        let threshold = priority(threshold);
        if !threshold.should_sample(found.rnd.unwrap_or(Randomness::ALL)) {
            return None;
        }
        if let Some(carrier) = found.carrier.as_mut() {
            carrier.update_threshold(threshold);
        }
        Some(found.carrier)
    }
}

trailhead_plugin::export!(ProbabilisticSampler);

#[cfg(test)]
mod tests;
