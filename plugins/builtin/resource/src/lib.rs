//! The built-in `resource` processor: the collector's resourceprocessor (v0.161.0). Its
//! `attributes:` list of actions (insert, update, upsert, delete, hash, extract, convert, with
//! the collector's keys and rules) runs, in order, on the attributes of every resource of every
//! signal.
//!
//! ```yaml
//! processors:
//!   resource:
//!     attributes:
//!       - {key: deployment.environment, value: production, action: upsert}
//!       - {key: k8s.cluster.name, from_attribute: k8s-cluster, action: insert}
//!       - {key: redundant-attribute, action: delete}
//! ```
//!
//! The one idea: only resources are read and written, so no span, record or point is ever
//! decoded; the action engine is the one the `attributes` plugin runs (`attraction`).

use attraction::{ActionConfig, Engine, compile};
use serde::Deserialize;
use trailhead_plugin::{
    Batch, Error, Level, LogBatch, MetricBatch, Plugin, Signal, SpanBatch, host,
};

/// The resource processor's config: the collector's one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The actions to run on resource attributes, in order. Required, at least one.
    #[serde(default)]
    pub attributes: Option<Vec<ActionConfig>>,
}

/// The processor: its checked actions.
pub struct Resource {
    engine: Engine,
}

impl Plugin for Resource {
    type Config = Config;
    const NAME: &'static str = "resource";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        let list = config.attributes.unwrap_or_default();
        if list.is_empty() {
            return Err("attributes: missing required field: give at least one action".into());
        }
        let (actions, warnings) = compile(&list, "attributes")?;
        for warning in warnings {
            host::log(host::Severity::Warn, &warning);
        }
        Ok(Resource {
            engine: Engine::new(actions),
        })
    }

    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces, Signal::Metrics, Signal::Logs]
    }

    fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
        self.run(batch);
        Ok(())
    }

    fn process_logs(&mut self, batch: &impl LogBatch) -> Result<(), Error> {
        self.run(batch);
        Ok(())
    }

    fn process_metrics(&mut self, batch: &impl MetricBatch) -> Result<(), Error> {
        self.run(batch);
        Ok(())
    }
}

impl Resource {
    fn run(&self, batch: &impl Batch) {
        self.engine
            .apply(batch, Level::Resource, &batch.all(Level::Resource));
    }
}

trailhead_plugin::export!(Resource);

#[cfg(test)]
mod tests;
