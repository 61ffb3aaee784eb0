//! The built-in `attributes` processor: the collector's attributesprocessor (v0.161.0). Its
//! `actions` (insert, update, upsert, delete, hash, extract, convert) run, in order, on the
//! attributes of spans, log records and metric data points, for the items its `include` and
//! `exclude` properties select.
//!
//! ```yaml
//! processors:
//!   attributes:
//!     include:
//!       match_type: strict
//!       services: [checkout]
//!     actions:
//!       - {key: environment, value: production, action: insert}
//!       - {key: user.email, action: hash}
//!       - {key: http.url, pattern: '^https?://[^/]+(?P<http_path>/[^?]*)', action: extract}
//! ```
//!
//! The one idea: the properties are checked per signal, as the collector checks them when it
//! builds each signal's processor. A config valid for some signals only (`services` is a span
//! property) runs on those; the others pass through, and init logs why. A config valid for no
//! signal is refused. Selection reads only the columns its properties name ([`matching`]);
//! the actions then run through the shared engine (`attraction`): on spans and records at
//! `item` level, on metrics at `point` level for the points of the selected metrics.

mod matching;

use attraction::{ActionConfig, Engine, compile};
use matching::{MatchProperties, Signal as Kind, Skip};
use serde::Deserialize;
use trailhead_plugin::{
    Batch, Error, Level, LogBatch, MetricBatch, Plugin, Signal, SpanBatch, host,
};

/// The attributes processor's config: the collector's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The actions, run in order. Required, at least one.
    #[serde(default)]
    pub actions: Option<Vec<ActionConfig>>,
    /// Only items matching these properties are processed.
    #[serde(default)]
    pub include: Option<MatchProperties>,
    /// Items matching these properties are not processed (checked after `include`).
    #[serde(default)]
    pub exclude: Option<MatchProperties>,
}

/// The processor: its actions, and its selection for each signal it serves.
pub struct Attributes {
    engine: Engine,
    spans: Option<Skip>,
    logs: Option<Skip>,
    metrics: Option<Skip>,
}

impl Plugin for Attributes {
    type Config = Config;
    const NAME: &'static str = "attributes";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        let list = config.actions.unwrap_or_default();
        if list.is_empty() {
            return Err("actions: missing required field: give at least one action".into());
        }
        let (actions, warnings) = compile(&list, "actions")?;
        for warning in warnings {
            host::log(host::Severity::Warn, &warning);
        }
        let (include, exclude) = (config.include.as_ref(), config.exclude.as_ref());
        let mut refused = Vec::new();
        let mut per_signal = |kind: Kind| match Skip::compile(include, exclude, kind) {
            Ok(skip) => Some(skip),
            Err(e) => {
                refused.push((kind, e));
                None
            }
        };
        let (spans, logs, metrics) = (
            per_signal(Kind::Spans),
            per_signal(Kind::Logs),
            per_signal(Kind::Metrics),
        );
        if spans.is_none() && logs.is_none() && metrics.is_none() {
            // Valid for no signal: say what is wrong, preferring a mistake over a property
            // that merely belongs to another signal.
            let (_, error) = refused
                .iter()
                .find(|(_, e)| !e.contains("not valid for"))
                .unwrap_or(&refused[0]);
            return Err(error.clone());
        }
        for (kind, error) in &refused {
            host::log(
                host::Severity::Warn,
                &format!(
                    "{error}: {} pass through unchanged (the collector refuses this config in such a pipeline)",
                    kind.name()
                ),
            );
        }
        Ok(Attributes {
            engine: Engine::new(actions),
            spans,
            logs,
            metrics,
        })
    }

    fn signals(&self) -> Vec<Signal> {
        let mut signals = Vec::new();
        if self.spans.is_some() {
            signals.push(Signal::Traces);
        }
        if self.metrics.is_some() {
            signals.push(Signal::Metrics);
        }
        if self.logs.is_some() {
            signals.push(Signal::Logs);
        }
        signals
    }

    fn process_spans(&mut self, b: &impl SpanBatch) -> Result<(), Error> {
        let Some(skip) = &self.spans else {
            return Ok(());
        };
        let items = select(b, skip, |view, needs| {
            if needs.names {
                view.names = Some(b.names(Level::Item));
            }
            if needs.kinds {
                view.kinds = b.kinds();
            }
        });
        self.engine.apply(b, Level::Item, &items);
        Ok(())
    }

    fn process_logs(&mut self, b: &impl LogBatch) -> Result<(), Error> {
        let Some(skip) = &self.logs else {
            return Ok(());
        };
        let items = select(b, skip, |view, needs| {
            if needs.bodies {
                view.bodies = Some(b.bodies());
            }
            if needs.severity_texts {
                view.severity_texts = Some(b.severity_texts());
            }
            if needs.severity_numbers {
                view.severity_numbers = b.severity_numbers();
            }
        });
        self.engine.apply(b, Level::Item, &items);
        Ok(())
    }

    fn process_metrics(&mut self, b: &impl MetricBatch) -> Result<(), Error> {
        let Some(skip) = &self.metrics else {
            return Ok(());
        };
        let points = if skip.needs().is_none() {
            b.all(Level::Point)
        } else {
            let metrics = select(b, skip, |view, needs| {
                if needs.names {
                    view.names = Some(b.names());
                }
            });
            let mut chosen = vec![false; b.count(Level::Item) as usize];
            for m in metrics {
                chosen[m as usize] = true;
            }
            let parents = b.parents(Level::Point);
            (0..parents.len() as u32)
                .filter(|&p| chosen[parents[p as usize] as usize])
                .collect()
        };
        self.engine.apply(b, Level::Point, &points);
        Ok(())
    }
}

/// The items `skip` lets through; `fill` reads the signal's own columns into the view.
fn select<B: Batch>(
    batch: &B,
    skip: &Skip,
    fill: impl FnOnce(&mut matching::View, &matching::Needs),
) -> Vec<u32> {
    match skip.needs() {
        None => batch.all(Level::Item),
        Some(needs) => {
            let mut view = Skip::view(batch, &needs);
            fill(&mut view, &needs);
            skip.selected(&view, batch.count(Level::Item) as usize)
        }
    }
}

trailhead_plugin::export!(Attributes);

#[cfg(test)]
mod tests;
