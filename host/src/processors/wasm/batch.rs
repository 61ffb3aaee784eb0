//! The host side of a batch lent to a plugin: decoded only as far as the plugin asks, and
//! changed on a working copy, so a failed call leaves the original untouched (the journal is
//! the copy; `finish` applies it).
//!
//! All three OTLP requests share their field numbers down to the scope level (resource = 1,
//! scopes = 2, schema_url = 3; in a scope: scope = 1, items = 2). One skeleton therefore holds
//! any signal with its resources decoded and its scopes still encoded. Resource-attribute work
//! never touches an item.

use crate::pdata::{Signal, wire};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics,
    SummaryDataPoint, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct Skeleton {
    #[prost(message, repeated, tag = "1")]
    resources: Vec<RawResource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawResource {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    /// `ScopeSpans` / `ScopeLogs` / `ScopeMetrics`, still encoded.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    scopes: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

/// A scope message of one signal and how to reach its items.
pub trait Scope: Message + Default + Clone {
    type Item: Parts;
    const SIGNAL: Signal;
    fn items(&self) -> &Vec<Self::Item>;
    fn items_mut(&mut self) -> &mut Vec<Self::Item>;
    fn scope_name(&self) -> &str;
}

macro_rules! scope {
    ($scope:ty, $item:ty, $field:ident, $signal:expr) => {
        impl Scope for $scope {
            type Item = $item;
            const SIGNAL: Signal = $signal;
            fn items(&self) -> &Vec<$item> {
                &self.$field
            }
            fn items_mut(&mut self) -> &mut Vec<$item> {
                &mut self.$field
            }
            fn scope_name(&self) -> &str {
                self.scope.as_ref().map_or("", |s| s.name.as_str())
            }
        }
    };
}
scope!(ScopeSpans, Span, spans, Signal::Traces);
scope!(ScopeLogs, LogRecord, log_records, Signal::Logs);
scope!(ScopeMetrics, Metric, metrics, Signal::Metrics);

/// Items that carry attributes.
pub trait Attributed {
    fn attributes(&self) -> &Vec<KeyValue>;
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue>;
}

impl Attributed for Span {
    fn attributes(&self) -> &Vec<KeyValue> {
        &self.attributes
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.attributes
    }
}

impl Attributed for LogRecord {
    fn attributes(&self) -> &Vec<KeyValue> {
        &self.attributes
    }
    fn attributes_mut(&mut self) -> &mut Vec<KeyValue> {
        &mut self.attributes
    }
}

/// Parts nested in an item that a plugin may drop on their own: a span's events, a metric's
/// data points. Log records have none.
pub trait Parts {
    /// How many parts the item has.
    fn part_count(&self) -> usize {
        0
    }
    /// Keeps the parts for which `keep(index)` holds. True when the item had parts and has
    /// none left, so the item goes too (the collector drops a metric whose points all went).
    fn retain_parts(&mut self, _keep: &mut dyn FnMut(usize) -> bool) -> bool {
        false
    }
}

impl Parts for LogRecord {}

fn retain_indexed<T>(items: &mut Vec<T>, keep: &mut dyn FnMut(usize) -> bool) {
    let mut index = 0;
    items.retain(|_| {
        index += 1;
        keep(index - 1)
    });
}

impl Parts for Span {
    fn part_count(&self) -> usize {
        self.events.len()
    }
    fn retain_parts(&mut self, keep: &mut dyn FnMut(usize) -> bool) -> bool {
        retain_indexed(&mut self.events, keep);
        false // a span without events is still a span
    }
}

/// The attributes of every data point of a metric, in order.
pub fn point_attributes(metric: &Metric) -> Vec<&[KeyValue]> {
    fn attrs<P: PointAttributes>(points: &[P]) -> Vec<&[KeyValue]> {
        points.iter().map(|p| p.attributes()).collect()
    }
    match &metric.data {
        Some(metric::Data::Gauge(d)) => attrs(&d.data_points),
        Some(metric::Data::Sum(d)) => attrs(&d.data_points),
        Some(metric::Data::Histogram(d)) => attrs(&d.data_points),
        Some(metric::Data::ExponentialHistogram(d)) => attrs(&d.data_points),
        Some(metric::Data::Summary(d)) => attrs(&d.data_points),
        None => Vec::new(),
    }
}

trait PointAttributes {
    fn attributes(&self) -> &[KeyValue];
}

macro_rules! point_attributes {
    ($($point:ty),*) => {$(
        impl PointAttributes for $point {
            fn attributes(&self) -> &[KeyValue] {
                &self.attributes
            }
        }
    )*};
}
point_attributes!(
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint,
    SummaryDataPoint
);

impl Parts for Metric {
    fn part_count(&self) -> usize {
        point_attributes(self).len()
    }
    fn retain_parts(&mut self, keep: &mut dyn FnMut(usize) -> bool) -> bool {
        let had = self.part_count();
        match &mut self.data {
            Some(metric::Data::Gauge(d)) => retain_indexed(&mut d.data_points, keep),
            Some(metric::Data::Sum(d)) => retain_indexed(&mut d.data_points, keep),
            Some(metric::Data::Histogram(d)) => retain_indexed(&mut d.data_points, keep),
            Some(metric::Data::ExponentialHistogram(d)) => retain_indexed(&mut d.data_points, keep),
            Some(metric::Data::Summary(d)) => retain_indexed(&mut d.data_points, keep),
            None => {}
        }
        had > 0 && self.part_count() == 0
    }
}

/// Where a flat item index points.
#[derive(Clone, Copy)]
pub struct Position {
    pub resource: u32,
    pub scope: u32,
    pub item: u32,
}

/// Decoded items, and which are dropped (applied at the end so indexes stay valid).
#[derive(Clone)]
struct Items<S> {
    scopes: Vec<Vec<S>>,
    index: Vec<Position>,
    dropped: Vec<bool>,
    /// (flat item, part) pairs to drop.
    dropped_parts: Vec<(u32, u32)>,
}

impl<S: Scope> Items<S> {
    /// Applies part drops; an item left without its parts is dropped with them.
    fn apply_part_drops(&mut self) {
        let mut parts = std::mem::take(&mut self.dropped_parts);
        parts.sort_unstable();
        parts.dedup();
        for group in parts.chunk_by(|a, b| a.0 == b.0) {
            let flat = group[0].0 as usize;
            let p = self.index[flat];
            let item = &mut self.scopes[p.resource as usize][p.scope as usize].items_mut()
                [p.item as usize];
            let emptied = item
                .retain_parts(&mut |i| group.binary_search_by_key(&(i as u32), |g| g.1).is_err());
            if emptied {
                self.dropped[flat] = true;
            }
        }
    }
}

/// A batch lent to a plugin for one call.
pub struct Working<S: Scope> {
    original: Bytes,
    skeleton: Skeleton,
    items: Option<Items<S>>,
    changed: bool,
}

pub type SpanWork = Working<ScopeSpans>;
pub type LogWork = Working<ScopeLogs>;
pub type MetricWork = Working<ScopeMetrics>;

/// A batch the host cannot lend: its resources do not decode.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the batch's resources: {0}")]
pub struct LendError(#[from] prost::DecodeError);

impl<S: Scope> Working<S> {
    /// Decodes the resources of an encoded request; items stay encoded.
    pub fn lend(payload: Bytes) -> Result<Self, LendError> {
        let skeleton = Skeleton::decode(payload.clone())?;
        Ok(Working {
            original: payload,
            skeleton,
            items: None,
            changed: false,
        })
    }

    pub fn resource_count(&self) -> u32 {
        self.skeleton.resources.len() as u32
    }

    /// The attributes of resource `res`, if it exists.
    pub fn resource_attributes(&self, res: u32) -> &[KeyValue] {
        self.skeleton
            .resources
            .get(res as usize)
            .and_then(|r| r.resource.as_ref())
            .map_or(&[], |r| r.attributes.as_slice())
    }

    pub fn resource_attributes_mut(&mut self, res: u32) -> Option<&mut Vec<KeyValue>> {
        self.changed = true;
        let resource = self.skeleton.resources.get_mut(res as usize)?;
        Some(
            &mut resource
                .resource
                .get_or_insert_with(Resource::default)
                .attributes,
        )
    }

    fn items(&mut self) -> &mut Items<S> {
        if self.items.is_none() {
            let mut scopes = Vec::with_capacity(self.skeleton.resources.len());
            let mut index = Vec::new();
            for (r, resource) in self.skeleton.resources.iter().enumerate() {
                // The receiver checked the framing; a scope that still fails to decode is
                // treated as empty rather than failing the plugin call.
                let decoded: Vec<S> = resource
                    .scopes
                    .iter()
                    .map(|b| S::decode(b.clone()).unwrap_or_default())
                    .collect();
                for (s, scope) in decoded.iter().enumerate() {
                    for i in 0..scope.items().len() {
                        index.push(Position {
                            resource: r as u32,
                            scope: s as u32,
                            item: i as u32,
                        });
                    }
                }
                scopes.push(decoded);
            }
            let dropped = vec![false; index.len()];
            self.items = Some(Items {
                scopes,
                index,
                dropped,
                dropped_parts: Vec::new(),
            });
        }
        self.items.as_mut().expect("decoded above")
    }

    pub fn item_count(&mut self) -> u32 {
        self.items().index.len() as u32
    }

    pub fn positions(&mut self) -> &[Position] {
        &self.items().index
    }

    /// Every item with its scope, in flat-index order.
    pub fn each_item(&mut self) -> Vec<(&S, &S::Item)> {
        let items = self.items();
        items
            .index
            .iter()
            .map(|p| {
                let scope = &items.scopes[p.resource as usize][p.scope as usize];
                (scope, &scope.items()[p.item as usize])
            })
            .collect()
    }

    /// Item `flat`, for changing; `None` when out of range.
    pub fn item_mut(&mut self, flat: u32) -> Option<&mut S::Item> {
        self.changed = true;
        let items = self.items();
        let p = *items.index.get(flat as usize)?;
        items.scopes[p.resource as usize][p.scope as usize]
            .items_mut()
            .get_mut(p.item as usize)
    }

    pub fn drop_items(&mut self, flats: &[u32]) {
        if flats.is_empty() {
            return;
        }
        self.changed = true;
        let items = self.items();
        for &flat in flats {
            if let Some(d) = items.dropped.get_mut(flat as usize) {
                *d = true;
            }
        }
    }

    /// Every part (span event, data point) as (flat item, part index within the item).
    pub fn part_positions(&mut self) -> Vec<(u32, u32)> {
        self.each_item()
            .into_iter()
            .enumerate()
            .flat_map(|(flat, (_, item))| {
                (0..item.part_count() as u32).map(move |p| (flat as u32, p))
            })
            .collect()
    }

    /// Drops parts given by their flat part index (the order of [`Self::part_positions`]).
    pub fn drop_parts(&mut self, flats: &[u32]) {
        if flats.is_empty() {
            return;
        }
        let positions = self.part_positions();
        self.changed = true;
        let items = self.items();
        items
            .dropped_parts
            .extend(flats.iter().filter_map(|&f| positions.get(f as usize)));
    }

    /// Replaces the whole batch with another encoded request of the same signal.
    pub fn replace(&mut self, payload: Bytes) -> Result<(), String> {
        wire::count_items(S::SIGNAL, &payload).map_err(|e| e.to_string())?;
        let skeleton = Skeleton::decode(payload.clone()).map_err(|e| e.to_string())?;
        *self = Working {
            original: payload,
            skeleton,
            items: None,
            changed: true,
        };
        Ok(())
    }

    /// The batch as it stands, leaving this working copy intact (the `to-otlp` escape hatch).
    pub fn encode(&self) -> Bytes {
        if !self.changed {
            return self.original.clone();
        }
        let copy = Working {
            original: self.original.clone(),
            skeleton: self.skeleton.clone(),
            items: self.items.clone(),
            changed: true,
        };
        copy.into_encoded()
    }

    /// The batch as it stands, applying drops in place: the original bytes when nothing changed.
    pub fn into_encoded(mut self) -> Bytes {
        if !self.changed {
            return self.original;
        }
        let Some(mut items) = self.items.take() else {
            return Bytes::from(self.skeleton.encode_to_vec());
        };
        items.apply_part_drops();
        let mut dropped = items.dropped.into_iter();
        for (resource, scopes) in self.skeleton.resources.iter_mut().zip(items.scopes) {
            resource.scopes = scopes
                .into_iter()
                .filter_map(|mut scope| {
                    scope
                        .items_mut()
                        .retain(|_| !dropped.next().unwrap_or(false));
                    (!scope.items().is_empty()).then(|| Bytes::from(scope.encode_to_vec()))
                })
                .collect();
        }
        self.skeleton.resources.retain(|r| !r.scopes.is_empty());
        Bytes::from(self.skeleton.encode_to_vec())
    }

    /// Whether the plugin decoded items (for the lazy-decoding benchmark and tests).
    pub fn decoded_items(&self) -> bool {
        self.items.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::wire::tests_support::traces_request;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    // Untouched, the batch is the original bytes; resource edits re-encode without decoding
    // a span; drops remove exactly the dropped spans.
    #[test]
    fn lazy_and_journalled() {
        let payload = traces_request(5);
        let mut work = SpanWork::lend(payload.clone()).unwrap();
        assert_eq!(work.encode(), payload);
        work.resource_attributes_mut(0).unwrap().push(KeyValue {
            key: "k8s.pod.name".into(),
            ..Default::default()
        });
        assert!(!work.decoded_items());
        let out = ExportTraceServiceRequest::decode(work.encode()).unwrap();
        assert_eq!(
            out.resource_spans[0].resource.as_ref().unwrap().attributes[0].key,
            "k8s.pod.name"
        );
        assert_eq!(out.resource_spans[0].scope_spans[0].spans.len(), 5);
        assert_eq!(work.item_count(), 5);
        work.drop_items(&[1, 3]);
        assert_eq!(wire::count_items(Signal::Traces, &work.encode()), Ok(3));
    }

    // Events and data points drop on their own; a metric whose points all go goes too, and
    // a span keeps living without its events.
    #[test]
    fn parts_drop_with_their_rules() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::metrics::v1::{Gauge, ResourceMetrics};
        use opentelemetry_proto::tonic::trace::v1::span::Event;

        let mut request = ExportTraceServiceRequest::decode(traces_request(2)).unwrap();
        let spans = &mut request.resource_spans[0].scope_spans[0].spans;
        spans[0].events = vec![Event::default(), Event::default()];
        spans[1].events = vec![Event::default()];
        let mut work = SpanWork::lend(Bytes::from(request.encode_to_vec())).unwrap();
        assert_eq!(work.part_positions(), [(0, 0), (0, 1), (1, 0)]);
        work.drop_parts(&[1, 2]);
        let out = ExportTraceServiceRequest::decode(work.into_encoded()).unwrap();
        let spans = &out.resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            (spans.len(), spans[0].events.len(), spans[1].events.len()),
            (2, 1, 0)
        );

        let gauge = |points: usize| Metric {
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default(); points],
            })),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![gauge(2), gauge(1)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut work = MetricWork::lend(Bytes::from(request.encode_to_vec())).unwrap();
        work.drop_parts(&[0, 1]);
        let out = ExportMetricsServiceRequest::decode(work.into_encoded()).unwrap();
        assert_eq!(out.resource_metrics[0].scope_metrics[0].metrics.len(), 1);
    }
}
