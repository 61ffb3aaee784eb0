//! The transform's config, in the collector transformprocessor's shape, checked once at `init`.
//!
//! `trace_statements`, `metric_statements` and `log_statements` are each a flat list of
//! statements (their context inferred from their paths' prefixes, as the collector does) or
//! a list of `{context, statements, conditions, error_mode}` blocks. Every error names where
//! it is, as a dotted path into the processor's config followed by the column inside the
//! statement (`trace_statements[0].statements[1]: column 5: unknown path …`); the host turns
//! the path into a line of the config file.

use serde_json::Value as Json;
use std::collections::HashMap;
use trailhead_ottl::{Expr, Key, Path, Statement, parse, parse_statement};
use trailhead_plugin::Level;

/// What an evaluation error does: `propagate` fails the batch (the host's `on_failure`
/// applies), `ignore` logs it and goes on with the next statement, `silent` only the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Ignore,
    Silent,
    Propagate,
}

/// Where statements run: the OTTL contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Resource,
    Scope,
    Span,
    SpanEvent,
    Log,
    Metric,
    DataPoint,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Resource => "resource",
            Context::Scope => "scope",
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
            Context::Log => "log",
            Context::Metric => "metric",
            Context::DataPoint => "datapoint",
        }
    }

    fn from_name(name: &str) -> Option<Context> {
        Some(match name {
            "resource" => Context::Resource,
            "scope" | "instrumentation_scope" => Context::Scope,
            "span" => Context::Span,
            "spanevent" => Context::SpanEvent,
            "log" => Context::Log,
            "metric" => Context::Metric,
            "datapoint" => Context::DataPoint,
            _ => return None,
        })
    }

    /// The batch level whose entries the context runs over.
    pub fn level(self) -> Level {
        match self {
            Context::Resource => Level::Resource,
            Context::Scope => Level::Scope,
            Context::Span | Context::Log | Context::Metric => Level::Item,
            Context::SpanEvent => Level::Event,
            Context::DataPoint => Level::Point,
        }
    }

    /// The contexts above this one, nearest first.
    fn ancestors(self) -> &'static [Context] {
        use Context::*;
        match self {
            Resource => &[],
            Scope => &[Resource],
            Span | Log | Metric => &[Scope, Resource],
            SpanEvent => &[Span, Scope, Resource],
            DataPoint => &[Metric, Scope, Resource],
        }
    }

    /// The collector's inference priority: the lowest context any path names wins.
    fn priority(self) -> usize {
        use Context::*;
        match self {
            Log => 0,
            DataPoint => 1,
            Metric => 2,
            SpanEvent => 3,
            Span => 4,
            Scope => 5,
            Resource => 6,
        }
    }

    /// The context's own fields: what a path without a context prefix names.
    fn own_field(self, dotted: &str) -> Option<Field> {
        use Context::*;
        Some(match (self, dotted) {
            (_, "attributes") => Field::Attrs(self.level()),
            (_, "dropped_attributes_count") => Field::DroppedAttrs(self.level()),
            (Resource | Scope, "schema_url") => Field::SchemaUrl(self.level()),
            (Scope, "name") => Field::ScopeName,
            (Scope, "version") => Field::ScopeVersion,
            (Span | SpanEvent, "name") => Field::Name(self.level()),
            (Span, "kind") => Field::Kind,
            (Span, "status.code") => Field::StatusCode,
            (Span, "status.message") => Field::StatusMessage,
            (Span, "trace_id") => Field::TraceId { hex: false },
            (Span, "trace_id.string") => Field::TraceId { hex: true },
            (Span, "span_id") => Field::SpanId { hex: false },
            (Span, "span_id.string") => Field::SpanId { hex: true },
            (Span, "parent_span_id") => Field::ParentSpanId { hex: false },
            (Span, "parent_span_id.string") => Field::ParentSpanId { hex: true },
            (Span, "trace_state") => Field::TraceState,
            (Span, "start_time_unix_nano") => Field::Start { time: false },
            (Span, "end_time_unix_nano") => Field::End { time: false },
            (Span, "start_time") => Field::Start { time: true },
            (Span, "end_time") => Field::End { time: true },
            (Span, "dropped_events_count") => Field::DroppedEvents,
            (Span, "dropped_links_count") => Field::DroppedLinks,
            (SpanEvent, "time_unix_nano") => Field::EventTime { time: false },
            (SpanEvent, "time") => Field::EventTime { time: true },
            (Log, "body") => Field::Body,
            (Log, "severity_number") => Field::SeverityNumber,
            (Log, "severity_text") => Field::SeverityText,
            (Log, "time_unix_nano") => Field::LogTime { time: false },
            (Log, "time") => Field::LogTime { time: true },
            (Log, "observed_time_unix_nano") => Field::ObservedTime { time: false },
            (Log, "observed_time") => Field::ObservedTime { time: true },
            (Log, "trace_id") => Field::LogTraceId { hex: false },
            (Log, "trace_id.string") => Field::LogTraceId { hex: true },
            (Log, "span_id") => Field::LogSpanId { hex: false },
            (Log, "span_id.string") => Field::LogSpanId { hex: true },
            (Log, "flags") => Field::LogFlags,
            (Log, "event_name") => Field::EventName,
            (Metric, "name") => Field::MetricName,
            (Metric, "unit") => Field::Unit,
            (Metric, "description") => Field::Description,
            (Metric, "type") => Field::MetricType,
            (Metric, "aggregation_temporality") => Field::Temporality,
            (Metric, "is_monotonic") => Field::Monotonic,
            (DataPoint, "value_int") => Field::PointInt,
            (DataPoint, "value_double") => Field::PointDouble,
            (DataPoint, "start_time_unix_nano") => Field::PointStart { time: false },
            (DataPoint, "time_unix_nano") => Field::PointTime { time: false },
            (DataPoint, "start_time") => Field::PointStart { time: true },
            (DataPoint, "time") => Field::PointTime { time: true },
            (DataPoint, "count") => Field::PointCount,
            (DataPoint, "sum") => Field::PointSum,
            (DataPoint, "flags") => Field::PointFlags,
            _ => return None,
        })
    }

    fn supported(self) -> &'static str {
        match self {
            Context::Resource => "attributes, dropped_attributes_count, schema_url",
            Context::Scope => "name, version, attributes, dropped_attributes_count, schema_url",
            Context::Span => {
                "name, kind, status.code, status.message, trace_id, trace_id.string, span_id, span_id.string, parent_span_id, parent_span_id.string, trace_state, start_time_unix_nano, end_time_unix_nano, start_time, end_time, attributes, dropped_attributes_count, dropped_events_count, dropped_links_count"
            }
            Context::SpanEvent => {
                "name, time_unix_nano, time, attributes, dropped_attributes_count"
            }
            Context::Log => {
                "body, severity_number, severity_text, time_unix_nano, time, observed_time_unix_nano, observed_time, trace_id, trace_id.string, span_id, span_id.string, flags, event_name, attributes, dropped_attributes_count"
            }
            Context::Metric => {
                "name, unit, description, type, aggregation_temporality, is_monotonic"
            }
            Context::DataPoint => {
                "attributes, value_int, value_double, start_time_unix_nano, time_unix_nano, start_time, time, count, sum, flags"
            }
        }
    }
}

