//! `tail_sampling`: the collector's tail sampling processor, run by the host because it keeps
//! state across requests and sends later, which a per-batch Wasm plugin cannot.
//!
//! The one idea: a batch is split by trace ID into encoded pieces (`trace::split`, on the
//! wire), held in one table, and answered [`Processed::Held`]; `decision_wait` after a trace's
//! first span the policies decide reading its pieces in place (no decode), and the sampled
//! pieces, concatenated, go on
//! through the pipeline's [`Downstream`] (the processors after this one, then the exporters).
//! A decided trace stays in the table (or, with a decision cache, in the cache) so its late
//! spans follow the decision. Memory is bounded by `num_traces` and, trailhead's own key,
//! `max_held_bytes`: the oldest traces are evicted first, counted as lost.

pub mod config;
mod plugin;
mod policy;
mod state;
mod trace;

pub use config::TailSamplingConfig;
pub use plugin::SamplerSlot;
use policy::{Decision, Policy};
use state::{Release, State};

use crate::pdata::{Batch, RequestContext, Signal};
use crate::pipeline::{Downstream, Hold, ProcessError, Processed, Processor};
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Registry};
use futures::future::BoxFuture;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The processor type.
pub const KIND: &str = "tail_sampling";

/// How often due decisions are looked for (the collector ticks once a second).
const TICK: Duration = Duration::from_millis(100);
/// How long a release waits for room in full exporter queues before its spans count as lost.
const ROOM_WAIT: Duration = Duration::from_secs(5);

/// Reads and checks a `tail_sampling` entry: the keys, then every policy built once. An error
/// starts with its key path (`policies[1].status_code.status_codes[0]: …`).
pub fn settings(value: &serde_json::Value) -> Result<TailSamplingConfig, String> {
    let config = TailSamplingConfig::from_value(value)?;
    build_policies(&config)?;
    Ok(config)
}

/// A built top-level policy with its name and its decision counters.
pub struct Named {
    policy: Policy,
    counted: [Counter; 3],
}

impl Named {
    fn count(&self, decision: Decision) {
        self.counted[decision as usize].add(1);
    }
}

/// The policies in evaluation order: `drop` policies first, as the collector orders them.
fn build_policies(config: &TailSamplingConfig) -> Result<Vec<(String, Policy)>, String> {
    let mut names = HashSet::new();
    let mut built = Vec::new();
    for (i, policy) in config.policies.iter().enumerate() {
        let at = format!("policies[{i}]");
        if policy.name.is_empty() {
            return Err(format!("{at}.name: policy name cannot be empty"));
        }
        if !names.insert(policy.name.as_str()) {
            return Err(format!(
                "{at}.name: duplicate policy name `{}`",
                policy.name
            ));
        }
        built.push((policy.name.clone(), Policy::build(policy, &at)?));
    }
    built.sort_by_key(|(_, p)| !p.is_drop());
    Ok(built)
}

/// The processor's counters, made when it is built.
struct Instruments {
    traces: [Counter; 3],
    late: [Counter; 3],
    evicted_num_traces: Counter,
    evicted_bytes: Counter,
    lost_evicted: Counter,
    lost_too_large: Counter,
    lost_downstream: Counter,
    lost_shutdown: Counter,
    held_bytes: Arc<AtomicU64>,
    held_traces: Arc<AtomicU64>,
}

const DECISIONS: [Decision; 3] = [Decision::Sampled, Decision::NotSampled, Decision::Dropped];

