//! The built-in `transform` processor: changes spans, span events, log records, metrics, data
//! points, scopes and resources with OTTL statements, as the collector's transformprocessor
//! does.
//!
//! ```yaml
//! processors:
//!   transform:
//!     error_mode: ignore
//!     trace_statements:
//!       - context: span
//!         statements:
//!           - set(attributes["env"], "prod") where resource.attributes["k8s.namespace.name"] == "shop"
//!           - replace_pattern(name, "/users/[0-9]+", "/users/{id}")
//!           - truncate_all(attributes, 256)
//! ```
//!
//! The one idea: the collector runs a block's statements entry by entry; this plugin runs them
//! *a statement at a time over every entry*, so each field a statement reads is one host call
//! for the whole batch and each write one call per distinct value. A column cache keeps what
//! was read and what was written, so a later statement sees an earlier one's changes as the
//! collector's would. Where the two orders could differ (a span statement writing a resource
//! field that another statement reads), the config is refused.

mod config;
mod io;

use config::{Block, Config, ErrorMode, Field, Resolved, Step};
use io::{Io, Logs, Metrics, Spans};
use std::collections::HashMap;
use std::rc::Rc;
use trailhead_ottl::{Columns, EvalError, Path, Value, edit::set_in, eval_operand};
use trailhead_plugin::{
    Batch, Error, Level, LogBatch, MetricBatch, Plugin, Signal, SpanBatch, host,
};

/// The processor: its checked statements, kept for the instance's life.
pub struct Transform {
    config: Config,
}

impl Plugin for Transform {
    /// Walked by hand rather than derived, so each error names its statement and column.
    type Config = serde_json::Value;
    const NAME: &'static str = "transform";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(json: serde_json::Value) -> Result<Self, String> {
        Ok(Transform {
            config: Config::from_json(&json)?,
        })
    }

    fn signals(&self) -> Vec<Signal> {
        let c = &self.config;
        let mut signals = Vec::new();
        if !c.traces.is_empty() {
            signals.push(Signal::Traces);
        }
        if !c.metrics.is_empty() {
            signals.push(Signal::Metrics);
        }
        if !c.logs.is_empty() {
            signals.push(Signal::Logs);
        }
        signals
    }

    fn process_spans(&mut self, b: &impl SpanBatch) -> Result<(), Error> {
        self.config
            .traces
            .iter()
            .try_for_each(|block| run(&Spans(b), block))
    }

    fn process_logs(&mut self, b: &impl LogBatch) -> Result<(), Error> {
        self.config
            .logs
            .iter()
            .try_for_each(|block| run(&Logs(b), block))
    }

    fn process_metrics(&mut self, b: &impl MetricBatch) -> Result<(), Error> {
        self.config
            .metrics
            .iter()
            .try_for_each(|block| run(&Metrics(b), block))
    }
}

/// What one block has read and written of a batch, by field, each column at its field's own
/// level.
struct Cache<'io, I: Io> {
    io: &'io I,
    /// The level the block's context runs over, and how many entries it has.
    level: Level,
    len: usize,
    columns: HashMap<Field, Rc<[Value<'static>]>>,
    /// For each level above the context's: the entry of that level each entry belongs to.
    rows: Vec<(Level, Rc<[u32]>)>,
}

impl<'io, I: Io> Cache<'io, I> {
    fn new(io: &'io I, level: Level) -> Self {
        Cache {
            io,
            level,
            len: io.batch().count(level) as usize,
            columns: HashMap::new(),
            rows: Vec::new(),
        }
    }