/// A value a path names, resolved for its context. Each lives at one batch level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Every attribute of the entries of a level, as a map.
    Attrs(Level),
    /// One attribute of the entries of a level.
    Attr(Level, String),
    DroppedAttrs(Level),
    SchemaUrl(Level),
    ScopeName,
    ScopeVersion,
    /// A span's (`item`) or span event's (`event`) name.
    Name(Level),
    Kind,
    StatusCode,
    StatusMessage,
    TraceId {
        hex: bool,
    },
    SpanId {
        hex: bool,
    },
    ParentSpanId {
        hex: bool,
    },
    TraceState,
    /// `start_time_unix_nano` (an int), or `start_time` (a time) when `time`.
    Start {
        time: bool,
    },
    End {
        time: bool,
    },
    DroppedEvents,
    DroppedLinks,
    EventTime {
        time: bool,
    },
    Body,
    SeverityNumber,
    SeverityText,
    LogTime {
        time: bool,
    },
    ObservedTime {
        time: bool,
    },
    LogTraceId {
        hex: bool,
    },
    LogSpanId {
        hex: bool,
    },
    LogFlags,
    EventName,
    MetricName,
    Unit,
    Description,
    MetricType,
    Temporality,
    Monotonic,
    PointInt,
    PointDouble,
    PointStart {
        time: bool,
    },
    PointTime {
        time: bool,
    },
    PointCount,
    PointSum,
    PointFlags,
}

