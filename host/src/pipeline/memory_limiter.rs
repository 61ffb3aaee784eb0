//! The memory limiter: the collector's `memory_limiter` processor, enforced at the door.
//!
//! Listing `memory_limiter` in a pipeline makes every receiver feeding that pipeline ask the
//! limiter before it reads a request's body. A check every `check_interval` reads the heap in
//! use, counted by trailhead's allocator (`telemetry::heap`), as the collector reads Go's heap
//! (resident memory where the heap is not counted). At or above the soft limit
//! (`limit - spike_limit`) new requests are refused as retryable (HTTP 503 + `Retry-After`,
//! gRPC UNAVAILABLE with RetryInfo) before they are read or decoded, so a sender backs off
//! instead of trailhead being OOM-killed; data already accepted stays queued and is exported.
//! Below the soft limit again, requests are admitted. The collector refuses at its soft limit
//! too and only adds a forced GC at the hard limit; trailhead has no GC to force, so the hard
//! limit here is where it logs an error.

use crate::config::ComponentId;
use crate::config::values::parse_duration;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Registry};
use crate::telemetry::supervisor::Supervisor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

/// A `memory_limiter` processor's settings, with the collector's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub check_interval: Duration,
    /// The hard limit.
    pub limit_bytes: u64,
    /// Headroom below the hard limit: the soft limit is `limit - spike`.
    pub spike_bytes: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    check_interval: Option<String>,
    limit_mib: Option<u64>,
    spike_limit_mib: Option<u64>,
    limit_percentage: Option<u64>,
    spike_limit_percentage: Option<u64>,
}

impl Settings {
    /// Reads the settings; percentages are of `total_bytes` (the container's limit or the
    /// machine's memory).
    pub fn from_value(value: &serde_json::Value, total_bytes: u64) -> Result<Settings, String> {
        let raw: Raw = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        let check_interval = match raw.check_interval.as_deref() {
            None => Duration::from_secs(1),
            Some(text) => parse_duration(text).map_err(|e| format!("check_interval: {e}"))?,
        };
        if check_interval.is_zero() {
            return Err("check_interval: must be above 0".into());
        }
        let percent = |p: u64, key: &str| match p {
            1..=100 => Ok(total_bytes / 100 * p),
            _ => Err(format!("{key}: {p} is not a percentage from 1 to 100")),
        };
        let limit_bytes = match (raw.limit_mib, raw.limit_percentage) {
            (Some(_), Some(_)) => {
                return Err("give limit_mib or limit_percentage, not both".into());
            }
            (Some(0), None) => return Err("limit_mib: must be above 0".into()),
            (Some(mib), None) => mib * MIB,
            (None, Some(p)) => percent(p, "limit_percentage")?,
            (None, None) => return Err("limit_mib or limit_percentage is required".into()),
        };
        let spike_bytes = match (raw.spike_limit_mib, raw.spike_limit_percentage) {
            (Some(_), Some(_)) => {
                return Err("give spike_limit_mib or spike_limit_percentage, not both".into());
            }
            (Some(mib), None) => mib * MIB,
            (None, Some(p)) => percent(p, "spike_limit_percentage")?,
            // The collector's default: a fifth of the limit.
            (None, None) => limit_bytes / 5,
        };
        if spike_bytes >= limit_bytes {
            return Err(format!(
                "spike_limit ({} MiB) must be below the limit ({} MiB)",
                spike_bytes / MIB,
                limit_bytes / MIB
            ));
        }
        Ok(Settings {
            check_interval,
            limit_bytes,
            spike_bytes,
        })
    }

    pub fn soft_bytes(&self) -> u64 {
        self.limit_bytes - self.spike_bytes
    }
}

/// The processor kind that names the memory limiter.
pub const KIND: &str = "memory_limiter";

/// The settings of the `memory_limiter` processors the pipelines list (`(id, settings)`):
/// one process has one memory, so every one listed must say the same. `Err` names the
/// processor and the problem.
pub fn from_processors<'a>(
    listed: impl IntoIterator<Item = (&'a ComponentId, &'a serde_json::Value)>,
) -> Result<Option<Settings>, (ComponentId, String)> {
    let total = total_memory_bytes();
    let mut found: Option<(ComponentId, Settings)> = None;
    for (id, processor) in listed {
        let settings = Settings::from_value(processor, total).map_err(|e| (id.clone(), e))?;
        match &found {
            Some((first, other)) if *other != settings => {
                return Err((
                    id.clone(),
                    format!("differs from `{first}`: one process has one memory limit"),
                ));
            }
            Some(_) => {}
            None => found = Some((id.clone(), settings)),
        }
    }
    Ok(found.map(|(_, settings)| settings))
}

/// The memory trailhead may use: its cgroup's limit when it has one, else the machine's.
pub fn total_memory_bytes() -> u64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, machine) {
        (Some(c), Some(m)) => c.min(m),
        (c, m) => c.or(m).unwrap_or(u64::MAX),
    }
}

