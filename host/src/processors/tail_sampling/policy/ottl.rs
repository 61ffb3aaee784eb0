//! `ottl_condition`: a trace is sampled when any span meets any `span` condition, or any
//! span event meets any `spanevent` condition, with the collector's semantics (v0.161.0,
//! `internal/sampling/ottl.go`): spans in arrival order, each span's own conditions before
//! its events', the first match or (with `error_mode: propagate`) the first error ends it.
//!
//! The one idea: the conditions are parsed by `trailhead-ottl`, the engine of the filter and
//! transform plugins, and evaluated a column at a time over the held trace read in place:
//! every path is one column over the trace's spans (or events), its strings borrowed from
//! the encoding. Paths are those of the collector's OTTL span and spanevent contexts, with
//! context names (`span.name`, `spanevent.name`, `resource.…`, `scope.…`); one it lacks is
//! refused at config time with its key path and column.
//!
//! A parsed condition holds `Rc`s (its list and map literals), so it cannot move between
//! threads while the processor's state does: the policy keeps the checked texts and each
//! thread parses them once, into [`PARSED`].

use super::super::config::OttlConditionConfig;
use super::super::trace::TraceData;
use paths::{Field, resolve};
use read::{ItemColumns, Walk};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use trailhead_ottl::{Expr, ItemConverter, Key, Outcome, Path};

mod paths;
mod read;

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

/// The contexts a condition runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Span,
    SpanEvent,
}

/// One parsed condition with the field of each of its paths.
struct Condition {
    text: String,
    expr: Expr,
    fields: HashMap<Path, Field>,
}

/// A policy's conditions, parsed.
struct Parsed {
    span: Vec<Condition>,
    spanevent: Vec<Condition>,
}

/// Gives each built policy its key in [`PARSED`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// How many parsed policies a thread keeps before it forgets them all (policies replaced
/// by a reload leave theirs behind on threads other than the one that drops them).
const PARSED_MAX: usize = 256;

thread_local! {
    /// Each policy's conditions as this thread parsed them, by the policy's id.
    static PARSED: RefCell<HashMap<u64, Rc<Parsed>>> = RefCell::new(HashMap::new());
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
        // `try_with`: a policy dropped while its thread ends has no cache left to clean.
        let _ = PARSED.try_with(|p| p.borrow_mut().remove(&self.id));
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
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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
        if let Some(parsed) = PARSED.with(|p| p.borrow().get(&self.id).cloned()) {
            return Ok(parsed);
        }
        let parsed = Rc::new(self.parse("ottl_condition")?);
        PARSED.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() >= PARSED_MAX {
                p.clear();
            }
            p.insert(self.id, parsed.clone());
        });
        Ok(parsed)
    }

    /// Whether the trace is sampled; an error when a condition fails to evaluate and the
    /// error mode is `propagate`.
    pub fn evaluate(&self, trace: &TraceData) -> Result<bool, String> {
        let parsed = self.parsed()?;
        let walk = Walk::new(trace, !parsed.spanevent.is_empty());
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
    fn run<'a>(
        &self,
        conditions: &'a [Condition],
        walk: &'a Walk<'a>,
        ctx: Context,
    ) -> Vec<Outcome> {
        let items = match ctx {
            Context::Span => &walk.spans,
            Context::SpanEvent => &walk.events,
        };
        conditions
            .iter()
            .map(|c| {
                let mut columns = ItemColumns {
                    items,
                    fields: &c.fields,
                };
                c.expr.eval(&mut columns)
            })
            .collect()
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

/// Parses and checks the conditions of one context; errors name `at[i]` and the column.
fn conditions(texts: &[String], at: &str, ctx: Context) -> Result<Vec<Condition>, String> {
    let converters = match ctx {
        Context::Span => &SPAN_CONVERTERS,
        Context::SpanEvent => &EVENT_CONVERTERS,
    };
    let mut out = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let parsed = trailhead_ottl::parse_reading(text, converters);
        let mut expr = parsed.map_err(|e| format!("{at}: {e} in `{text}`"))?;
        let mut fields = HashMap::new();
        for path in expr.paths_mut() {
            let field =
                resolve(ctx, path).map_err(|e| format!("{at}: column {}: {e}", path.column))?;
            // The cache is read whole: its key is read out of the map, as a nested one.
            if field == Field::Cache
                && let Some(key) = path.key.take()
            {
                path.nested.insert(0, Key::Str(key));
            }
            fields.insert(path.head(), field);
        }
        out.push(Condition {
            text: text.clone(),
            expr,
            fields,
        });
    }
    Ok(out)
}

/// `IsRootSpan()`, which the collector's tail sampling gives span conditions alone.
const SPAN_CONVERTERS: [ItemConverter; 1] = [ItemConverter {
    name: "IsRootSpan",
    params: &[],
    refused: None,
}];
const EVENT_CONVERTERS: [ItemConverter; 1] = [ItemConverter {
    name: "IsRootSpan",
    params: &[],
    refused: Some("the collector has it in `span` conditions only, not in `spanevent` ones"),
}];

#[cfg(test)]
mod tests;
