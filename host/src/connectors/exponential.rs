//! The exponential histogram the collector's spanmetrics uses (lightstep go-expohisto): it
//! starts at scale 20 and, when a value would need more than `max_size` buckets, halves the
//! resolution (lowers the scale) until the range fits. Bucket `i` at scale `s` holds the values
//! in (2^(i/2^s), 2^((i+1)/2^s)]; zero goes to the zero count. Only the positive range is kept:
//! durations are never negative.

use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use std::collections::BTreeMap;

/// The scale a histogram starts at.
const MAX_SCALE: i32 = 20;
/// The lowest scale (each bucket spans 2^1024).
const MIN_SCALE: i32 = -10;
/// Buckets when `max_size` is zero or invalid.
pub const DEFAULT_MAX_SIZE: i32 = 160;
const SIGNIFICAND_BITS: u32 = 52;
const SIGNIFICAND_MASK: u64 = (1 << SIGNIFICAND_BITS) - 1;
const EXPONENT_BIAS: i32 = 1023;
/// The smallest normal float, 2^-1022.
const MIN_NORMAL: f64 = f64::MIN_POSITIVE;

/// One series' exponential histogram.
#[derive(Debug, Clone)]
pub struct Exponential {
    max_size: i32,
    scale: i32,
    count: u64,
    zero_count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: BTreeMap<i32, u64>,
}

impl Exponential {
    /// An empty histogram of at most `max_size` buckets, clamped as go-expohisto clamps it.
    pub fn new(max_size: i32) -> Self {
        let max_size = match max_size {
            n if n <= 0 => DEFAULT_MAX_SIZE,
            1 => 2,
            n => n.min(16_384),
        };
        Exponential {
            max_size,
            scale: MAX_SCALE,
            count: 0,
            zero_count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            buckets: BTreeMap::new(),
        }
    }

    /// Adds `value` `n` times.
    pub fn record(&mut self, value: f64, n: u64) {
        if self.count == 0 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += n;
        if value == 0.0 {
            self.zero_count += n;
            return;
        }
        self.sum += value * n as f64;
        let mut index = map_to_index(value, self.scale);
        if let (Some((&low, _)), Some((&high, _))) = (
            self.buckets.first_key_value(),
            self.buckets.last_key_value(),
        ) {
            let (mut low, mut high) = (low.min(index), high.max(index));
            let mut change = 0;
            while high - low >= self.max_size {
                low >>= 1;
                high >>= 1;
                change += 1;
            }
            if change > 0 {
                self.downscale(change);
                index = map_to_index(value, self.scale);
            }
        }
        *self.buckets.entry(index).or_default() += n;
    }

    /// Lowers the scale by `change`, merging each 2^change buckets into one.
    fn downscale(&mut self, change: i32) {
        let change = change.min(self.scale - MIN_SCALE);
        let old = std::mem::take(&mut self.buckets);
        for (index, count) in old {
            *self.buckets.entry(index >> change).or_default() += count;
        }
        self.scale -= change;
    }

    /// The data point (without attributes and times).
    pub fn point(&self) -> ExponentialHistogramDataPoint {
        let positive = match (
            self.buckets.first_key_value(),
            self.buckets.last_key_value(),
        ) {
            (Some((&low, _)), Some((&high, _))) => Buckets {
                offset: low,
                bucket_counts: (low..=high)
                    .map(|i| self.buckets.get(&i).copied().unwrap_or(0))
                    .collect(),
            },
            _ => Buckets::default(),
        };
        let any = self.count != 0;
        ExponentialHistogramDataPoint {
            count: self.count,
            sum: Some(self.sum),
            scale: if self.count == self.zero_count {
                0
            } else {
                self.scale
            },
            zero_count: self.zero_count,
            positive: Some(positive),
            negative: Some(Buckets::default()),
            min: any.then_some(self.min),
            max: any.then_some(self.max),
            ..Default::default()
        }
    }
}

/// The bucket of a positive `value` at `scale`: exact powers of two close their bucket from
/// above; above scale 0 the index is the floor of log2(value) * 2^scale.
fn map_to_index(value: f64, scale: i32) -> i32 {
    let bits = value.to_bits();
    let exponent = ((bits >> SIGNIFICAND_BITS) & 0x7ff) as i32 - EXPONENT_BIAS;
    let significand = bits & SIGNIFICAND_MASK;
    if scale > 0 {
        if value <= MIN_NORMAL {
            return ((-EXPONENT_BIAS + 1) << scale) - 1;
        }
        if significand == 0 {
            return (exponent << scale) - 1;
        }
        let factor = std::f64::consts::LOG2_E * 2f64.powi(scale);
        let index = (value.ln() * factor).floor() as i32;
        return index.min(((EXPONENT_BIAS + 1) << scale) - 1);
    }
    let shift = -scale;
    if value < MIN_NORMAL {
        let index = (-EXPONENT_BIAS + 1) >> shift;
        return if shift < 2 { index - 1 } else { index };
    }
    let correction = if significand == 0 { -1 } else { 0 };
    (exponent + correction) >> shift
}

#[cfg(test)]
mod tests {
    use super::{Exponential, map_to_index};

    #[test]
    fn powers_of_two_close_their_bucket() {
        assert_eq!(map_to_index(1.0, 0), -1);
        assert_eq!(map_to_index(1.5, 0), 0);
        assert_eq!(map_to_index(2.0, 0), 0);
        assert_eq!(map_to_index(4.0, 1), 3);
        assert_eq!(map_to_index(3.0, 1), 3);
        assert_eq!(map_to_index(2.5, 1), 2);
        assert_eq!(map_to_index(8.0, -1), 1);
    }

    #[test]
    fn a_wide_range_lowers_the_scale_to_fit() {
        let mut histogram = Exponential::new(4);
        histogram.record(1.0, 1);
        histogram.record(1000.0, 2);
        histogram.record(0.0, 1);
        let point = histogram.point();
        assert_eq!(point.count, 4);
        assert_eq!(point.zero_count, 1);
        let positive = point.positive.unwrap();
        assert!(positive.bucket_counts.len() <= 4);
        assert_eq!(positive.bucket_counts.iter().sum::<u64>(), 3);
        // 1 and 1000 are ~10 powers of two apart: four buckets need each to span 4 of them.
        assert_eq!(point.scale, -2);
        assert_eq!((point.min, point.max), (Some(0.0), Some(1000.0)));
        assert_eq!(point.sum, Some(2001.0));
    }
}