/// By its debug text: the SDK's `Level` has no `Hash`, and a block hashes a handful of
/// fields per batch.
impl std::hash::Hash for Field {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        format!("{self:?}").hash(state);
    }
}

impl Field {
    /// The level whose entries hold the field.
    pub fn level(&self) -> Level {
        match self {
            Field::Attrs(l)
            | Field::Attr(l, _)
            | Field::DroppedAttrs(l)
            | Field::SchemaUrl(l)
            | Field::Name(l) => *l,
            Field::ScopeName | Field::ScopeVersion => Level::Scope,
            Field::EventTime { .. } => Level::Event,
            Field::PointInt
            | Field::PointDouble
            | Field::PointStart { .. }
            | Field::PointTime { .. }
            | Field::PointCount
            | Field::PointSum
            | Field::PointFlags => Level::Point,
            _ => Level::Item,
        }
    }

    /// Whether the SDK 0.2 batch can write it.
    fn writable(&self) -> bool {
        matches!(
            self,
            Field::Attrs(_)
                | Field::Attr(..)
                | Field::Name(_)
                | Field::Kind
                | Field::StatusCode
                | Field::StatusMessage
                | Field::TraceState
                | Field::Start { time: false }
                | Field::End { time: false }
                | Field::Body
                | Field::SeverityNumber
                | Field::SeverityText
                | Field::LogTime { time: false }
                | Field::MetricName
                | Field::Unit
                | Field::Description
        )
    }
}

/// A path resolved: its field, and the keys to read out of the field's value (a nested
/// attribute's, or a map body's).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub field: Field,
    pub keys: Vec<Key>,
}

/// Resolves a path in `context`. `explicit` is whether the block named its context (then a
/// path without a context prefix is the context's own); in a flat list every path must
/// name its context.
fn resolve(context: Context, path: &Path, explicit: bool) -> Result<Resolved, String> {
    let mut segments: &[String] = &path.segments;
    let mut at = context;
    if let Some(named) = Context::from_name(&segments[0]) {
        if named != context && !context.ancestors().contains(&named) {
            return Err(format!(
                "`{path}`: the {} context cannot be reached from the {} context",
                named.name(),
                context.name()
            ));
        }
        at = named;
        segments = &segments[1..];
    } else if !explicit {
        return Err(format!(
            "missing context name for path `{path}`: write it as {}.{path} (or resource., scope., …)",
            context.name()
        ));
    }
    let dotted = segments.join(".");
    let mut keys: Vec<Key> = path.key.iter().map(|k| Key::Str(k.clone())).collect();
    keys.extend(path.nested.iter().cloned());
    if dotted == "cache" {
        return Err(format!(
            "`{path}`: the transform context's `cache` is not supported"
        ));
    }
    let field = at.own_field(&dotted).ok_or_else(|| {
        format!(
            "unknown path `{path}` in the {} context; supported: {}",
            at.name(),
            at.supported()
        )
    })?;
    Ok(match (field, keys.first()) {
        (Field::Attrs(level), Some(Key::Str(k))) => Resolved {
            field: Field::Attr(level, k.clone()),
            keys: keys[1..].to_vec(),
        },
        (field, _) => Resolved { field, keys },
    })
}

/// One statement, parsed and resolved.
pub struct Step {
    pub text: String,
    /// Where it is in the config, for messages.
    pub at: String,
    pub statement: Statement,
    pub target: Resolved,
    /// Every path it reads, resolved.
    pub paths: HashMap<Path, Resolved>,
    /// A `delete_key` that may skip reading the maps: no later statement of the block depends
    /// on the key order (pdata's, after a removal) that only the maps would keep.
    pub fast_delete: bool,
}

