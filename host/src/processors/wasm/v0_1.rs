//! Contract 0.1.0 (`wit/0.1.0`), frozen: its bindings and the host side of its imports. Plugins
//! built against it keep loading next to 0.2.0 ones.

use super::batch::{LogWork, MetricWork, Scope, SpanWork, Working, work};
use super::encoded;
use super::host::{PluginState, find, log, upsert};
use super::items::{Item, points};
use crate::pdata::wire::{self, Value};
use opentelemetry_proto::tonic::common::v1 as otlp;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use wasmtime::component::{Resource, ResourceTable};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "processor",
        with: {
            "mathtrail:trailhead/batch.span-batch": crate::processors::wasm::batch::SpanWork,
            "mathtrail:trailhead/batch.log-batch": crate::processors::wasm::batch::LogWork,
            "mathtrail:trailhead/batch.metric-batch": crate::processors::wasm::batch::MetricWork,
        },
    });
}

use bindings::mathtrail::trailhead::{batch, host, types};
use types::{AnyValue, KeyValue};

impl types::Host for PluginState {}
impl batch::Host for PluginState {}

impl host::Host for PluginState {
    fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Trace => tracing::Level::TRACE,
            host::Level::Debug => tracing::Level::DEBUG,
            host::Level::Info => tracing::Level::INFO,
            host::Level::Warn => tracing::Level::WARN,
            host::Level::Error => tracing::Level::ERROR,
        };
        log(&self.plugin_id, level, &message)
    }

    fn current_context(&mut self) -> host::RequestContext {
        match &self.context {
            Some(c) => host::RequestContext {
                peer_address: c.peer.map(|p| p.to_string()),
                forwarded_for: c.forwarded_for.as_deref().map(str::to_string),
                receiver: c.receiver.to_string(),
            },
            None => host::RequestContext {
                peer_address: None,
                forwarded_for: None,
                receiver: String::new(),
            },
        }
    }

    fn pod_by_ip(&mut self, ip: String) -> Option<host::Pod> {
        self.metadata.pod_by_ip(&ip).map(|p| wit_pod(self, &p))
    }
    fn pod_by_uid(&mut self, uid: String) -> Option<host::Pod> {
        self.metadata.pod_by_uid(&uid).map(|p| wit_pod(self, &p))
    }
    fn pod_by_name(&mut self, namespace: String, name: String) -> Option<host::Pod> {
        self.metadata
            .pod_by_name(&namespace, &name)
            .map(|p| wit_pod(self, &p))
    }
    fn namespace_by_name(&mut self, name: String) -> Option<host::ObjectMeta> {
        self.metadata.namespace(&name).map(|m| wit_meta(&m))
    }
    fn node_by_name(&mut self, name: String) -> Option<host::ObjectMeta> {
        self.metadata.node(&name).map(|m| wit_meta(&m))
    }
}

super::host::wit_records!(host);

/// OTLP `AnyValue` → WIT `any-value` (arrays and maps as their encodings).
pub fn to_wit(value: &otlp::AnyValue) -> AnyValue {
    use otlp::any_value::Value as V;
    match &value.value {
        Some(V::StringValue(s)) => AnyValue::Str(s.clone()),
        Some(V::BoolValue(b)) => AnyValue::Boolean(*b),
        Some(V::IntValue(i)) => AnyValue::Int(*i),
        Some(V::DoubleValue(d)) => AnyValue::Double(*d),
        Some(V::BytesValue(b)) => AnyValue::Bytes(b.clone()),
        Some(V::ArrayValue(a)) => AnyValue::ArrayPb(a.encode_to_vec()),
        Some(V::KvlistValue(k)) => AnyValue::KvlistPb(k.encode_to_vec()),
        _ => AnyValue::Str(String::new()),
    }
}

/// WIT `any-value` → OTLP `AnyValue`; undecodable arrays or maps become empty ones.
pub fn from_wit(value: AnyValue) -> otlp::AnyValue {
    use otlp::any_value::Value as V;
    let value = match value {
        AnyValue::Str(s) => V::StringValue(s),
        AnyValue::Boolean(b) => V::BoolValue(b),
        AnyValue::Int(i) => V::IntValue(i),
        AnyValue::Double(d) => V::DoubleValue(d),
        AnyValue::Bytes(b) => V::BytesValue(b),
        AnyValue::ArrayPb(b) => {
            V::ArrayValue(otlp::ArrayValue::decode(b.as_slice()).unwrap_or_default())
        }
        AnyValue::KvlistPb(b) => {
            V::KvlistValue(otlp::KeyValueList::decode(b.as_slice()).unwrap_or_default())
        }
    };
    otlp::AnyValue { value: Some(value) }
}