impl Instruments {
    fn new(registry: &Registry, id: &str) -> Instruments {
        let by_decision = |metric| DECISIONS.map(|d| registry.counter(metric, &[id, d.as_str()]));
        let evicted = |reason| registry.counter(&catalog::TAIL_SAMPLING_EVICTED, &[id, reason]);
        let lost = |reason| registry.counter(&catalog::TAIL_SAMPLING_LOST_SPANS, &[id, reason]);
        let held_bytes = Arc::new(AtomicU64::new(0));
        let held_traces = Arc::new(AtomicU64::new(0));
        let (bytes, traces) = (held_bytes.clone(), held_traces.clone());
        registry.gauge_fn(&catalog::TAIL_SAMPLING_HELD_BYTES, &[id], move || {
            bytes.load(Ordering::Relaxed) as f64
        });
        registry.gauge_fn(&catalog::TAIL_SAMPLING_HELD_TRACES, &[id], move || {
            traces.load(Ordering::Relaxed) as f64
        });
        Instruments {
            traces: by_decision(&catalog::TAIL_SAMPLING_TRACES),
            late: by_decision(&catalog::TAIL_SAMPLING_LATE_SPANS),
            evicted_num_traces: evicted("num_traces"),
            evicted_bytes: evicted("max_held_bytes"),
            lost_evicted: lost("evicted"),
            lost_too_large: lost("too_large"),
            lost_downstream: lost("downstream"),
            lost_shutdown: lost("shutdown"),
            held_bytes,
            held_traces,
        }
    }
}

/// One `tail_sampling` processor in one pipeline (as in the collector, each pipeline that
/// lists it has its own instance, so its own traces).
pub struct TailSampling {
    id: String,
    config: TailSamplingConfig,
    state: Mutex<State>,
    downstream: OnceLock<Downstream>,
    /// Wakes the release task when late spans of a sampled trace are waiting.
    wake: Notify,
    metrics: Instruments,
    /// Its `plugin` policies' running versions, at any depth.
    plugins: Vec<Arc<SamplerSlot>>,
    /// Itself, for the commits of the batches it is given.
    me: Weak<TailSampling>,
}

impl TailSampling {
    /// A processor from settings checked by [`settings`].
    pub fn new(
        id: &str,
        config: TailSamplingConfig,
        registry: &Registry,
    ) -> Result<Arc<Self>, String> {
        let (policies, plugins) = plugin::collect(|| build_policies(&config));
        plugins.iter().for_each(|slot| slot.attach(id, registry));
        let policies = policies?
            .into_iter()
            .map(|(name, policy)| Named {
                counted: DECISIONS.map(|d| {
                    let labels = [id, name.as_str(), d.as_str()];
                    registry.counter(&catalog::TAIL_SAMPLING_DECISIONS, &labels)
                }),
                policy,
            })
            .collect();
        let state = State::new(&config, policies);
        Ok(Arc::new_cyclic(|me| TailSampling {
            id: id.to_string(),
            config,
            state: Mutex::new(state),
            downstream: OnceLock::new(),
            wake: Notify::new(),
            metrics: Instruments::new(registry, id),
            plugins,
            me: me.clone(),
        }))
    }

