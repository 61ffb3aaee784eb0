//! The Prometheus exporters: `prometheus` (pull: an endpoint serving what arrived in the text
//! exposition format, [`pull`]) and `prometheusremotewrite` (push: Remote Write 1.0,
//! [`remote_write`]).
//!
//! This file is what both share, the collector's translation of OTLP names into Prometheus
//! ones (its `otlptranslator` v1.0.0, which contrib v0.161.0 uses): metric names with unit and
//! type suffixes (`_seconds`, `_total`, `_ratio`), label names with invalid characters
//! squashed to one `_`, and `job` / `instance` from `service.*`. Only the two
//! underscore-escaping strategies are supported: Remote Write 1.0 refuses the UTF-8 ones too.

pub mod pull;
pub mod remote_write;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use serde::Deserialize;

/// `translation_strategy`: how names are translated (the collector's four; the two keeping
/// UTF-8 names are refused, see [`TranslationStrategy::problem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TranslationStrategy {
    UnderscoreEscapingWithSuffixes,
    UnderscoreEscapingWithoutSuffixes,
    NoUTF8EscapingWithSuffixes,
    NoTranslation,
}

impl TranslationStrategy {
    /// Why trailhead cannot run it, if it cannot.
    pub fn problem(self) -> Option<String> {
        matches!(self, Self::NoUTF8EscapingWithSuffixes | Self::NoTranslation).then(|| {
            format!(
                "`{self:?}` keeps UTF-8 names, which trailhead does not serve; use \
                 UnderscoreEscapingWithSuffixes or UnderscoreEscapingWithoutSuffixes"
            )
        })
    }
}

/// Whether suffixes are added: `translation_strategy` wins over the deprecated
/// `add_metric_suffixes`, as in the collector.
pub fn with_suffixes(strategy: Option<TranslationStrategy>, add_metric_suffixes: bool) -> bool {
    match strategy {
        Some(TranslationStrategy::UnderscoreEscapingWithoutSuffixes) => false,
        Some(_) => true,
        None => add_metric_suffixes,
    }
}

/// `resource_to_telemetry_conversion:` (its deprecated but current keys; `included` and
/// `excluded` patterns are not supported).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    /// Copy every resource attribute onto each data point's labels (overriding a data point
    /// attribute of the same key, as the collector does).
    pub enabled: bool,
    /// Leave `service.name`, `service.namespace` and `service.instance.id` out: they are
    /// `job` and `instance` already.
    pub exclude_service_attributes: bool,
}

impl ResourceToTelemetry {
    /// The data point's attributes with the resource's joined in, when enabled.
    pub fn join<'a>(&self, resource: &'a [KeyValue], point: &'a [KeyValue]) -> Vec<&'a KeyValue> {
        let mut joined: Vec<&KeyValue> = point.iter().collect();
        if !self.enabled {
            return joined;
        }
        for kv in resource {
            if self.exclude_service_attributes && SERVICE_KEYS.contains(&kv.key.as_str()) {
                continue;
            }
            joined.retain(|p| p.key != kv.key);
            joined.push(kv);
        }
        joined
    }
}

/// The resource attributes `job` and `instance` are made of.
pub const SERVICE_KEYS: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// A metric's kind as the namer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl NameKind {
    pub fn of(metric: &Metric) -> Option<NameKind> {
        Some(match metric.data.as_ref()? {
            Data::Gauge(_) => NameKind::Gauge,
            Data::Sum(sum) if sum.is_monotonic => NameKind::MonotonicCounter,
            Data::Sum(_) => NameKind::NonMonotonicCounter,
            Data::Histogram(_) => NameKind::Histogram,
            Data::ExponentialHistogram(_) => NameKind::ExponentialHistogram,
            Data::Summary(_) => NameKind::Summary,
        })
    }
}

/// OTLP units and their Prometheus words (`otlptranslator`'s `unitMap`).
fn main_unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The denominator of `x/y` units (`perUnitMap`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// `_`-joined runs of `keep` characters: every other run becomes one `_`.
fn squash(text: &str, keep: impl Fn(char) -> bool) -> Vec<&str> {
    text.split(|c: char| !keep(c))
        .filter(|t| !t.is_empty())
        .collect()
}

/// The main and per-unit suffixes of `unit` (`buildUnitSuffixes` then `cleanUpUnit`):
/// annotations in braces give none.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let clean = |word: &str| squash(word, is_metric_char).join("_");
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        clean(main_unit_word(main))
    };
    let per = match parts.next().map(str::trim) {
        Some(per) if !per.is_empty() && !per.contains(['{', '}']) => {
            clean(&format!("per_{}", per_unit_word(per)))
        }
        _ => String::new(),
    };
    (main, per)
}

/// The Prometheus name of an OTLP metric, or `None` when nothing valid is left of it.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: NameKind,
    namespace: &str,
    suffixes: bool,
) -> Option<String> {
    let built = if suffixes {
        let mut tokens: Vec<String> = squash(name, is_metric_char)
            .into_iter()
            .map(String::from)
            .collect();
        let (main, per) = unit_suffixes(unit);
        if !main.is_empty() && !tokens.contains(&main) {
            tokens.push(main);
        }
        if !per.is_empty() && per != "per" && !tokens.contains(&per) {
            tokens.push(per);
        }
        let mut suffix = |word: &str| {
            tokens.retain(|t| t != word);
            tokens.push(word.to_string());
        };
        if kind == NameKind::MonotonicCounter {
            suffix("total");
        }
        if unit == "1" && kind == NameKind::Gauge {
            suffix("ratio");
        }
        if !namespace.is_empty() {
            tokens.insert(0, namespace.to_string());
        }
        tokens.join("_")
    } else {
        let keep = |c: char| is_metric_char(c) || c == '_';
        let base = squash(name, keep).join("_");
        if namespace.is_empty() {
            base
        } else {
            format!("{}_{base}", squash(namespace, keep).join("_"))
        }
    };
    let built = match built.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("_{built}"),
        _ => built,
    };
    let invalid = built.is_empty() || (built != name && built.chars().all(|c| c == '_'));
    (!invalid).then_some(built)
}

