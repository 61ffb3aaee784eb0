//! The levels of a batch and what each signal's items hold beneath them: a span's events and
//! links, a metric's data points and their exemplars. The working batch (`batch.rs`) numbers
//! these entries; this module reads and changes them inside one decoded item.
//!
//! A metric's exemplars are numbered within the metric across all its points, in point order,
//! so every nested entry is addressed the same way: (item, index within the item).

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    SummaryDataPoint, metric,
};
use opentelemetry_proto::tonic::trace::v1::Span;

/// The places in a batch with entries of their own (the WIT's `level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Resource,
    Scope,
    Item,
    Event,
    Link,
    Point,
    Exemplar,
}

impl Level {
    /// The levels nested in items, in the order of [`Level::nested_slot`].
    pub const NESTED: [Level; 4] = [Level::Event, Level::Link, Level::Point, Level::Exemplar];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Resource => "resource",
            Level::Scope => "scope",
            Level::Item => "item",
            Level::Event => "event",
            Level::Link => "link",
            Level::Point => "point",
            Level::Exemplar => "exemplar",
        }
    }

    /// Where a nested level's index is cached; `None` for resource, scope and item.
    pub fn nested_slot(self) -> Option<usize> {
        Level::NESTED.iter().position(|l| *l == self)
    }
}

/// What the working batch needs of a signal's items.
pub trait Item: prost::Message + Default + Clone {
    /// The field number of the item's attributes in its encoding (a metric's `metadata`).
    const ATTRIBUTES: u64;
    /// The levels nested in this item type.
    const NESTED: &'static [Level];
    fn attributes(&self) -> &[KeyValue];
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue>;
    /// The field number of `dropped_attributes_count`, where the item has one.
    const DROPPED_ATTRIBUTES: Option<u64>;

    /// How many entries of a nested level the item holds.
    fn children(&self, _level: Level) -> usize {
        0
    }
    /// The attributes of nested entry `within`.
    fn child_attributes(&self, _level: Level, _within: usize) -> Option<&[KeyValue]> {
        None
    }
    fn child_attributes_mut(
        &mut self,
        _level: Level,
        _within: usize,
    ) -> Option<&mut Vec<KeyValue>> {
        None
    }
    fn child_dropped_attributes(&self, _level: Level, _within: usize) -> u32 {
        0
    }
    /// The index within the item of the point exemplar `within` belongs to.
    fn exemplar_point(&self, _within: usize) -> Option<usize> {
        None
    }
    /// Keeps the nested entries for which `keep(within)` holds. True when that left the item
    /// without the entries that make it (a metric without points), so the item goes too.
    fn retain_children(&mut self, _level: Level, _keep: &mut dyn FnMut(usize) -> bool) -> bool {
        false
    }
}

pub fn retain_indexed<T>(items: &mut Vec<T>, keep: &mut dyn FnMut(usize) -> bool) {
    let mut index = 0;
    items.retain(|_| {
        index += 1;
        keep(index - 1)
    });
}

impl Item for Span {
    const ATTRIBUTES: u64 = 9;
    const DROPPED_ATTRIBUTES: Option<u64> = Some(10);
    const NESTED: &'static [Level] = &[Level::Event, Level::Link];
    fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.attributes
    }
    fn children(&self, level: Level) -> usize {
        match level {
            Level::Event => self.events.len(),
            Level::Link => self.links.len(),
            _ => 0,
        }
    }
    fn child_attributes(&self, level: Level, within: usize) -> Option<&[KeyValue]> {
        match level {
            Level::Event => self.events.get(within).map(|e| e.attributes.as_slice()),
            Level::Link => self.links.get(within).map(|l| l.attributes.as_slice()),
            _ => None,
        }
    }
    fn child_attributes_mut(&mut self, level: Level, within: usize) -> Option<&mut Vec<KeyValue>> {
        match level {
            Level::Event => self.events.get_mut(within).map(|e| &mut e.attributes),
            Level::Link => self.links.get_mut(within).map(|l| &mut l.attributes),
            _ => None,
        }
    }
    fn child_dropped_attributes(&self, level: Level, within: usize) -> u32 {
        match level {
            Level::Event => self
                .events
                .get(within)
                .map_or(0, |e| e.dropped_attributes_count),
            Level::Link => self
                .links
                .get(within)
                .map_or(0, |l| l.dropped_attributes_count),
            _ => 0,
        }
    }
    fn retain_children(&mut self, level: Level, keep: &mut dyn FnMut(usize) -> bool) -> bool {
        match level {
            Level::Event => retain_indexed(&mut self.events, keep),
            Level::Link => retain_indexed(&mut self.links, keep),
            _ => {}
        }
        false // a span without events or links is still a span
    }
}

impl Item for LogRecord {
    const ATTRIBUTES: u64 = 6;
    const DROPPED_ATTRIBUTES: Option<u64> = Some(7);
    const NESTED: &'static [Level] = &[];
    fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.attributes
    }
}

