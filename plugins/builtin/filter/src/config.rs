//! The filter's config, in the collector filterprocessor's shape, checked once at `init`.
//!
//! Every error names where it is, as a dotted path into the processor's config followed by
//! the column inside the condition (`traces.span[1]: column 9: expected a value`); the host
//! turns the path into a line of the config file.

use serde_json::Value as Json;
use std::collections::HashMap;
use trailhead_ottl::{Expr, Path, parse};

/// What an evaluation error does: `propagate` fails the batch (the host's `on_failure`
/// applies), `ignore` logs it and treats the condition as false, `silent` only the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Ignore,
    Silent,
    Propagate,
}

/// A value a condition reads, resolved for its context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Kind,
    StatusCode,
    StatusMessage,
    StartTime,
    EndTime,
    /// The trace ID as bytes (`trace_id`), or as lowercase hex (`trace_id.string`).
    TraceId {
        hex: bool,
    },
    /// The span ID as bytes (`span_id`), or as lowercase hex (`span_id.string`).
    SpanId {
        hex: bool,
    },
    Type,
    SeverityNumber,
    SeverityText,
    Body,
    Attribute(String),
    ResourceAttribute(String),
    ScopeName,
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

impl Context {
    /// The context's own path prefix (`span.name` is `name` in the span context).
    fn prefix(self) -> &'static str {
        match self {
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
            Context::Metric => "metric",
            Context::DataPoint => "datapoint",
            Context::LogRecord => "log",
        }
    }

    /// The context that holds this one's items, and the prefix that reaches it.
    fn parent(self) -> Option<Context> {
        match self {
            Context::SpanEvent => Some(Context::Span),
            Context::DataPoint => Some(Context::Metric),
            _ => None,
        }
    }

    fn own_field(self, dotted: &str, key: Option<&str>) -> Option<Field> {
        use Context::*;
        Some(match (self, dotted, key) {
            (Span | SpanEvent | Metric, "name", None) => Field::Name,
            (Span, "kind", None) => Field::Kind,
            (Span, "status.code", None) => Field::StatusCode,
            (Span, "status.message", None) => Field::StatusMessage,
            (Span, "start_time_unix_nano", None) => Field::StartTime,
            (Span, "end_time_unix_nano", None) => Field::EndTime,
            (Span | LogRecord, "trace_id", None) => Field::TraceId { hex: false },
            (Span | LogRecord, "trace_id.string", None) => Field::TraceId { hex: true },
            (Span | LogRecord, "span_id", None) => Field::SpanId { hex: false },
            (Span | LogRecord, "span_id.string", None) => Field::SpanId { hex: true },
            (Metric, "type", None) => Field::Type,
            (LogRecord, "severity_number", None) => Field::SeverityNumber,
            (LogRecord, "severity_text", None) => Field::SeverityText,
            (LogRecord, "body", None) => Field::Body,
            (Span | SpanEvent | DataPoint | LogRecord, "attributes", Some(k)) => {
                Field::Attribute(k.to_string())
            }
            _ => return None,
        })
    }

    /// Resolves a path, or says why it does not exist here.
    pub fn resolve(self, path: &Path) -> Result<Field, String> {
        if !path.nested.is_empty() {
            return Err(format!(
                "nested keys (`{path}`) are not supported by the filter yet"
            ));
        }
        let key = path.key.as_deref();
        let mut dotted = path.dotted();
        if let Some(rest) = dotted.strip_prefix(&format!("{}.", self.prefix())) {
            dotted = rest.to_string();
        }
        match (dotted.as_str(), key) {
            ("resource.attributes", Some(k)) => return Ok(Field::ResourceAttribute(k.into())),
            ("instrumentation_scope.name", None) => return Ok(Field::ScopeName),
            ("attributes" | "resource.attributes", None) => {
                return Err(format!("`{dotted}` needs a key, as in {dotted}[\"key\"]"));
            }
            _ => {}
        }
        if let Some(field) = self.own_field(&dotted, key) {
            return Ok(field);
        }
        if let Some(parent) = self.parent()
            && let Some(rest) = dotted.strip_prefix(&format!("{}.", parent.prefix()))
            && let Some(field) = parent.own_field(rest, key)
        {
            return Ok(Field::Parent(Box::new(field)));
        }
        Err(format!(
            "unknown path `{path}` in the {} context; supported: {}",
            self.prefix(),
            self.supported()
        ))
    }

    fn supported(self) -> &'static str {
        match self {
            Context::Span => {
                "name, kind, status.code, status.message, start_time_unix_nano, end_time_unix_nano, trace_id, trace_id.string, span_id, span_id.string, attributes[…], resource.attributes[…], instrumentation_scope.name"
            }
            Context::SpanEvent => {
                "name, attributes[…], span.name, span.kind, span.status.code, span.status.message, span.start_time_unix_nano, span.end_time_unix_nano, span.trace_id, span.trace_id.string, span.span_id, span.span_id.string, span.attributes[…], resource.attributes[…], instrumentation_scope.name"
            }
            Context::Metric => "name, type, resource.attributes[…], instrumentation_scope.name",
            Context::DataPoint => {
                "attributes[…], metric.name, metric.type, resource.attributes[…], instrumentation_scope.name"
            }
            Context::LogRecord => {
                "severity_number, severity_text, body, trace_id, trace_id.string, span_id, span_id.string, attributes[…], resource.attributes[…], instrumentation_scope.name"
            }
        }
    }
}

