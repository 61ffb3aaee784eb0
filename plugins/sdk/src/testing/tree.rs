//! The shape the native batches share: a request split into resources, scopes and items, and
//! what each signal's items hold beneath them (a span's events and links, a metric's points
//! and their exemplars).
//!
//! A metric's exemplars are numbered within the metric across its points, in point order, so
//! every nested entry is addressed alike: (flat item, index within the item).

use super::NativeBatch;
use crate::{Error, Level, Plugin};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, Metric, ResourceMetrics, ScopeMetrics, metric::Data,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A resource and its scopes.
#[derive(Clone, Debug)]
pub struct ResourceNode<I> {
    /// The resource (absent in the request stays absent).
    pub resource: Option<Resource>,
    /// Its `schema_url`.
    pub schema_url: String,
    /// Its scopes, in order.
    pub scopes: Vec<ScopeNode<I>>,
}

/// A scope and its items.
#[derive(Clone, Debug)]
pub struct ScopeNode<I> {
    /// The instrumentation scope (absent in the request stays absent).
    pub scope: Option<InstrumentationScope>,
    /// Its `schema_url`.
    pub schema_url: String,
    /// Its spans, log records or metrics.
    pub items: Vec<I>,
}

/// What a native batch needs of a signal's item type: [`Span`], [`LogRecord`] or [`Metric`].
pub trait Item: Clone + Default + 'static {
    /// The signal's export request.
    type Request: prost::Message + Default + Clone + serde::Serialize + serde::de::DeserializeOwned;
    /// The levels nested in this item type.
    const NESTED: &'static [Level];

    /// Splits a request into resources, scopes and items.
    fn split(request: Self::Request) -> Vec<ResourceNode<Self>>;
    /// Joins resources back into a request.
    fn join(resources: Vec<ResourceNode<Self>>) -> Self::Request;
    /// Calls the plugin's `process_*` method for this signal.
    fn process<P: Plugin>(plugin: &mut P, batch: &NativeBatch<Self>) -> Result<(), Error>;

    /// The item's attributes (a metric's `metadata`).
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue>;
    /// The item's `dropped_attributes_count` (0 where it has none).
    fn dropped_attributes(&self) -> u32;
    /// How many entries of a nested level the item holds.
    fn children(&self, _level: Level) -> usize {
        0
    }
    /// The attributes of nested entry `within`, and its `dropped_attributes_count`.
    fn child_attributes_mut(
        &mut self,
        _level: Level,
        _within: usize,
    ) -> Option<(&mut Vec<KeyValue>, u32)> {
        None
    }
    /// The index within the item of the point that exemplar `within` belongs to.
    fn exemplar_point(&self, _within: usize) -> usize {
        0
    }
    /// Keeps the nested entries for which `keep(within)` holds. True when that left the item
    /// without what makes it (a metric without points), so the item goes too.
    fn retain_children(&mut self, _level: Level, _keep: &mut dyn FnMut(usize) -> bool) -> bool {
        false
    }
}

/// Keeps the entries of `list` whose index passes `keep`.
pub fn retain_indexed<T>(list: &mut Vec<T>, keep: &mut dyn FnMut(usize) -> bool) {
    let mut index = 0;
    list.retain(|_| {
        index += 1;
        keep(index - 1)
    });
}

/// Splits and joins one signal's request; the three differ only in their field names.
macro_rules! split_join {
    ($request:ty, $resources:ident, $rtype:ident, $scopes:ident, $stype:ident, $items:ident) => {
        fn split(request: $request) -> Vec<ResourceNode<Self>> {
            let resources = request.$resources.into_iter().map(|r| ResourceNode {
                resource: r.resource,
                schema_url: r.schema_url,
                scopes: r
                    .$scopes
                    .into_iter()
                    .map(|s| ScopeNode {
                        scope: s.scope,
                        schema_url: s.schema_url,
                        items: s.$items,
                    })
                    .collect(),
            });
            resources.collect()
        }
        fn join(resources: Vec<ResourceNode<Self>>) -> $request {
            let resources = resources.into_iter().map(|r| $rtype {
                resource: r.resource,
                schema_url: r.schema_url,
                $scopes: r
                    .scopes
                    .into_iter()
                    .map(|s| $stype {
                        scope: s.scope,
                        schema_url: s.schema_url,
                        $items: s.items,
                    })
                    .collect(),
            });
            <$request>::default_with(resources.collect())
        }
    };
}