/// An attribute value read from its encoding as WIT `any-value`.
pub fn from_encoded(value: &[u8]) -> AnyValue {
    match encoded::any(value) {
        encoded::Any::Str(s) => AnyValue::Str(String::from_utf8_lossy(s).into_owned()),
        encoded::Any::Bool(b) => AnyValue::Boolean(b),
        encoded::Any::Int(i) => AnyValue::Int(i),
        encoded::Any::Double(d) => AnyValue::Double(d),
        encoded::Any::Bytes(b) => AnyValue::Bytes(b.to_vec()),
        encoded::Any::Array(a) => AnyValue::ArrayPb(a.to_vec()),
        encoded::Any::Kvlist(k) => AnyValue::KvlistPb(k.to_vec()),
    }
}

fn to_wit_kv(kv: &otlp::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key.clone(),
        value: kv
            .value
            .as_ref()
            .map(to_wit)
            .unwrap_or(AnyValue::Str(String::new())),
    }
}

/// The resource-level methods, the same for every batch type.
macro_rules! resource_methods {
    ($work:ty) => {
        fn resource_count(&mut self, batch: Resource<$work>) -> u32 {
            work(&mut self.table, &batch).resource_count()
        }
        fn resource_attrs(&mut self, batch: Resource<$work>, res: u32) -> Vec<KeyValue> {
            work(&mut self.table, &batch)
                .resource_attributes(res)
                .iter()
                .map(to_wit_kv)
                .collect()
        }
        fn resource_attr(
            &mut self,
            batch: Resource<$work>,
            res: u32,
            key: String,
        ) -> Option<AnyValue> {
            let work = work(&mut self.table, &batch);
            find(work.resource_attributes(res), &key)
                .and_then(|kv| kv.value.as_ref())
                .map(to_wit)
        }
        fn set_resource_attrs(&mut self, batch: Resource<$work>, res: u32, attrs: Vec<KeyValue>) {
            if let Some(attributes) = work(&mut self.table, &batch).resource_attributes_mut(res) {
                for kv in attrs {
                    upsert(attributes, kv.key, from_wit(kv.value));
                }
            }
        }
        fn remove_resource_attrs(&mut self, batch: Resource<$work>, res: u32, keys: Vec<String>) {
            if let Some(attributes) = work(&mut self.table, &batch).resource_attributes_mut(res) {
                attributes.retain(|kv| !keys.contains(&kv.key));
            }
        }
        fn to_otlp(&mut self, batch: Resource<$work>) -> Vec<u8> {
            work(&mut self.table, &batch).encode().to_vec()
        }
        fn replace_from_otlp(
            &mut self,
            batch: Resource<$work>,
            otlp: Vec<u8>,
        ) -> Result<(), String> {
            work(&mut self.table, &batch).replace(otlp.into())
        }
        fn drop(&mut self, _batch: Resource<$work>) -> wasmtime::Result<()> {
            // The host owns the batch and takes it back after the call.
            Ok(())
        }
    };
}

/// Count, resource index and drop: the item methods every batch type has, under its own names.
macro_rules! item_methods {
    ($work:ty, $count:ident, $resources:ident, $drop:ident) => {
        fn $count(&mut self, batch: Resource<$work>) -> u32 {
            work(&mut self.table, &batch).item_count()
        }
        fn $resources(&mut self, batch: Resource<$work>) -> Vec<u32> {
            resources(&mut self.table, &batch)
        }
        fn $drop(&mut self, batch: Resource<$work>, items: Vec<u32>) {
            work(&mut self.table, &batch).drop_items(&items)
        }
    };
}

