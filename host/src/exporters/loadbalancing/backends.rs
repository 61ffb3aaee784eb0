//! The balancer: the current members (a [`Ring`] and each member's queue), the otlp exporter
//! each member runs, and the two sinks that tie them together.
//!
//! - [`Router`] is the sink of the `loadbalancing` exporter itself: it groups a request by
//!   routing key and hands each group to its owner's queue, all or none, so a retry of a full
//!   queue never duplicates what another queue already took.
//! - [`BackendSink`] wraps a member's otlp sink. An attempt to a member sends; an attempt to a
//!   backend that has left re-routes the request through the balancer instead. The member's
//!   exporter is stopped when it leaves, so its queue drains through that path.

use super::ring::Ring;
use crate::auth::ClientAuthConfig;
use crate::exporters::otlp::OtlpExporterConfig;
use crate::exporters::{
    DiskQueue, ExportError, ExporterHandle, Payload, SendOutcome, Sink, spawn_exporter,
};
use crate::pdata::route_metrics::RoutingKey;
use crate::pdata::{Batch, RequestContext, Signal};
use crate::secrets::Secrets;
use crate::telemetry::Telemetry;
use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where each backend's persistent queue lives, when `protocol.otlp.sending_queue.storage` is set.
#[derive(Clone)]
pub struct BackendStorage {
    pub directory: PathBuf,
    pub fsync: bool,
}

/// What a backend's exporter is built from.
pub struct Template {
    /// The otlp settings, paths already resolved; `endpoint` is replaced per backend.
    pub otlp: OtlpExporterConfig,
    pub token: Option<ClientAuthConfig>,
    pub storage: Option<BackendStorage>,
}

/// The members at one moment: the ring, and each member's queue by ring index.
struct Members {
    ring: Ring,
    queues: Vec<ExporterHandle>,
}

/// A member's running exporter.
struct Running {
    handle: ExporterHandle,
    stop: CancellationToken,
}

/// One `loadbalancing` exporter instance (id × signal).
pub struct Balancer {
    id: String,
    signal: Signal,
    by: RoutingKey,
    template: Template,
    members: ArcSwap<Members>,
    running: Mutex<BTreeMap<Arc<str>, Running>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Backends' exporters run under their own supervisor: a backend leaving ends its task,
    /// which is not a failure of trailhead.
    telemetry: Telemetry,
    /// Backends added later cannot register with the service's watcher; their files are read
    /// when they are added.
    secrets: Secrets,
    pub(super) stop: CancellationToken,
    abort: CancellationToken,
}

