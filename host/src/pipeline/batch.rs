//! The batch processor: the collector's `batch`, moved onto the exporters' own batching.
//!
//! trailhead's exporters already merge requests, by concatenating their encodings
//! (`exporters::queue`), so a `batch` entry in a pipeline is not a step of its own: it passes
//! data on as it came, and its keys become the batching of every exporter the pipeline feeds.
//! The one idea: a batch processor sets when a send leaves and how many items it may hold, but
//! never lifts the exporter's byte bound (`max_request_bytes`, 3.5 MiB by default), so a
//! collector config written for a peer without a size limit cannot make requests that Alloy
//! refuses.
//!
//! The rules, where the collector has no counterpart:
//! - an exporter with its own batch keys (`batch:` or `sending_queue.batch`) keeps them: they
//!   were written for that exporter, the processor's for every exporter of its pipeline;
//! - one exporter instance (exporter id × signal) batches one way, so two batch processors with
//!   different settings feeding it are refused, naming both. Picking one would silently drop
//!   the other's settings, and which one wins would hang on the order of pipelines in the file;
//! - `metadata_keys` is refused: the exporters' batching merges every client's requests into
//!   the same sends and cannot keep them apart by client metadata;
//! - an exporter instance has one batcher, so what another pipeline without a batch processor
//!   sends it is batched the same way (the start line names the exporter, so this is seen).

use crate::config::{ComponentId, values};
use crate::exporters::BatchPolicy;
use crate::pdata::Signal;
use crate::pdata::split::Bound;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The processor kind that names the batch processor.
pub const KIND: &str = "batch";

/// A `batch` processor's settings, with the collector's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Send once this many items (spans, data points, log records) have gathered; `0` sends
    /// each request as it comes, bounded only by `send_batch_max_size`.
    pub send_batch_size: u32,
    /// No send holds more items than this; larger batches are split. `0`: no item bound. Must
    /// be at least `send_batch_size` when set.
    pub send_batch_max_size: u32,
    /// Send what has gathered after this long, however small; `0` sends each request as it
    /// comes, bounded only by `send_batch_max_size`.
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// Client metadata keys to batch apart. Refused unless empty: the exporters' batching
    /// cannot keep clients apart.
    pub metadata_keys: Vec<String>,
    /// How many combinations of `metadata_keys` values may batch apart; read only with
    /// `metadata_keys`.
    pub metadata_cardinality_limit: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: Duration::from_millis(200),
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }
    }
}

/// Why a batch processor cannot be used: which one, the key at fault (dotted, empty when
/// none), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub processor: ComponentId,
    pub key: String,
    pub message: String,
}

