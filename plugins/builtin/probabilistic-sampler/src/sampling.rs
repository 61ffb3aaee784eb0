//! Thresholds and randomness as OpenTelemetry's consistent probability sampling defines them
//! (56 bits each; an item is kept when its threshold is at most its randomness), with the
//! collector's encodings (`th` and `rv` hex values) and its legacy FNV hash of the trace ID.
//!
//! The one idea: every mode, the legacy `hash_seed` one included, ends in the same comparison
//! `threshold <= randomness`; the modes differ only in where both numbers come from.

/// 2^56: the number of randomness values, and the threshold that never samples.
pub const MAX: u64 = 1 << 56;
/// Hex digits in a 56-bit value.
pub const DIGITS: i32 = 14;

/// A rejection threshold: an item is kept when the threshold is at most its randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(pub u64);

/// 56 bits of an item's randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Randomness(pub u64);

impl Threshold {
    pub const ALWAYS: Threshold = Threshold(0);
    pub const NEVER: Threshold = Threshold(MAX);

    pub fn should_sample(self, rnd: Randomness) -> bool {
        self.0 <= rnd.0
    }

    /// The probability it keeps an item with.
    pub fn probability(self) -> f64 {
        (MAX - self.0) as f64 / MAX as f64
    }

    /// The `th` value: `0` always samples, nothing for never, else up to 14 hex digits without
    /// trailing zeros.
    pub fn tvalue(self) -> String {
        match self {
            Threshold::ALWAYS => "0".into(),
            Threshold::NEVER => String::new(),
            Threshold(t) => Randomness(t).rvalue().trim_end_matches('0').into(),
        }
    }

    /// Parses a `th` value: 1 to 14 hex digits, extended with zeros on the right.
    pub fn parse(s: &str) -> Option<Threshold> {
        if s.is_empty() || s.len() > DIGITS as usize {
            return None;
        }
        let value = hex(s)?;
        Some(Threshold(value << (4 * (DIGITS as usize - s.len()))))
    }
}

impl Randomness {
    /// What an item without randomness is compared with: every threshold but never samples it.
    pub const ALL: Randomness = Randomness(MAX - 1);

    /// The `rv` value: exactly 14 lowercase hex digits.
    pub fn rvalue(self) -> String {
        if self.0 >= MAX {
            return String::new();
        }
        format!("{:014x}", self.0)
    }

    /// Parses an `rv` value: exactly 14 hex digits.
    pub fn parse(s: &str) -> Option<Randomness> {
        if s.len() != DIGITS as usize {
            return None;
        }
        hex(s).map(Randomness)
    }

    /// The trace ID's last 56 bits, as W3C Trace Context Level 2 makes them random.
    pub fn from_trace_id(id: &[u8; 16]) -> Randomness {
        let low = u64::from_be_bytes(id[8..].try_into().expect("8 bytes"));
        Randomness(low & (MAX - 1))
    }

    /// The legacy mode's randomness: the 14 bits of a seeded FNV-1a hash the collector compares,
    /// placed so that `threshold <= randomness` decides as its `hash < rate` did.
    pub fn from_hash(bytes: &[u8], seed: u32) -> Randomness {
        let hashed32 = fnv1a(seed, bytes);
        let hashed = u64::from(hashed32 & (BUCKETS - 1));
        let flipped = u64::from(BUCKETS) - 1 - hashed;
        let unused18 = u64::from(hashed32 >> (32 - BUCKETS_LG2));
        let mixed28 = unused18 ^ (unused18 << 10);
        Randomness((flipped << 42) | (mixed28 << 14) | hashed)
    }
}

/// The legacy mode hashes into 2^14 buckets.
pub const BUCKETS_LG2: u32 = 14;
pub const BUCKETS: u32 = 1 << BUCKETS_LG2;

/// 32-bit FNV-1a over the seed (4 bytes, little-endian) and then the bytes.
pub fn fnv1a(seed: u32, bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in seed.to_le_bytes().iter().chain(bytes) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The legacy mode's threshold for a percentage: the collector scales it in 32-bit floats and
/// truncates, so 33.3% keeps 5455 buckets of 16384; `None` when that is no bucket at all.
pub fn hash_threshold(percent: f32) -> Option<Threshold> {
    let scaled = (percent * (BUCKETS as f32 / 100.0)) as u32;
    if scaled == 0 {
        return None;
    }
    Some(Threshold(u64::from(BUCKETS - scaled.min(BUCKETS)) << 42))
}

/// The smallest probability a threshold expresses: 2^-56.
pub const MIN_PROBABILITY: f64 = 1.0 / MAX as f64;

/// The threshold for a probability, rounded to `precision` hex digits (more where the
/// probability is close to 0 or 1, so it stays distinguishable), or `None` outside [2^-56, 1].
pub fn probability_to_threshold(fraction: f64, precision: i32) -> Option<Threshold> {
    let precision = if precision == 0 { DIGITS } else { precision };
    if !(MIN_PROBABILITY..=1.0).contains(&fraction) {
        return None;
    }
    if fraction == 1.0 {
        return Some(Threshold::ALWAYS);
    }
    let exp_f = frexp_exponent(fraction);
    let exp_r = frexp_exponent(1.0 - fraction);
    let precision = DIGITS.min((precision + exp_f / -4).max(precision + exp_r / -4));
    let scaled = (fraction * MAX as f64).round() as u64;
    let mut threshold = MAX.wrapping_sub(scaled);
    let shift = 4 * (DIGITS - precision);
    if shift != 0 {
        let shift = shift as u32;
        threshold = threshold.wrapping_add(1 << (shift - 1));
        threshold = (threshold >> shift) << shift;
    }
    Some(Threshold(threshold))
}

/// The binary exponent `e` of `x = m·2^e` with `m` in [0.5, 1), as C's `frexp`.
fn frexp_exponent(x: f64) -> i32 {
    if x == 0.0 || !x.is_finite() {
        return 0;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: normalise first.
        return frexp_exponent(x * 2f64.powi(54)) - 54;
    }
    biased - 1022
}

/// Hex digits only (Go's `ParseUint(s, 16, 64)`: no sign, no prefix).
fn hex(s: &str) -> Option<u64> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}