impl Balancer {
    /// A balancer with no members yet; the resolver sets them.
    pub fn new(
        id: &str,
        signal: Signal,
        by: RoutingKey,
        template: Template,
        telemetry: &Telemetry,
    ) -> Arc<Balancer> {
        let supervisor = crate::telemetry::supervisor::Supervisor::new(Default::default());
        supervisor.stopping();
        let telemetry = Telemetry {
            supervisor,
            ..telemetry.clone()
        };
        Arc::new(Balancer {
            id: id.to_string(),
            signal,
            by,
            template,
            members: ArcSwap::from_pointee(Members {
                ring: Ring::default(),
                queues: Vec::new(),
            }),
            running: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
            telemetry,
            secrets: Secrets::default(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
        })
    }

    /// The sink of the exporter itself.
    pub fn router(self: &Arc<Self>) -> Arc<dyn Sink> {
        Arc::new(Router(self.clone()))
    }

    /// The current members.
    pub fn endpoints(&self) -> Vec<Arc<str>> {
        self.members.load().ring.endpoints().to_vec()
    }

    /// Makes `endpoints` the members: new ones get an exporter, and the exporters of those
    /// that left are stopped, so their queues drain by re-routing.
    pub fn set_endpoints(self: &Arc<Self>, endpoints: Vec<String>) {
        if self.stop.is_cancelled() {
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: Vec<Arc<str>> = endpoints.into_iter().map(Arc::from).collect();
        wanted.sort();
        wanted.dedup();
        // A periodic resolver mostly finds what it found before.
        if running.keys().eq(wanted.iter()) {
            return;
        }
        for endpoint in &wanted {
            if !running.contains_key(endpoint) {
                match self.spawn(endpoint) {
                    Ok(member) => {
                        running.insert(endpoint.clone(), member);
                    }
                    Err(error) => {
                        tracing::error!(exporter = %self.id, backend = %endpoint, %error, "cannot build the backend's exporter; leaving it out");
                    }
                }
            }
        }
        let left: Vec<Arc<str>> = running
            .keys()
            .filter(|e| !wanted.contains(e))
            .cloned()
            .collect();
        let ring = Ring::new(running.keys().filter(|e| wanted.contains(e)).cloned());
        let queues = ring
            .endpoints()
            .iter()
            .map(|e| running[e].handle.clone())
            .collect();
        let before = self.endpoints();
        self.members.store(Arc::new(Members { ring, queues }));
        // Only now, with the new ring in place, do the leavers drain: by re-routing.
        for endpoint in left {
            if let Some(member) = running.remove(&endpoint) {
                member.stop.cancel();
            }
        }
        let after = self.endpoints();
        if before != after {
            let members: Vec<&str> = after.iter().map(|e| e.as_ref()).collect();
            tracing::info!(exporter = %self.id, signal = self.signal.as_str(), backends = ?members, "loadbalancing backends changed");
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
    }

    /// Starts the otlp exporter of one backend, its sink wrapped to re-route once it leaves.
    fn spawn(self: &Arc<Self>, endpoint: &Arc<str>) -> Result<Running, String> {
        let mut otlp = self.template.otlp.clone();
        otlp.endpoint = endpoint.to_string();
        let id = format!("{}/{}", self.id, endpoint);
        let token = self.template.token.clone();
        let mut spec = otlp
            .build(&id, self.signal, |p| p.clone(), token, &self.secrets)
            .map_err(|e| e.to_string())?;
        spec.sink = Arc::new(BackendSink {
            endpoint: endpoint.clone(),
            inner: spec.sink,
            balancer: Arc::downgrade(self),
            rerouting: Default::default(),
        });
        let storage = match &self.template.storage {
            Some(storage) => {
                let folder = crate::exporters::FileStorageConfig::queue_dir(
                    &storage.directory,
                    &id,
                    self.signal.as_str(),
                );
                let limits = spec.queue.disk_limits();
                Some(DiskQueue::open(&folder, storage.fsync, limits).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let stop = self.stop.child_token();
        let (handle, task) = spawn_exporter(
            spec,
            storage,
            &self.telemetry,
            stop.clone(),
            self.abort.clone(),
        );
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        Ok(Running { handle, stop })
    }

    /// Hands each group of `payload` to its owner's queue, all of them or none.
    async fn route(&self, payload: &Payload, items: usize) -> Result<(), String> {
        let members = self.members.load_full();
        if members.queues.is_empty() {
            return Err(format!("exporter `{}`: no backend resolved yet", self.id));
        }
        let ring = &members.ring;
        let groups = self.by.group(self.signal, payload, items, |key| {
            ring.owner(key).unwrap_or(0)
        });
        let mut slots = Vec::with_capacity(groups.len());
        for (owner, piece) in groups {
            let batch = Batch {
                signal: self.signal,
                payload: piece.payload,
                items: piece.items,
                context: RequestContext::internal(&self.id),
            };
            let slot = members.queues[owner]
                .try_reserve(&batch)
                .map_err(|e| e.to_string())?;
            slots.push((slot, batch));
        }
        // Disk first: it can fail, and then nothing has been handed over yet.
        slots.sort_by_key(|(slot, _)| !slot.is_durable());
        for (slot, batch) in slots {
            slot.fill(batch).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Closes every backend's queue and waits for them to drain; at `abort`, gives up on
    /// what is still retrying (counted by each backend's exporter).
    async fn drain(&self, abort: &CancellationToken) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut all = std::pin::pin!(futures::future::join_all(tasks));
        tokio::select! {
            _ = &mut all => return,
            () = abort.cancelled() => {}
        }
        self.abort.cancel();
        all.await;
    }
}

/// The `loadbalancing` exporter's own sink: routes each request to the owners' queues.
struct Router(Arc<Balancer>);

impl Sink for Router {
    fn send(
        &self,
        payload: Payload,
        items: usize,
    ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async move {
            self.0
                .route(&payload, items)
                .await
                .map_err(|message| ExportError::Retryable {
                    message,
                    retry_after: None,
                })?;
            Ok(SendOutcome::default())
        })
    }

    fn drain<'a>(&'a self, abort: &'a CancellationToken) -> BoxFuture<'a, ()> {
        Box::pin(self.0.drain(abort))
    }
}

/// A backend's sink: sends while the backend is a member, re-routes once it is not.
struct BackendSink {
    endpoint: Arc<str>,
    inner: Arc<dyn Sink>,
    balancer: Weak<Balancer>,
    /// Whether re-routing has been logged: once per departed backend, not once per request.
    rerouting: std::sync::atomic::AtomicBool,
}

impl Sink for BackendSink {
    fn send(
        &self,
        payload: Payload,
        items: usize,
    ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async move {
            let Some(balancer) = self.balancer.upgrade() else {
                return self.inner.send(payload, items).await;
            };
            if balancer.members.load().ring.contains(&self.endpoint) {
                return self.inner.send(payload, items).await;
            }
            balancer
                .route(&payload, items)
                .await
                .map_err(|message| ExportError::Retryable {
                    message,
                    retry_after: None,
                })?;
            if !self
                .rerouting
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::info!(exporter = %balancer.id, backend = %self.endpoint, "re-routing what was queued or retrying for a backend that left");
            }
            Ok(SendOutcome::default())
        })
    }
}