impl Settings {
    /// Reads and checks the settings as the collector does (its messages), then refuses what
    /// the exporters' batching cannot do. `Err` is (the key at fault, why).
    pub fn from_value(value: &serde_json::Value) -> Result<Settings, (String, String)> {
        // `batch:` with nothing under it is every default, as in the collector.
        let value = match value {
            serde_json::Value::Null => serde_json::json!({}),
            value => value.clone(),
        };
        let settings: Settings = serde_json::from_value(value).map_err(|e| {
            let message = e.to_string();
            // serde names an unknown key between the first pair of backticks.
            let key = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map_or(String::new(), |(key, _)| key.to_string());
            (key, message)
        })?;
        if settings.send_batch_max_size > 0
            && settings.send_batch_max_size < settings.send_batch_size
        {
            return Err((
                "send_batch_max_size".into(),
                "send_batch_max_size must be greater or equal to send_batch_size".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for key in &settings.metadata_keys {
            let lower = key.to_lowercase();
            if !seen.insert(lower.clone()) {
                return Err((
                    "metadata_keys".into(),
                    format!("duplicate entry in metadata_keys: {lower:?} (case-insensitive)"),
                ));
            }
        }
        if let Some(first) = settings.metadata_keys.first() {
            return Err((
                "metadata_keys".into(),
                format!(
                    "metadata_keys (`{first}`) is not supported: a batch processor becomes the \
                     exporters' batching, which merges every client's requests into the same \
                     sends and cannot keep them apart by client metadata; remove metadata_keys, \
                     or give each client its own pipeline and exporter"
                ),
            ));
        }
        Ok(settings)
    }

    /// The exporter batching these settings stand for, under the exporter's own byte bound
    /// (`max_request_bytes`; `usize::MAX` for none). The collector's batcher sends at once
    /// when either `send_batch_size` or `timeout` is 0, splitting by `send_batch_max_size`
    /// alone; a zero flush timeout is the exporters' "send each request as it comes".
    pub fn policy(&self, max_request_bytes: usize) -> BatchPolicy {
        let at_once = self.send_batch_size == 0 || self.timeout.is_zero();
        BatchPolicy {
            flush_items: self.send_batch_size as usize,
            flush_bytes: usize::MAX,
            flush_timeout: if at_once {
                Duration::ZERO
            } else {
                self.timeout
            },
            bound: Bound {
                bytes: max_request_bytes,
                items: match self.send_batch_max_size {
                    0 => usize::MAX,
                    max => max as usize,
                },
            },
        }
    }

    /// What an exporter's batching takes from these settings; two batch processors that
    /// agree here batch an exporter the same way.
    fn mapped(&self) -> (u32, u32, Duration) {
        (self.send_batch_size, self.send_batch_max_size, self.timeout)
    }
}

/// How each exporter instance batches, by (exporter, signal), when a batch processor feeds it.
pub type Assignment = BTreeMap<(ComponentId, Signal), Batching>;

/// The batch processors feeding one exporter instance (in the order found), and the settings
/// they agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batching {
    pub processors: Vec<ComponentId>,
    pub settings: Settings,
}

/// One pipeline as the assignment reads it: its signal, its batch processors (id and
/// settings as written) and its exporters.
pub struct Fed<'a> {
    pub signal: Signal,
    pub batches: Vec<(&'a ComponentId, &'a serde_json::Value)>,
    pub exporters: &'a [ComponentId],
}

/// Which batch processor batches each exporter instance its pipelines feed. Refuses a batch
/// processor with bad settings, and two with different settings on one exporter instance.
pub fn assign<'a>(pipelines: impl IntoIterator<Item = Fed<'a>>) -> Result<Assignment, Refusal> {
    let mut assignment = Assignment::new();
    for pipeline in pipelines {
        for (processor, value) in pipeline.batches {
            let settings = Settings::from_value(value).map_err(|(key, message)| Refusal {
                processor: processor.clone(),
                key,
                message,
            })?;
            for exporter in pipeline.exporters {
                let key = (exporter.clone(), pipeline.signal);
                match assignment.get_mut(&key) {
                    Some(theirs) if theirs.settings.mapped() != settings.mapped() => {
                        let other = &theirs.processors[0];
                        return Err(Refusal {
                            processor: processor.clone(),
                            key: String::new(),
                            message: format!(
                                "exporter `{exporter}` ({}) is fed through batch processors \
                                 `{other}` and `{processor}` with different settings, and an \
                                 exporter batches one way: give them the same settings, or \
                                 send to different exporters",
                                pipeline.signal.as_str()
                            ),
                        });
                    }
                    Some(theirs) => {
                        if !theirs.processors.contains(processor) {
                            theirs.processors.push(processor.clone());
                        }
                    }
                    None => {
                        let processors = vec![processor.clone()];
                        let settings = settings.clone();
                        assignment.insert(
                            key,
                            Batching {
                                processors,
                                settings,
                            },
                        );
                    }
                }
            }
        }
    }
    Ok(assignment)
}

/// How one exporter took a batch processor's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Took {
    /// It batches with them, under this byte bound (`usize::MAX`: none).
    Batches { max_request_bytes: usize },
    /// It keeps its own batch keys, written under this key.
    KeepsOwn(&'static str),
}