/// A request holding these resources.
trait DefaultWith<R> {
    fn default_with(resources: Vec<R>) -> Self;
}
impl DefaultWith<ResourceSpans> for ExportTraceServiceRequest {
    fn default_with(resource_spans: Vec<ResourceSpans>) -> Self {
        ExportTraceServiceRequest { resource_spans }
    }
}
impl DefaultWith<ResourceLogs> for ExportLogsServiceRequest {
    fn default_with(resource_logs: Vec<ResourceLogs>) -> Self {
        ExportLogsServiceRequest { resource_logs }
    }
}
impl DefaultWith<ResourceMetrics> for ExportMetricsServiceRequest {
    fn default_with(resource_metrics: Vec<ResourceMetrics>) -> Self {
        ExportMetricsServiceRequest { resource_metrics }
    }
}

impl Item for Span {
    type Request = ExportTraceServiceRequest;
    const NESTED: &'static [Level] = &[Level::Event, Level::Link];
    split_join!(
        ExportTraceServiceRequest,
        resource_spans,
        ResourceSpans,
        scope_spans,
        ScopeSpans,
        spans
    );

    fn process<P: Plugin>(plugin: &mut P, batch: &NativeBatch<Self>) -> Result<(), Error> {
        plugin.process_spans(batch)
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.attributes
    }
    fn dropped_attributes(&self) -> u32 {
        self.dropped_attributes_count
    }
    fn children(&self, level: Level) -> usize {
        match level {
            Level::Event => self.events.len(),
            Level::Link => self.links.len(),
            _ => 0,
        }
    }
    fn child_attributes_mut(
        &mut self,
        level: Level,
        within: usize,
    ) -> Option<(&mut Vec<KeyValue>, u32)> {
        match level {
            Level::Event => self
                .events
                .get_mut(within)
                .map(|e| (&mut e.attributes, e.dropped_attributes_count)),
            Level::Link => self
                .links
                .get_mut(within)
                .map(|l| (&mut l.attributes, l.dropped_attributes_count)),
            _ => None,
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
    type Request = ExportLogsServiceRequest;
    const NESTED: &'static [Level] = &[];
    split_join!(
        ExportLogsServiceRequest,
        resource_logs,
        ResourceLogs,
        scope_logs,
        ScopeLogs,
        log_records
    );

    fn process<P: Plugin>(plugin: &mut P, batch: &NativeBatch<Self>) -> Result<(), Error> {
        plugin.process_logs(batch)
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.attributes
    }
    fn dropped_attributes(&self) -> u32 {
        self.dropped_attributes_count
    }
}

/// One data point of any type.
#[derive(Clone, Copy)]
pub enum PointRef<'a> {
    /// A gauge's or sum's point.
    Number(&'a opentelemetry_proto::tonic::metrics::v1::NumberDataPoint),
    /// A histogram's point.
    Histogram(&'a opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint),
    /// An exponential histogram's point.
    Exponential(&'a opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint),
    /// A summary's point.
    Summary(&'a opentelemetry_proto::tonic::metrics::v1::SummaryDataPoint),
}

impl<'a> PointRef<'a> {
    /// The point's exemplars (summaries have none).
    pub fn exemplars(self) -> &'a [Exemplar] {
        match self {
            PointRef::Number(p) => &p.exemplars,
            PointRef::Histogram(p) => &p.exemplars,
            PointRef::Exponential(p) => &p.exemplars,
            PointRef::Summary(_) => &[],
        }
    }
}

/// Every data point of a metric, in order.
pub fn points(metric: &Metric) -> Vec<PointRef<'_>> {
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

/// Every exemplar of a metric, in point order, with the index of its point in the metric.
pub fn exemplars(metric: &Metric) -> impl Iterator<Item = (usize, &Exemplar)> {
    points(metric)
        .into_iter()
        .enumerate()
        .flat_map(|(point, p)| p.exemplars().iter().map(move |e| (point, e)))
}

/// The attributes and exemplars of every point of a metric, for changing.
fn points_mut(metric: &mut Metric) -> Vec<(&mut Vec<KeyValue>, Option<&mut Vec<Exemplar>>)> {
    match &mut metric.data {
        Some(Data::Gauge(d)) => d
            .data_points
            .iter_mut()
            .map(|p| (&mut p.attributes, Some(&mut p.exemplars)))
            .collect(),
        Some(Data::Sum(d)) => d
            .data_points
            .iter_mut()
            .map(|p| (&mut p.attributes, Some(&mut p.exemplars)))
            .collect(),
        Some(Data::Histogram(d)) => d
            .data_points
            .iter_mut()
            .map(|p| (&mut p.attributes, Some(&mut p.exemplars)))
            .collect(),
        Some(Data::ExponentialHistogram(d)) => d
            .data_points
            .iter_mut()
            .map(|p| (&mut p.attributes, Some(&mut p.exemplars)))
            .collect(),
        Some(Data::Summary(d)) => d
            .data_points
            .iter_mut()
            .map(|p| (&mut p.attributes, None))
            .collect(),
        None => Vec::new(),
    }
}

impl Item for Metric {
    type Request = ExportMetricsServiceRequest;
    const NESTED: &'static [Level] = &[Level::Point, Level::Exemplar];
    split_join!(
        ExportMetricsServiceRequest,
        resource_metrics,
        ResourceMetrics,
        scope_metrics,
        ScopeMetrics,
        metrics
    );

    fn process<P: Plugin>(plugin: &mut P, batch: &NativeBatch<Self>) -> Result<(), Error> {
        plugin.process_metrics(batch)
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.metadata
    }
    fn dropped_attributes(&self) -> u32 {
        0 // a metric's metadata has no such count
    }
    fn children(&self, level: Level) -> usize {
        match level {
            Level::Point => points(self).len(),
            Level::Exemplar => exemplars(self).count(),
            _ => 0,
        }
    }
    fn child_attributes_mut(
        &mut self,
        level: Level,
        within: usize,
    ) -> Option<(&mut Vec<KeyValue>, u32)> {
        let mut points = points_mut(self).into_iter();
        match level {
            Level::Point => points.nth(within).map(|(attributes, _)| (attributes, 0)),
            Level::Exemplar => {
                let exemplar = points.filter_map(|(_, e)| e).flatten().nth(within)?;
                Some((&mut exemplar.filtered_attributes, 0))
            }
            _ => None,
        }
    }
    fn exemplar_point(&self, within: usize) -> usize {
        exemplars(self).nth(within).map_or(0, |(point, _)| point)
    }
    fn retain_children(&mut self, level: Level, keep: &mut dyn FnMut(usize) -> bool) -> bool {
        match level {
            Level::Exemplar => {
                let mut index = 0;
                for (_, exemplars) in points_mut(self) {
                    exemplars.into_iter().for_each(|list| {
                        list.retain(|_| {
                            index += 1;
                            keep(index - 1)
                        })
                    });
                }
                false
            }
            Level::Point => {
                let had = points(self).len();
                if let Some(data) = &mut self.data {
                    retain_points(data, keep);
                }
                had > 0 && points(self).is_empty()
            }
            _ => false,
        }
    }
}

fn retain_points(data: &mut Data, keep: &mut dyn FnMut(usize) -> bool) {
    match data {
        Data::Gauge(d) => retain_indexed(&mut d.data_points, keep),
        Data::Sum(d) => retain_indexed(&mut d.data_points, keep),
        Data::Histogram(d) => retain_indexed(&mut d.data_points, keep),
        Data::ExponentialHistogram(d) => retain_indexed(&mut d.data_points, keep),
        Data::Summary(d) => retain_indexed(&mut d.data_points, keep),
    }
}
