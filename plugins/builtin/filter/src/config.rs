//! The filter's config, in the collector filterprocessor's shape, checked once at `init`.
//!
//! Every error names where it is, as a dotted path into the processor's config followed by
//! the column inside the condition (`traces.span[1]: column 9: expected a value`); the host
//! turns the path into a line of the config file.

use crate::paths::{Context, Field};
use serde_json::Value as Json;
use std::collections::HashMap;
use trailhead_ottl::{Expr, Key, Path, parse_reading};

/// What an evaluation error does: `propagate` fails the batch (the host's `on_failure`
/// applies), `ignore` logs it and treats the condition as false, `silent` only the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Ignore,
    Silent,
    Propagate,
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
            let parsed = parse_reading(text, context.item_converters());
            let mut expr = parsed.map_err(|e| format!("{at}: {e} in `{text}`"))?;
            let mut fields = HashMap::new();
            for path in expr.paths_mut() {
                let field = context
                    .resolve(path)
                    .map_err(|e| format!("{at}: column {}: {e}", path.column))?;
                read_key_from_value(path, &field);
                fields.insert(path.head(), field);
            }
            Ok(Condition {
                text: text.to_string(),
                expr,
                fields,
            })
        })
        .collect()
}

/// A map a field reads whole (a body, metric metadata, the cache) is indexed by the
/// evaluator: its first key joins the nested ones, so the column is the value itself and a
/// body that cannot be indexed fails as the collector's does.
fn read_key_from_value(path: &mut Path, field: &Field) {
    if matches!(field, Field::BodyIndexed | Field::Metadata | Field::Cache)
        && let Some(key) = path.key.take()
    {
        path.nested.insert(0, Key::Str(key));
    }
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
