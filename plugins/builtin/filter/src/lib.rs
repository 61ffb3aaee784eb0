//! The built-in `filter` processor: drops the spans, span events, metrics, data points and log
//! records that match any of its OTTL conditions, as the collector's filterprocessor does.
//!
//! ```yaml
//! processors:
//!   filter:
//!     error_mode: ignore
//!     traces:
//!       span: ['attributes["http.route"] == "/healthz"']
//!     logs:
//!       log_record: ['severity_number < SEVERITY_NUMBER_INFO']
//! ```
//!
//! The one idea: every field a level's conditions read is fetched from the host once per
//! batch, as one packed column, and the conditions then run over values *borrowed* from those
//! columns ([`table`]), so filtering copies no string. A field of the level above (a span
//! event's `span.name`, a data point's `metric.name`, any `resource.attributes[…]`) is that
//! level's column, read through `parents()`. Which field a path names is [`paths`], as the
//! collector's contexts name them; how each is read is [`read`]. Spans are removed before
//! their events, metrics before their data points, and a metric whose data points all match
//! goes with them.

mod config;
mod paths;
mod read;
mod table;
mod text;
mod tracestate;

use config::{Condition, Config, ErrorMode};
use paths::Field;
use table::{Lookup, Raw, Table};
use trailhead_plugin::{Error, Level, LogBatch, MetricBatch, Plugin, Signal, SpanBatch, host};

/// The processor: its checked conditions, kept for the instance's life.
pub struct Filter {
    config: Config,
}

impl Plugin for Filter {
    /// Walked by hand rather than derived, so each error names its condition and column.
    type Config = serde_json::Value;
    const NAME: &'static str = "filter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(json: serde_json::Value) -> Result<Self, String> {
        Ok(Filter {
            config: Config::from_json(&json)?,
        })
    }

    fn signals(&self) -> Vec<Signal> {
        let c = &self.config.conditions;
        let mut signals = Vec::new();
        if !c.span.is_empty() || !c.spanevent.is_empty() {
            signals.push(Signal::Traces);
        }
        if !c.metric.is_empty() || !c.datapoint.is_empty() {
            signals.push(Signal::Metrics);
        }
        if !c.log_record.is_empty() {
            signals.push(Signal::Logs);
        }
        signals
    }

    fn process_spans(&mut self, b: &impl SpanBatch) -> Result<(), Error> {
        let c = &self.config.conditions;
        let fetch = |field: &Field, level| read::span(b, field, level);
        self.filter(b, Level::Item, &c.span, "span", fetch)?;
        self.filter(b, Level::Event, &c.spanevent, "span event", fetch)
    }

    fn process_metrics(&mut self, b: &impl MetricBatch) -> Result<(), Error> {
        let c = &self.config.conditions;
        let fetch = |field: &Field, level| read::metric(b, field, level);
        self.filter(b, Level::Item, &c.metric, "metric", fetch)?;
        self.filter(b, Level::Point, &c.datapoint, "data point", fetch)
    }

    fn process_logs(&mut self, b: &impl LogBatch) -> Result<(), Error> {
        let c = &self.config.conditions;
        let fetch = |field: &Field, _| read::log(b, field);
        self.filter(b, Level::Item, &c.log_record, "log record", fetch)
    }
}

impl Filter {
    /// Removes the entries of `level` that match any of `conditions`.
    fn filter<B: trailhead_plugin::Batch>(
        &self,
        batch: &B,
        level: Level,
        conditions: &[Condition],
        what: &str,
        fetch: impl Fn(&Field, Level) -> Raw,
    ) -> Result<(), Error> {
        if conditions.is_empty() {
            return Ok(());
        }
        let table = Table::fetch(batch, level, conditions, fetch);
        let dropped = matching(conditions, &table, self.config.error_mode, what)?;
        if !dropped.is_empty() {
            batch.remove(level, &dropped);
        }
        Ok(())
    }
}

/// Runs `conditions` over a level; returns the entries that match any of them.
fn matching(
    conditions: &[Condition],
    table: &Table,
    mode: ErrorMode,
    what: &str,
) -> Result<Vec<u32>, Error> {
    let mut matched = vec![false; table.len()];
    for condition in conditions {
        let outcome = condition
            .expr
            .eval(&mut Lookup::new(table, &condition.fields));
        if let Some(first) = outcome.errors.first() {
            let message = format!(
                "condition `{}` failed on {} {what}(s), first {what} {}: {}",
                condition.text,
                outcome.errors.len(),
                first.item,
                first.message
            );
            match mode {
                ErrorMode::Propagate => return Err(Error::new(message)),
                ErrorMode::Ignore => host::log(host::Severity::Warn, &message),
                ErrorMode::Silent => {}
            }
        }
        for (m, hit) in matched.iter_mut().zip(outcome.matched) {
            *m |= hit;
        }
    }
    Ok((0..matched.len() as u32)
        .filter(|&i| matched[i as usize])
        .collect())
}

trailhead_plugin::export!(Filter);

#[cfg(test)]
mod tests;
