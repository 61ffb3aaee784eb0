//! Which field each path of a condition reads, named as the collector's OTTL resource, span
//! and spanevent contexts (v0.161.0, with context names) name them, and why a path is
//! refused when it is.
//!
//! The one idea: a path is split as the collector splits it, into a context (`resource`,
//! `scope` / `instrumentation_scope`, the item's own `span` or `spanevent`, an event's
//! `span`) and that context's field, so `span.name` and `name` are the same in a `span`
//! condition, and `attributes` is the resource's in a `resource` one. A path the collector takes is resolved here or refused with its reason.

use super::Context;
use trailhead_ottl::Path;

/// A value a path reads, resolved once at config time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A field of the span (the item itself, or the span holding the event).
    Span(SpanField),
    Event(EventField),
    Resource(Common),
    Scope(ScopeField),
    /// `cache`: the collector gives every evaluation a new, empty map.
    Cache,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanField {
    Name,
    Kind,
    KindText { deprecated: bool },
    Status,
    StatusCode,
    StatusMessage,
    Start { time: bool },
    End { time: bool },
    TraceId { hex: bool },
    SpanId { hex: bool },
    ParentSpanId { hex: bool },
    TraceState,
    TraceStateKey(String),
    Flags,
    Events,
    Links,
    DroppedEvents,
    DroppedLinks,
    IsRoot,
    Common(Common),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventField {
    Name,
    Time { time: bool },
    Common(Common),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeField {
    Name,
    Version,
    Common(Common),
}

/// Fields that resources, scopes, spans and events share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Common {
    /// `attributes["k"]`: one attribute.
    Attribute(String),
    /// `attributes`: the whole map.
    Attributes,
    DroppedAttrs,
    /// A resource's or scope's `schema_url` (of its `ResourceSpans` or `ScopeSpans`).
    SchemaUrl,
}

/// Resolves a path in `ctx`, or says why it is refused.
pub fn resolve(ctx: Context, path: &Path) -> Result<Field, String> {
    if path.args.is_some() {
        // The parser lets through only the context's own item converter: `IsRootSpan()`.
        return Ok(Field::Span(SpanField::IsRoot));
    }
    let keyed = path.key.is_some() || !path.nested.is_empty();
    let segments: Vec<&str> = path.segments.iter().map(String::as_str).collect();
    let (first, rest) = segments.split_first().ok_or_else(|| unknown(ctx, path))?;
    let named = |rest: &[&str]| {
        if rest.is_empty() {
            return Err(format!(
                "`{first}` alone is not a path; name one of its fields, as in {first}.attributes[\"key\"]"
            ));
        }
        Ok(())
    };
    let key = path.key.as_deref();
    let found = match (*first, ctx) {
        ("resource", _) => {
            named(rest)?;
            common(rest, key).map(Field::Resource)
        }
        // A resource context reaches nothing below the resource.
        ("cache", Context::Resource) if rest.is_empty() => Some(Field::Cache),
        (_, Context::Resource) => common(&segments, key).map(Field::Resource),
        ("scope" | "instrumentation_scope", _) => {
            named(rest)?;
            scope(rest, key).map(Field::Scope)
        }
        ("cache", _) if rest.is_empty() => Some(Field::Cache),
        ("otelcol", _) => {
            return Err(format!(
                "`{path}`: the otelcol context (client metadata) is not kept with held traces"
            ));
        }
        ("span", Context::Span) | ("spanevent", Context::SpanEvent) if rest == ["cache"] => {
            Some(Field::Cache)
        }
        ("span", _) => {
            named(rest)?;
            span(rest, key).map(Field::Span)
        }
        ("spanevent", Context::SpanEvent) => {
            named(rest)?;
            event(rest, key, path)?.map(Field::Event)
        }
        (_, Context::Span) => span(&segments, key).map(Field::Span),
        (_, Context::SpanEvent) => event(&segments, key, path)?.map(Field::Event),
    };
    let field = found.ok_or_else(|| unknown(ctx, path))?;
    if matches!(field, Field::Span(SpanField::TraceStateKey(_))) && !path.nested.is_empty() {
        return Err(format!(
            "`{path}`: must provide exactly 1 key when accessing trace_state"
        ));
    }
    if keyed && !takes_keys(&field) {
        return Err(format!(
            "`{}` takes no keys (the collector refuses `{path}` too)",
            segments.join(".")
        ));
    }
    Ok(field)
}

/// The fields that take keys; every other path with keys is refused, as the collector does.
fn takes_keys(field: &Field) -> bool {
    let common = |c: &Common| matches!(c, Common::Attribute(_) | Common::Attributes);
    match field {
        Field::Cache => true,
        Field::Resource(c)
        | Field::Scope(ScopeField::Common(c))
        | Field::Event(EventField::Common(c))
        | Field::Span(SpanField::Common(c)) => common(c),
        Field::Span(SpanField::TraceStateKey(_)) => true,
        _ => false,
    }
}

fn unknown(ctx: Context, path: &Path) -> String {
    let (name, supported) = match ctx {
        Context::Resource => ("resource", RESOURCE_PATHS),
        Context::Span => ("span", SPAN_PATHS),
        Context::SpanEvent => ("spanevent", EVENT_PATHS),
    };
    format!("unknown path `{path}` in the {name} context; supported: {supported}")
}

const RESOURCE_PATHS: &str = "attributes, attributes[…], dropped_attributes_count, schema_url, cache (each also as resource.…)";
const SPAN_PATHS: &str = "name, kind, kind.string, kind.deprecated_string, status, status.code, status.message, start_time_unix_nano, end_time_unix_nano, start_time, end_time, trace_id, trace_id.string, span_id, span_id.string, parent_span_id, parent_span_id.string, trace_state, trace_state[…], flags, attributes, attributes[…], dropped_attributes_count, events, dropped_events_count, links, dropped_links_count, cache, IsRootSpan(), resource.…, instrumentation_scope.… (each also as span.…)";
const EVENT_PATHS: &str = "name, time_unix_nano, time, attributes, attributes[…], dropped_attributes_count (each also as spanevent.…), span.… (every span path), cache, resource.…, instrumentation_scope.…";

/// `attributes`, with a first string key one attribute, without the whole map.
fn attributes(key: Option<&str>) -> Common {
    key.map_or(Common::Attributes, |k| Common::Attribute(k.to_string()))
}

/// A resource's fields, which a scope, span and event share but for `schema_url`.
fn common(segments: &[&str], key: Option<&str>) -> Option<Common> {
    match segments {
        ["attributes"] => Some(attributes(key)),
        ["dropped_attributes_count"] => Some(Common::DroppedAttrs),
        ["schema_url"] => Some(Common::SchemaUrl),
        _ => None,
    }
}

fn scope(segments: &[&str], key: Option<&str>) -> Option<ScopeField> {
    match segments {
        ["name"] => Some(ScopeField::Name),
        ["version"] => Some(ScopeField::Version),
        _ => common(segments, key).map(ScopeField::Common),
    }
}

fn span(segments: &[&str], key: Option<&str>) -> Option<SpanField> {
    use SpanField::*;
    Some(match segments {
        ["name"] => Name,
        ["kind"] => Kind,
        ["kind", "string"] => KindText { deprecated: false },
        ["kind", "deprecated_string"] => KindText { deprecated: true },
        ["status"] => Status,
        ["status", "code"] => StatusCode,
        ["status", "message"] => StatusMessage,
        ["start_time_unix_nano"] => Start { time: false },
        ["end_time_unix_nano"] => End { time: false },
        ["start_time"] => Start { time: true },
        ["end_time"] => End { time: true },
        ["trace_id"] => TraceId { hex: false },
        ["trace_id", "string"] => TraceId { hex: true },
        ["span_id"] => SpanId { hex: false },
        ["span_id", "string"] => SpanId { hex: true },
        ["parent_span_id"] => ParentSpanId { hex: false },
        ["parent_span_id", "string"] => ParentSpanId { hex: true },
        ["trace_state"] => key.map_or(TraceState, |k| TraceStateKey(k.to_string())),
        ["flags"] => Flags,
        ["events"] => Events,
        ["dropped_events_count"] => DroppedEvents,
        ["links"] => Links,
        ["dropped_links_count"] => DroppedLinks,
        ["attributes"] => Common(attributes(key)),
        ["dropped_attributes_count"] => Common(self::Common::DroppedAttrs),
        _ => return None,
    })
}

fn event(segments: &[&str], key: Option<&str>, path: &Path) -> Result<Option<EventField>, String> {
    Ok(match segments {
        ["event_index"] => {
            return Err(format!(
                "`{path}`: the collector's tail sampling never sets it, so it fails for every span event; it is refused"
            ));
        }
        ["name"] => Some(EventField::Name),
        ["time_unix_nano"] => Some(EventField::Time { time: false }),
        ["time"] => Some(EventField::Time { time: true }),
        ["attributes"] => Some(EventField::Common(attributes(key))),
        ["dropped_attributes_count"] => Some(EventField::Common(Common::DroppedAttrs)),
        _ => None,
    })
}
