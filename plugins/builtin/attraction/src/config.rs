//! One action of the config, with the collector's keys, and its checks: the same rules, in
//! the same order, as the collector's `attraction.NewAttrProc`, with errors that name the
//! action's path (`actions[2].pattern: …`) so trailhead places them on the config's line.

use crate::engine::{Action, Conversion, Source};
use crate::goregex;
use serde::Deserialize;
use serde_json::Value as Json;

/// One entry of the attributes processor's `actions:` or the resource processor's
/// `attributes:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// The attribute to act on. Required, except by `delete` and `hash` given a `pattern`.
    #[serde(default)]
    pub key: String,
    /// `insert`, `update`, `upsert`, `delete`, `hash`, `extract` or `convert`, in any case.
    #[serde(default)]
    pub action: String,
    /// The value to set (`insert`, `update`, `upsert`), with the type YAML gives it: an int,
    /// a double, a bool, a string, a list or a map.
    #[serde(default)]
    pub value: Option<Json>,
    /// The attribute whose value to set, on the same item (`insert`, `update`, `upsert`).
    #[serde(default)]
    pub from_attribute: String,
    /// Where in the request's context the value comes from; only `client.address`, the
    /// sender's IP, reaches a plugin.
    #[serde(default)]
    pub from_context: String,
    /// The value to set when `from_attribute` or `from_context` finds none.
    #[serde(default)]
    pub default_value: Option<Json>,
    /// A regular expression (Go's syntax): the keys to `delete` or `hash`, or for `extract`
    /// the named groups that become attributes.
    #[serde(default)]
    pub pattern: String,
    /// `convert`'s target: `int`, `double` or `string`.
    #[serde(default)]
    pub converted_type: String,
}

/// The one context key a plugin can read: the sender's IP address.
pub const CLIENT_ADDRESS: &str = "client.address";