/// Attribute access for batch types whose items carry attributes (spans, log records).
macro_rules! item_attribute_methods {
    ($work:ty, $column:ident, $attrs:ident, $set:ident, $remove:ident) => {
        fn $column(&mut self, batch: Resource<$work>, key: String) -> Vec<Option<AnyValue>> {
            attr_column(&mut self.table, &batch, &key)
        }
        fn $attrs(&mut self, batch: Resource<$work>, index: u32) -> Vec<KeyValue> {
            item_attrs(&mut self.table, &batch, index)
        }
        fn $set(&mut self, batch: Resource<$work>, items: Vec<u32>, key: String, value: AnyValue) {
            set_item_attr(&mut self.table, &batch, items, key, value)
        }
        fn $remove(&mut self, batch: Resource<$work>, items: Vec<u32>, key: String) {
            remove_item_attr(&mut self.table, &batch, items, key)
        }
    };
}

/// One value per item, read from the item's encoding, in flat-index order.
fn column<S: Scope + Send + 'static, T>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    value: impl Fn(&str, &[u8]) -> T,
) -> Vec<T> {
    work(table, batch)
        .encoded_items()
        .map(|(scope, item)| value(scope, item))
        .collect()
}

/// Item attribute methods for batches whose items carry attributes.
fn attr_column<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    key: &str,
) -> Vec<Option<AnyValue>>
where
{
    column(table, batch, |_, item| {
        encoded::attribute(item, S::Item::ATTRIBUTES, key).map(from_encoded)
    })
}

fn attr_column_packed<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    key: &str,
) -> types::ValueColumn
where
{
    let packed = encoded::pack(
        work(table, batch)
            .encoded_items()
            .map(|(_, item)| encoded::attribute(item, S::Item::ATTRIBUTES, key)),
    );
    types::ValueColumn {
        kinds: packed.kinds,
        scalars: packed.scalars,
        bytes: packed.bytes,
        ends: packed.ends,
    }
}

fn item_attrs<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    flat: u32,
) -> Vec<KeyValue>
where
{
    work(table, batch)
        .item(flat)
        .map(|item| item.attributes().iter().map(to_wit_kv).collect())
        .unwrap_or_default()
}

fn set_item_attr<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    flats: Vec<u32>,
    key: String,
    value: AnyValue,
) {
    let work = work(table, batch);
    let value = from_wit(value);
    for flat in flats {
        if let Some(item) = work.item_mut(flat) {
            upsert(item.attributes_mut(), key.clone(), value.clone());
        }
    }
}

fn remove_item_attr<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    flats: Vec<u32>,
    key: String,
) {
    let work = work(table, batch);
    for flat in flats {
        if let Some(item) = work.item_mut(flat) {
            item.attributes_mut().retain(|kv| kv.key != key);
        }
    }
}

/// One value list per item, flattened: the columns of nested parts (events, data points),
/// which need the items decoded.
fn part_column<S: Scope + Send + 'static, T>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    values: impl Fn(&S::Item) -> Vec<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    work(table, batch).for_each_decoded(|_, item| out.extend(values(item)));
    out
}

fn attr_value(attributes: &[otlp::KeyValue], key: &str) -> Option<AnyValue> {
    find(attributes, key)
        .and_then(|kv| kv.value.as_ref())
        .map(to_wit)
}

/// The owner index, attribute column and drop of nested parts, under each batch type's names.
macro_rules! part_methods {
    ($work:ty, $owners:ident, $column:ident, $drop:ident, $attributes:expr) => {
        fn $owners(&mut self, batch: Resource<$work>) -> Vec<u32> {
            work(&mut self.table, &batch)
                .part_positions()
                .into_iter()
                .map(|(item, _)| item)
                .collect()
        }
        fn $column(&mut self, batch: Resource<$work>, key: String) -> Vec<Option<AnyValue>> {
            part_column(&mut self.table, &batch, |item| {
                $attributes(item)
                    .into_iter()
                    .map(|attributes| attr_value(attributes, &key))
                    .collect()
            })
        }
        fn $drop(&mut self, batch: Resource<$work>, parts: Vec<u32>) {
            work(&mut self.table, &batch).drop_parts(&parts)
        }
    };
}

fn event_attributes(span: &Span) -> Vec<&[otlp::KeyValue]> {
    span.events
        .iter()
        .map(|e| e.attributes.as_slice())
        .collect()
}

fn point_attributes(
    metric: &opentelemetry_proto::tonic::metrics::v1::Metric,
) -> Vec<&[otlp::KeyValue]> {
    points(metric).into_iter().map(|p| p.attributes()).collect()
}

