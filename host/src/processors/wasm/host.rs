//! What a plugin's store holds, and the host side of the WIT imports: logging, the request
//! context, pod lookups (empty until the Kubernetes cache exists), and the batch resources.
//! The generated bindings live in the private `bindings` module.

use super::batch::{Attributed, LogWork, MetricWork, Scope, SpanWork, Working, point_attributes};
use super::encoded;
use crate::kubernetes;
use crate::pdata::RequestContext;
use crate::pdata::wire::{self, Value};
use opentelemetry_proto::tonic::common::v1 as otlp;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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

/// The last bytes a plugin wrote to stdout or stderr, for failure logs; never fails a write.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<u8>>>);

const TAIL_BYTES: usize = 4096;

impl Tail {
    pub fn take(&self) -> String {
        let mut buffer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = buffer.drain(..).collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl tokio::io::AsyncWrite for Tail {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut buffer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buffer.extend(data);
        let excess = buffer.len().saturating_sub(TAIL_BYTES);
        buffer.drain(..excess);
        std::task::Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl wasmtime_wasi::cli::IsTerminal for Tail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for Tail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Everything one plugin instance's store holds.
pub struct PluginState {
    pub plugin_id: Arc<str>,
    /// WASI with nothing granted: no preopened directories, environment, arguments or network.
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub output: Tail,
    /// The context of the batch being processed.
    pub context: Option<RequestContext>,
    /// The host's Kubernetes cache, for the `pod-by-*` imports.
    metadata: Arc<kubernetes::Store>,
}

impl PluginState {
    pub fn new(plugin_id: Arc<str>, memory_bytes: usize, metadata: Arc<kubernetes::Store>) -> Self {
        let output = Tail::default();
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        PluginState {
            plugin_id,
            wasi,
            table: ResourceTable::new(),
            limits,
            output,
            context: None,
            metadata,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}
impl batch::Host for PluginState {}

const LOG_LINE_BYTES: usize = 2048;

impl host::Host for PluginState {
    fn log(&mut self, level: host::Level, message: String) {
        let message = &message[..message.floor_char_boundary(LOG_LINE_BYTES)];
        let plugin = &*self.plugin_id;
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
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
        self.metadata.pod_by_ip(&ip).map(|p| self.to_wit_pod(&p))
    }
    fn pod_by_uid(&mut self, uid: String) -> Option<host::Pod> {
        self.metadata.pod_by_uid(&uid).map(|p| self.to_wit_pod(&p))
    }
    fn pod_by_name(&mut self, namespace: String, name: String) -> Option<host::Pod> {
        self.metadata
            .pod_by_name(&namespace, &name)
            .map(|p| self.to_wit_pod(&p))
    }
    fn namespace_by_name(&mut self, name: String) -> Option<host::ObjectMeta> {
        self.metadata.namespace(&name).map(|m| to_wit_meta(&m))
    }
    fn node_by_name(&mut self, name: String) -> Option<host::ObjectMeta> {
        self.metadata.node(&name).map(|m| to_wit_meta(&m))
    }
}

fn pairs(list: &[(Box<str>, Box<str>)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn to_wit_meta(meta: &kubernetes::Meta) -> host::ObjectMeta {
    host::ObjectMeta {
        uid: meta.uid.to_string(),
        labels: pairs(&meta.labels),
        annotations: pairs(&meta.annotations),
    }
}

impl PluginState {
    /// The cached pod as the WIT record; a Deployment's UID comes from its ReplicaSet's.
    fn to_wit_pod(&self, pod: &kubernetes::Pod) -> host::Pod {
        let replicaset_uid = pod
            .owners
            .iter()
            .find(|o| o.kind == "ReplicaSet")
            .map(|o| &*o.uid);
        let owners = pod
            .owners
            .iter()
            .map(|o| host::Owner {
                kind: o.kind.to_string(),
                name: o.name.to_string(),
                uid: match (o.kind, replicaset_uid) {
                    ("Deployment", Some(rs)) => self
                        .metadata
                        .deployment_uid(rs)
                        .map(String::from)
                        .unwrap_or_default(),
                    _ => o.uid.to_string(),
                },
            })
            .collect();
        host::Pod {
            name: pod.name.to_string(),
            namespace: pod.namespace.to_string(),
            uid: pod.uid.to_string(),
            start_time: pod.start_time.to_string(),
            node_name: pod.node_name.to_string(),
            ip: pod.ip.to_string(),
            owners,
            labels: pairs(&pod.labels),
            annotations: pairs(&pod.annotations),
            containers: pairs(&pod.containers),
        }
    }
}

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

fn find<'a>(attributes: &'a [otlp::KeyValue], key: &str) -> Option<&'a otlp::KeyValue> {
    attributes.iter().find(|kv| kv.key == key)
}

/// Inserts or overwrites `key`.
fn upsert(attributes: &mut Vec<otlp::KeyValue>, key: String, value: otlp::AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => attributes.push(otlp::KeyValue {
            key,
            value: Some(value),
            ..Default::default()
        }),
    }
}

fn work<'a, S: Scope + Send + 'static>(
    table: &'a mut ResourceTable,
    batch: &Resource<Working<S>>,
) -> &'a mut Working<S> {
    // The host created the resource for this call and removes it after, so it is always there.
    table
        .get_mut(batch)
        .expect("batch resource outlives the call")
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
            work(&mut self.table, &batch).encode().to_bytes().to_vec()
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
    S::Item: Attributed,
{
    column(table, batch, |_, item| {
        encoded::attribute(item, S::Item::ATTRIBUTES, key).map(encoded::to_wit)
    })
}

fn attr_column_packed<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    key: &str,
) -> types::ValueColumn
where
    S::Item: Attributed,
{
    encoded::pack(
        work(table, batch)
            .encoded_items()
            .map(|(_, item)| encoded::attribute(item, S::Item::ATTRIBUTES, key)),
    )
}

fn item_attrs<S: Scope + Send + 'static>(
    table: &mut ResourceTable,
    batch: &Resource<Working<S>>,
    flat: u32,
) -> Vec<KeyValue>
where
    S::Item: Attributed,
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
) where
    S::Item: Attributed,
{
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
) where
    S::Item: Attributed,
{
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
                Some(Value::Bytes(body)) => Some(encoded::to_wit(body)),
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
