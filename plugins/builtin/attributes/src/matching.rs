//! `include` and `exclude`: the collector's legacy match properties (`internal/filter/
//! filterconfig`, `filterspan`, `filterlog`, `filtermetric`), checked and evaluated per signal
//! as the collector does, since each signal accepts different properties:
//!
//! - spans: `services`, `span_names`, `span_kinds`, `attributes`, `resources`, `libraries`;
//! - log records: `log_bodies`, `log_severity_texts`, `log_severity_number`, `attributes`,
//!   `resources`, `libraries`;
//! - metrics: `metric_names` only. The collector accepts `resources` there but never applies
//!   it (its metric matcher reads names alone), and so does this.
//!
//! Within a property set everything given must match; within a list, one entry. An item is
//! processed when it matches `include` (if given) and does not match `exclude` (if given).
//! `match_type` is `strict` or `regexp` (Go's RE2 syntax, unanchored).

use attraction::goregex;
use attraction::value::{as_string, borrow, go_float_fixed, same};
use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use trailhead_plugin::{AnyValue, Batch, Level, SpanKind, StringColumn, Value, ValueColumn};

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One set of match properties (`include:` or `exclude:`), the collector's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchProperties {
    /// `strict` (exact strings) or `regexp` (Go regular expressions, unanchored). Required
    /// by every property but attribute and resource keys without a value, and
    /// `log_severity_number`.
    #[serde(default)]
    pub match_type: String,
    /// Options of the collector's regexp match cache. Accepted; a cache changes no result.
    #[serde(default)]
    pub regexp: Option<RegexpConfig>,
    /// Spans: the resource's `service.name` matches one of these.
    #[serde(default, deserialize_with = "nullable")]
    pub services: Vec<String>,
    /// Spans: the span's name matches one of these.
    #[serde(default, deserialize_with = "nullable")]
    pub span_names: Vec<String>,
    /// Spans: the span's kind (`SPAN_KIND_SERVER`, …) matches one of these.
    #[serde(default, deserialize_with = "nullable")]
    pub span_kinds: Vec<String>,
    /// Log records: the body, as a string (maps and lists as JSON), matches one of these.
    #[serde(default, deserialize_with = "nullable")]
    pub log_bodies: Vec<String>,
    /// Log records: the severity text matches one of these.
    #[serde(default, deserialize_with = "nullable")]
    pub log_severity_texts: Vec<String>,
    /// Log records: the severity number is at least `min` (unset matches only with
    /// `match_undefined`).
    #[serde(default)]
    pub log_severity_number: Option<SeverityNumber>,
    /// Metrics: the metric's name matches one of these.
    #[serde(default, deserialize_with = "nullable")]
    pub metric_names: Vec<String>,
    /// The item's attributes: each has the key, and the value if one is given.
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<AttributeConfig>,
    /// The resource's attributes: each has the key, and the value if one is given.
    #[serde(default, deserialize_with = "nullable")]
    pub resources: Vec<AttributeConfig>,
    /// The instrumentation scope: its name, and its version if given, match (every entry).
    #[serde(default, deserialize_with = "nullable")]
    pub libraries: Vec<LibraryConfig>,
}

/// `regexp:` under a property set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexpConfig {
    /// Cache match results (no effect on what matches).
    #[serde(default)]
    pub cacheenabled: bool,
    /// The cache's bound (no effect on what matches).
    #[serde(default)]
    pub cachemaxnumentries: i64,
}

/// `log_severity_number:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityNumber {
    /// The lowest severity number that matches (9 is INFO, 13 WARN, 17 ERROR).
    #[serde(default)]
    pub min: i32,
    /// Whether a record without a severity number matches.
    #[serde(default)]
    pub match_undefined: bool,
}

/// An attribute to match: its key, and optionally its value (any YAML type with `strict`, a
/// regular expression with `regexp`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: Option<Json>,
}