    /// Its `plugin` policies, which the reloader swaps when their files change.
    pub fn plugins(&self) -> &[Arc<SamplerSlot>] {
        &self.plugins
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Says once, plainly, what no queue covers. Called while the service starts, so the
    /// statement is logged before "trailhead is running".
    pub fn state_crash_exposure(&self) {
        tracing::info!(
            processor = %self.id,
            decision_wait = ?self.config.decision_wait,
            num_traces = self.config.num_traces,
            max_held_bytes = self.config.max_held_bytes,
            "traces waiting for a decision are held in memory only: a crash (kill -9, OOM kill) loses them, up to decision_wait of traffic; a graceful shutdown decides and sends them first, and a persistent sending queue covers only what was released"
        );
    }

    /// Decides due traces and sends what is released, until `stop`; then the caller flushes.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
                () = self.wake.notified() => {}
            }
            let released = self.decide(Instant::now(), false);
            self.send(released, Instant::now() + ROOM_WAIT).await;
        }
    }

    /// At shutdown, once receivers have stopped: decides every trace still waiting and sends
    /// the sampled ones before `deadline` (or, with `drop_pending_traces_on_shutdown`, drops
    /// them), saying what was lost.
    pub async fn flush(&self, deadline: Instant) {
        if self.config.drop_pending_traces_on_shutdown {
            let (traces, spans) = self.lock().drop_pending(&self.metrics);
            self.metrics.lost_shutdown.add(spans);
            if traces > 0 {
                tracing::warn!(processor = %self.id, traces, spans, "shutting down: traces waiting for a decision dropped (drop_pending_traces_on_shutdown)");
            }
            return;
        }
        let released = self.decide(Instant::now(), true);
        let spans: u64 = released.iter().map(|r| r.spans).sum();
        tracing::info!(processor = %self.id, spans, "shutting down: traces waiting for a decision decided now; sending the sampled ones");
        self.send(released, deadline).await;
    }

    /// Holds an accepted batch's pieces; late spans of a sampled trace wake the release task.
    fn hold(&self, pieces: Vec<trace::Piece>, context: &RequestContext) {
        let late = self
            .lock()
            .hold(pieces, context, Instant::now(), &self.metrics);
        if late {
            self.wake.notify_one();
        }
    }

    /// Decides the traces due by `now` (every waiting one when `all`), under the lock.
    fn decide(&self, now: Instant, all: bool) -> Vec<Release> {
        let mut state = self.lock();
        let mut released = state.take_outbox();
        released.extend(state.decide_due(now, all, &self.metrics));
        released
    }

    /// Sends released pieces on, one batch per sender context; what the rest of the pipeline
    /// will not take before `deadline` is counted as lost.
    async fn send(&self, released: Vec<Release>, deadline: Instant) {
        for (context, payload, items) in group(released) {
            let batch = Batch::from_encoded(Signal::Traces, payload, items as usize, context);
            let outcome = match self.downstream.get() {
                Some(downstream) => downstream.deliver(batch, deadline).await,
                None => Err(crate::pipeline::ConsumeError::Queue(
                    crate::exporters::QueueError::ShuttingDown,
                )),
            };
            if let Err(error) = outcome {
                self.metrics.lost_downstream.add(items);
                tracing::warn!(processor = %self.id, spans = items, error = %error, "sampled spans could not be handed on and are lost");
            }
        }
    }
}

/// Released pieces joined into one request per sender context, so enrichment after this
/// processor (k8sattributes by peer address) still sees where each span came from.
fn group(released: Vec<Release>) -> Vec<(RequestContext, Vec<u8>, u64)> {
    let mut groups: Vec<(RequestContext, Vec<Release>)> = Vec::new();
    for release in released {
        match groups
            .iter_mut()
            .find(|(c, _)| state::same_context(c, &release.context))
        {
            Some((_, members)) => members.push(release),
            None => groups.push((release.context.clone(), vec![release])),
        }
    }
    groups
        .into_iter()
        .map(|(context, members)| {
            let rest: usize = members[1..].iter().map(|r| r.encoded.len()).sum();
            let mut members = members.into_iter();
            let first = members.next().expect("a group has a member");
            // The first piece's buffer grows once to hold the rest.
            let (mut payload, mut spans) = (first.encoded, first.spans);
            payload.reserve_exact(rest);
            for release in members {
                payload.extend_from_slice(&release.encoded);
                spans += release.spans;
            }
            (context, payload, spans)
        })
        .collect()
}

impl Processor for TailSampling {
    fn id(&self) -> &str {
        &self.id
    }

    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Processed, ProcessError>> {
        Box::pin(async move {
            if batch.signal != Signal::Traces {
                return Ok(Processed::Kept(batch));
            }
            let payload = batch.payload.to_bytes();
            // Receivers checked the request's framing; split copies what reads.
            let pieces = trace::split(&payload);
            let me = self.me.clone();
            let context = batch.context;
            Ok(Processed::Held(Hold::new(move || {
                if let Some(me) = me.upgrade() {
                    me.hold(pieces, &context);
                }
            })))
        })
    }

    fn attach(&self, downstream: Downstream) {
        let _ = self.downstream.set(downstream);
    }
}

#[cfg(test)]
mod tests;
