//! Taps: copies of the batches passing one point of a pipeline (before or after a processor, or
//! what goes to the exporters), for `trailhead tap` to show an operator what a plugin changes.
//!
//! Untapped, a point costs one atomic load per batch. A tap never slows the pipeline: each has
//! a short queue, and a batch that finds it full is skipped and counted for the tapper.

use crate::pdata::Batch;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Batches a tapper may fall behind by before batches are skipped.
const TAP_QUEUE: usize = 64;

/// Where in a pipeline a tap sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Point {
    Before(String),
    After(String),
    /// After every processor: what the exporters get.
    Exporters,
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Point::Before(p) => write!(f, "before {p}"),
            Point::After(p) => write!(f, "after {p}"),
            Point::Exporters => f.write_str("to the exporters"),
        }
    }
}

/// The taps of one pipeline.
#[derive(Default)]
pub struct Taps {
    active: AtomicUsize,
    taps: Mutex<Vec<Tap>>,
}

struct Tap {
    point: Point,
    tx: mpsc::Sender<Batch>,
    skipped: Arc<AtomicU64>,
}

/// One tapper's end: the batches, and how many were skipped because it fell behind.
pub struct Subscription {
    pub batches: mpsc::Receiver<Batch>,
    pub skipped: Arc<AtomicU64>,
}

impl Taps {
    pub fn subscribe(&self, point: Point) -> Subscription {
        let (tx, batches) = mpsc::channel(TAP_QUEUE);
        let skipped = Arc::new(AtomicU64::new(0));
        let mut taps = self.lock();
        taps.push(Tap {
            point,
            tx,
            skipped: skipped.clone(),
        });
        self.active.store(taps.len(), Ordering::Release);
        Subscription { batches, skipped }
    }

    /// Hands a copy of `batch` to every tap at `point`; forgets taps whose tapper left.
    pub fn observe(&self, point: impl Fn(&Point) -> bool, batch: &Batch) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut taps = self.lock();
        taps.retain(|tap| !tap.tx.is_closed());
        for tap in taps.iter().filter(|t| point(&t.point)) {
            if tap.tx.try_send(batch.clone()).is_err() {
                tap.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.active.store(taps.len(), Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Tap>> {
        self.taps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::{RequestContext, Signal};

    fn batch(items: usize) -> Batch {
        Batch {
            signal: Signal::Traces,
            payload: crate::pdata::wire::tests_support::traces_request(items).into(),
            items,
            context: RequestContext::internal("t"),
        }
    }

    #[test]
    fn taps_see_their_point_and_skip_when_behind() {
        let taps = Taps::default();
        let mut before = taps.subscribe(Point::Before("filter".into()));
        let mut exporters = taps.subscribe(Point::Exporters);
        taps.observe(|p| *p == Point::Before("filter".into()), &batch(2));
        assert_eq!(before.batches.try_recv().unwrap().items, 2);
        assert!(exporters.batches.try_recv().is_err());
        for _ in 0..TAP_QUEUE + 5 {
            taps.observe(|p| *p == Point::Exporters, &batch(1));
        }
        assert_eq!(exporters.skipped.load(Ordering::Relaxed), 5);
        drop(before);
        drop(exporters);
        taps.observe(|_| true, &batch(1));
        assert_eq!(taps.active.load(Ordering::Relaxed), 0);
    }
}