/// An instrumentation scope to match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    #[serde(default)]
    pub name: String,
    /// Unset: any version; `""`: only an empty version.
    #[serde(default)]
    pub version: Option<String>,
}

/// The signals, for what each accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Spans,
    Logs,
    Metrics,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "log records",
            Signal::Metrics => "metrics",
        }
    }
}

/// A list of strings to match against.
#[derive(Debug)]
enum FilterSet {
    Strict(HashSet<String>),
    Regexp(Vec<Regex>),
}

impl FilterSet {
    fn new(list: &[String], match_type: &str, at: &str) -> Result<FilterSet, String> {
        match match_type {
            "strict" => Ok(FilterSet::Strict(list.iter().cloned().collect())),
            "regexp" => {
                let mut seen = HashSet::new();
                let mut regexes = Vec::new();
                for (i, pattern) in list.iter().enumerate() {
                    if seen.insert(pattern) {
                        let re =
                            goregex::compile(pattern).map_err(|e| format!("{at}[{i}]: {e}"))?;
                        regexes.push(re);
                    }
                }
                Ok(FilterSet::Regexp(regexes))
            }
            other => Err(unrecognized(other, at)),
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            FilterSet::Strict(set) => set.contains(s),
            FilterSet::Regexp(regexes) => regexes.iter().any(|r| r.is_match(s)),
        }
    }
}

fn unrecognized(match_type: &str, at: &str) -> String {
    let at = at.rsplit_once('.').map_or(at, |(parent, _)| parent);
    format!("{at}.match_type: `{match_type}` is not a match type: expected strict or regexp")
}

/// A check of one attribute.
#[derive(Debug)]
enum AttrTest {
    Exists,
    Equals(AnyValue),
    Matches(FilterSet),
}

#[derive(Debug)]
struct AttrMatcher {
    key: String,
    test: AttrTest,
}

impl AttrMatcher {
    fn compile(list: &[AttributeConfig], match_type: &str, at: &str) -> Result<Vec<Self>, String> {
        list.iter()
            .enumerate()
            .map(|(j, a)| {
                let at = format!("{at}[{j}]");
                if a.key.is_empty() {
                    return Err(format!("{at}.key: must not be empty"));
                }
                let test = match a.value.as_ref().filter(|v| !v.is_null()) {
                    None => AttrTest::Exists,
                    Some(value) => match match_type {
                        "regexp" => match value {
                            Json::String(s) => AttrTest::Matches(FilterSet::new(
                                std::slice::from_ref(s),
                                match_type,
                                &format!("{at}.value"),
                            )?),
                            _ => {
                                return Err(format!(
                                    "{at}.value: match_type regexp takes a string (a regular expression)"
                                ));
                            }
                        },
                        "strict" => AttrTest::Equals(attraction::value::from_json(value).to_any_value()),
                        other => return Err(unrecognized(other, &format!("{at}.value"))),
                    },
                };
                Ok(AttrMatcher {
                    key: a.key.clone(),
                    test,
                })
            })
            .collect()
    }

    fn test(&self, value: Option<Value<'_>>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match &self.test {
            AttrTest::Exists => true,
            AttrTest::Equals(want) => same(&borrow(want), &value),
            AttrTest::Matches(set) => match value {
                Value::Str(s) => set.matches(s),
                Value::Bool(b) => set.matches(if b { "true" } else { "false" }),
                Value::Double(d) => set.matches(&go_float_fixed(d)),
                Value::Int(i) => set.matches(&i.to_string()),
                _ => false,
            },
        }
    }
}

/// One property set, checked for one signal.
#[derive(Debug, Default)]
pub struct Properties {
    services: Option<FilterSet>,
    span_names: Option<FilterSet>,
    span_kinds: Option<FilterSet>,
    bodies: Option<FilterSet>,
    severity_texts: Option<FilterSet>,
    severity_number: Option<(i32, bool)>,
    metric_names: Option<FilterSet>,
    libraries: Vec<(FilterSet, Option<FilterSet>)>,
    attributes: Vec<AttrMatcher>,
    resources: Vec<AttrMatcher>,
}

