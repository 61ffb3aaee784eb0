//! `ottl_condition`: a trace is sampled when any span meets any `span` condition, or any
//! span event meets any `spanevent` condition, with the collector's semantics (v0.161.0,
//! `internal/sampling/ottl.go`): spans in arrival order, each span's own conditions before
//! its events', the first match or (with `error_mode: propagate`) the first error ends it.
//!
//! The conditions are parsed and evaluated by [`crate::processors::ottl`], over the held
//! trace read in place, with the span and spanevent contexts; each thread parses a policy's
//! texts once.

use super::super::config::OttlConditionConfig;
use super::super::trace::TraceData;
use crate::processors::ottl::read::Walk;
use crate::processors::ottl::{self, Condition, Context, conditions};
use std::rc::Rc;
use trailhead_ottl::Outcome;

/// What an evaluation error does, as the collector's `error_mode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorMode {
    /// The policy fails for the trace (which is then not sampled by it).
    Propagate,
    /// The condition counts as false, with a warning.
    Ignore,
    /// The condition counts as false. Also the collector's behaviour when the key is unset.
    Silent,
}

/// A policy's conditions, parsed.
struct Parsed {
    span: Vec<Condition>,
    spanevent: Vec<Condition>,
}

/// A built `ottl_condition` policy.
#[derive(Debug)]
pub struct OttlCondition {
    id: u64,
    span: Vec<String>,
    spanevent: Vec<String>,
    error_mode: ErrorMode,
}

impl Drop for OttlCondition {
    fn drop(&mut self) {
        ottl::forget(self.id);
    }
}

impl OttlCondition {
    /// Checks every condition (its syntax, paths and functions) and keeps the texts; `at`
    /// is the policy's key path.
    pub fn build(config: &OttlConditionConfig, at: &str) -> Result<OttlCondition, String> {
        let error_mode = match config.error_mode.to_lowercase().as_str() {
            "propagate" => ErrorMode::Propagate,
            "ignore" => ErrorMode::Ignore,
            "silent" | "" => ErrorMode::Silent,
            other => {
                return Err(format!(
                    "{at}.ottl_condition.error_mode: unknown error mode {other}; expected propagate, ignore or silent"
                ));
            }
        };
        if config.span.is_empty() && config.spanevent.is_empty() {
            return Err(format!(
                "{at}.ottl_condition: expected at least one OTTL condition to filter on (set `span` or `spanevent`)"
            ));
        }
        let policy = OttlCondition {
            id: ottl::next_id(),
            span: config.span.clone(),
            spanevent: config.spanevent.clone(),
            error_mode,
        };
        policy.parse(&format!("{at}.ottl_condition"))?;
        Ok(policy)
    }

    fn parse(&self, at: &str) -> Result<Parsed, String> {
        Ok(Parsed {
            span: conditions(&self.span, &format!("{at}.span"), Context::Span)?,
            spanevent: conditions(
                &self.spanevent,
                &format!("{at}.spanevent"),
                Context::SpanEvent,
            )?,
        })
    }

    /// This thread's parse of the conditions, made on first use.
    fn parsed(&self) -> Result<Rc<Parsed>, String> {
        ottl::cached(self.id, || self.parse("ottl_condition"))
    }

    /// Whether the trace is sampled; an error when a condition fails to evaluate and the
    /// error mode is `propagate`.
    pub fn evaluate(&self, trace: &TraceData) -> Result<bool, String> {
        let parsed = self.parsed()?;
        let spans = trace.span_count.max(0) as usize;
        let walk = Walk::new(trace.encoded(), spans, !parsed.spanevent.is_empty());
        let spans = self.run(&parsed.span, &walk, Context::Span);
        let events = self.run(&parsed.spanevent, &walk, Context::SpanEvent);
        let mut next_event = 0;
        for span in 0..walk.spans.len() {
            if self.decide(&parsed.span, &spans, span)? {
                return Ok(true);
            }
            while walk
                .events
                .get(next_event)
                .is_some_and(|e| e.span_index == span)
            {
                if self.decide(&parsed.spanevent, &events, next_event)? {
                    return Ok(true);
                }
                next_event += 1;
            }
        }
        Ok(false)
    }

    /// Every condition evaluated over every item of the context.
    fn run(&self, conditions: &[Condition], walk: &Walk<'_>, ctx: Context) -> Vec<Outcome> {
        let items = match ctx {
            Context::SpanEvent => &walk.events,
            Context::Span | Context::Resource => &walk.spans,
        };
        conditions.iter().map(|c| c.eval(items)).collect()
    }

    /// The collector's condition sequence for one item: the conditions in order, the first
    /// that holds matches, a failed one stops it (`propagate`) or counts as false.
    fn decide(
        &self,
        conditions: &[Condition],
        outcomes: &[Outcome],
        item: usize,
    ) -> Result<bool, String> {
        for (condition, outcome) in conditions.iter().zip(outcomes) {
            let failed = outcome.errors.binary_search_by_key(&item, |e| e.item);
            if let Ok(i) = failed {
                let message = &outcome.errors[i].message;
                match self.error_mode {
                    ErrorMode::Propagate => {
                        return Err(format!(
                            "failed to eval condition: {}, {message}",
                            condition.text
                        ));
                    }
                    ErrorMode::Ignore => tracing::warn!(
                        error = %message,
                        condition = %condition.text,
                        "failed to eval condition"
                    ),
                    ErrorMode::Silent => {}
                }
                continue;
            }
            if outcome.matched.get(item).copied().unwrap_or(false) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests;
