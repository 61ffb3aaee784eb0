//! Contract 0.2 (`wit/0.2.1`, and `wit/0.2.0` before it): its bindings and the host side of
//! its imports. Batches are read in columns per level; a bad index or a list of the wrong
//! length traps with a message naming the method, which is why every import here is
//! trappable.
//!
//! Only 0.2.1's imports are linked. wasmtime's linker resolves an import of `…@0.2.0` to the
//! definition of `…@0.2.1` (a semver-compatible lookup: the same `0.2` track, see wasmtime's
//! `Linker` docs, "Names and Semver"), and a definition may have more than an import asks for
//! (0.2.1's `profile-batch`). Exports are checked per version: a 0.2.0 component's through
//! [`bindings_0_2_0`], whose `signal` has three cases, a 0.2.1 one's through [`bindings`].

mod batch;

use super::encoded;
use super::host::{PluginState, log};
use super::items::Level;
use crate::pdata::Signal;
use opentelemetry_proto::tonic::common::v1 as otlp;
use prost::Message;

/// Contract 0.2.1: the imports the host links, and the exports of a 0.2.1 component.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.1",
        world: "processor",
        imports: { default: trappable },
        with: {
            "mathtrail:trailhead/batch.span-batch": crate::processors::wasm::batch::SpanWork,
            "mathtrail:trailhead/batch.log-batch": crate::processors::wasm::batch::LogWork,
            "mathtrail:trailhead/batch.metric-batch": crate::processors::wasm::batch::MetricWork,
            "mathtrail:trailhead/batch.profile-batch": crate::processors::wasm::profiles::ProfileWork,
        },
    });
}

/// Contract 0.2.0, for the exports of a 0.2.0 component only: its imports are served by
/// 0.2.1's (see the module header), so nothing here is linked.
pub mod bindings_0_2_0 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "processor",
        with: {
            "mathtrail:trailhead/batch.span-batch": crate::processors::wasm::batch::SpanWork,
            "mathtrail:trailhead/batch.log-batch": crate::processors::wasm::batch::LogWork,
            "mathtrail:trailhead/batch.metric-batch": crate::processors::wasm::batch::MetricWork,
        },
    });
}

use bindings::mathtrail::trailhead::{context, kubernetes as k8s, log as wit_log, types};
use types::{AnyValue, KeyValue, ValueColumn, ValueKind};

/// The signals of a 0.2.1 `plugin-info`, as the host's.
pub fn signals(list: &[types::Signal]) -> Vec<Signal> {
    list.iter()
        .map(|s| match s {
            types::Signal::Traces => Signal::Traces,
            types::Signal::Metrics => Signal::Metrics,
            types::Signal::Logs => Signal::Logs,
            types::Signal::Profiles => Signal::Profiles,
        })
        .collect()
}

impl types::Host for PluginState {}
impl bindings::mathtrail::trailhead::batch::Host for PluginState {}

impl wit_log::Host for PluginState {
    fn write(&mut self, severity: wit_log::Severity, message: String) -> wasmtime::Result<()> {
        use wit_log::Severity as S;
        let level = match severity {
            S::Trace => tracing::Level::TRACE,
            S::Debug => tracing::Level::DEBUG,
            S::Info => tracing::Level::INFO,
            S::Warn => tracing::Level::WARN,
            S::Error => tracing::Level::ERROR,
        };
        log(&self.plugin_id, level, &message);
        Ok(())
    }
}

impl context::Host for PluginState {
    fn current(&mut self) -> wasmtime::Result<context::RequestContext> {
        Ok(match &self.context {
            Some(c) => context::RequestContext {
                peer_address: c.peer.map(|p| p.to_string()),
                forwarded_for: c.forwarded_for.as_deref().map(str::to_string),
                receiver: c.receiver.to_string(),
            },
            None => context::RequestContext {
                peer_address: None,
                forwarded_for: None,
                receiver: String::new(),
            },
        })
    }
}