    /// `field` for every entry of its own level.
    fn own(&mut self, field: &Field) -> Rc<[Value<'static>]> {
        if let Some(c) = self.columns.get(field) {
            return c.clone();
        }
        let column: Rc<[Value<'static>]> = io::read(self.io, field).into();
        self.columns.insert(field.clone(), column.clone());
        column
    }

    /// For each entry of the context, its entry at `level` (`None`: the same entry).
    fn rows(&mut self, level: Level) -> Option<Rc<[u32]>> {
        if level == self.level {
            return None;
        }
        if let Some((_, r)) = self.rows.iter().find(|(l, _)| *l == level) {
            return Some(r.clone());
        }
        let b = self.io.batch();
        // Walk up one level at a time from the context's own.
        let mut at = self.level;
        let mut rows: Vec<u32> = (0..self.len as u32).collect();
        while at != level {
            let parents = b.parents(at);
            rows = rows.iter().map(|&r| parents[r as usize]).collect();
            at = match at {
                Level::Event | Level::Link | Level::Point => Level::Item,
                Level::Item => Level::Scope,
                _ => Level::Resource,
            };
        }
        let rows: Rc<[u32]> = rows.into();
        self.rows.push((level, rows.clone()));
        Some(rows)
    }

    /// A resolved path's value for every entry of the context.
    fn column(&mut self, resolved: &Resolved) -> Rc<[Value<'static>]> {
        let own = self.own(&resolved.field);
        let rows = self.rows(resolved.field.level());
        if rows.is_none() && resolved.keys.is_empty() {
            return own;
        }
        (0..self.len)
            .map(|i| {
                let v = match &rows {
                    Some(r) => own.get(r[i] as usize).cloned().unwrap_or(Value::Nil),
                    None => own.get(i).cloned().unwrap_or(Value::Nil),
                };
                trailhead_ottl::index(v, &resolved.keys).unwrap_or(Value::Nil)
            })
            .collect()
    }

    /// Writes new values of a resolved path for entries of the context; returns the entries
    /// it could not write, with why.
    fn write(&mut self, target: &Resolved, writes: Vec<(usize, Value<'static>)>) -> Vec<EvalError> {
        let field = &target.field;
        let rows = self.rows(field.level());
        // The current values are needed to write into a nested key or to diff a whole map;
        // otherwise they are kept up to date only if something read them already.
        let own = if !target.keys.is_empty() || matches!(field, Field::Attrs(_)) {
            Some(self.own(field))
        } else {
            self.columns.get(field).cloned()
        };
        let mut errors = Vec::new();
        // Entries of the field's level and their new values; a parent written by several of
        // its entries keeps the last, as entry-by-entry execution would.
        let mut out: Vec<(u32, Value<'static>)> = Vec::new();
        let mut slot: HashMap<u32, usize> = HashMap::new();
        for (item, v) in writes {
            let entry = rows.as_ref().map_or(item as u32, |r| r[item]);
            let v = if target.keys.is_empty() {
                v
            } else {
                let current = own
                    .as_ref()
                    .and_then(|o| o.get(entry as usize).cloned())
                    .unwrap_or(Value::Nil);
                match set_in(current, &target.keys, v) {
                    Ok(v) => v,
                    Err(message) => {
                        errors.push(EvalError { item, message });
                        continue;
                    }
                }
            };
            if !io::accepts(field, &v) {
                continue;
            }
            // Entries of the context's own level are each written once; only a parent can be
            // written by several of its entries.
            match rows.as_ref().and_then(|_| slot.get(&entry)) {
                Some(&at) => out[at].1 = v,
                None => {
                    slot.insert(entry, out.len());
                    out.push((entry, v));
                }
            }
        }
        if out.is_empty() {
            return errors;
        }
        let b = self.io.batch();
        match field {
            Field::Attr(level, key) => {
                io::write_attr(b, *level, key, &out);
                // The maps keep pdata's order (a new key last), which `limit` depends on.
                let maps = Field::Attrs(*level);
                if let Some(old) = self.columns.get(&maps) {
                    let mut maps_now = old.to_vec();
                    for (entry, v) in &out {
                        if let Some(Value::Map(m)) = maps_now.get_mut(*entry as usize) {
                            let m = Rc::make_mut(m);
                            match v {
                                Value::Nil => m.retain(|(k, _)| k != key),
                                v => trailhead_ottl::edit::put(m, key, v.clone()),
                            }
                        }
                    }
                    self.columns.insert(maps, maps_now.into());
                }
            }
            Field::Attrs(level) => {
                let old = own.clone().unwrap_or_else(|| Rc::from(Vec::new()));
                let with_old: Vec<(u32, Value<'static>, Value<'static>)> = out
                    .iter()
                    .map(|(e, v)| {
                        let was = old.get(*e as usize).cloned().unwrap_or(Value::Nil);
                        (*e, was, v.clone())
                    })
                    .collect();
                io::write_attrs(b, *level, &with_old);
                self.columns
                    .retain(|f, _| !matches!(f, Field::Attr(l, _) if l == level));
            }
            _ => {
                let companion = io::companion(field).map(|f| self.own(&f));
                let entries: Vec<u32> = out.iter().map(|(e, _)| *e).collect();
                let values: Vec<Value<'static>> = out.iter().map(|(_, v)| v.clone()).collect();
                let companions: Vec<Value<'static>> = match &companion {
                    Some(c) => entries.iter().map(|e| c[*e as usize].clone()).collect(),
                    None => Vec::new(),
                };
                self.io.write_own(field, &entries, &values, &companions);
            }
        }
        if let Some(own) = own {
            let mut updated = own.to_vec();
            for (entry, v) in out {
                if let Some(slot) = updated.get_mut(entry as usize) {
                    *slot = v;
                }
            }
            self.columns.insert(field.clone(), updated.into());
        }
        errors
    }

    /// The entries of `level` that hold the given entries of the context, each once.
    fn entries(&mut self, level: Level, matched: &[bool]) -> Vec<u32> {
        let rows = self.rows(level);
        let mut entries: Vec<u32> = (0..self.len)
            .filter(|&i| matched[i])
            .map(|i| rows.as_ref().map_or(i as u32, |r| r[i]))
            .collect();
        entries.dedup();
        if rows.is_some() {
            entries.sort_unstable();
            entries.dedup();
        }
        entries
    }

    /// The common statements in one host call for every entry, with no value computed per
    /// entry: `set(attributes["k"], <literal>)` and `delete_key(attributes, "<literal>")`.
    /// `false` when the statement is not one of them.
    fn fast(&mut self, step: &Step, matched: &[bool]) -> bool {
        use trailhead_ottl::{Editor, Operand};
        let statement = &step.statement;
        if !step.target.keys.is_empty() {
            return false;
        }
        match (
            &statement.editor,
            statement.args.first(),
            &step.target.field,
        ) {
            (Editor::Set, Some(Operand::Literal(v)), Field::Attr(level, key))
                if !matches!(v, Value::Nil) =>
            {
                let Ok(any) = io::any_value(v) else {
                    return false;
                };
                let entries = self.entries(*level, matched);
                if !entries.is_empty() {
                    self.io.batch().set_attr(*level, &entries, key, &any);
                }
                self.update(*level, key, &entries, Some(v));
                true
            }
            (Editor::DeleteKey, Some(Operand::Literal(Value::Str(key))), Field::Attrs(level))
                if step.fast_delete =>
            {
                let entries = self.entries(*level, matched);
                if !entries.is_empty() {
                    self.io
                        .batch()
                        .remove_attrs(*level, &entries, &[key.to_string()]);
                }
                self.update(*level, key, &entries, None);
                true
            }
            // Strings only, and only the long ones: scanned out of the encoded batch, no map
            // decoded, unless an earlier statement has the maps already.
            (
                Editor::TruncateAll {
                    limit,
                    utf8_safe,
                    marker,
                },
                _,
                Field::Attrs(Level::Item),
            ) if !self.columns.contains_key(&step.target.field) && self.level == Level::Item => {
                let Some(number) = self.io.item_attributes_field() else {
                    return false;
                };
                let b = self.io.batch();
                let Ok((long, items)) =
                    trailhead_ottl::pb::long_strings(&b.to_otlp(), number, *limit)
                else {
                    return false;
                };
                if items != self.len {
                    return false;
                }
                let mut by_key: HashMap<String, Vec<(u32, Value<'static>)>> = HashMap::new();
                for (item, key, s) in long {
                    if !matched[item] {
                        continue;
                    }
                    if let Some(t) = trailhead_ottl::edit::truncate(&s, *limit, *utf8_safe, marker)
                    {
                        by_key
                            .entry(key)
                            .or_default()
                            .push((item as u32, Value::Str(t.into())));
                    }
                }
                for (key, writes) in by_key {
                    io::write_attr(b, Level::Item, &key, &writes);
                    let column = Field::Attr(Level::Item, key);
                    if let Some(old) = self.columns.get(&column) {
                        let mut now = old.to_vec();
                        for (e, v) in writes {
                            now[e as usize] = v;
                        }
                        self.columns.insert(column, now.into());
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Keeps the cached columns of `level`'s attributes right after a fast write of `key`.
    fn update(&mut self, level: Level, key: &str, entries: &[u32], value: Option<&Value<'static>>) {
        let column = Field::Attr(level, key.to_string());
        if let Some(old) = self.columns.get(&column) {
            let mut now = old.to_vec();
            for e in entries {
                now[*e as usize] = value.cloned().unwrap_or(Value::Nil);
            }
            self.columns.insert(column, now.into());
        }
        let maps = Field::Attrs(level);
        if let Some(old) = self.columns.get(&maps) {
            let mut now = old.to_vec();
            for e in entries {
                if let Value::Map(m) = &mut now[*e as usize] {
                    let m = Rc::make_mut(m);
                    match value {
                        Some(v) => trailhead_ottl::edit::put(m, key, v.clone()),
                        None => {
                            // pdata's Remove: the last key takes the removed one's place.
                            if let Some(at) = m.iter().position(|(k, _)| k == key) {
                                m.swap_remove(at);
                            }
                        }
                    }
                }
            }
            self.columns.insert(maps, now.into());
        }
    }
}

/// A statement's or condition's paths, answered from the cache.
struct View<'c, 'io, I: Io> {
    cache: &'c mut Cache<'io, I>,
    paths: &'c HashMap<Path, Resolved>,
}

impl<'a, I: Io> Columns<'a> for View<'_, '_, I> {
    fn item_count(&self) -> usize {
        self.cache.len
    }

    fn column(&mut self, path: &Path) -> Rc<[Value<'a>]> {
        match self.paths.get(path) {
            Some(resolved) => self.cache.column(resolved),
            None => vec![Value::Nil; self.cache.len].into(),
        }
    }
}

/// Reports evaluation errors as the block's error mode says; `Err` under `propagate`.
fn report(errors: &[EvalError], mode: ErrorMode, text: &str, what: &str) -> Result<(), Error> {
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let message = format!(
        "statement `{text}` failed on {} {what}(s), first {what} {}: {}",
        errors.len(),
        first.item,
        first.message
    );
    match mode {
        ErrorMode::Propagate => Err(Error::new(message)),
        ErrorMode::Ignore => {
            host::log(host::Severity::Warn, &message);
            Ok(())
        }
        ErrorMode::Silent => Ok(()),
    }
}

/// Runs one block over a batch.
fn run<I: Io>(io: &I, block: &Block) -> Result<(), Error> {
    let mut cache = Cache::new(io, block.context.level());
    let len = cache.len;
    if len == 0 {
        return Ok(());
    }
    let what = block.context.name();
    let mode = block.error_mode;
    // The block's conditions: its statements run where any holds.
    let mut active = vec![block.conditions.is_empty(); len];
    for (text, expr, paths) in &block.conditions {
        let outcome = expr.eval(&mut View {
            cache: &mut cache,
            paths,
        });
        report(&outcome.errors, mode, text, what)?;
        for (a, m) in active.iter_mut().zip(outcome.matched) {
            *a |= m;
        }
    }
    for step in &block.steps {
        let statement = &step.statement;
        let mut matched = active.clone();
        if let Some(condition) = &statement.condition {
            let outcome = condition.eval(&mut View {
                cache: &mut cache,
                paths: &step.paths,
            });
            report(&outcome.errors, mode, &step.text, what)?;
            for (m, hit) in matched.iter_mut().zip(outcome.matched) {
                *m &= hit;
            }
        }
        if !matched.contains(&true) || cache.fast(step, &matched) {
            continue;
        }
        let mut errors = Vec::new();
        let mut args = Vec::with_capacity(statement.args.len());
        for arg in &statement.args {
            let (values, failed) = eval_operand(
                arg,
                &mut View {
                    cache: &mut cache,
                    paths: &step.paths,
                },
                Some(&matched),
            );
            for e in &failed {
                matched[e.item] = false;
            }
            errors.extend(failed);
            args.push(values);
        }
        let current = match statement.editor {
            trailhead_ottl::Editor::Set => None,
            _ => Some(cache.column(&step.target)),
        };
        let mut writes = Vec::new();
        for i in (0..len).filter(|&i| matched[i]) {
            let target = current.as_ref().map_or(&Value::Nil, |c| &c[i]);
            let item_args: Vec<Value> = args.iter().map(|a| a[i].clone()).collect();
            match statement.editor.apply(target, &item_args) {
                Ok(Some(v)) => writes.push((i, v)),
                Ok(None) => {}
                Err(message) => errors.push(EvalError { item: i, message }),
            }
        }
        errors.extend(cache.write(&step.target, writes));
        errors.sort_by_key(|e| e.item);
        report(&errors, mode, &step.text, what)?;
    }
    Ok(())
}

trailhead_plugin::export!(Transform);

#[cfg(test)]
mod tests;