/// The Prometheus name of an attribute key, or `None` for one of underscores only.
/// `underscore_prefix`: a single leading `_` becomes `key_` (the remote-write translator's
/// setting; the pull exporter keeps it).
pub fn label_name(key: &str, underscore_prefix: bool) -> Option<String> {
    let reserved = key.len() >= 4 && key.starts_with("__") && key.ends_with("__");
    let inner = if reserved {
        &key[2..key.len() - 2]
    } else {
        key
    };
    let mut name = String::with_capacity(key.len());
    let mut after_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
            after_underscore = false;
        } else if !after_underscore {
            name.push('_');
            after_underscore = true;
        }
    }
    if reserved {
        name = format!("__{name}__");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if underscore_prefix && name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    (!name.chars().all(|c| c == '_')).then_some(name)
}

/// An attribute value as a label value (pcommon's `AsString`).
pub fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        }
        Some(other) => json_value(other).to_string(),
    }
}

/// Arrays and maps as JSON, as pcommon renders them.
fn json_value(value: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    match value {
        V::StringValue(s) => s.clone().into(),
        V::BoolValue(b) => (*b).into(),
        V::IntValue(i) => (*i).into(),
        V::DoubleValue(d) => (*d).into(),
        V::BytesValue(_) => value_text(Some(&AnyValue {
            value: Some(value.clone()),
        }))
        .into(),
        // A dictionary index (profiles only): no text of its own.
        V::StringValueStrindex(_) => serde_json::Value::Null,
        V::ArrayValue(a) => a
            .values
            .iter()
            .map(|v| v.value.as_ref().map_or(serde_json::Value::Null, json_value))
            .collect(),
        V::KvlistValue(kv) => kv
            .values
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                (
                    kv.key.clone(),
                    v.map_or(serde_json::Value::Null, json_value),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attributes.iter().find(|kv| kv.key == key)
}

/// `job`: `service.namespace/service.name`, or `service.name` alone.
pub fn job(resource: &[KeyValue]) -> Option<String> {
    let name = value_text(attribute(resource, "service.name")?.value.as_ref());
    Some(match attribute(resource, "service.namespace") {
        Some(ns) => format!("{}/{name}", value_text(ns.value.as_ref())),
        None => name,
    })
}

/// `instance`: `service.instance.id`.
pub fn instance(resource: &[KeyValue]) -> Option<String> {
    Some(value_text(
        attribute(resource, "service.instance.id")?.value.as_ref(),
    ))
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it (what both the text
/// format and `le` / `quantile` labels use): `1e+06`, `0.25`, `+Inf`, `NaN`.
pub fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // Go's shortest 'g' switches to an exponent from 1e6 (precision 6) and below 1e-4.
    if (-4..6).contains(&exponent) {
        return value.to_string();
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The collector's names for the units and kinds its translator tests use.
    #[test]
    fn metric_names_as_the_collector_builds_them() {
        let name = |n: &str, unit: &str, kind| metric_name(n, unit, kind, "", true).unwrap();
        assert_eq!(
            name("http.server.duration", "ms", NameKind::Histogram),
            "http_server_duration_milliseconds"
        );
        assert_eq!(
            name("calls", "1", NameKind::MonotonicCounter),
            "calls_total"
        );
        assert_eq!(
            name("calls.total", "", NameKind::MonotonicCounter),
            "calls_total"
        );
        assert_eq!(
            name("cpu.utilization", "1", NameKind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            name("net.io", "By/s", NameKind::NonMonotonicCounter),
            "net_io_bytes_per_second"
        );
        assert_eq!(name("queue", "{items}", NameKind::Gauge), "queue");
        assert_eq!(name("2xx", "", NameKind::Gauge), "_2xx");
        assert_eq!(
            metric_name("a.b", "s", NameKind::MonotonicCounter, "ns", true).unwrap(),
            "ns_a_b_seconds_total"
        );
        assert_eq!(
            metric_name(
                "traces.spanmetrics.calls.total",
                "1",
                NameKind::MonotonicCounter,
                "",
                false
            )
            .unwrap(),
            "traces_spanmetrics_calls_total"
        );
        assert_eq!(metric_name("...", "", NameKind::Gauge, "", true), None);
    }

    #[test]
    fn label_names_squash_invalid_runs() {
        assert_eq!(label_name("http.method", false).unwrap(), "http_method");
        assert_eq!(label_name("a__b", false).unwrap(), "a_b");
        assert_eq!(label_name("1x", false).unwrap(), "key_1x");
        assert_eq!(label_name("_x", true).unwrap(), "key_x");
        assert_eq!(label_name("_x", false).unwrap(), "_x");
        assert_eq!(label_name("__name__", true).unwrap(), "__name__");
        assert_eq!(label_name("...", false), None);
        assert_eq!(label_name("...", true).unwrap(), "key_");
    }

    #[test]
    fn floats_as_go_writes_them() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.25), "0.25");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }
}
