//! Secrets on disk that rotate under a running process: TLS certificates, keys and CA files,
//! and bearer-token files. cert-manager and the kubelet replace them in place (an atomic
//! symlink swap), so [`Secrets`] re-reads each watched set of files when its content changes,
//! checking every [`POLL`], and swaps in what it builds from them. New connections and requests
//! use the new value; those in flight keep the one they started with. A new file that does
//! not build (a torn write, a key that does not match its certificate) keeps the old value
//! serving, is logged with the reason, and is counted.

use crate::telemetry::events::{Event, SecretInstruments, SecretRotated, SecretRotationFailed};
use crate::telemetry::metrics::Registry;
use arc_swap::ArcSwap;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A string that never shows in logs or debug output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How often watched files are read for changes. The kubelet takes up to a minute to project
/// a changed Secret, so a second adds nothing noticeable and costs a few small reads.
pub const POLL: Duration = Duration::from_secs(1);

/// A value built from files, swapped whole when they change.
pub type Rotating<T> = ArcSwap<T>;

/// Every watched set of files of one running trailhead.
#[derive(Default)]
pub struct Secrets {
    registry: Arc<Registry>,
    watched: Mutex<Vec<Watched>>,
}

struct Watched {
    /// Named by what the files are, in logs and metrics: `receiver otlp (grpc) tls`.
    instruments: SecretInstruments,
    files: Vec<PathBuf>,
    /// The files' contents when last built (`None`: unreadable).
    seen: Vec<Option<Vec<u8>>>,
    /// Builds a new value from the files and swaps it in; `false` once nobody uses it.
    rebuild: Box<dyn Fn() -> Result<bool, String> + Send + Sync>,
}

impl Secrets {
    /// Counts into `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Secrets {
            registry,
            watched: Mutex::default(),
        }
    }

    /// Builds a value from `files` now (an error here fails the start), and again whenever
    /// their content changes.
    pub fn watch<T: Send + Sync + 'static, E: std::fmt::Display>(
        &self,
        what: impl Into<String>,
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Arc<Rotating<T>>, E> {
        let seen = read_all(&files);
        let value = Arc::new(ArcSwap::from_pointee(build()?));
        if files.is_empty() {
            return Ok(value);
        }
        let target: Weak<Rotating<T>> = Arc::downgrade(&value);
        let rebuild = Box::new(move || {
            let Some(target) = target.upgrade() else {
                return Ok(false);
            };
            target.store(Arc::new(build().map_err(|e| e.to_string())?));
            Ok(true)
        });
        let instruments = SecretInstruments::new(&self.registry, &what.into());
        self.lock().push(Watched {
            instruments,
            files,
            seen,
            rebuild,
        });
        Ok(value)
    }

    /// Re-reads every watched set once and rebuilds those whose files changed.
    pub fn check(&self) {
        self.lock().retain_mut(|watched| {
            let now = read_all(&watched.files);
            if now == watched.seen {
                return true;
            }
            watched.seen = now;
            match (watched.rebuild)() {
                Ok(used) => {
                    if used {
                        SecretRotated.emit(&watched.instruments);
                    }
                    used
                }
                Err(error) => {
                    SecretRotationFailed { error: &error }.emit(&watched.instruments);
                    true
                }
            }
        });
    }

    /// Checks every [`POLL`] until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let secrets = self.clone();
            // File reads block: off the async workers.
            let _ = tokio::task::spawn_blocking(move || secrets.check()).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_all(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A changed file is rebuilt and swapped in; a change that does not build keeps the old
    // value and is counted; an unchanged file is not rebuilt.
    #[test]
    fn rebuilds_on_change_and_keeps_the_old_value_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "one").unwrap();
        let registry = Arc::new(Registry::default());
        let secrets = Secrets::new(registry.clone());
        let path = file.clone();
        let token = secrets
            .watch("token", vec![file.clone()], move || {
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                match text.is_empty() {
                    true => Err("the token is empty".to_string()),
                    false => Ok(text),
                }
            })
            .unwrap();
        secrets.check();
        assert_eq!(**token.load(), "one");
        std::fs::write(&file, "two").unwrap();
        secrets.check();
        assert_eq!(**token.load(), "two");
        std::fs::write(&file, "").unwrap();
        secrets.check();
        assert_eq!(**token.load(), "two");
        let text = registry.render();
        assert!(
            text.contains("trailhead_secret_reloads_total{secret=\"token\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("trailhead_secret_reload_failures_total{secret=\"token\"} 1"),
            "{text}"
        );
    }
}