/// Checks a list of actions (`at` is its key, `actions` or `attributes`) and compiles it.
/// Returns the actions and warnings about keys the collector accepts but does not use.
pub fn compile(list: &[ActionConfig], at: &str) -> Result<(Vec<Action>, Vec<String>), String> {
    let mut actions = Vec::with_capacity(list.len());
    let mut warnings = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let kind = a.action.to_lowercase();
        let about = |field: &str, message: String| format!("{at}.{field}: {message}");
        match kind.as_str() {
            "delete" | "hash" if a.key.is_empty() && a.pattern.is_empty() => {
                return Err(format!("{at}: `{kind}` needs a `key` or a `pattern`"));
            }
            "delete" | "hash" => {}
            _ if a.key.is_empty() => return Err(format!("{at}.key: missing required field")),
            _ => {}
        }
        let sources = usize::from(a.value.as_ref().is_some_and(|v| !v.is_null()))
            + usize::from(!a.from_attribute.is_empty())
            + usize::from(!a.from_context.is_empty());
        let value = a.value.as_ref().filter(|v| !v.is_null());
        let default = a.default_value.as_ref().filter(|v| !v.is_null());
        let unused = |field: &str| {
            format!(
                "{at}.{field}: `{kind}` does not use it (the collector accepts and ignores it too)"
            )
        };
        let refuse =
            |field: &str| about(field, format!("action `{kind}` does not use it; remove it"));
        let action = match kind.as_str() {
            "insert" | "update" | "upsert" => {
                if sources == 0 && default.is_none() {
                    return Err(format!(
                        "{at}: `{kind}` needs one of `value`, `from_attribute`, `from_context` or `default_value`"
                    ));
                }
                if sources > 1 {
                    return Err(format!(
                        "{at}: `{kind}` takes one of `value`, `from_attribute` and `from_context`, not several"
                    ));
                }
                if !a.pattern.is_empty() {
                    return Err(refuse("pattern"));
                }
                if !a.converted_type.is_empty() {
                    return Err(refuse("converted_type"));
                }
                let source = Source {
                    value: value.map(|v| crate::value::from_json(v).to_any_value()),
                    from_attribute: (!a.from_attribute.is_empty())
                        .then(|| a.from_attribute.clone()),
                    from_context: if a.from_context.is_empty() {
                        false
                    } else if a.from_context == CLIENT_ADDRESS {
                        true
                    } else {
                        return Err(about(
                            "from_context",
                            format!(
                                "`{}` is not available: a plugin sees only `{CLIENT_ADDRESS}`, not the request's metadata (`metadata.*`) or auth attributes (`auth.*`)",
                                a.from_context
                            ),
                        ));
                    },
                    default: default.map(|v| crate::value::from_json(v).to_any_value()),
                };
                let key = a.key.clone();
                match kind.as_str() {
                    "insert" => Action::Insert { key, source },
                    "update" => Action::Update { key, source },
                    _ => Action::Upsert { key, source },
                }
            }
            "delete" | "hash" => {
                if value.is_some() {
                    return Err(refuse("value"));
                }
                if !a.from_attribute.is_empty() {
                    return Err(refuse("from_attribute"));
                }
                let pattern = if a.pattern.is_empty() {
                    None
                } else {
                    Some(goregex::compile(&a.pattern).map_err(|e| about("pattern", e))?)
                };
                if !a.converted_type.is_empty() {
                    return Err(refuse("converted_type"));
                }
                if !a.from_context.is_empty() {
                    warnings.push(unused("from_context"));
                }
                if default.is_some() {
                    warnings.push(unused("default_value"));
                }
                let key = a.key.clone();
                if kind == "delete" {
                    Action::Delete { key, pattern }
                } else {
                    Action::Hash { key, pattern }
                }
            }
            "extract" => {
                if sources > 0 {
                    let field = if value.is_some() {
                        "value"
                    } else if !a.from_attribute.is_empty() {
                        "from_attribute"
                    } else {
                        "from_context"
                    };
                    return Err(refuse(field));
                }
                if a.pattern.is_empty() {
                    return Err(about(
                        "pattern",
                        "missing required field for `extract`".into(),
                    ));
                }
                if !a.converted_type.is_empty() {
                    return Err(refuse("converted_type"));
                }
                let pattern = goregex::compile(&a.pattern).map_err(|e| about("pattern", e))?;
                let names: Vec<Option<&str>> = pattern.capture_names().skip(1).collect();
                if names.is_empty() {
                    return Err(about(
                        "pattern",
                        "has no named groups, as in (?P<name>…)".into(),
                    ));
                }
                if names.iter().any(Option::is_none) {
                    return Err(about(
                        "pattern",
                        "every group must be named, as in (?P<name>…); use (?:…) to group without capturing".into(),
                    ));
                }
                if default.is_some() {
                    warnings.push(unused("default_value"));
                }
                let names = names.into_iter().flatten().map(String::from).collect();
                Action::Extract {
                    key: a.key.clone(),
                    pattern,
                    names,
                }
            }
            "convert" => {
                if sources > 0 || !a.pattern.is_empty() {
                    let field = if !a.pattern.is_empty() {
                        "pattern"
                    } else if value.is_some() {
                        "value"
                    } else if !a.from_attribute.is_empty() {
                        "from_attribute"
                    } else {
                        "from_context"
                    };
                    return Err(refuse(field));
                }
                let to = match a.converted_type.as_str() {
                    "int" => Conversion::Int,
                    "double" => Conversion::Double,
                    "string" => Conversion::String,
                    "" => {
                        return Err(about(
                            "converted_type",
                            "missing required field for `convert`: int, double or string".into(),
                        ));
                    }
                    other => {
                        return Err(about(
                            "converted_type",
                            format!("unknown type `{other}`: expected int, double or string"),
                        ));
                    }
                };
                if default.is_some() {
                    warnings.push(unused("default_value"));
                }
                Action::Convert {
                    key: a.key.clone(),
                    to,
                }
            }
            _ => {
                return Err(about(
                    "action",
                    format!(
                        "unknown action `{}`: expected insert, update, upsert, delete, hash, extract or convert",
                        a.action
                    ),
                ));
            }
        };
        actions.push(action);
    }
    Ok((actions, warnings))
}
