//! Which field each path of a filter context reads, named as the collector's OTTL contexts
//! (v0.161.0) name them, and why a path is refused when it is.
//!
//! The one idea: a path is split as the collector splits it, into a context (`resource`,
//! `scope` / `instrumentation_scope`, the context's own name, the parent's `span` or
//! `metric`) and that context's field, so `span.name` in `traces.span` is `name`, and
//! `resource.attributes["k"]` is the resource's attribute wherever it is read from. A path
//! the collector takes is resolved here or refused with its reason; none is ignored.
//! The filter-only converters (`IsRootSpan()`, `HasAttr…OnDatapoint(…)`) read the item, so
//! the parser hands them over as paths too, in the contexts the collector gives them.

use trailhead_ottl::{ItemConverter, Path};

/// A value a condition reads, resolved for its context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// `attributes["k"]`: one attribute, read as a column.
    Attribute(String),
    /// `attributes`: the whole map (also the head of `attributes[0]`, which fails as a map).
    Attributes,
    DroppedAttrs,
    Name,
    Kind,
    /// `kind.string` (`Server`) or `kind.deprecated_string` (`SPAN_KIND_SERVER`).
    KindText {
        deprecated: bool,
    },
    Status,
    StatusCode,
    StatusMessage,
    /// A span's or point's start: nanoseconds (`…_unix_nano`) or a time (`start_time`).
    Start {
        time: bool,
    },
    End {
        time: bool,
    },
    /// An event's, record's or point's time.
    Time {
        time: bool,
    },
    ObservedTime {
        time: bool,
    },
    /// The trace ID as bytes (`trace_id`), or as lowercase hex (`trace_id.string`).
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
    /// `trace_state["k"]`: one W3C trace-state member.
    TraceStateKey(String),
    Flags,
    DroppedEvents,
    DroppedLinks,
    Events,
    Links,
    SeverityNumber,
    SeverityText,
    Body,
    /// The head of `body["k"]` or `body[0]`: the body, which must be a map or a list.
    BodyIndexed,
    /// `body.string`: the body as pdata writes any value as text.
    BodyString,
    EventName,
    Type,
    Unit,
    Description,
    Temporality,
    Monotonic,
    DataPoints,
    Metadata,
    ValueInt,
    ValueDouble,
    Count,
    Sum,
    Exemplars,
    BucketCounts,
    ExplicitBounds,
    Scale,
    ZeroCount,
    /// An exponential histogram's `positive` or `negative` buckets, whole.
    Buckets {
        positive: bool,
    },
    BucketsOffset {
        positive: bool,
    },
    BucketsCounts {
        positive: bool,
    },
    QuantileValues,
    SchemaUrl,
    ScopeName,
    ScopeVersion,
    /// `cache`: the collector's filter gives every item a new, empty one.
    Cache,
    /// `IsRootSpan()`: the span's parent span ID is empty (all zeros).
    IsRootSpan,
    /// `HasAttrKeyOnDatapoint(key)` (`value` none) or `HasAttrOnDatapoint(key, value)`: the
    /// first of the metric's data points that has `key` decides, as the collector's loop does.
    PointAttr {
        key: String,
        value: Option<String>,
    },
    /// A field of the entry's resource, read through `parents()`.
    Resource(Box<Field>),
    /// A field of the entry's scope.
    Scope(Box<Field>),
    /// A field of the span (for a span event) or metric (for a data point) that holds it.
    Parent(Box<Field>),
}

/// Where a condition runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Span,
    SpanEvent,
    Metric,
    DataPoint,
    LogRecord,
}

/// The fields that take keys; every other path with keys is refused, as the collector does.
fn takes_keys(field: &Field) -> bool {
    if let Field::Resource(f) | Field::Scope(f) | Field::Parent(f) = field {
        return takes_keys(f);
    }
    matches!(
        field,
        Field::Attribute(_)
            | Field::Attributes
            | Field::BodyIndexed
            | Field::Metadata
            | Field::Cache
            | Field::TraceStateKey(_)
    )
}