/// One data point of any type, for reading.
#[derive(Clone, Copy)]
pub enum PointRef<'a> {
    Number(&'a NumberDataPoint),
    Histogram(&'a HistogramDataPoint),
    Exponential(&'a ExponentialHistogramDataPoint),
    Summary(&'a SummaryDataPoint),
}

/// One data point of any type, for changing.
pub enum PointMut<'a> {
    Number(&'a mut NumberDataPoint),
    Histogram(&'a mut HistogramDataPoint),
    Exponential(&'a mut ExponentialHistogramDataPoint),
    Summary(&'a mut SummaryDataPoint),
}

/// The same field of whichever point type `$point` is.
macro_rules! each_point {
    ($point:expr, $p:ident => $body:expr) => {
        match $point {
            Self::Number($p) => $body,
            Self::Histogram($p) => $body,
            Self::Exponential($p) => $body,
            Self::Summary($p) => $body,
        }
    };
}

impl<'a> PointRef<'a> {
    pub fn attributes(self) -> &'a [KeyValue] {
        each_point!(self, p => &p.attributes)
    }
    /// Summaries have no exemplars.
    pub fn exemplars(self) -> &'a [Exemplar] {
        match self {
            Self::Number(p) => &p.exemplars,
            Self::Histogram(p) => &p.exemplars,
            Self::Exponential(p) => &p.exemplars,
            Self::Summary(_) => &[],
        }
    }
    pub fn start_time(self) -> u64 {
        each_point!(self, p => p.start_time_unix_nano)
    }
    pub fn time(self) -> u64 {
        each_point!(self, p => p.time_unix_nano)
    }
    pub fn flags(self) -> u32 {
        each_point!(self, p => p.flags)
    }
    /// `count` of a histogram, exponential histogram or summary; 0 for a number point.
    pub fn count(self) -> u64 {
        match self {
            Self::Number(_) => 0,
            Self::Histogram(p) => p.count,
            Self::Exponential(p) => p.count,
            Self::Summary(p) => p.count,
        }
    }
    pub fn sum(self) -> Option<f64> {
        match self {
            Self::Number(_) => None,
            Self::Histogram(p) => p.sum,
            Self::Exponential(p) => p.sum,
            Self::Summary(p) => Some(p.sum),
        }
    }
    pub fn min(self) -> Option<f64> {
        match self {
            Self::Histogram(p) => p.min,
            Self::Exponential(p) => p.min,
            _ => None,
        }
    }
    pub fn max(self) -> Option<f64> {
        match self {
            Self::Histogram(p) => p.max,
            Self::Exponential(p) => p.max,
            _ => None,
        }
    }
}

impl PointMut<'_> {
    pub fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        each_point!(self, p => &mut p.attributes)
    }
    fn exemplars_mut(&mut self) -> Option<&mut Vec<Exemplar>> {
        match self {
            Self::Number(p) => Some(&mut p.exemplars),
            Self::Histogram(p) => Some(&mut p.exemplars),
            Self::Exponential(p) => Some(&mut p.exemplars),
            Self::Summary(_) => None,
        }
    }
}

/// Every data point of a metric, in order.
pub fn points(metric: &Metric) -> Vec<PointRef<'_>> {
    use metric::Data;
    match &metric.data {
        Some(Data::Gauge(d)) => d.data_points.iter().map(PointRef::Number).collect(),
        Some(Data::Sum(d)) => d.data_points.iter().map(PointRef::Number).collect(),
        Some(Data::Histogram(d)) => d.data_points.iter().map(PointRef::Histogram).collect(),
        Some(Data::ExponentialHistogram(d)) => {
            d.data_points.iter().map(PointRef::Exponential).collect()
        }
        Some(Data::Summary(d)) => d.data_points.iter().map(PointRef::Summary).collect(),
        None => Vec::new(),
    }
}

pub fn points_mut(metric: &mut Metric) -> Vec<PointMut<'_>> {
    use metric::Data;
    match &mut metric.data {
        Some(Data::Gauge(d)) => d.data_points.iter_mut().map(PointMut::Number).collect(),
        Some(Data::Sum(d)) => d.data_points.iter_mut().map(PointMut::Number).collect(),
        Some(Data::Histogram(d)) => d.data_points.iter_mut().map(PointMut::Histogram).collect(),
        Some(Data::ExponentialHistogram(d)) => d
            .data_points
            .iter_mut()
            .map(PointMut::Exponential)
            .collect(),
        Some(Data::Summary(d)) => d.data_points.iter_mut().map(PointMut::Summary).collect(),
        None => Vec::new(),
    }
}

/// Every exemplar of a metric, in point order, with the index of its point in the metric.
pub fn exemplars(metric: &Metric) -> impl Iterator<Item = (usize, &Exemplar)> {
    points(metric)
        .into_iter()
        .enumerate()
        .flat_map(|(point, p)| p.exemplars().iter().map(move |e| (point, e)))
}

