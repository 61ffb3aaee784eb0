//! The series of one metric of one resource: a count (`calls`, `events`) or a histogram
//! (`duration`) per attribute set, keyed by the attribute values, with the collector's
//! cardinality limit (one `otel.metric.overflow` series beyond it), exemplars, start times and
//! expiry, and how each becomes OTLP data points.

use crate::connectors::exponential::Exponential;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, exemplar,
    number_data_point,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The attribute of the one series that takes what exceeds the cardinality limit.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";

/// What a span records: its value, how many spans it stands for, when, and its ids for an
/// exemplar when exemplars are kept.
#[derive(Clone, Copy)]
pub struct Sample<'a> {
    pub value: f64,
    pub count: u64,
    pub now: u64,
    pub ids: Option<(&'a [u8], &'a [u8])>,
}

/// A series' value.
pub trait Value {
    /// Records `value`, `count` times.
    fn record(&mut self, value: f64, count: u64);
}

/// A monotonic count.
#[derive(Debug, Default)]
pub struct Count(pub u64);

impl Value for Count {
    fn record(&mut self, _value: f64, count: u64) {
        self.0 += count;
    }
}

/// A histogram of durations, with explicit bounds or exponential buckets.
#[derive(Debug)]
pub enum Histogram {
    Explicit {
        bounds: Arc<[f64]>,
        buckets: Vec<u64>,
        count: u64,
        sum: f64,
    },
    Exponential(Exponential),
}

impl Value for Histogram {
    fn record(&mut self, value: f64, n: u64) {
        match self {
            Histogram::Explicit {
                bounds,
                buckets,
                count,
                sum,
            } => {
                *sum += value * n as f64;
                *count += n;
                // The first bound at or above the value: bounds are inclusive upper limits.
                buckets[bounds.partition_point(|b| *b < value)] += n;
            }
            Histogram::Exponential(histogram) => histogram.record(value, n),
        }
    }
}

/// One attribute set's value and what is kept with it.
#[derive(Debug)]
pub struct Series<V> {
    pub attributes: Vec<KeyValue>,
    pub value: V,
    exemplars: Vec<Exemplar>,
    pub start: u64,
    last_seen: u64,
    /// A cumulative count is first sent as zero, so a backend sees it rise from nothing.
    first: bool,
}

/// The series of one metric, by key.
#[derive(Debug)]
pub struct SeriesMap<V> {
    series: BTreeMap<String, Series<V>>,
    /// Most series before the overflow one (0: no limit).
    limit: usize,
    max_exemplars: usize,
}

impl<V: Value> SeriesMap<V> {
    pub fn new(limit: usize, max_exemplars: usize) -> Self {
        SeriesMap {
            series: BTreeMap::new(),
            limit,
            max_exemplars,
        }
    }

    /// Adds `sample` to the series of `key`, made with `attributes` and `new` when it does not
    /// exist. An exemplar is kept when the sample has ids and the series is not the overflow one.
    pub fn record(
        &mut self,
        key: &str,
        attributes: impl FnOnce() -> Vec<KeyValue>,
        new: impl FnOnce() -> V,
        sample: Sample<'_>,
    ) {
        let now = sample.now;
        let over =
            self.limit > 0 && self.series.len() >= self.limit && !self.series.contains_key(key);
        let key = if over { OVERFLOW_KEY } else { key };
        if !self.series.contains_key(key) {
            let attributes = if over {
                overflow_attributes()
            } else {
                attributes()
            };
            self.series.insert(
                key.to_string(),
                Series {
                    attributes,
                    value: new(),
                    exemplars: Vec::new(),
                    start: now,
                    last_seen: now,
                    first: true,
                },
            );
        }
        let Some(series) = self.series.get_mut(key) else {
            return;
        };
        series.last_seen = now;
        if let Some((trace_id, span_id)) = sample.ids.filter(|_| !over)
            && series.exemplars.len() < self.max_exemplars
        {
            series.exemplars.push(Exemplar {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                value: Some(exemplar::Value::AsDouble(sample.value)),
                ..Default::default()
            });
        }
        series.value.record(sample.value, sample.count);
    }

    /// Whether the series of `key` exists.
    pub fn contains(&self, key: &str) -> bool {
        self.series.contains_key(key)
    }

    /// The series, in key order, each with its key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Series<V>)> {
        self.series.iter_mut()
    }

    /// Forgets every exemplar (they belong to one flush).
    pub fn clear_exemplars(&mut self) {
        for series in self.series.values_mut() {
            series.exemplars.clear();
        }
    }

    /// Drops the series not updated since `cutoff`.
    pub fn expire(&mut self, now: u64, expiration: u64) {
        self.series
            .retain(|_, series| now.saturating_sub(series.last_seen) < expiration);
    }
}

fn overflow_attributes() -> Vec<KeyValue> {
    vec![KeyValue {
        key: OVERFLOW_KEY.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(true)),
        }),
        ..Default::default()
    }]
}

/// The exemplars stamped with the flush time.
fn stamped(exemplars: &[Exemplar], time: u64) -> Vec<Exemplar> {
    exemplars
        .iter()
        .map(|e| Exemplar {
            time_unix_nano: time,
            ..e.clone()
        })
        .collect()
}

impl Series<Count> {
    /// The data point sent at `time` starting at `start`.
    pub fn point(&mut self, start: u64, time: u64, cumulative: bool) -> NumberDataPoint {
        let value = if cumulative && self.first {
            self.first = false;
            0
        } else {
            self.value.0 as i64
        };
        NumberDataPoint {
            attributes: self.attributes.clone(),
            start_time_unix_nano: start,
            time_unix_nano: time,
            exemplars: stamped(&self.exemplars, time),
            value: Some(number_data_point::Value::AsInt(value)),
            ..Default::default()
        }
    }
}

/// A histogram series' data point, explicit or exponential.
pub enum HistogramPoint {
    Explicit(HistogramDataPoint),
    Exponential(ExponentialHistogramDataPoint),
}

impl Series<Histogram> {
    /// The data point sent at `time` starting at `start`.
    pub fn point(&self, start: u64, time: u64) -> HistogramPoint {
        let attributes = self.attributes.clone();
        let exemplars = stamped(&self.exemplars, time);
        match &self.value {
            Histogram::Explicit {
                bounds,
                buckets,
                count,
                sum,
            } => HistogramPoint::Explicit(HistogramDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: *count,
                sum: Some(*sum),
                bucket_counts: buckets.clone(),
                explicit_bounds: bounds.to_vec(),
                exemplars,
                ..Default::default()
            }),
            Histogram::Exponential(histogram) => {
                let mut point = histogram.point();
                point.attributes = attributes;
                point.start_time_unix_nano = start;
                point.time_unix_nano = time;
                point.exemplars = exemplars;
                HistogramPoint::Exponential(point)
            }
        }
    }
}