impl Context {
    /// The context's own path prefix (`span.name` is `name` in the span context).
    pub fn prefix(self) -> &'static str {
        match self {
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
            Context::Metric => "metric",
            Context::DataPoint => "datapoint",
            Context::LogRecord => "log",
        }
    }

    /// The context that holds this one's items.
    fn parent(self) -> Option<Context> {
        match self {
            Context::SpanEvent => Some(Context::Span),
            Context::DataPoint => Some(Context::Metric),
            _ => None,
        }
    }

    /// The filter-only converters, as the collector's filter gives them to each context:
    /// `IsRootSpan` to spans alone (not span events), the `HasAttr…OnDatapoint` pair to
    /// metrics alone (a data point reads its own `attributes`).
    pub fn item_converters(self) -> &'static [ItemConverter] {
        const fn converter(
            name: &'static str,
            params: &'static [&'static str],
            refused: Option<&'static str>,
        ) -> ItemConverter {
            ItemConverter {
                name,
                params,
                refused,
            }
        }
        const NOT_SPAN: Option<&str> =
            Some("the collector's filter has it in traces.span only, not in this context");
        const NOT_METRIC: Option<&str> =
            Some("the collector's filter has it in metrics.metric only, not in this context");
        const fn all(
            span: Option<&'static str>,
            metric: Option<&'static str>,
        ) -> [ItemConverter; 3] {
            [
                converter("IsRootSpan", &[], span),
                converter("HasAttrOnDatapoint", &["key", "expected_val"], metric),
                converter("HasAttrKeyOnDatapoint", &["key"], metric),
            ]
        }
        const SPAN: [ItemConverter; 3] = all(None, NOT_METRIC);
        const METRIC: [ItemConverter; 3] = all(NOT_SPAN, None);
        const OTHER: [ItemConverter; 3] = all(NOT_SPAN, NOT_METRIC);
        match self {
            Context::Span => &SPAN,
            Context::Metric => &METRIC,
            _ => &OTHER,
        }
    }

    /// Resolves a path, or says why it is refused.
    pub fn resolve(self, path: &Path) -> Result<Field, String> {
        if let Some(args) = &path.args {
            return Ok(converter_field(&path.dotted(), args));
        }
        let keyed = path.key.is_some() || !path.nested.is_empty();
        let segments: Vec<&str> = path.segments.iter().map(String::as_str).collect();
        let (field, rest) = self.split(&segments, keyed, path)?;
        if let Some(extra) = rest.first() {
            return Err(format!(
                "the path section {extra:?} of `{path}` is not a field of the {} context",
                self.prefix()
            ));
        }
        if matches!(field, Field::TraceStateKey(_)) && !path.nested.is_empty() {
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

    /// The field the segments name, and the segments left over (none for a valid path).
    fn split<'s>(
        self,
        segments: &'s [&'s str],
        keyed: bool,
        path: &Path,
    ) -> Result<(Field, &'s [&'s str]), String> {
        let unknown = || self.unknown(path);
        let (first, rest) = segments.split_first().ok_or_else(unknown)?;
        let named = |rest: &'s [&'s str]| match rest.is_empty() {
            true => Err(format!(
                "`{first}` alone is not a path; name one of its fields, as in {first}.attributes[\"key\"]"
            )),
            false => Ok(rest),
        };
        match *first {
            "resource" => {
                let rest = named(rest)?;
                let (field, rest) =
                    resource_field(rest, path.key.as_deref()).ok_or_else(unknown)?;
                Ok((Field::Resource(Box::new(field)), rest))
            }
            "scope" | "instrumentation_scope" => {
                let rest = named(rest)?;
                let (field, rest) = scope_field(rest, path.key.as_deref()).ok_or_else(unknown)?;
                Ok((Field::Scope(Box::new(field)), rest))
            }
            "otelcol" => Err(format!(
                "`{path}`: the otelcol context (client address, auth and metadata) is not passed to plugins"
            )),
            "cache" if rest.is_empty() => Ok((Field::Cache, rest)),
            own if own == self.prefix() && rest == ["cache"] => Ok((Field::Cache, &[])),
            own if own == self.prefix() => self.own(named(rest)?, keyed, path),
            parent if self.parent().is_some_and(|p| p.prefix() == parent) => {
                let parent = self.parent().expect("checked above");
                let (field, rest) = parent.own(named(rest)?, keyed, path)?;
                Ok((Field::Parent(Box::new(field)), rest))
            }
            _ => self.own(segments, keyed, path),
        }
    }

    /// A field of the context's own items.
    fn own<'s>(
        self,
        segments: &'s [&'s str],
        keyed: bool,
        path: &Path,
    ) -> Result<(Field, &'s [&'s str]), String> {
        if self == Context::SpanEvent && segments.first() == Some(&"event_index") {
            return Err("`event_index`: the collector's filter never sets it, so it fails for every span event; it is refused".into());
        }
        let key = path.key.as_deref();
        let found = match self {
            Context::Span => span_field(segments, key),
            Context::SpanEvent => event_field(segments, key),
            Context::Metric => metric_field(segments),
            Context::DataPoint => point_field(segments, key),
            Context::LogRecord => log_field(segments, key, keyed),
        };
        found.ok_or_else(|| self.unknown(path))
    }

    fn unknown(self, path: &Path) -> String {
        format!(
            "unknown path `{path}` in the {} context; supported: {}",
            self.prefix(),
            self.supported()
        )
    }

    fn supported(self) -> &'static str {
        match self {
            Context::Span => {
                "name, kind, kind.string, kind.deprecated_string, status, status.code, status.message, start_time_unix_nano, end_time_unix_nano, start_time, end_time, trace_id, trace_id.string, span_id, span_id.string, parent_span_id, parent_span_id.string, trace_state, trace_state[…], flags, attributes, attributes[…], dropped_attributes_count, events, dropped_events_count, links, dropped_links_count, cache, resource.…, instrumentation_scope.…"
            }
            Context::SpanEvent => {
                "name, time_unix_nano, time, attributes, attributes[…], dropped_attributes_count, span.… (every span path), cache, resource.…, instrumentation_scope.…"
            }
            Context::Metric => {
                "name, description, unit, type, aggregation_temporality, is_monotonic, data_points, metadata, metadata[…], cache, resource.…, instrumentation_scope.…"
            }
            Context::DataPoint => {
                "attributes, attributes[…], start_time_unix_nano, time_unix_nano, start_time, time, value_int, value_double, flags, count, sum, exemplars, bucket_counts, explicit_bounds, scale, zero_count, positive, positive.offset, positive.bucket_counts, negative, negative.offset, negative.bucket_counts, quantile_values, metric.… (every metric path), cache, resource.…, instrumentation_scope.…"
            }
            Context::LogRecord => {
                "body, body[…], body.string, severity_number, severity_text, time_unix_nano, observed_time_unix_nano, time, observed_time, trace_id, trace_id.string, span_id, span_id.string, flags, event_name, attributes, attributes[…], dropped_attributes_count, cache, resource.…, instrumentation_scope.…"
            }
        }
    }
}

