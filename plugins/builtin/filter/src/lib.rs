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
//! level's column, read through `parents()`. Spans are removed before their events, metrics
//! before their data points, and a metric whose data points all match goes with them.

mod config;
mod table;

use config::{Condition, Config, ErrorMode, Field};
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
        let fetch = |field: &Field, level| span_field(b, field, level);
        self.filter(b, Level::Item, &c.span, "span", fetch)?;
        self.filter(b, Level::Event, &c.spanevent, "span event", fetch)
    }

    fn process_metrics(&mut self, b: &impl MetricBatch) -> Result<(), Error> {
        let c = &self.config.conditions;
        let fetch = |field: &Field, level| metric_field(b, field, level);
        self.filter(b, Level::Item, &c.metric, "metric", fetch)?;
        self.filter(b, Level::Point, &c.datapoint, "data point", fetch)
    }

    fn process_logs(&mut self, b: &impl LogBatch) -> Result<(), Error> {
        let c = &self.config.conditions;
        let fetch = |field: &Field, _| log_field(b, field);
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

/// A span's (`item`) or span event's (`event`) own field.
fn span_field(b: &impl SpanBatch, field: &Field, level: Level) -> Raw {
    match field {
        Field::Name => Raw::Strings(b.names(level)),
        Field::Kind => Raw::Ints(b.kinds().into_iter().map(|k| k as i64).collect()),
        Field::StatusCode => Raw::Ints(b.status_codes().into_iter().map(|c| c as i64).collect()),
        Field::StatusMessage => Raw::Strings(b.status_messages()),
        Field::StartTime => Raw::times(b.start_times()),
        Field::EndTime => Raw::times(b.end_times()),
        Field::TraceId { hex } => Raw::ids(b.trace_ids(level), 16, *hex),
        Field::SpanId { hex } => Raw::ids(b.span_ids(level), 8, *hex),
        Field::Attribute(key) => Raw::Values(b.attr_column(level, key)),
        _ => Raw::Nil,
    }
}

/// A metric's (`item`) or data point's (`point`) own field.
fn metric_field(b: &impl MetricBatch, field: &Field, level: Level) -> Raw {
    match field {
        Field::Name => Raw::Strings(b.names()),
        // The host's metric types are numbered as OTTL's METRIC_DATA_TYPE_* constants.
        Field::Type => Raw::Ints(b.types().into_iter().map(|t| t as i64).collect()),
        Field::Attribute(key) => Raw::Values(b.attr_column(level, key)),
        _ => Raw::Nil,
    }
}

/// A log record's own field.
fn log_field(b: &impl LogBatch, field: &Field) -> Raw {
    match field {
        Field::SeverityNumber => {
            Raw::Ints(b.severity_numbers().into_iter().map(i64::from).collect())
        }
        Field::SeverityText => Raw::Strings(b.severity_texts()),
        Field::Body => Raw::Values(b.bodies()),
        Field::TraceId { hex } => Raw::ids(b.trace_ids(), 16, *hex),
        Field::SpanId { hex } => Raw::ids(b.span_ids(), 8, *hex),
        Field::Attribute(key) => Raw::Values(b.attr_column(Level::Item, key)),
        _ => Raw::Nil,
    }
}

trailhead_plugin::export!(Filter);

#[cfg(test)]
mod tests;
