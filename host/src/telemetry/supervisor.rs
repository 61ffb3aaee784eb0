//! Long-lived tasks under watch. A server's accept loop, an exporter's batcher, the disk
//! feeder, the Kubernetes watcher, the reload poller: if one ends or panics while trailhead
//! serves, the process is half alive (receivers may answer 503 forever while health said 200).
//! So the first such failure turns health 503 and wakes `main`, which drains what it can and
//! exits non-zero for Kubernetes to restart it. Ends after [`Supervisor::stopping`] are the
//! shutdown itself and are not failures.
//!
//! `TRAILHEAD_TEST_FAULT=NAME[@MS]` (tests only) makes the task named NAME panic MS
//! milliseconds (default 200) after it starts, to prove the rule end to end.

use super::health::Health;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Spawns and watches long-lived tasks; clones share one state.
#[derive(Clone, Debug)]
pub struct Supervisor(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    health: Health,
    stopping: AtomicBool,
    /// The first failure, as "`NAME` ended" or "`NAME` panicked".
    failed: watch::Sender<Option<String>>,
}

impl Supervisor {
    pub fn new(health: Health) -> Self {
        Supervisor(Arc::new(Shared {
            health,
            stopping: AtomicBool::new(false),
            failed: watch::Sender::new(None),
        }))
    }

    /// Spawns `task` under watch as `name`.
    pub fn spawn<F>(&self, name: impl Into<String>, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let watch = Watch {
            name: name.into(),
            shared: self.0.clone(),
            returned: false,
        };
        tokio::spawn(async move {
            let mut watch = watch;
            let fault = injected_fault(&watch.name);
            let output = tokio::select! {
                output = task => output,
                () = sleep_or_never(fault) => panic!("TRAILHEAD_TEST_FAULT: `{}` fails as asked", watch.name),
            };
            watch.returned = true;
            output
        })
    }

    /// From now on tasks end because trailhead stops, not because something broke.
    pub fn stopping(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
    }

    /// Resolves with the first failure: which task, and how it went.
    pub async fn failed(&self) -> String {
        let mut failed = self.0.failed.subscribe();
        match failed.wait_for(Option::is_some).await {
            Ok(failure) => failure.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await, // the sender lives as long as `self`
        }
    }
}

/// Lives inside a watched task; dropped when the task returns, panics or is cancelled.
struct Watch {
    name: String,
    shared: Arc<Shared>,
    returned: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let how = match (self.returned, std::thread::panicking()) {
            (true, _) => "ended",
            (false, true) => "panicked",
            (false, false) => "was cancelled",
        };
        let failure = format!("task `{}` {how} while trailhead was serving", self.name);
        tracing::error!(task = %self.name, how, "a long-lived task stopped: health turns 503, trailhead drains and exits");
        self.shared.health.set_failed();
        self.shared.failed.send_if_modified(|first| {
            first.is_none() && {
                *first = Some(failure);
                true
            }
        });
    }
}

/// The delay after which `name` must fail, if `TRAILHEAD_TEST_FAULT` names it.
fn injected_fault(name: &str) -> Option<Duration> {
    let setting = std::env::var("TRAILHEAD_TEST_FAULT").ok()?;
    let (target, delay) = setting.split_once('@').unwrap_or((&setting, "200"));
    (target == name).then(|| Duration::from_millis(delay.parse().unwrap_or(200)))
}

async fn sleep_or_never(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A task that returns or panics while serving is a failure that turns health off; one that
    // ends after `stopping` is not.
    #[tokio::test]
    async fn an_early_end_or_panic_fails_health_and_a_stop_does_not() {
        let health = Health::default();
        health.set_serving(true);
        let supervisor = Supervisor::new(health.clone());
        let _ = supervisor.spawn("quiet", async {}).await;
        assert!(!health.is_serving());
        assert_eq!(
            supervisor.failed().await,
            "task `quiet` ended while trailhead was serving"
        );

        let health = Health::default();
        health.set_serving(true);
        let supervisor = Supervisor::new(health.clone());
        let _ = supervisor.spawn("boom", async { panic!("boom") }).await;
        assert!(!health.is_serving());
        assert!(supervisor.failed().await.contains("`boom` panicked"));

        let health = Health::default();
        health.set_serving(true);
        let supervisor = Supervisor::new(health.clone());
        supervisor.stopping();
        let _ = supervisor.spawn("drained", async {}).await;
        assert!(health.is_serving());
    }
}