/// The field an item converter's call reads (the parser let through only the context's own).
fn converter_field(name: &str, args: &[String]) -> Field {
    match (name, args) {
        ("HasAttrOnDatapoint", [key, value]) => Field::PointAttr {
            key: key.clone(),
            value: Some(value.clone()),
        },
        ("HasAttrKeyOnDatapoint", [key]) => Field::PointAttr {
            key: key.clone(),
            value: None,
        },
        _ => Field::IsRootSpan,
    }
}

/// `attributes` with a first string key is one attribute's column; without, the whole map.
fn attributes(key: Option<&str>) -> Field {
    key.map_or(Field::Attributes, |k| Field::Attribute(k.to_string()))
}

/// The field named by the first segment (and, for `trace_id.string` and the like, the
/// second), with the segments left over.
type Found<'s> = Option<(Field, &'s [&'s str])>;

fn resource_field<'s>(segments: &'s [&'s str], key: Option<&str>) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "attributes" => attributes(key),
        "dropped_attributes_count" => Field::DroppedAttrs,
        "schema_url" => Field::SchemaUrl,
        _ => return None,
    };
    Some((field, rest))
}

fn scope_field<'s>(segments: &'s [&'s str], key: Option<&str>) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "name" => Field::ScopeName,
        "version" => Field::ScopeVersion,
        _ => return resource_field(segments, key),
    };
    Some((field, rest))
}

