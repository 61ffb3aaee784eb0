//! OTTL conditions evaluated natively over an encoded export request, read in place: the
//! tail_sampling processor's `ottl_condition` policy (over a held trace's spans and span
//! events) and the routing connector (over a request's resources or spans) share it.
//!
//! The one idea: a condition is parsed by `trailhead-ottl`, the engine of the filter and
//! transform plugins, and evaluated a column at a time: every path is one column over the
//! items ([`read`]), its strings borrowed from the encoding. Paths are those of the
//! collector's OTTL resource, span and spanevent contexts, with context names ([`paths`]);
//! one a context lacks is refused at config time with its key path and column.
//!
//! A parsed condition holds `Rc`s (its list and map literals), so it cannot move between
//! threads while its owner (a policy, a connector) does: owners keep the checked texts and
//! each thread parses them once, into [`cached`].

pub mod paths;
pub mod read;

use paths::{Field, resolve};
use read::{Item, ItemColumns};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use trailhead_ottl::{Expr, ItemConverter, Key, Outcome, Path};

/// The contexts a condition runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Resource,
    Span,
    SpanEvent,
}

/// One parsed condition with the field of each of its paths.
pub struct Condition {
    pub text: String,
    expr: Expr,
    fields: HashMap<Path, Field>,
}

impl Condition {
    /// Parses and checks `text` in `ctx`; an error names `at` and the column.
    pub fn parse(text: &str, at: &str, ctx: Context) -> Result<Condition, String> {
        let parsed = trailhead_ottl::parse_reading(text, converters(ctx));
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
        Ok(Condition {
            text: text.to_string(),
            expr,
            fields,
        })
    }

    /// Whether it holds for each item, and where it failed to evaluate.
    pub fn eval(&self, items: &[Item<'_>]) -> Outcome {
        let mut columns = ItemColumns {
            items,
            fields: &self.fields,
        };
        self.expr.eval(&mut columns)
    }
}

/// Parses and checks the conditions of one context; errors name `at[i]` and the column.
pub fn conditions(texts: &[String], at: &str, ctx: Context) -> Result<Vec<Condition>, String> {
    let parse = |(i, text): (usize, &String)| Condition::parse(text, &format!("{at}[{i}]"), ctx);
    texts.iter().enumerate().map(parse).collect()
}

/// The item converters a context has: `IsRootSpan()`, which the collector gives span
/// conditions alone.
fn converters(ctx: Context) -> &'static [ItemConverter] {
    match ctx {
        Context::Span => &SPAN_CONVERTERS,
        Context::SpanEvent => &EVENT_CONVERTERS,
        Context::Resource => &RESOURCE_CONVERTERS,
    }
}

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
const RESOURCE_CONVERTERS: [ItemConverter; 1] = [ItemConverter {
    name: "IsRootSpan",
    params: &[],
    refused: Some("the collector has it in the `span` context only, not in `resource`"),
}];

/// Gives each owner of parsed conditions its key in [`PARSED`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// How many owners' parses a thread keeps before it forgets them all (owners replaced by a
/// reload leave theirs behind on threads other than the one that drops them).
const PARSED_MAX: usize = 256;

thread_local! {
    /// Each owner's conditions as this thread parsed them, by the owner's id.
    static PARSED: RefCell<HashMap<u64, Rc<dyn Any>>> = RefCell::new(HashMap::new());
}

/// A new owner id for [`cached`].
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// This thread's parse of owner `id`'s conditions, made with `parse` on first use.
pub fn cached<T: 'static>(
    id: u64,
    parse: impl FnOnce() -> Result<T, String>,
) -> Result<Rc<T>, String> {
    let found = PARSED.with(|p| p.borrow().get(&id).cloned());
    if let Some(parsed) = found.and_then(|p| p.downcast::<T>().ok()) {
        return Ok(parsed);
    }
    let parsed = Rc::new(parse()?);
    PARSED.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() >= PARSED_MAX {
            p.clear();
        }
        p.insert(id, parsed.clone());
    });
    Ok(parsed)
}

/// How many owners' parses this thread keeps.
#[cfg(test)]
pub fn parsed_count() -> usize {
    PARSED.with(|p| p.borrow().len())
}

/// Forgets owner `id`'s parse on this thread (its owner is dropped).
pub fn forget(id: u64) {
    // `try_with`: an owner dropped while its thread ends has no cache left to clean.
    let _ = PARSED.try_with(|p| p.borrow_mut().remove(&id));
}

/// Go's `trace.ParseTraceState` then `Get`: `None` for a tracestate that does not parse,
/// `Some(None)` for a key it lacks.
pub fn trace_state_lookup<'a>(state: &'a str, key: &str) -> Option<Option<&'a str>> {
    let mut found = None;
    let mut keys = HashSet::new();
    for member in state.split(',') {
        if member.is_empty() {
            continue;
        }
        let (k, v) = member.split_once('=')?;
        let (k, v) = (
            k.trim_start_matches([' ', '\t']),
            v.trim_end_matches([' ', '\t']),
        );
        if !valid_key(k) || !valid_value(v) || !keys.insert(k) || keys.len() > 32 {
            return None;
        }
        if k == key {
            found = Some(v);
        }
    }
    Some(found)
}

fn valid_value(v: &str) -> bool {
    let b = v.as_bytes();
    let char_ok = |c: u8| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=';
    match b.split_last() {
        Some((last, rest)) if b.len() <= 256 => {
            rest.iter().all(|c| char_ok(*c)) && *last != b' ' && char_ok(*last)
        }
        _ => false,
    }
}

fn valid_key(key: &str) -> bool {
    let remain = |s: &[u8]| {
        s.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(c))
    };
    let part = |s: &[u8], n: usize| {
        s.first().is_some_and(u8::is_ascii_lowercase) && s.len() - 1 <= n && remain(&s[1..])
    };
    match key.split_once('@') {
        None => part(key.as_bytes(), 255),
        Some((tenant, system)) => {
            let t = tenant.as_bytes();
            let tenant_ok = t
                .first()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && t.len() - 1 <= 240
                && remain(&t[1..]);
            tenant_ok && part(system.as_bytes(), 13)
        }
    }
}