/// The heap in use, or resident memory where the allocator does not count.
fn used_bytes() -> Option<u64> {
    crate::telemetry::heap::in_use()
        .map(|n| n as u64)
        .or_else(resident_bytes)
}

/// This process's resident memory, from /proc.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// A request refused because trailhead is above its memory limit.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "trailhead is above its memory limit ({used_mib} MiB in use, soft limit {soft_mib} MiB); retry later"
)]
pub struct Refused {
    pub used_mib: u64,
    pub soft_mib: u64,
}

pub struct MemoryLimiter {
    settings: Settings,
    used: AtomicU64,
    refusing: AtomicBool,
    refusals: Counter,
}

impl MemoryLimiter {
    pub fn new(settings: Settings, registry: &Registry) -> Arc<MemoryLimiter> {
        let limiter = Arc::new(MemoryLimiter {
            used: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            refusals: registry.counter(&catalog::MEMORY_LIMITER_REFUSED, &[]),
            settings,
        });
        let weak = Arc::downgrade(&limiter);
        registry.gauge_fn(&catalog::MEMORY_LIMITER_USED, &[], move || {
            weak.upgrade()
                .map_or(0.0, |l| l.used.load(Ordering::Relaxed) as f64)
        });
        limiter.check();
        limiter
    }

    /// Checks memory every `check_interval` until `shutdown`.
    pub fn spawn(self: &Arc<Self>, supervisor: &Supervisor, shutdown: CancellationToken) {
        let limiter = self.clone();
        supervisor.spawn("memory limiter", async move {
            let mut ticks = tokio::time::interval(limiter.settings.check_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => limiter.check(),
                }
            }
        });
    }

    fn check(&self) {
        let Some(used) = used_bytes() else {
            return;
        };
        self.used.store(used, Ordering::Relaxed);
        let (soft, limit) = (self.settings.soft_bytes(), self.settings.limit_bytes);
        let refusing = used >= soft;
        if self.refusing.swap(refusing, Ordering::Relaxed) != refusing {
            let (used_mib, soft_mib) = (used / MIB, soft / MIB);
            if refusing {
                tracing::warn!(
                    used_mib,
                    soft_mib,
                    "above the memory limiter's soft limit: refusing data until below it"
                );
            } else {
                tracing::info!(
                    used_mib,
                    soft_mib,
                    "below the memory limiter's soft limit: accepting data again"
                );
            }
        }
        if used >= limit {
            tracing::error!(
                used_mib = used / MIB,
                limit_mib = limit / MIB,
                "above the memory limiter's hard limit"
            );
        }
    }

    /// Whether a new request may be read.
    pub fn admit(&self) -> Result<(), Refused> {
        if self.has_room() {
            return Ok(());
        }
        self.refusals.add(1);
        Err(Refused {
            used_mib: self.used.load(Ordering::Relaxed) / MIB,
            soft_mib: self.settings.soft_bytes() / MIB,
        })
    }

    /// Whether a request would be admitted now, without counting a refusal.
    pub fn has_room(&self) -> bool {
        !self.refusing.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Result<Settings, String> {
        Settings::from_value(&crate::config::tree::from_str(yaml).unwrap(), 1000 * MIB)
    }

    // The collector's keys and defaults; every mistake is named.
    #[test]
    fn reads_the_collectors_settings() {
        let s = settings("{check_interval: 250ms, limit_mib: 400}").unwrap();
        assert_eq!(s.check_interval, Duration::from_millis(250));
        assert_eq!((s.limit_bytes, s.spike_bytes), (400 * MIB, 80 * MIB));
        let s = settings("{limit_percentage: 50, spike_limit_percentage: 10}").unwrap();
        assert_eq!((s.limit_bytes, s.soft_bytes()), (500 * MIB, 400 * MIB));
        for (yaml, error) in [
            ("{}", "limit_mib or limit_percentage is required"),
            ("{limit_mib: 10, limit_percentage: 5}", "not both"),
            (
                "{limit_mib: 100, spike_limit_mib: 100}",
                "must be below the limit",
            ),
            ("{limit_percentage: 150}", "not a percentage"),
            ("{limit_mib: 10, check_interval: soon}", "check_interval"),
            ("{limit_mib: 10, limit: 5}", "unknown field `limit`"),
        ] {
            let e = settings(yaml).unwrap_err();
            assert!(e.contains(error), "{yaml}: {e}");
        }
    }

    // Below the soft limit requests are admitted; at or above it they are refused and counted.
    #[test]
    fn refuses_above_the_soft_limit() {
        let registry = Registry::default();
        let roomy = MemoryLimiter::new(settings("{limit_mib: 1000000}").unwrap(), &registry);
        assert!(roomy.admit().is_ok());
        let tight = MemoryLimiter::new(
            settings("{limit_mib: 2, spike_limit_mib: 1}").unwrap(),
            &registry,
        );
        let refused = tight.admit().unwrap_err();
        assert_eq!(refused.soft_mib, 1);
        assert!(refused.to_string().contains("retry later"));
        assert!(
            registry
                .render()
                .contains("trailhead_memory_limiter_refused_requests_total 1")
        );
    }
}