/// `x` or `x.string`: an ID as bytes or as hex.
fn id<'s>(rest: &'s [&'s str], field: fn(bool) -> Field) -> Found<'s> {
    match rest.split_first() {
        Some((&"string", rest)) => Some((field(true), rest)),
        Some(_) => None,
        None => Some((field(false), rest)),
    }
}

fn span_field<'s>(segments: &'s [&'s str], key: Option<&str>) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "trace_id" => return id(rest, |hex| Field::TraceId { hex }),
        "span_id" => return id(rest, |hex| Field::SpanId { hex }),
        "parent_span_id" => return id(rest, |hex| Field::ParentSpanId { hex }),
        "kind" => {
            return match rest.split_first() {
                Some((&"string", rest)) => Some((Field::KindText { deprecated: false }, rest)),
                Some((&"deprecated_string", r)) => Some((Field::KindText { deprecated: true }, r)),
                Some(_) => None,
                None => Some((Field::Kind, rest)),
            };
        }
        "status" => {
            return match rest.split_first() {
                Some((&"code", rest)) => Some((Field::StatusCode, rest)),
                Some((&"message", rest)) => Some((Field::StatusMessage, rest)),
                Some(_) => None,
                None => Some((Field::Status, rest)),
            };
        }
        "trace_state" => key.map_or(Field::TraceState, |k| Field::TraceStateKey(k.into())),
        "name" => Field::Name,
        "start_time_unix_nano" => Field::Start { time: false },
        "end_time_unix_nano" => Field::End { time: false },
        "start_time" => Field::Start { time: true },
        "end_time" => Field::End { time: true },
        "attributes" => attributes(key),
        "dropped_attributes_count" => Field::DroppedAttrs,
        "events" => Field::Events,
        "dropped_events_count" => Field::DroppedEvents,
        "links" => Field::Links,
        "dropped_links_count" => Field::DroppedLinks,
        "flags" => Field::Flags,
        _ => return None,
    };
    Some((field, rest))
}

fn event_field<'s>(segments: &'s [&'s str], key: Option<&str>) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "time_unix_nano" => Field::Time { time: false },
        "time" => Field::Time { time: true },
        "name" => Field::Name,
        "attributes" => attributes(key),
        "dropped_attributes_count" => Field::DroppedAttrs,
        _ => return None,
    };
    Some((field, rest))
}

fn metric_field<'s>(segments: &'s [&'s str]) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "name" => Field::Name,
        "description" => Field::Description,
        "unit" => Field::Unit,
        "type" => Field::Type,
        "aggregation_temporality" => Field::Temporality,
        "is_monotonic" => Field::Monotonic,
        "data_points" => Field::DataPoints,
        "metadata" => Field::Metadata,
        _ => return None,
    };
    Some((field, rest))
}

fn point_field<'s>(segments: &'s [&'s str], key: Option<&str>) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "attributes" => attributes(key),
        "start_time_unix_nano" => Field::Start { time: false },
        "time_unix_nano" => Field::Time { time: false },
        "start_time" => Field::Start { time: true },
        "time" => Field::Time { time: true },
        "value_double" => Field::ValueDouble,
        "value_int" => Field::ValueInt,
        "exemplars" => Field::Exemplars,
        "flags" => Field::Flags,
        "count" => Field::Count,
        "sum" => Field::Sum,
        "bucket_counts" => Field::BucketCounts,
        "explicit_bounds" => Field::ExplicitBounds,
        "scale" => Field::Scale,
        "zero_count" => Field::ZeroCount,
        "quantile_values" => Field::QuantileValues,
        side @ ("positive" | "negative") => {
            let positive = side == "positive";
            return match rest.split_first() {
                Some((&"offset", rest)) => Some((Field::BucketsOffset { positive }, rest)),
                Some((&"bucket_counts", r)) => Some((Field::BucketsCounts { positive }, r)),
                Some(_) => None,
                None => Some((Field::Buckets { positive }, rest)),
            };
        }
        _ => return None,
    };
    Some((field, rest))
}

fn log_field<'s>(segments: &'s [&'s str], key: Option<&str>, keyed: bool) -> Found<'s> {
    let (first, rest) = segments.split_first()?;
    let field = match *first {
        "time_unix_nano" => Field::Time { time: false },
        "observed_time_unix_nano" => Field::ObservedTime { time: false },
        "time" => Field::Time { time: true },
        "observed_time" => Field::ObservedTime { time: true },
        "severity_number" => Field::SeverityNumber,
        "severity_text" => Field::SeverityText,
        "body" => {
            return match rest.split_first() {
                Some((&"string", rest)) => Some((Field::BodyString, rest)),
                Some(_) => None,
                None if keyed => Some((Field::BodyIndexed, rest)),
                None => Some((Field::Body, rest)),
            };
        }
        "attributes" => attributes(key),
        "dropped_attributes_count" => Field::DroppedAttrs,
        "flags" => Field::Flags,
        "trace_id" => return id(rest, |hex| Field::TraceId { hex }),
        "span_id" => return id(rest, |hex| Field::SpanId { hex }),
        "event_name" => Field::EventName,
        _ => return None,
    };
    Some((field, rest))
}
