//! What the cloud detectors (`ec2`, `gcp`, `azure`) share: their `resource_attributes`
//! switches (each detector's generated metadata config, its defaults included), the tag-key
//! patterns (Go's RE2 syntax, which the `regex` crate shares for what patterns use) and the
//! processor-wide settings detection runs under.

use super::Detected;
use super::system::Switch;
use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// `resource_attributes:` of a detector: `{cloud.region: {enabled: false}}`.
pub type Switches = BTreeMap<String, Switch>;

/// The processor's settings a cloud detector runs under.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The processor's `fail_on_missing_metadata`: a metadata server that does not answer
    /// fails detection instead of yielding nothing.
    pub fail_on_missing_metadata: bool,
    /// The processor's `timeout`, which bounds each request (zero: the client's own limits).
    pub timeout: Duration,
}

/// Only the detector's own attribute names may be switched.
pub fn check_switches(
    section: &str,
    switches: &Switches,
    known: &[(&str, bool)],
) -> Result<(), String> {
    match switches
        .keys()
        .find(|name| !known.iter().any(|(k, _)| k == name))
    {
        Some(name) => Err(format!(
            "{section}.resource_attributes: has invalid keys: {name}"
        )),
        None => Ok(()),
    }
}

/// The found values of enabled attributes, in the order of `known`; a value not found
/// (`None`) is left out, as the collector's resource builder leaves an unset attribute out.
pub fn emit(
    known: &[(&str, bool)],
    switches: &Switches,
    found: &BTreeMap<&str, String>,
) -> Detected {
    known
        .iter()
        .filter(|(name, default)| switches.get(*name).map_or(*default, |s| s.enabled))
        .filter_map(|(name, _)| found.get(name).map(|v| (name.to_string(), v.clone())))
        .collect()
}

/// Compiles tag-key patterns, refusing a bad one at its index (`ec2.tags[1]: ...`).
pub fn patterns(key: &str, texts: &[String]) -> Result<Vec<Regex>, String> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Regex::new(text).map_err(|e| format!("{key}[{i}]: error parsing regexp: {e}"))
        })
        .collect()
}

/// `prefix + key` for every tag whose key one of `patterns` matches (unanchored, as Go's
/// `MatchString`), sorted by key.
pub fn matching_tags(prefix: &str, patterns: &[Regex], tags: &[(String, String)]) -> Detected {
    let mut kept: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in tags {
        if patterns.iter().any(|p| p.is_match(key)) {
            kept.insert(key.as_str(), value.as_str());
        }
    }
    kept.into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.to_string()))
        .collect()
}

/// The request timeout: the client's own, shortened to the processor's `timeout`.
pub fn request_timeout(own: Duration, run: Run) -> Duration {
    if run.timeout.is_zero() {
        own
    } else {
        own.min(run.timeout)
    }
}

/// A member of `object` by name: the exact name first, else the first that matches it
/// case-insensitively (Go's rule; IMDS writes `vmId` where the provider says `vmID`).
pub fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let map = object.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// A string member: missing or `null` is empty, another type is Go's decoding error.
pub fn string_field(object: &Value, name: &str) -> Result<String, String> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(format!(
            "json: cannot unmarshal {} into field {name} of type string",
            kind(other)
        )),
    }
}

/// Go's name for a JSON value's kind, as its decoding errors say it.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[(&str, bool)] = &[("a", true), ("b", false), ("c", true)];

    // Defaults hold unless switched; an attribute without a value is left out; order is
    // the detector's, not the switches'.
    #[test]
    fn switches_pick_attributes() {
        let switches: Switches = [
            ("b".to_string(), Switch { enabled: true }),
            ("a".to_string(), Switch { enabled: false }),
        ]
        .into();
        let found: BTreeMap<&str, String> = [("a", "1"), ("b", "2")]
            .map(|(k, v)| (k, v.to_string()))
            .into();
        assert_eq!(
            emit(KNOWN, &switches, &found),
            [("b".to_string(), "2".to_string())]
        );
        assert_eq!(
            emit(KNOWN, &Switches::new(), &found),
            [("a".to_string(), "1".to_string())]
        );
        let bad: Switches = [("d".to_string(), Switch { enabled: true })].into();
        let error = check_switches("gcp", &bad, KNOWN).unwrap_err();
        assert_eq!(error, "gcp.resource_attributes: has invalid keys: d");
    }

    // Patterns match anywhere in the key unless anchored; a bad pattern names its index.
    #[test]
    fn tag_patterns_match_as_go_does() {
        let compiled = patterns("azure.tags", &["^env$".into(), "team".into()]).unwrap();
        let tags: Vec<(String, String)> = [("env", "prod"), ("environment", "x"), ("myteam", "a")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(
            matching_tags("azure.tag.", &compiled, &tags),
            [
                ("azure.tag.env".to_string(), "prod".to_string()),
                ("azure.tag.myteam".to_string(), "a".to_string())
            ]
        );
        let error = patterns("ec2.tags", &["ok".into(), "(".into()]).unwrap_err();
        assert!(
            error.starts_with("ec2.tags[1]: error parsing regexp"),
            "{error}"
        );
    }
}