const SPAN_KINDS: [&str; 5] = [
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_CONSUMER",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_SERVER",
];

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// The error for properties a signal does not take.
fn not_valid(at: &str, fields: &[&str], signal: Signal) -> String {
    format!(
        "{at}.{}: not valid for {}",
        fields.join(", "),
        signal.name()
    )
}

impl Properties {
    /// Checks `mp` for `signal` as the collector does; `Ok(None)` where the collector builds
    /// no matcher (metrics without `metric_names`).
    pub fn compile(mp: &MatchProperties, signal: Signal, at: &str) -> Result<Option<Self>, String> {
        let mt = mp.match_type.as_str();
        let given = |list: &[&'static str]| -> Vec<&'static str> {
            list.iter()
                .copied()
                .filter(|f| match *f {
                    "services" => !mp.services.is_empty(),
                    "span_names" => !mp.span_names.is_empty(),
                    "span_kinds" => !mp.span_kinds.is_empty(),
                    "log_bodies" => !mp.log_bodies.is_empty(),
                    "log_severity_texts" => !mp.log_severity_texts.is_empty(),
                    "log_severity_number" => mp.log_severity_number.is_some(),
                    "metric_names" => !mp.metric_names.is_empty(),
                    "attributes" => !mp.attributes.is_empty(),
                    "resources" => !mp.resources.is_empty(),
                    "libraries" => !mp.libraries.is_empty(),
                    _ => false,
                })
                .collect()
        };
        let mut p = Properties::default();
        let set = |list: &[String], field: &str| -> Result<Option<FilterSet>, String> {
            if list.is_empty() {
                Ok(None)
            } else {
                FilterSet::new(list, mt, &format!("{at}.{field}")).map(Some)
            }
        };
        match signal {
            Signal::Spans => {
                let wrong = given(&[
                    "log_bodies",
                    "log_severity_texts",
                    "log_severity_number",
                    "metric_names",
                ]);
                if !wrong.is_empty() {
                    return Err(not_valid(at, &wrong, signal));
                }
                if given(&[
                    "services",
                    "span_names",
                    "span_kinds",
                    "attributes",
                    "libraries",
                    "resources",
                ])
                .is_empty()
                {
                    return Err(format!(
                        "{at}: give at least one of services, span_names, span_kinds, attributes, resources or libraries"
                    ));
                }
                if mt == "strict"
                    && let Some(bad) = mp
                        .span_kinds
                        .iter()
                        .find(|k| !SPAN_KINDS.contains(&k.as_str()))
                {
                    return Err(format!(
                        "{at}.span_kinds: `{bad}` is not a span kind; with match_type strict use one of {}",
                        SPAN_KINDS.join(", ")
                    ));
                }
                p.common(mp, at)?;
                p.services = set(&mp.services, "services")?;
                p.span_names = set(&mp.span_names, "span_names")?;
                p.span_kinds = set(&mp.span_kinds, "span_kinds")?;
            }
            Signal::Logs => {
                let wrong = given(&["span_names", "services", "span_kinds", "metric_names"]);
                if !wrong.is_empty() {
                    return Err(not_valid(at, &wrong, signal));
                }
                if given(&[
                    "attributes",
                    "libraries",
                    "resources",
                    "log_bodies",
                    "log_severity_texts",
                    "log_severity_number",
                ])
                .is_empty()
                {
                    return Err(format!(
                        "{at}: give at least one of attributes, resources, libraries, log_bodies, log_severity_texts or log_severity_number"
                    ));
                }
                p.common(mp, at)?;
                p.bodies = set(&mp.log_bodies, "log_bodies")?;
                p.severity_texts = set(&mp.log_severity_texts, "log_severity_texts")?;
                p.severity_number = mp
                    .log_severity_number
                    .as_ref()
                    .map(|s| (s.min, s.match_undefined));
            }
            Signal::Metrics => {
                let wrong = given(&[
                    "log_bodies",
                    "log_severity_texts",
                    "span_names",
                    "services",
                    "span_kinds",
                    "attributes",
                    "libraries",
                    "log_severity_number",
                ]);
                if !wrong.is_empty() {
                    return Err(not_valid(at, &wrong, signal));
                }
                if given(&["metric_names", "resources"]).is_empty() {
                    return Err(format!(
                        "{at}: give at least one of metric_names or resources"
                    ));
                }
                if mp.metric_names.is_empty() {
                    return Ok(None);
                }
                p.metric_names = set(&mp.metric_names, "metric_names")?;
            }
        }
        Ok(Some(p))
    }

    /// What spans and log records share: libraries, attributes, resources.
    fn common(&mut self, mp: &MatchProperties, at: &str) -> Result<(), String> {
        let mt = mp.match_type.as_str();
        for (i, library) in mp.libraries.iter().enumerate() {
            let at = format!("{at}.libraries[{i}]");
            let name = FilterSet::new(
                std::slice::from_ref(&library.name),
                mt,
                &format!("{at}.name"),
            )?;
            let version = match &library.version {
                Some(v) => Some(FilterSet::new(
                    std::slice::from_ref(v),
                    mt,
                    &format!("{at}.version"),
                )?),
                None => None,
            };
            self.libraries.push((name, version));
        }
        self.attributes = AttrMatcher::compile(&mp.attributes, mt, &format!("{at}.attributes"))?;
        self.resources = AttrMatcher::compile(&mp.resources, mt, &format!("{at}.resources"))?;
        Ok(())
    }

    fn needs(&self, needs: &mut Needs) {
        needs.service |= self.services.is_some();
        needs.names |= self.span_names.is_some() || self.metric_names.is_some();
        needs.kinds |= self.span_kinds.is_some();
        needs.bodies |= self.bodies.is_some();
        needs.severity_texts |= self.severity_texts.is_some();
        needs.severity_numbers |= self.severity_number.is_some();
        needs.scopes |= !self.libraries.is_empty();
        needs
            .attrs
            .extend(self.attributes.iter().map(|a| a.key.clone()));
        needs
            .resource_attrs
            .extend(self.resources.iter().map(|a| a.key.clone()));
    }

    fn matches(&self, v: &View, i: usize) -> bool {
        if let Some(set) = &self.services {
            let name = match v.service.as_ref().and_then(|c| c.get(v.resource(i))) {
                Some(value) => as_string(&value),
                None => "<nil-service-name>".to_string(),
            };
            if !set.matches(&name) {
                return false;
            }
        }
        let names = |set: &Option<FilterSet>| {
            set.as_ref()
                .is_none_or(|s| s.matches(v.names.as_ref().map_or("", |n| n.get(i))))
        };
        if !names(&self.span_names) || !names(&self.metric_names) {
            return false;
        }
        if let Some(set) = &self.span_kinds
            && !set.matches(kind_name(v.kinds[i]))
        {
            return false;
        }
        if let Some(set) = &self.bodies {
            let body = v.bodies.as_ref().and_then(|b| b.get(i));
            if !set.matches(&body.map(|b| as_string(&b)).unwrap_or_default()) {
                return false;
            }
        }
        if let Some(set) = &self.severity_texts
            && !set.matches(v.severity_texts.as_ref().map_or("", |t| t.get(i)))
        {
            return false;
        }
        if let Some((min, undefined)) = self.severity_number {
            let n = v.severity_numbers[i];
            if !(if n == 0 { undefined } else { n >= min }) {
                return false;
            }
        }
        for (name, version) in &self.libraries {
            let scope = v.scope(i);
            let names = v.scope_names.as_ref().expect("fetched");
            if !name.matches(names.get(scope)) {
                return false;
            }
            if let Some(version) = version
                && !version.matches(v.scope_versions.as_ref().expect("fetched").get(scope))
            {
                return false;
            }
        }
        for m in &self.resources {
            if !m.test(v.resource_attrs[&m.key].get(v.resource(i))) {
                return false;
            }
        }
        self.attributes
            .iter()
            .all(|m| m.test(v.attrs[&m.key].get(i)))
    }
}

/// What the properties of a signal read from a batch.
#[derive(Default)]
pub struct Needs {
    pub service: bool,
    pub names: bool,
    pub kinds: bool,
    pub bodies: bool,
    pub severity_texts: bool,
    pub severity_numbers: bool,
    scopes: bool,
    attrs: Vec<String>,
    resource_attrs: Vec<String>,
}

/// The columns the properties read, fetched once per batch. The signal-specific ones
/// (`names`, `kinds`, …) are filled by the caller from what [`Needs`] says.
#[derive(Default)]
pub struct View {
    scope_of: Vec<u32>,
    resource_of: Vec<u32>,
    scope_names: Option<StringColumn>,
    scope_versions: Option<StringColumn>,
    attrs: HashMap<String, ValueColumn>,
    resource_attrs: HashMap<String, ValueColumn>,
    pub service: Option<ValueColumn>,
    pub names: Option<StringColumn>,
    pub kinds: Vec<SpanKind>,
    pub bodies: Option<ValueColumn>,
    pub severity_texts: Option<StringColumn>,
    pub severity_numbers: Vec<i32>,
}

impl View {
    fn scope(&self, item: usize) -> usize {
        self.scope_of[item] as usize
    }