/// The line logged at start for one batch processor: where its batching went and how each
/// key maps. `exporters` holds each exporter it feeds once (a name per exporter, not per
/// signal).
pub fn describe(
    processor: &ComponentId,
    settings: &Settings,
    exporters: &[(String, Took)],
) -> String {
    let names = |keep: &dyn Fn(&Took) -> bool| -> Vec<&str> {
        exporters
            .iter()
            .filter(|(_, took)| keep(took))
            .map(|(name, _)| name.as_str())
            .collect()
    };
    let moved = names(&|t| matches!(t, Took::Batches { .. }));
    let mut line = format!("processor {processor}: ");
    if moved.is_empty() {
        line.push_str("no exporter takes its batching");
    } else {
        let size = match settings.send_batch_size {
            0 => "send_batch_size 0 → each request sent as it comes".to_string(),
            n => format!("send_batch_size {n} → min_size {n} items"),
        };
        let timeout = match settings.timeout {
            t if t.is_zero() => "timeout 0 → each request sent as it comes".to_string(),
            t => format!("timeout {t:?} → flush_timeout"),
        };
        let max = match settings.send_batch_max_size {
            0 => "send_batch_max_size 0 → no item bound".to_string(),
            n => format!("send_batch_max_size {n} → max_size {n} items"),
        };
        let bounds: BTreeSet<usize> = exporters
            .iter()
            .filter_map(|(_, took)| match took {
                Took::Batches { max_request_bytes } => Some(*max_request_bytes),
                Took::KeepsOwn(_) => None,
            })
            .collect();
        let bytes = match bounds.iter().collect::<Vec<_>>()[..] {
            [&usize::MAX] => "no byte bound".to_string(),
            [&one] => format!("requests stay under max_request_bytes {}", human_bytes(one)),
            _ => {
                let each: Vec<String> = exporters
                    .iter()
                    .filter_map(|(name, took)| match took {
                        Took::Batches { max_request_bytes } => {
                            Some(format!("{name} {}", human_bytes(*max_request_bytes)))
                        }
                        Took::KeepsOwn(_) => None,
                    })
                    .collect();
                format!(
                    "requests stay under each exporter's max_request_bytes ({})",
                    each.join(", ")
                )
            }
        };
        let word = if moved.len() == 1 {
            "exporter"
        } else {
            "exporters"
        };
        line.push_str(&format!(
            "batching moves to {word} {} ({size}, {timeout}, {max}; {bytes})",
            moved.join(", ")
        ));
    }
    for (name, took) in exporters {
        if let Took::KeepsOwn(key) = took {
            line.push_str(&format!(
                "; exporter {name} keeps its own `{key}` settings (an exporter's own batch keys win)"
            ));
        }
    }
    line
}