/// A list of statements that run in one context.
pub struct Block {
    pub context: Context,
    pub error_mode: ErrorMode,
    /// The block's `conditions`: its statements run for an entry if any holds.
    pub conditions: Vec<(String, Expr, HashMap<Path, Resolved>)>,
    pub steps: Vec<Step>,
}

pub struct Config {
    pub traces: Vec<Block>,
    pub metrics: Vec<Block>,
    pub logs: Vec<Block>,
}

fn error_mode(value: &Json, at: &str) -> Result<ErrorMode, String> {
    match value.as_str() {
        Some("ignore") => Ok(ErrorMode::Ignore),
        Some("silent") => Ok(ErrorMode::Silent),
        Some("propagate") => Ok(ErrorMode::Propagate),
        _ => Err(format!("{at}: expected ignore, silent or propagate")),
    }
}

fn strings<'j>(value: &'j Json, at: &str) -> Result<Vec<&'j str>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("{at}: expected a list of strings"))?;
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .ok_or_else(|| format!("{at}[{i}]: expected a string"))
        })
        .collect()
}

/// Which contexts each signal's statements may use.
fn allowed(signal: &str) -> &'static [Context] {
    use Context::*;
    match signal {
        "trace_statements" => &[Resource, Scope, Span, SpanEvent],
        "metric_statements" => &[Resource, Scope, Metric, DataPoint],
        _ => &[Resource, Scope, Log],
    }
}