    fn resource(&self, item: usize) -> usize {
        self.resource_of[self.scope(item)] as usize
    }
}

/// `include` and `exclude`, checked for one signal.
#[derive(Debug, Default)]
pub struct Skip {
    pub include: Option<Properties>,
    pub exclude: Option<Properties>,
}

impl Skip {
    pub fn compile(
        include: Option<&MatchProperties>,
        exclude: Option<&MatchProperties>,
        signal: Signal,
    ) -> Result<Skip, String> {
        let include = match include {
            Some(mp) => Properties::compile(mp, signal, "include")?,
            None => None,
        };
        let exclude = match exclude {
            Some(mp) => Properties::compile(mp, signal, "exclude")?,
            None => None,
        };
        Ok(Skip { include, exclude })
    }

    /// What the batch must give for these properties.
    pub fn needs(&self) -> Option<Needs> {
        if self.include.is_none() && self.exclude.is_none() {
            return None;
        }
        let mut needs = Needs::default();
        for p in self.include.iter().chain(&self.exclude) {
            p.needs(&mut needs);
        }
        Some(needs)
    }

    /// Reads the shared columns `needs` asks for.
    pub fn view(batch: &impl Batch, needs: &Needs) -> View {
        let mut v = View {
            scope_of: batch.parents(Level::Item),
            ..View::default()
        };
        if needs.service || !needs.resource_attrs.is_empty() {
            v.resource_of = batch.parents(Level::Scope);
        }
        if needs.service {
            v.service = Some(batch.attr_column(Level::Resource, "service.name"));
        }
        if needs.scopes {
            v.scope_names = Some(batch.scope_names());
            v.scope_versions = Some(batch.scope_versions());
        }
        for key in &needs.attrs {
            if !v.attrs.contains_key(key) {
                v.attrs
                    .insert(key.clone(), batch.attr_column(Level::Item, key));
            }
        }
        for key in &needs.resource_attrs {
            if !v.resource_attrs.contains_key(key) {
                v.resource_attrs
                    .insert(key.clone(), batch.attr_column(Level::Resource, key));
            }
        }
        v
    }

    /// The items to process: those matching `include` and not `exclude`.
    pub fn selected(&self, view: &View, count: usize) -> Vec<u32> {
        (0..count)
            .filter(|&i| {
                self.include.as_ref().is_none_or(|p| p.matches(view, i))
                    && !self.exclude.as_ref().is_some_and(|p| p.matches(view, i))
            })
            .map(|i| i as u32)
            .collect()
    }
}
