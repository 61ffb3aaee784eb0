//! The config in effect, as operators see it: its settings with secrets redacted, the
//! pipelines' shape, and how the last reload went with what it changed. One value, replaced
//! whole by each reload (applied, unchanged or rejected) and read by the console's stream,
//! which sends it again whenever its generation moves.

use crate::components::Config;
use crate::components::shown::{self, ValueChange};
use serde_json::Value;

/// The running config and the last reload.
#[derive(Debug)]
pub struct Running {
    /// Bumped by every reload, so a reader knows when to read again.
    pub generation: u64,
    /// The config in effect, as written after expansion, secrets redacted.
    pub settings: Value,
    /// Each pipeline's receivers, processors and exporters in effect.
    pub topology: Value,
    /// The last reload: when, its outcome (`POST /reload`'s answer) and what it changed (or
    /// would have changed, when it was rejected). `None` before the first.
    pub last_reload: Option<Value>,
}

impl Running {
    /// What runs after start.
    pub fn of(config: &Config) -> Running {
        Running {
            generation: 0,
            settings: shown::redacted(&config.as_written()),
            topology: topology(config),
            last_reload: None,
        }
    }

    /// After a reload: `config` is what now runs (the old one when the reload changed nothing
    /// or was rejected, the new one when it applied).
    pub fn after_reload(
        &self,
        settings: Value,
        topology: Value,
        outcome: Value,
        changes: &[ValueChange],
    ) -> Running {
        let at_unix = crate::telemetry::metrics::unix_seconds();
        let listed = changes.len() < shown::MAX_CHANGES;
        Running {
            generation: self.generation + 1,
            settings,
            topology,
            last_reload: Some(serde_json::json!({
                "at_unix": at_unix,
                "outcome": outcome,
                "changes": changes,
                "all_changes_listed": listed,
            })),
        }
    }
}

/// Each pipeline's receivers, processors and exporters, naming which of them are connectors.
pub fn topology(config: &Config) -> Value {
    let ids = |list: &[crate::config::ComponentId]| -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    };
    let pipelines: Vec<Value> = config
        .service
        .pipelines
        .iter()
        .map(|(id, pipeline)| {
            serde_json::json!({
                "id": id.to_string(),
                "signal": id.kind,
                "receivers": ids(&pipeline.receivers),
                "processors": ids(&pipeline.processors),
                "exporters": ids(&pipeline.exporters),
            })
        })
        .collect();
    let connectors: Vec<String> = config
        .connectors
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    serde_json::json!({"pipelines": pipelines, "connectors": connectors})
}