/// A block's statements and conditions, parsed, before their context is known.
struct Parsed<'j> {
    statements: Vec<(String, &'j str, Statement)>,
    conditions: Vec<(String, &'j str, Expr)>,
}

/// The context a flat list runs in: the lowest any of its paths names.
fn infer(parsed: &Parsed, at: &str, signal: &str) -> Result<Context, String> {
    let mut paths: Vec<(&str, &Path)> = Vec::new();
    for (where_, _, s) in &parsed.statements {
        paths.extend(s.paths().into_iter().map(|p| (where_.as_str(), p)));
    }
    for (where_, _, c) in &parsed.conditions {
        paths.extend(c.paths().into_iter().map(|p| (where_.as_str(), p)));
    }
    let mut best: Option<Context> = None;
    for (where_, path) in paths {
        let Some(context) = Context::from_name(&path.segments[0]) else {
            return Err(format!(
                "{where_}: column {}: missing context name for path `{path}`: in a flat list every path names its context (span.name, resource.attributes[…], …)",
                path.column
            ));
        };
        if best.is_none_or(|b| context.priority() < b.priority()) {
            best = Some(context);
        }
    }
    let context =
        best.ok_or_else(|| format!("{at}: cannot infer a context: no statement names a path"))?;
    if !allowed(signal).contains(&context) {
        return Err(format!(
            "{at}: the inferred context `{}` does not exist in {signal}",
            context.name()
        ));
    }
    Ok(context)
}

fn resolve_all(
    context: Context,
    paths: Vec<&Path>,
    explicit: bool,
    at: &str,
) -> Result<HashMap<Path, Resolved>, String> {
    let mut out = HashMap::new();
    for path in paths {
        let resolved = resolve(context, path, explicit)
            .map_err(|e| format!("{at}: column {}: {e}", path.column))?;
        // The evaluator reads nested keys itself, out of the path's head.
        if !path.nested.is_empty() {
            let head = path.head();
            let head_resolved = resolve(context, &head, explicit)
                .map_err(|e| format!("{at}: column {}: {e}", path.column))?;
            out.insert(head, head_resolved);
        }
        out.insert(path.clone(), resolved);
    }
    Ok(out)
}

fn block(
    parsed: Parsed,
    context: Context,
    explicit: bool,
    mode: ErrorMode,
) -> Result<Block, String> {
    let mut steps = Vec::new();
    for (at, text, statement) in parsed.statements {
        let paths = resolve_all(context, statement.paths(), explicit, &at)?;
        let target = paths[&statement.target].clone();
        if !target.field.writable() {
            return Err(format!(
                "{at}: column {}: `{}` cannot be changed: the plugin contract has no write for it",
                statement.target.column, statement.target
            ));
        }
        steps.push(Step {
            text: text.to_string(),
            at,
            statement,
            target,
            paths,
            fast_delete: false,
        });
    }
    for n in 0..steps.len() {
        let Field::Attrs(level) = &steps[n].target.field else {
            continue;
        };
        // Only these editors' results depend on the map's key order.
        let whole = Field::Attrs(*level);
        steps[n].fast_delete = !steps[n + 1..].iter().any(|later| {
            later.target.field == whole
                && matches!(
                    later.statement.editor,
                    trailhead_ottl::Editor::Limit { .. }
                        | trailhead_ottl::Editor::Flatten { .. }
                        | trailhead_ottl::Editor::ReplaceAllPatterns { keys: true, .. }
                )
        });
    }
    check_parent_writes(context, &steps)?;
    let conditions = parsed
        .conditions
        .into_iter()
        .map(|(at, text, expr)| {
            let paths = resolve_all(context, expr.paths(), explicit, &at)?;
            Ok((text.to_string(), expr, paths))
        })
        .collect::<Result<_, String>>()?;
    Ok(Block {
        context,
        error_mode: mode,
        conditions,
        steps,
    })
}

/// Statements run an entry at a time in the collector and a statement at a time here. The
/// two agree except where a statement writes a field of a level above its context (a span
/// statement setting `resource.attributes[…]`) and a statement of the block reads that field
/// where the order shows: refused, naming both.
fn check_parent_writes(context: Context, steps: &[Step]) -> Result<(), String> {
    use trailhead_ottl::{Editor, Operand};
    let overlaps = |a: &Field, b: &Field| {
        a == b
            || matches!((a, b), (Field::Attrs(l), Field::Attr(m, _)) | (Field::Attr(m, _), Field::Attrs(l)) if l == m)
    };
    // What a step reads: its paths, less the target of a `set` (which only writes it).
    let reads = |step: &Step, field: &Field| {
        step.paths.iter().any(|(p, r)| {
            let only_written =
                matches!(step.statement.editor, Editor::Set) && *p == step.statement.target;
            !only_written && overlaps(&r.field, field)
        })
    };
    for (n, step) in steps.iter().enumerate() {
        let written = &step.target.field;
        if written.level() == context.level() {
            continue;
        }
        // The same constant for every entry, or an edit that changes nothing the second
        // time: only a read before the write can tell.
        let literal = step
            .statement
            .args
            .iter()
            .all(|a| matches!(a, Operand::Literal(_)));
        let idempotent = literal
            && matches!(
                step.statement.editor,
                Editor::Set
                    | Editor::DeleteKey
                    | Editor::DeleteMatchingKeys(_)
                    | Editor::KeepKeys
                    | Editor::KeepMatchingKeys(_)
                    | Editor::TruncateAll { .. }
                    | Editor::Limit { .. }
                    | Editor::Flatten { .. }
            );
        let upto = if idempotent { n } else { steps.len() };
        if let Some(other) = steps[..upto].iter().find(|o| reads(o, written)) {
            return Err(format!(
                "{}: `{}` writes a {} field from the {} context, and `{}` reads it: the collector runs them entry by entry, which trailhead does not; move them into a `context: {}` block",
                step.at,
                step.statement.target,
                level_name(written.level()),
                context.name(),
                other.text,
                level_name(written.level()),
            ));
        }
    }
    Ok(())
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Resource => "resource",
        Level::Scope => "scope",
        Level::Event => "spanevent",
        Level::Point => "datapoint",
        _ => "span",
    }
}

fn parse_statements<'j>(
    list: &'j Json,
    at: &str,
) -> Result<Vec<(String, &'j str, Statement)>, String> {
    strings(list, at)?
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let at = format!("{at}[{i}]");
            let statement = parse_statement(text).map_err(|e| format!("{at}: {e} in `{text}`"))?;
            Ok((at, text, statement))
        })
        .collect()
}

