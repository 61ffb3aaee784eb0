//! The trace table: held pieces by trace ID, the order traces arrived in (for eviction), the
//! decision deadlines, the decision caches, and the late sampled spans waiting to be sent.
//! Every method runs under the processor's lock and does no I/O.

use super::config::TailSamplingConfig;
use super::policy::Decision;
use super::trace::{Piece, TraceData, TraceId};
use super::{Instruments, Named};
use crate::pdata::RequestContext;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// What a held trace costs besides its spans' bytes (its table, queue and heap entries), so
/// `max_held_bytes` bounds memory, not only payload.
const TRACE_OVERHEAD: u64 = 160;

/// Encoded pieces that go on, from one sender context.
pub struct Release {
    pub context: RequestContext,
    pub encoded: Vec<u8>,
    pub spans: u64,
}

/// One trace in the table.
struct Held {
    /// Which arrival this entry is, so stale queue entries are told apart.
    seq: u64,
    deadline: Instant,
    decision: Option<Decision>,
    /// Pieces by sender context, in arrival order; consecutive pieces of one context joined.
    chunks: Vec<Release>,
    spans: u64,
    /// The trace's size as the collector counts it (its `ResourceSpans`' encodings).
    size: u64,
    /// What `held_bytes` counts for it while it waits.
    bytes: u64,
}

/// Remembers decided trace IDs, least recently used evicted first; size 0 keeps none.
struct Lru {
    capacity: usize,
    stamps: HashMap<TraceId, u64>,
    by_stamp: BTreeMap<u64, TraceId>,
    next: u64,
}

