//! What a plugin's store holds: WASI with nothing granted, its limits, the tail of its output,
//! the request context and the Kubernetes cache. Each contract version's bindings and import
//! implementations (`v0_1.rs`, `v0_2.rs`) work on this state.

use crate::kubernetes;
use crate::pdata::RequestContext;
use opentelemetry_proto::tonic::common::v1 as otlp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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
    pub metadata: Arc<kubernetes::Store>,
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

/// Log lines from plugins are cut here (at a character boundary).
pub const LOG_LINE_BYTES: usize = 2048;

/// Writes a plugin's log line to trailhead's log, tagged with the plugin.
pub fn log(plugin: &str, level: tracing::Level, message: &str) {
    let message = &message[..message.floor_char_boundary(LOG_LINE_BYTES)];
    match level {
        tracing::Level::TRACE => tracing::trace!(plugin, "{message}"),
        tracing::Level::DEBUG => tracing::debug!(plugin, "{message}"),
        tracing::Level::INFO => tracing::info!(plugin, "{message}"),
        tracing::Level::WARN => tracing::warn!(plugin, "{message}"),
        tracing::Level::ERROR => tracing::error!(plugin, "{message}"),
    }
}

/// A cached pod's owners as (kind, name, uid); a Deployment's UID comes from its ReplicaSet's.
pub fn owners(
    metadata: &kubernetes::Store,
    pod: &kubernetes::Pod,
) -> Vec<(String, String, String)> {
    let replicaset_uid = pod
        .owners
        .iter()
        .find(|o| o.kind == "ReplicaSet")
        .map(|o| &*o.uid);
    pod.owners
        .iter()
        .map(|o| {
            let uid = match (o.kind, replicaset_uid) {
                ("Deployment", Some(rs)) => metadata
                    .deployment_uid(rs)
                    .map(String::from)
                    .unwrap_or_default(),
                _ => o.uid.to_string(),
            };
            (o.kind.to_string(), o.name.to_string(), uid)
        })
        .collect()
}

pub fn pairs(list: &[(Box<str>, Box<str>)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn find<'a>(attributes: &'a [otlp::KeyValue], key: &str) -> Option<&'a otlp::KeyValue> {
    attributes.iter().find(|kv| kv.key == key)
}

/// Inserts or overwrites `key`.
pub fn upsert(attributes: &mut Vec<otlp::KeyValue>, key: String, value: otlp::AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => attributes.push(otlp::KeyValue {
            key,
            value: Some(value),
            ..Default::default()
        }),
    }
}

/// The cached pod and a namespace's or node's metadata as one contract version's WIT records,
/// `wit_pod` and `wit_meta`. The records read the same in 0.1 and 0.2, but each version's
/// bindings have types of their own, so each version's module expands this with its path.
macro_rules! wit_records {
    ($($wit:ident)::+) => {
        fn wit_meta(meta: &$crate::kubernetes::Meta) -> $($wit)::+::ObjectMeta {
            $($wit)::+::ObjectMeta {
                uid: meta.uid.to_string(),
                labels: $crate::processors::wasm::host::pairs(&meta.labels),
                annotations: $crate::processors::wasm::host::pairs(&meta.annotations),
            }
        }

        fn wit_pod(state: &PluginState, pod: &$crate::kubernetes::Pod) -> $($wit)::+::Pod {
            use $crate::processors::wasm::host::{owners, pairs};
            let owners = owners(&state.metadata, pod)
                .into_iter()
                .map(|(kind, name, uid)| $($wit)::+::Owner { kind, name, uid })
                .collect();
            $($wit)::+::Pod {
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
    };
}
pub(crate) use wit_records;