/// The scope name of every item.
fn scope_names<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
) -> Vec<String> {
    column(table, batch, |scope, _| scope.to_string())
}

fn resources<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
) -> Vec<u32> {
    work(table, batch)
        .positions()
        .iter()
        .map(|p| p.resource)
        .collect()
}

impl batch::HostSpanBatch for PluginState {
    resource_methods!(SpanWork);
    item_methods!(SpanWork, span_count, span_resources, drop_spans);
    item_attribute_methods!(
        SpanWork,
        span_attr_column,
        span_attrs,
        set_span_attr,
        remove_span_attr
    );

    fn span_names(&mut self, batch: Resource<SpanWork>) -> Vec<String> {
        column(&mut self.table, &batch, |_, s| {
            encoded::string(s, encoded::SPAN_NAME)
        })
    }
    fn span_names_packed(&mut self, batch: Resource<SpanWork>) -> types::StringColumn {
        let mut packed = types::StringColumn {
            bytes: Vec::new(),
            ends: Vec::new(),
        };
        for (_, span) in work(&mut self.table, &batch).encoded_items() {
            if let Some(Value::Bytes(name)) = wire::last(span, encoded::SPAN_NAME) {
                packed.bytes.extend_from_slice(name);
            }
            packed.ends.push(packed.bytes.len() as u32);
        }
        packed
    }
    fn span_attr_column_packed(
        &mut self,
        batch: Resource<SpanWork>,
        key: String,
    ) -> types::ValueColumn {
        attr_column_packed(&mut self.table, &batch, &key)
    }
    fn span_kinds(&mut self, batch: Resource<SpanWork>) -> Vec<i32> {
        column(&mut self.table, &batch, |_, s| {
            encoded::int32(s, encoded::SPAN_KIND)
        })
    }
    fn span_status_codes(&mut self, batch: Resource<SpanWork>) -> Vec<i32> {
        column(&mut self.table, &batch, |_, s| encoded::span_status_code(s))
    }
    fn span_scope_names(&mut self, batch: Resource<SpanWork>) -> Vec<String> {
        scope_names(&mut self.table, &batch)
    }

    part_methods!(
        SpanWork,
        event_spans,
        event_attr_column,
        drop_events,
        event_attributes
    );
    fn event_names(&mut self, batch: Resource<SpanWork>) -> Vec<String> {
        part_column(&mut self.table, &batch, |span| {
            span.events.iter().map(|e| e.name.clone()).collect()
        })
    }
}

impl batch::HostLogBatch for PluginState {
    resource_methods!(LogWork);
    item_methods!(LogWork, record_count, record_resources, drop_records);
    item_attribute_methods!(
        LogWork,
        record_attr_column,
        record_attrs,
        set_record_attr,
        remove_record_attr
    );

    fn record_scope_names(&mut self, batch: Resource<LogWork>) -> Vec<String> {
        scope_names(&mut self.table, &batch)
    }
    fn record_severity_numbers(&mut self, batch: Resource<LogWork>) -> Vec<i32> {
        column(&mut self.table, &batch, |_, r| {
            encoded::int32(r, encoded::LOG_SEVERITY_NUMBER)
        })
    }
    fn record_bodies(&mut self, batch: Resource<LogWork>) -> Vec<Option<AnyValue>> {
        column(&mut self.table, &batch, |_, r| {
            match wire::last(r, encoded::LOG_BODY) {
                Some(Value::Bytes(body)) => Some(from_encoded(body)),
                _ => None,
            }
        })
    }
}

impl batch::HostMetricBatch for PluginState {
    resource_methods!(MetricWork);
    item_methods!(MetricWork, metric_count, metric_resources, drop_metrics);

    part_methods!(
        MetricWork,
        point_metrics,
        point_attr_column,
        drop_points,
        point_attributes
    );
    fn metric_scope_names(&mut self, batch: Resource<MetricWork>) -> Vec<String> {
        scope_names(&mut self.table, &batch)
    }
    fn metric_names(&mut self, batch: Resource<MetricWork>) -> Vec<String> {
        column(&mut self.table, &batch, |_, m| {
            encoded::string(m, encoded::METRIC_NAME)
        })
    }
    fn metric_types(&mut self, batch: Resource<MetricWork>) -> Vec<String> {
        column(&mut self.table, &batch, |_, m| {
            encoded::metric_type(m).to_string()
        })
    }
}