impl k8s::Host for PluginState {
    fn pod_by_ip(&mut self, ip: String) -> wasmtime::Result<Option<k8s::Pod>> {
        Ok(self.metadata.pod_by_ip(&ip).map(|p| wit_pod(self, &p)))
    }
    fn pod_by_uid(&mut self, uid: String) -> wasmtime::Result<Option<k8s::Pod>> {
        Ok(self.metadata.pod_by_uid(&uid).map(|p| wit_pod(self, &p)))
    }
    fn pod_by_name(
        &mut self,
        namespace: String,
        name: String,
    ) -> wasmtime::Result<Option<k8s::Pod>> {
        let pod = self.metadata.pod_by_name(&namespace, &name);
        Ok(pod.map(|p| wit_pod(self, &p)))
    }
    fn namespace_by_name(&mut self, name: String) -> wasmtime::Result<Option<k8s::ObjectMeta>> {
        Ok(self.metadata.namespace(&name).map(|m| wit_meta(&m)))
    }
    fn node_by_name(&mut self, name: String) -> wasmtime::Result<Option<k8s::ObjectMeta>> {
        Ok(self.metadata.node(&name).map(|m| wit_meta(&m)))
    }
    fn generation(&mut self) -> wasmtime::Result<u64> {
        Ok(self.metadata.generation())
    }
}

super::host::wit_records!(k8s);

pub fn level(level: types::Level) -> Level {
    match level {
        types::Level::Resource => Level::Resource,
        types::Level::Scope => Level::Scope,
        types::Level::Item => Level::Item,
        types::Level::Event => Level::Event,
        types::Level::Link => Level::Link,
        types::Level::Point => Level::Point,
        types::Level::Exemplar => Level::Exemplar,
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
        Some(V::ArrayValue(a)) => AnyValue::Array(a.encode_to_vec()),
        Some(V::KvlistValue(k)) => AnyValue::Kvlist(k.encode_to_vec()),
        _ => AnyValue::Str(String::new()),
    }
}

/// WIT `any-value` → OTLP `AnyValue`. An array or map that does not decode traps: the plugin
/// built it wrong, and an empty value in its place would lose data silently.
pub fn from_wit(value: AnyValue, method: &str) -> wasmtime::Result<otlp::AnyValue> {
    use otlp::any_value::Value as V;
    let value = match value {
        AnyValue::Str(s) => V::StringValue(s),
        AnyValue::Boolean(b) => V::BoolValue(b),
        AnyValue::Int(i) => V::IntValue(i),
        AnyValue::Double(d) => V::DoubleValue(d),
        AnyValue::Bytes(b) => V::BytesValue(b),
        AnyValue::Array(b) => {
            V::ArrayValue(otlp::ArrayValue::decode(b.as_slice()).map_err(|e| {
                wasmtime::format_err!(
                    "{method}: an `array` value is not an encoded ArrayValue: {e}"
                )
            })?)
        }
        AnyValue::Kvlist(b) => {
            V::KvlistValue(otlp::KeyValueList::decode(b.as_slice()).map_err(|e| {
                wasmtime::format_err!(
                    "{method}: a `kvlist` value is not an encoded KeyValueList: {e}"
                )
            })?)
        }
    };
    Ok(otlp::AnyValue { value: Some(value) })
}

pub fn to_wit_kv(kv: &otlp::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key.clone(),
        value: kv
            .value
            .as_ref()
            .map_or(AnyValue::Str(String::new()), to_wit),
    }
}

/// A packed column as the 0.2 record (its kinds as the WIT enum).
pub fn value_column(packed: encoded::Packed) -> ValueColumn {
    const KINDS: [ValueKind; 8] = [
        ValueKind::None,
        ValueKind::Str,
        ValueKind::Boolean,
        ValueKind::Int,
        ValueKind::Double,
        ValueKind::Bytes,
        ValueKind::Array,
        ValueKind::Kvlist,
    ];
    ValueColumn {
        kinds: packed.kinds.iter().map(|&k| KINDS[k as usize]).collect(),
        scalars: packed.scalars,
        bytes: packed.bytes,
        ends: packed.ends,
    }
}
