//! `routing`: each resource, or each span, goes to the pipelines of the first route of the
//! table whose condition it meets, and what no route takes to `default_pipelines` (contrib's
//! `connector/routingconnector`, v0.161.0). Same signal in and out.
//!
//! A route is `condition: <OTTL condition>` or `statement: route() where <condition>`, in the
//! `resource` context (every signal: `attributes` are the resource's) or the `span` context
//! (traces). The collector's `metric`, `datapoint`, `log` and the deprecated `request`
//! contexts are refused with the reason: trailhead has no native OTTL reader for those items
//! yet. Conditions are trailhead's native OTTL ([`crate::processors::ottl`]), the same
//! evaluator as tail_sampling's `ottl_condition`.

mod route;

use crate::config::ComponentId;
use crate::pdata::Signal;
use crate::pipeline::Fanout;
use crate::processors::ottl::{self, Condition, Context};
use serde::Deserialize;
use std::sync::Arc;

/// `routing`'s settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConnectorConfig {
    /// Pipelines that take what no route takes; without them it is dropped, as the collector drops it.
    pub default_pipelines: Vec<ComponentId>,
    /// `propagate` (the default: a condition that fails to evaluate fails the request), `ignore` (it counts as unmet, with a warning) or `silent`.
    pub error_mode: String,
    /// The routes, in order: an item goes to the first whose condition it meets.
    pub table: Vec<RouteConfig>,
}

/// One route of `table`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// `resource` (the default) or `span` (traces).
    pub context: String,
    /// `route() where <condition>`; or give `condition`.
    pub statement: String,
    /// An OTTL condition; or give `statement`.
    pub condition: String,
    /// The pipelines that take what this route matches.
    pub pipelines: Vec<ComponentId>,
}

/// What a condition that fails to evaluate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Propagate,
    Ignore,
    Silent,
}

impl RoutingConnectorConfig {
    /// The error mode, or why it is not one.
    pub fn error_mode(&self) -> Result<ErrorMode, String> {
        match self.error_mode.to_lowercase().as_str() {
            "" | "propagate" => Ok(ErrorMode::Propagate),
            "ignore" => Ok(ErrorMode::Ignore),
            "silent" => Ok(ErrorMode::Silent),
            other => Err(format!(
                "unknown error mode {other}; expected propagate, ignore or silent"
            )),
        }
    }

    /// What the collector refuses, and what trailhead cannot route, as (dotted key, why).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(why) = self.error_mode() {
            problems.push(("error_mode".to_string(), why));
        }
        if self.table.is_empty() {
            let why = "invalid routing table: the routing table is empty";
            problems.push(("table".into(), why.into()));
        }
        for (i, route) in self.table.iter().enumerate() {
            if let Err((key, why)) = route.check() {
                problems.push((format!("table[{i}]{key}"), why));
            }
        }
        problems
    }
}

impl RoutingConnectorConfig {
    /// Routes that cannot run on `signal`, as (dotted key, why).
    pub fn signal_problems(&self, signal: Signal) -> Vec<(String, String)> {
        let span_routes = self.table.iter().enumerate();
        span_routes
            .filter(|(_, r)| r.context == "span" && signal != Signal::Traces)
            .map(|(i, _)| {
                let why = format!("the `span` context routes traces; a {signal} pipeline exports to this connector");
                (format!("table[{i}].context"), why)
            })
            .collect()
    }
}

impl RouteConfig {
    /// The context it runs in, or why not (with the key under the route that says it).
    pub fn context(&self) -> Result<Context, (&'static str, String)> {
        match self.context.as_str() {
            "" | "resource" => Ok(Context::Resource),
            "span" => Ok(Context::Span),
            "metric" | "datapoint" | "log" | "request" => Err((
                ".context",
                format!(
                    "the `{}` context is not supported by trailhead's routing connector yet: use `resource` (every signal) or `span` (traces)",
                    self.context
                ),
            )),
            other => Err((".context", format!("invalid context: {other}"))),
        }
    }

    /// Its condition: `condition`, or what `statement` routes on.
    pub fn condition_text(&self) -> Result<&str, (&'static str, String)> {
        match (self.statement.is_empty(), self.condition.is_empty()) {
            (true, true) => Err((
                "",
                "invalid route: no condition or statement provided".into(),
            )),
            (false, false) => Err((
                "",
                "invalid route: both condition and statement provided".into(),
            )),
            (true, false) => Ok(&self.condition),
            (false, true) => {
                let statement = self.statement.trim();
                let rest = statement.strip_prefix("route()").map(str::trim_start);
                match rest.and_then(|r| r.strip_prefix("where ")) {
                    Some(condition) => Ok(condition.trim()),
                    None => Err((
                        ".statement",
                        format!(
                            "`{statement}`: a routing statement is `route() where <condition>`"
                        ),
                    )),
                }
            }
        }
    }

    /// The route parsed, or the first thing wrong with it.
    fn check(&self) -> Result<Condition, (&'static str, String)> {
        let text = self.condition_text()?;
        if self.pipelines.is_empty() {
            return Err((".pipelines", "invalid route: no pipelines defined".into()));
        }
        let ctx = self.context()?;
        let key = if self.condition.is_empty() {
            ".statement"
        } else {
            ".condition"
        };
        Condition::parse(text, "", ctx).map_err(|e| (key, e.trim_start_matches(": ").to_string()))
    }
}

/// One route, built: its context, condition text and where it sends.
struct Route {
    context: Context,
    condition: String,
    to: Arc<Fanout>,
}

/// One `routing` instance, for one signal.
pub struct Routing {
    id: String,
    signal: Signal,
    /// Its key for the per-thread parse of the conditions.
    parsed_id: u64,
    routes: Vec<Route>,
    default: Option<Arc<Fanout>>,
    error_mode: ErrorMode,
}

impl Drop for Routing {
    fn drop(&mut self) {
        ottl::forget(self.parsed_id);
    }
}

impl Routing {
    /// The instance of `config` for `signal`; `outlet` gives the fan-out over a list of
    /// downstream pipelines. `config` has passed [`RoutingConnectorConfig::problems`].
    pub fn new(
        id: &str,
        signal: Signal,
        config: &RoutingConnectorConfig,
        outlet: impl Fn(&[ComponentId]) -> Arc<Fanout>,
    ) -> Result<Routing, String> {
        let mut routes = Vec::new();
        for (i, route) in config.table.iter().enumerate() {
            let at = |(key, why): (&str, String)| format!("table[{i}]{key}: {why}");
            let context = route.context().map_err(at)?;
            let condition = route.condition_text().map_err(at)?.to_string();
            let to = outlet(&route.pipelines);
            routes.push(Route {
                context,
                condition,
                to,
            });
        }
        let default =
            (!config.default_pipelines.is_empty()).then(|| outlet(&config.default_pipelines));
        Ok(Routing {
            id: id.to_string(),
            signal,
            parsed_id: ottl::next_id(),
            routes,
            default,
            error_mode: config
                .error_mode()
                .map_err(|e| format!("error_mode: {e}"))?,
        })
    }

    /// This thread's parse of the routes' conditions, in table order.
    fn conditions(&self) -> Result<std::rc::Rc<Vec<Condition>>, String> {
        ottl::cached(self.parsed_id, || {
            let parse = |r: &Route| Condition::parse(&r.condition, "", r.context);
            self.routes.iter().map(parse).collect()
        })
    }
}