/// One parsed condition and the fields its paths resolve to.
pub struct Condition {
    pub text: String,
    pub expr: Expr,
    pub fields: HashMap<Path, Field>,
}

#[derive(Default)]
pub struct Conditions {
    pub span: Vec<Condition>,
    pub spanevent: Vec<Condition>,
    pub metric: Vec<Condition>,
    pub datapoint: Vec<Condition>,
    pub log_record: Vec<Condition>,
}

pub struct Config {
    pub error_mode: ErrorMode,
    pub conditions: Conditions,
}

fn object<'a>(value: &'a Json, at: &str) -> Result<&'a serde_json::Map<String, Json>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{at}: expected a map"))
}

fn conditions(value: &Json, at: &str, context: Context) -> Result<Vec<Condition>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("{at}: expected a list of conditions"))?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{at}[{i}]");
            let text = item
                .as_str()
                .ok_or_else(|| format!("{at}: a condition must be a string"))?;
            let expr = parse(text).map_err(|e| format!("{at}: {e} in `{text}`"))?;
            let mut fields = HashMap::new();
            for path in expr.paths() {
                let field = context
                    .resolve(path)
                    .map_err(|e| format!("{at}: column {}: {e}", path.column))?;
                fields.insert(path.clone(), field);
            }
            Ok(Condition {
                text: text.to_string(),
                expr,
                fields,
            })
        })
        .collect()
}

impl Config {
    /// Checks the processor's config, as the SDK deserialized it.
    pub fn from_json(json: &Json) -> Result<Config, String> {
        let mut config = Config {
            error_mode: ErrorMode::Propagate,
            conditions: Conditions::default(),
        };
        let c = &mut config.conditions;
        for (key, value) in object(json, "config")? {
            match key.as_str() {
                "error_mode" => {
                    config.error_mode = match value.as_str() {
                        Some("ignore") => ErrorMode::Ignore,
                        Some("silent") => ErrorMode::Silent,
                        Some("propagate") => ErrorMode::Propagate,
                        _ => return Err("error_mode: expected ignore, silent or propagate".into()),
                    }
                }
                signal @ ("traces" | "metrics" | "logs") => {
                    for (context, list) in object(value, signal)? {
                        let at = format!("{signal}.{context}");
                        match (signal, context.as_str()) {
                            ("traces", "span") => c.span = conditions(list, &at, Context::Span)?,
                            ("traces", "spanevent") => {
                                c.spanevent = conditions(list, &at, Context::SpanEvent)?
                            }
                            ("metrics", "metric") => {
                                c.metric = conditions(list, &at, Context::Metric)?
                            }
                            ("metrics", "datapoint") => {
                                c.datapoint = conditions(list, &at, Context::DataPoint)?
                            }
                            ("logs", "log_record") => {
                                c.log_record = conditions(list, &at, Context::LogRecord)?
                            }
                            (_, "include" | "exclude") => {
                                return Err(format!(
                                    "{at}: the legacy include/exclude filters are not supported; write OTTL conditions"
                                ));
                            }
                            _ => {
                                let expected = match signal {
                                    "traces" => "span, spanevent",
                                    "metrics" => "metric, datapoint",
                                    _ => "log_record",
                                };
                                return Err(format!("{at}: unknown key; expected {expected}"));
                            }
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "{other}: unknown key; expected error_mode, traces, metrics, logs"
                    ));
                }
            }
        }
        Ok(config)
    }
}