impl Lru {
    fn new(size: i64) -> Lru {
        Lru {
            capacity: size.max(0) as usize,
            stamps: HashMap::new(),
            by_stamp: BTreeMap::new(),
            next: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn get(&mut self, id: &TraceId) -> bool {
        match self.stamps.get_mut(id) {
            Some(stamp) => {
                self.by_stamp.remove(stamp);
                self.next += 1;
                *stamp = self.next;
                self.by_stamp.insert(self.next, *id);
                true
            }
            None => false,
        }
    }

    fn put(&mut self, id: TraceId) {
        if !self.enabled() || self.get(&id) {
            return;
        }
        if self.stamps.len() >= self.capacity
            && let Some((_, oldest)) = self.by_stamp.pop_first()
        {
            self.stamps.remove(&oldest);
        }
        self.next += 1;
        self.stamps.insert(id, self.next);
        self.by_stamp.insert(self.next, id);
    }
}

/// The table and everything decided from it.
pub struct State {
    traces: HashMap<TraceId, Held>,
    /// Traces in the order they were added, for eviction (stale entries skipped).
    order: VecDeque<(TraceId, u64)>,
    /// Decision deadlines, earliest first (stale entries skipped).
    due: BinaryHeap<Reverse<(Instant, u64, TraceId)>>,
    next_seq: u64,
    held_bytes: u64,
    policies: Vec<Named>,
    sampled: Lru,
    not_sampled: Lru,
    /// Late spans of sampled traces, sent by the release task.
    outbox: Vec<Release>,
    decision_wait: Duration,
    after_root: Duration,
    num_traces: u64,
    max_held_bytes: u64,
    max_trace_bytes: u64,
    first_match: bool,
}

impl State {
    pub fn new(config: &TailSamplingConfig, policies: Vec<Named>) -> State {
        // Room for the traces of one decision_wait at the expected rate, within num_traces.
        let expected = config
            .expected_new_traces_per_sec
            .saturating_mul(config.decision_wait.as_secs().max(1))
            .min(config.num_traces)
            .min(1 << 20) as usize;
        State {
            traces: HashMap::with_capacity(expected),
            order: VecDeque::new(),
            due: BinaryHeap::new(),
            next_seq: 0,
            held_bytes: 0,
            policies,
            sampled: Lru::new(config.decision_cache.sampled_cache_size),
            not_sampled: Lru::new(config.decision_cache.non_sampled_cache_size),
            outbox: Vec::new(),
            decision_wait: config.decision_wait,
            after_root: config.decision_wait_after_root_received,
            num_traces: config.num_traces,
            max_held_bytes: config.max_held_bytes,
            max_trace_bytes: config.maximum_trace_size_bytes,
            first_match: config.sample_on_first_match,
        }
    }

    /// Takes a request's pieces: held, or following their trace's decision. Returns whether
    /// late sampled spans are waiting in the outbox.
    pub fn hold(
        &mut self,
        pieces: Vec<Piece>,
        context: &RequestContext,
        now: Instant,
        metrics: &Instruments,
    ) -> bool {
        let mut late = false;
        for piece in pieces {
            late |= self.hold_one(piece, context, now, metrics);
        }
        self.evict_for_bytes(metrics);
        self.publish(metrics);
        late
    }

    fn hold_one(
        &mut self,
        piece: Piece,
        context: &RequestContext,
        now: Instant,
        metrics: &Instruments,
    ) -> bool {
        let id = piece.trace_id;
        let cached = if self.sampled.get(&id) {
            Some(Decision::Sampled)
        } else if self.not_sampled.get(&id) {
            Some(Decision::NotSampled)
        } else {
            self.traces.get(&id).and_then(|held| held.decision)
        };
        if let Some(decision) = cached {
            metrics.late[decision as usize].add(piece.spans);
            if decision == Decision::Sampled {
                self.outbox.push(release(context, piece));
                return true;
            }
            return false;
        }
        if !self.traces.contains_key(&id) {
            self.add(id, now, metrics);
        }
        let Some(held) = self.traces.get_mut(&id) else {
            return false;
        };
        if piece.has_root && !self.after_root.is_zero() {
            let sooner = now + self.after_root;
            if sooner < held.deadline {
                held.deadline = sooner;
                self.due.push(Reverse((sooner, held.seq, id)));
            }
        }
        held.spans += piece.spans;
        held.size += piece.size;
        let bytes = piece.encoded.len() as u64;
        held.bytes += bytes;
        self.held_bytes += bytes;
        match held.chunks.last_mut() {
            Some(last) if same_context(&last.context, context) => {
                last.encoded.extend_from_slice(&piece.encoded);
                last.spans += piece.spans;
            }
            _ => held.chunks.push(release(context, piece)),
        }
        if self.max_trace_bytes > 0 && held.size > self.max_trace_bytes {
            // The collector's `maximum_trace_size_bytes`: not sampled, without the policies.
            metrics.lost_too_large.add(held.spans);
            self.finish(id, Decision::NotSampled, metrics);
        }
        false
    }

    /// Adds a new trace, evicting the oldest ones beyond `num_traces` first.
    fn add(&mut self, id: TraceId, now: Instant, metrics: &Instruments) {
        while self.traces.len() as u64 >= self.num_traces && self.evict_oldest(metrics, false) {}
        self.next_seq += 1;
        let deadline = now + self.decision_wait;
        self.traces.insert(
            id,
            Held {
                seq: self.next_seq,
                deadline,
                decision: None,
                chunks: Vec::new(),
                spans: 0,
                size: 0,
                bytes: TRACE_OVERHEAD,
            },
        );
        self.held_bytes += TRACE_OVERHEAD;
        self.order.push_back((id, self.next_seq));
        self.due.push(Reverse((deadline, self.next_seq, id)));
        // With a decision cache, decided traces leave the table but not this queue.
        if self.order.len() > 2 * self.traces.len() + 64 {
            let traces = &self.traces;
            self.order
                .retain(|(id, seq)| traces.get(id).is_some_and(|h| h.seq == *seq));
        }
    }

    /// Evicts the oldest trace in the table; false when there is none.
    fn evict_oldest(&mut self, metrics: &Instruments, for_bytes: bool) -> bool {
        while let Some((id, seq)) = self.order.pop_front() {
            if self.traces.get(&id).is_none_or(|h| h.seq != seq) {
                continue; // already gone
            }
            let Some(held) = self.remove(&id) else {
                continue;
            };
            if held.decision.is_none() {
                match for_bytes {
                    true => metrics.evicted_bytes.add(1),
                    false => metrics.evicted_num_traces.add(1),
                }
                metrics.lost_evicted.add(held.spans);
            }
            return true;
        }
        false
    }

    /// Evicts the oldest traces while the held bytes are above `max_held_bytes`.
    fn evict_for_bytes(&mut self, metrics: &Instruments) {
        while self.max_held_bytes > 0
            && self.held_bytes > self.max_held_bytes
            && self.evict_oldest(metrics, true)
        {}
    }

    fn remove(&mut self, id: &TraceId) -> Option<Held> {
        let held = self.traces.remove(id)?;
        self.held_bytes -= held.bytes;
        Some(held)
    }

    /// Decides the traces due by `now` (every waiting one when `all`); returns the sampled
    /// pieces.
    pub fn decide_due(&mut self, now: Instant, all: bool, metrics: &Instruments) -> Vec<Release> {
        let mut released = Vec::new();
        while let Some(Reverse((deadline, seq, id))) = self.due.peek().copied() {
            if !all && deadline > now {
                break;
            }
            self.due.pop();
            let waiting = self.traces.get(&id).is_some_and(|h| {
                h.seq == seq && h.decision.is_none() && (all || h.deadline == deadline)
            });
            if !waiting {
                continue;
            }
            let decision = self.evaluate(&id, now);
            metrics.traces[decision as usize].add(1);
            released.extend(self.finish(id, decision, metrics));
        }
        self.publish(metrics);
        released
    }

    /// The policies' decision, combined as the collector combines them: drop policies first
    /// (any `Dropped` wins), then sampled if any policy samples.
    fn evaluate(&mut self, id: &TraceId, now: Instant) -> Decision {
        let Some(held) = self.traces.get_mut(id) else {
            return Decision::NotSampled;
        };
        // A trace's chunks are usually one: it is lent to the policies and put back, not copied.
        let encoded = match held.chunks.as_mut_slice() {
            [only] => std::mem::take(&mut only.encoded),
            chunks => chunks
                .iter()
                .map(|c| c.encoded.as_slice())
                .collect::<Vec<_>>()
                .concat(),
        };
        let data = TraceData::new(*id, encoded, held.spans);
        let decision = self.combine(&data, now.into_std());
        if let Some([only]) = self.traces.get_mut(id).map(|h| h.chunks.as_mut_slice())
            && only.encoded.is_empty()
        {
            only.encoded = data.into_encoded();
        }
        decision
    }

    /// The policies' decisions on `data`, combined: drop policies first (any `Dropped` wins),
    /// then sampled if any policy samples (the first that does ends it with `first_match`).
    fn combine(&mut self, data: &TraceData, now: std::time::Instant) -> Decision {
        let mut sampled = false;
        for named in &mut self.policies {
            let is_drop = named.policy.is_drop();
            if !is_drop && sampled && self.first_match {
                break;
            }
            let decision = named.policy.evaluate(data, now);
            named.count(decision);
            match decision {
                Decision::Dropped => return Decision::Dropped,
                Decision::Sampled if !is_drop => sampled = true,
                _ => {}
            }
        }
        match sampled {
            true => Decision::Sampled,
            false => Decision::NotSampled,
        }
    }

    /// Records a decision: sampled pieces are returned to send; the trace leaves the table
    /// when a decision cache remembers it, else it stays (without spans) for late spans.
    fn finish(&mut self, id: TraceId, decision: Decision, _metrics: &Instruments) -> Vec<Release> {
        let cache = match decision {
            Decision::Sampled => &mut self.sampled,
            _ => &mut self.not_sampled,
        };
        cache.put(id);
        let cached = cache.enabled();
        let Some(held) = self.traces.get_mut(&id) else {
            return Vec::new();
        };
        held.decision = Some(decision);
        let chunks = std::mem::take(&mut held.chunks);
        let freed = held.bytes - TRACE_OVERHEAD;
        held.bytes = TRACE_OVERHEAD;
        self.held_bytes -= freed;
        if cached {
            self.remove(&id);
        }
        match decision {
            Decision::Sampled => chunks,
            _ => Vec::new(),
        }
    }

    /// Late sampled spans waiting to be sent.
    pub fn take_outbox(&mut self) -> Vec<Release> {
        std::mem::take(&mut self.outbox)
    }

    /// Drops every trace still waiting (shutdown with `drop_pending_traces_on_shutdown`):
    /// how many traces and spans.
    pub fn drop_pending(&mut self, metrics: &Instruments) -> (u64, u64) {
        let waiting: Vec<TraceId> = self
            .traces
            .iter()
            .filter(|(_, h)| h.decision.is_none())
            .map(|(id, _)| *id)
            .collect();
        let mut spans = 0;
        for id in &waiting {
            spans += self.remove(id).map_or(0, |h| h.spans);
        }
        self.publish(metrics);
        (waiting.len() as u64, spans)
    }

    /// Shows the table's size in the gauges.
    fn publish(&self, metrics: &Instruments) {
        metrics.held_bytes.store(self.held_bytes, Ordering::Relaxed);
        metrics
            .held_traces
            .store(self.traces.len() as u64, Ordering::Relaxed);
    }
}

pub(super) fn same_context(a: &RequestContext, b: &RequestContext) -> bool {
    a.peer == b.peer && a.forwarded_for == b.forwarded_for && a.receiver == b.receiver
}

fn release(context: &RequestContext, piece: Piece) -> Release {
    Release {
        context: context.clone(),
        encoded: piece.encoded,
        spans: piece.spans,
    }
}