/// Bytes as an operator reads them: `3.5 MiB`, `512 KiB`, `none` for no bound.
fn human_bytes(n: usize) -> String {
    const MIB: usize = 1 << 20;
    if n == usize::MAX {
        "none".into()
    } else if n >= MIB && n.checked_mul(10).is_some_and(|t| t.is_multiple_of(MIB)) {
        format!("{} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporters::{BatchSettings, DEFAULT_MAX_REQUEST_BYTES};

    fn settings(yaml: &str) -> Result<Settings, (String, String)> {
        Settings::from_value(&crate::config::tree::from_str(yaml).unwrap())
    }

    fn id(text: &str) -> ComponentId {
        ComponentId::parse(text).unwrap()
    }

    // The collector's keys and defaults are read; each mistake is refused with the collector's
    // message, or a message naming the key, and the key it is placed on.
    #[test]
    fn reads_the_collectors_keys() {
        assert_eq!(settings("{}").unwrap(), Settings::default());
        assert_eq!(
            Settings::from_value(&serde_json::Value::Null).unwrap(),
            Settings::default()
        );
        let s = settings("{send_batch_size: 1000, send_batch_max_size: 2000, timeout: 50ms, metadata_cardinality_limit: 10}").unwrap();
        assert_eq!(
            (s.send_batch_size, s.send_batch_max_size, s.timeout),
            (1000, 2000, Duration::from_millis(50))
        );
        assert_eq!(settings("timeout: 0").unwrap().timeout, Duration::ZERO);
        for (yaml, key, error) in [
            (
                "{send_batch_size: 100, send_batch_max_size: 50}",
                "send_batch_max_size",
                "send_batch_max_size must be greater or equal to send_batch_size",
            ),
            (
                "{metadata_keys: [tenant]}",
                "metadata_keys",
                "metadata_keys (`tenant`) is not supported",
            ),
            (
                "{metadata_keys: [Tenant, tenant]}",
                "metadata_keys",
                "duplicate entry in metadata_keys: \"tenant\" (case-insensitive)",
            ),
            (
                "{send_batch_sise: 10}",
                "send_batch_sise",
                "unknown field `send_batch_sise`",
            ),
            ("{timeout: -1s}", "", "negative duration"),
            ("{send_batch_size: -1}", "", "invalid value"),
        ] {
            let (at, e) = settings(yaml).unwrap_err();
            assert!(e.contains(error), "{yaml}: {e}");
            assert_eq!(at, key, "{yaml}");
        }
        // A bound equal to the size, or none, is fine.
        assert!(settings("{send_batch_size: 100, send_batch_max_size: 100}").is_ok());
        assert!(settings("{send_batch_size: 100, send_batch_max_size: 0}").is_ok());
    }

    // The keys map onto the exporter policy as the exporter's own older names for them do
    // (`send_batch_size`, `timeout`, `max_size`), and the byte bound is the exporter's.
    #[test]
    fn maps_onto_the_exporter_policy() {
        let exporter = |yaml: &str| {
            crate::config::tree::from_str::<BatchSettings>(yaml)
                .unwrap()
                .policy()
                .unwrap()
        };
        for (processor, same) in [
            ("{}", "{}"),
            (
                "{send_batch_size: 1000, timeout: 50ms}",
                "{send_batch_size: 1000, timeout: 50ms}",
            ),
            (
                "{send_batch_size: 10, send_batch_max_size: 20, timeout: 1s}",
                "{send_batch_size: 10, max_size: 20, timeout: 1s}",
            ),
            ("{timeout: 0}", "{timeout: 0}"),
            ("{send_batch_size: 0}", "{send_batch_size: 0}"),
        ] {
            let policy = settings(processor)
                .unwrap()
                .policy(DEFAULT_MAX_REQUEST_BYTES);
            assert_eq!(policy, exporter(same), "{processor}");
        }
        let policy = settings("{send_batch_size: 1000, send_batch_max_size: 5000, timeout: 50ms}")
            .unwrap()
            .policy(1 << 20);
        assert_eq!(policy.flush_items, 1000);
        assert_eq!(policy.flush_timeout, Duration::from_millis(50));
        assert_eq!(
            policy.bound,
            Bound {
                bytes: 1 << 20,
                items: 5000
            }
        );
        // timeout 0 sends at once, still split by send_batch_max_size and the byte bound.
        let at_once = settings("{timeout: 0, send_batch_max_size: 9000}")
            .unwrap()
            .policy(DEFAULT_MAX_REQUEST_BYTES);
        assert!(at_once.flush_timeout.is_zero());
        assert_eq!(
            at_once.bound,
            Bound {
                bytes: DEFAULT_MAX_REQUEST_BYTES,
                items: 9000
            }
        );
        let unbounded = Settings::default().policy(usize::MAX);
        assert_eq!(unbounded.bound.items, usize::MAX);
    }

    fn value(yaml: &str) -> serde_json::Value {
        crate::config::tree::from_str(yaml).unwrap()
    }

    // Each exporter instance takes the batch processor of the pipelines feeding it; the same
    // settings twice are one batching, different ones are refused naming the exporter and both
    // processors; another signal is another exporter instance.
    #[test]
    fn assigns_one_batching_per_exporter_instance() {
        let (a, b, c) = (id("batch/a"), id("batch/b"), id("batch/c"));
        let (small, large) = (value("send_batch_size: 10"), value("send_batch_size: 20"));
        let otlp = [id("otlp"), id("otlp/b")];
        let only_b = [id("otlp/b")];
        let fed = |signal, batches, exporters| Fed {
            signal,
            batches,
            exporters,
        };
        let assignment = assign([
            fed(Signal::Traces, vec![(&a, &small)], &otlp[..]),
            fed(Signal::Traces, vec![(&c, &small)], &only_b[..]),
            fed(Signal::Metrics, vec![(&b, &large)], &otlp[..]),
        ])
        .unwrap();
        assert_eq!(assignment.len(), 4);
        let both = &assignment[&(id("otlp/b"), Signal::Traces)];
        assert_eq!(both.processors, [a.clone(), c.clone()]);
        let metrics = &assignment[&(id("otlp"), Signal::Metrics)];
        assert_eq!(metrics.processors, std::slice::from_ref(&b));
        assert_eq!(metrics.settings.send_batch_size, 20);
        let refused = assign([
            fed(Signal::Traces, vec![(&a, &small)], &otlp[..]),
            fed(Signal::Traces, vec![(&b, &large)], &only_b[..]),
        ])
        .unwrap_err();
        assert_eq!(refused.processor, b);
        assert_eq!(
            refused.message,
            "exporter `otlp/b` (traces) is fed through batch processors `batch/a` and `batch/b` \
             with different settings, and an exporter batches one way: give them the same \
             settings, or send to different exporters"
        );
        let bad = value("metadata_keys: [x-tenant]");
        let refused = assign([fed(Signal::Logs, vec![(&c, &bad)], &otlp[..])]).unwrap_err();
        assert_eq!(
            (refused.processor, refused.key.as_str()),
            (c, "metadata_keys")
        );
        assert!(
            refused.message.contains("`x-tenant`"),
            "{}",
            refused.message
        );
    }

    // The start line says where the batching went and how each key maps, with the byte bound
    // that stays, and which exporters keep their own keys.
    #[test]
    fn describes_the_mapping() {
        let line = describe(
            &id("batch"),
            &Settings::default(),
            &[
                (
                    "otlp".into(),
                    Took::Batches {
                        max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
                    },
                ),
                (
                    "otlp/b".into(),
                    Took::Batches {
                        max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
                    },
                ),
                ("otlp/own".into(), Took::KeepsOwn("sending_queue.batch")),
            ],
        );
        assert_eq!(
            line,
            "processor batch: batching moves to exporters otlp, otlp/b (send_batch_size 8192 → \
             min_size 8192 items, timeout 200ms → flush_timeout, send_batch_max_size 0 → no item \
             bound; requests stay under max_request_bytes 3.5 MiB); exporter otlp/own keeps its \
             own `sending_queue.batch` settings (an exporter's own batch keys win)"
        );
        let zero = settings("{send_batch_size: 10, timeout: 0, send_batch_max_size: 100}").unwrap();
        let line = describe(
            &id("batch/now"),
            &zero,
            &[
                (
                    "otlp".into(),
                    Took::Batches {
                        max_request_bytes: 1 << 20,
                    },
                ),
                (
                    "debug".into(),
                    Took::Batches {
                        max_request_bytes: usize::MAX,
                    },
                ),
            ],
        );
        assert!(
            line.contains("timeout 0 → each request sent as it comes"),
            "{line}"
        );
        assert!(
            line.contains("send_batch_max_size 100 → max_size 100 items"),
            "{line}"
        );
        assert!(
            line.contains("each exporter's max_request_bytes (otlp 1 MiB, debug none)"),
            "{line}"
        );
    }
}