fn exemplar_mut(metric: &mut Metric, within: usize) -> Option<&mut Exemplar> {
    points_mut(metric)
        .into_iter()
        .filter_map(|p| match p {
            PointMut::Number(p) => Some(&mut p.exemplars),
            PointMut::Histogram(p) => Some(&mut p.exemplars),
            PointMut::Exponential(p) => Some(&mut p.exemplars),
            PointMut::Summary(_) => None,
        })
        .flatten()
        .nth(within)
}

impl Item for Metric {
    const ATTRIBUTES: u64 = 12;
    const DROPPED_ATTRIBUTES: Option<u64> = None;
    const NESTED: &'static [Level] = &[Level::Point, Level::Exemplar];
    fn attributes(&self) -> &[KeyValue] {
        &self.metadata
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.metadata
    }
    fn children(&self, level: Level) -> usize {
        match level {
            Level::Point => points(self).len(),
            Level::Exemplar => exemplars(self).count(),
            _ => 0,
        }
    }
    fn child_attributes(&self, level: Level, within: usize) -> Option<&[KeyValue]> {
        match level {
            Level::Point => points(self).get(within).map(|p| p.attributes()),
            Level::Exemplar => exemplars(self)
                .nth(within)
                .map(|(_, e)| e.filtered_attributes.as_slice()),
            _ => None,
        }
    }
    fn child_attributes_mut(&mut self, level: Level, within: usize) -> Option<&mut Vec<KeyValue>> {
        match level {
            Level::Point => {
                let point = points_mut(self).into_iter().nth(within)?;
                Some(match point {
                    PointMut::Number(p) => &mut p.attributes,
                    PointMut::Histogram(p) => &mut p.attributes,
                    PointMut::Exponential(p) => &mut p.attributes,
                    PointMut::Summary(p) => &mut p.attributes,
                })
            }
            Level::Exemplar => exemplar_mut(self, within).map(|e| &mut e.filtered_attributes),
            _ => None,
        }
    }
    fn exemplar_point(&self, within: usize) -> Option<usize> {
        exemplars(self).nth(within).map(|(point, _)| point)
    }
    fn retain_children(&mut self, level: Level, keep: &mut dyn FnMut(usize) -> bool) -> bool {
        use metric::Data;
        match level {
            Level::Point => {
                let had = points(self).len();
                match &mut self.data {
                    Some(Data::Gauge(d)) => retain_indexed(&mut d.data_points, keep),
                    Some(Data::Sum(d)) => retain_indexed(&mut d.data_points, keep),
                    Some(Data::Histogram(d)) => retain_indexed(&mut d.data_points, keep),
                    Some(Data::ExponentialHistogram(d)) => retain_indexed(&mut d.data_points, keep),
                    Some(Data::Summary(d)) => retain_indexed(&mut d.data_points, keep),
                    None => {}
                }
                had > 0 && points(self).is_empty()
            }
            Level::Exemplar => {
                let mut index = 0;
                for mut point in points_mut(self) {
                    if let Some(exemplars) = point.exemplars_mut() {
                        exemplars.retain(|_| {
                            index += 1;
                            keep(index - 1)
                        });
                    }
                }
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, Histogram};

    fn exemplar(n: i64) -> Exemplar {
        Exemplar {
            value: Some(opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsInt(n)),
            ..Default::default()
        }
    }

    // Exemplars are numbered across the metric's points; dropping some keeps the points, and
    // dropping every point empties the metric.
    #[test]
    fn metric_exemplars_and_points() {
        let point = |exemplars: Vec<Exemplar>| NumberDataPoint {
            exemplars,
            ..Default::default()
        };
        let mut metric = Metric {
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![
                    point(vec![exemplar(0), exemplar(1)]),
                    point(vec![exemplar(2)]),
                ],
            })),
            ..Default::default()
        };
        assert_eq!(metric.children(Level::Exemplar), 3);
        let owners: Vec<usize> = exemplars(&metric).map(|(p, _)| p).collect();
        assert_eq!(owners, [0, 0, 1]);
        metric
            .child_attributes_mut(Level::Exemplar, 2)
            .unwrap()
            .push(KeyValue::default());
        assert_eq!(
            metric.child_attributes(Level::Exemplar, 2).unwrap().len(),
            1
        );
        assert!(!metric.retain_children(Level::Exemplar, &mut |i| i != 1));
        let values: Vec<_> = exemplars(&metric).map(|(_, e)| e.value).collect();
        assert_eq!(values, [exemplar(0).value, exemplar(2).value]);
        assert!(!metric.retain_children(Level::Point, &mut |i| i == 0));
        assert!(metric.retain_children(Level::Point, &mut |_| false));

        let histogram = Metric {
            data: Some(metric::Data::Histogram(Histogram::default())),
            ..Default::default()
        };
        assert_eq!(histogram.children(Level::Point), 0);
    }
}