fn parse_conditions<'j>(list: &'j Json, at: &str) -> Result<Vec<(String, &'j str, Expr)>, String> {
    strings(list, at)?
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let at = format!("{at}[{i}]");
            let expr = parse(text).map_err(|e| format!("{at}: {e} in `{text}`"))?;
            Ok((at, text, expr))
        })
        .collect()
}

/// One of `trace_statements`, `metric_statements`, `log_statements`.
fn signal_blocks(value: &Json, signal: &str, mode: ErrorMode) -> Result<Vec<Block>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("{signal}: expected a list of statements or of context blocks"))?;
    let flat: Vec<&str> = list.iter().filter_map(Json::as_str).collect();
    if !flat.is_empty() {
        if flat.len() != list.len() {
            return Err(format!(
                "{signal}: configuring multiple configuration styles is not supported, please use only Basic configuration or only Advanced configuration"
            ));
        }
        let parsed = Parsed {
            statements: parse_statements(value, signal)?,
            conditions: Vec::new(),
        };
        let context = infer(&parsed, signal, signal)?;
        return Ok(vec![block(parsed, context, false, mode)?]);
    }
    let mut blocks = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("{signal}[{i}]");
        let object = item.as_object().ok_or_else(|| {
            format!("{at}: expected a statement or a {{context, statements}} block")
        })?;
        let mut context = None;
        let mut block_mode = mode;
        let mut parsed = Parsed {
            statements: Vec::new(),
            conditions: Vec::new(),
        };
        for (key, value) in object {
            let here = format!("{at}.{key}");
            match key.as_str() {
                "context" => {
                    let name = value.as_str().unwrap_or_default().to_lowercase();
                    let c = Context::from_name(&name)
                        .filter(|c| allowed(signal).contains(c) && name != "instrumentation_scope")
                        .ok_or_else(|| {
                            let names: Vec<&str> =
                                allowed(signal).iter().map(|c| c.name()).collect();
                            format!(
                                "{here}: unknown context {value}; {signal} has {}",
                                names.join(", ")
                            )
                        })?;
                    context = Some(c);
                }
                "statements" => parsed.statements = parse_statements(value, &here)?,
                "conditions" => parsed.conditions = parse_conditions(value, &here)?,
                "error_mode" => block_mode = error_mode(value, &here)?,
                "shared_cache" => {
                    return Err(format!(
                        "{here}: the transform context's cache is not supported"
                    ));
                }
                _ => {
                    return Err(format!(
                        "{here}: unknown key; expected context, statements, conditions, error_mode"
                    ));
                }
            }
        }
        let (context, explicit) = match context {
            Some(c) => (c, true),
            None => (infer(&parsed, &at, signal)?, false),
        };
        blocks.push(block(parsed, context, explicit, block_mode)?);
    }
    Ok(blocks)
}

impl Config {
    /// Checks the processor's config, as the SDK deserialized it.
    pub fn from_json(json: &Json) -> Result<Config, String> {
        let object = json.as_object().ok_or("config: expected a map")?;
        // The transformprocessor's default (the filterprocessor's is `propagate`).
        let mut mode = ErrorMode::Ignore;
        if let Some(value) = object.get("error_mode") {
            mode = error_mode(value, "error_mode")?;
        }
        let mut config = Config {
            traces: Vec::new(),
            metrics: Vec::new(),
            logs: Vec::new(),
        };
        for (key, value) in object {
            match key.as_str() {
                "error_mode" => {}
                "trace_statements" => config.traces = signal_blocks(value, key, mode)?,
                "metric_statements" => config.metrics = signal_blocks(value, key, mode)?,
                "log_statements" => config.logs = signal_blocks(value, key, mode)?,
                "profile_statements" | "flatten_data" => {
                    return Err(format!("{key}: not supported"));
                }
                other => {
                    return Err(format!(
                        "{other}: unknown key; expected error_mode, trace_statements, metric_statements, log_statements"
                    ));
                }
            }
        }
        Ok(config)
    }
}
