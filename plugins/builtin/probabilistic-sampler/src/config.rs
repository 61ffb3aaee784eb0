//! The collector's `probabilistic_sampler` config, unchanged, with its defaults (mode
//! `hash_seed`, `fail_closed: true`, `sampling_precision: 4`) and its checks, turned into one
//! [`Sampler`] per signal as the collector's `makeSampler` does.

use crate::sampling::{self, MIN_PROBABILITY, Threshold};
use serde::Deserialize;

/// The processor's settings; every key is the collector's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Percent of traces (or log records) kept; 0 keeps none, 100 or more keeps all.
    #[serde(default)]
    pub sampling_percentage: f32,
    /// The FNV hash's seed in `hash_seed` mode; give each tier of samplers its own.
    #[serde(default)]
    pub hash_seed: u32,
    /// `hash_seed` (the default), `proportional` or `equalizing`.
    #[serde(default)]
    pub mode: Mode,
    /// Drop items whose sampling information cannot be read (a bad trace state, no
    /// randomness); `false` keeps them.
    #[serde(default = "yes")]
    pub fail_closed: bool,
    /// Hex digits of the threshold written to `th` (1 to 14).
    #[serde(default = "four")]
    pub sampling_precision: i64,
    /// Logs: where `hash_seed` mode finds randomness, `traceID` (the default) or `record`.
    #[serde(default = "trace_id")]
    pub attribute_source: String,
    /// Logs: the record attribute hashed when there is no trace ID to hash, or always with
    /// `attribute_source: record`.
    #[serde(default)]
    pub from_attribute: String,
    /// Logs: a record attribute holding a percentage that replaces the configured one for it.
    #[serde(default)]
    pub sampling_priority: String,
}

fn yes() -> bool {
    true
}

fn four() -> i64 {
    4
}

fn trace_id() -> String {
    "traceID".into()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mode {
    /// Unset: `hash_seed`.
    #[default]
    #[serde(rename = "")]
    Unset,
    #[serde(rename = "hash_seed")]
    HashSeed,
    #[serde(rename = "equalizing")]
    Equalizing,
    #[serde(rename = "proportional")]
    Proportional,
}

/// How one signal decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    /// Keeps nothing (0%, or too little for the hash's 14 bits).
    Never,
    /// The legacy mode: a seeded hash of the trace ID (or a log attribute) against a fixed
    /// threshold.
    Hash {
        threshold: Threshold,
        seed: u32,
        /// Logs: hash the trace ID (`attribute_source: traceID`).
        trace_id: bool,
        /// Logs: the attribute hashed otherwise.
        from_attribute: String,
    },
    /// Raises every item's threshold to this one.
    Equalizing(Threshold),
    /// Multiplies every item's probability by `ratio`.
    Proportional { ratio: f64, precision: i32 },
}

impl Config {
    /// The collector's `Validate`, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        let pct = f64::from(self.sampling_percentage);
        if !pct.is_finite() {
            return Err(format!(
                "sampling_percentage: sampling rate is invalid: {pct}%"
            ));
        }
        let ratio = pct / 100.0;
        if ratio < 0.0 {
            return Err(format!(
                "sampling_percentage: sampling rate is negative: {pct}%"
            ));
        }
        if ratio > 0.0 && ratio < MIN_PROBABILITY {
            return Err(format!(
                "sampling_percentage: sampling rate is too small: {pct}%"
            ));
        }
        if !["", "traceID", "record"].contains(&self.attribute_source.as_str()) {
            return Err(format!(
                "attribute_source: invalid attribute source: {}. Expected: traceID or record",
                self.attribute_source
            ));
        }
        match self.sampling_precision {
            0 => Err("sampling_precision: invalid sampling precision: 0".into()),
            p if p > i64::from(sampling::DIGITS) => Err(format!(
                "sampling_precision: sampling precision is too great, should be <= 14: {p}"
            )),
            // The collector accepts these and shifts by more than 64 bits; refused here.
            p if p < 0 => Err(format!(
                "sampling_precision: must be between 1 and 14, got {p}"
            )),
            _ => Ok(()),
        }
    }

    /// The sampler for traces (`logs: false`) or logs.
    pub fn sampler(&self, logs: bool) -> Sampler {
        let pct = self.sampling_percentage.min(100.0);
        let mode = match self.mode {
            Mode::Unset => Mode::HashSeed,
            mode => mode,
        };
        if pct == 0.0 {
            return Sampler::Never;
        }
        let ratio = (f64::from(pct) / 100.0).max(MIN_PROBABILITY);
        let precision = self.sampling_precision as i32;
        match mode {
            Mode::Equalizing => Sampler::Equalizing(
                sampling::probability_to_threshold(ratio, precision)
                    .expect("the ratio was brought into range"),
            ),
            Mode::Proportional => Sampler::Proportional { ratio, precision },
            Mode::Unset | Mode::HashSeed => match sampling::hash_threshold(pct) {
                None => Sampler::Never,
                Some(threshold) => Sampler::Hash {
                    threshold,
                    seed: self.hash_seed,
                    trace_id: !logs || self.attribute_source == "traceID",
                    from_attribute: self.from_attribute.clone(),
                },
            },
        }
    }
}
