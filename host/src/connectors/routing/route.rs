//! How `routing` splits a request: every item (span, log record, metric) gets an owner, the
//! first route whose condition its resource (or, in the `span` context, the span itself)
//! meets, else the default pipelines, else none (dropped, as the collector drops it). The
//! routes run in table order, each over what earlier routes left, as the collector's does.
//! Each owner then gets a request of its items under copies of their own resource and scope
//! fields; when one owner takes everything, the request goes on as it came.

use super::{ErrorMode, Routing};
use crate::pdata::wire::{self, Value};
use crate::pdata::{Batch, Signal};
use crate::pipeline::connector::{ConnectError, Connected, Connector};
use crate::processors::ottl::Context;
use crate::processors::ottl::read::{Walk, resources};
use bytes::Bytes;
use std::collections::BTreeSet;

/// Where each item goes: a route's index, `default` (one past the routes), or nowhere.
type Owners = Vec<Option<usize>>;

impl Connector for Routing {
    fn id(&self) -> &str {
        &self.id
    }

    fn signals(&self) -> (Signal, Signal) {
        (self.signal, self.signal)
    }

    fn consume(&self, batch: Batch) -> Result<Connected, ConnectError> {
        let failed = |message: String| ConnectError {
            connector: self.id.clone(),
            message,
        };
        let payload = batch.payload.to_bytes();
        let owners = self.owners(&payload).map_err(failed)?;
        let used: BTreeSet<usize> = owners.iter().flatten().copied().collect();
        let mut connected = Connected::default();
        for owner in used {
            let to = match self.routes.get(owner) {
                Some(route) => route.to.clone(),
                None => match &self.default {
                    Some(default) => default.clone(),
                    None => continue,
                },
            };
            let part = if owners.iter().all(|o| *o == Some(owner)) {
                batch.clone()
            } else {
                let encoded = Bytes::from(keep(&payload, &owners, owner));
                Batch::from_protobuf(self.signal, encoded, batch.context.clone())
                    .map_err(|e| failed(format!("cannot split the request: {e}")))?
            };
            connected.outputs.push((to, part));
        }
        Ok(connected)
    }
}

impl Routing {
    /// Each item's owner, in the request's order.
    fn owners(&self, payload: &[u8]) -> Result<Owners, String> {
        let conditions = self.conditions()?;
        let resource_of = items_by_resource(payload);
        let mut owners: Owners = vec![None; resource_of.len()];
        let resource_items = resources(payload);
        let span_walk = self
            .routes
            .iter()
            .any(|r| r.context == Context::Span)
            .then(|| Walk::new(payload, resource_of.len(), false));
        for (index, (route, condition)) in self.routes.iter().zip(conditions.iter()).enumerate() {
            let by_span = route.context == Context::Span;
            let items = match &span_walk {
                Some(walk) if by_span => &walk.spans,
                _ => &resource_items,
            };
            let outcome = condition.eval(items);
            for (item, failure) in outcome.errors.iter().map(|e| (e.item, &e.message)) {
                let message = format!("failed to eval condition: {}, {failure}", condition.text);
                match self.error_mode {
                    ErrorMode::Propagate => return Err(message),
                    ErrorMode::Ignore => tracing::warn!(connector = %self.id, item, "{message}"),
                    ErrorMode::Silent => {}
                }
            }
            let failed: BTreeSet<usize> = outcome.errors.iter().map(|e| e.item).collect();
            let met =
                |i: usize| outcome.matched.get(i).copied().unwrap_or(false) && !failed.contains(&i);
            for (leaf, owner) in owners.iter_mut().enumerate() {
                let item = if by_span { leaf } else { resource_of[leaf] };
                if owner.is_none() && met(item) {
                    *owner = Some(index);
                }
            }
        }
        let default = self.default.as_ref().map(|_| self.routes.len());
        for owner in owners.iter_mut().filter(|o| o.is_none()) {
            *owner = default;
        }
        Ok(owners)
    }
}

/// The index of each item's resource, in the request's order (items are the leaves: spans,
/// log records, metrics, each field 2 of its scope, each scope field 2 of its resource).
fn items_by_resource(payload: &[u8]) -> Vec<usize> {
    let mut resource_of = Vec::new();
    for (index, resource) in wire::messages(payload, 1).enumerate() {
        for scope in wire::messages(resource, 2) {
            resource_of.extend(wire::messages(scope, 2).map(|_| index));
        }
    }
    resource_of
}

/// The request with only the items `owner` owns, each under a copy of its resource's and
/// scope's other fields; resources and scopes left empty are left out.
fn keep(payload: &[u8], owners: &Owners, owner: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut leaf = 0;
    for resource in wire::messages(payload, 1) {
        let mut kept_resource = Vec::new();
        let mut any = false;
        for (number, value, raw) in wire::fields(resource) {
            let scope = match (number, value) {
                (2, Value::Bytes(scope)) => scope,
                _ => {
                    kept_resource.extend_from_slice(raw);
                    continue;
                }
            };
            let mut kept_scope = Vec::new();
            let mut scope_any = false;
            for (number, value, raw) in wire::fields(scope) {
                if let (2, Value::Bytes(_)) = (number, value) {
                    if owners[leaf] == Some(owner) {
                        kept_scope.extend_from_slice(raw);
                        scope_any = true;
                    }
                    leaf += 1;
                } else {
                    kept_scope.extend_from_slice(raw);
                }
            }
            if scope_any {
                wire::put_bytes_field(&mut kept_resource, 2, &kept_scope);
                any = true;
            }
        }
        if any {
            wire::put_bytes_field(&mut out, 1, &kept_resource);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Routing, RoutingConnectorConfig};
    use super::*;
    use crate::pdata::RequestContext;
    use crate::pipeline::Fanout;
    use crate::telemetry::ReceiverMetrics;
    use crate::telemetry::metrics::Registry;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use std::sync::Arc;

    fn attr(key: &str, value: &str) -> KeyValue {
        let value = any_value::Value::StringValue(value.into());
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn zero() -> KeyValue {
        let value = any_value::Value::IntValue(0);
        KeyValue {
            key: "zero".into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// A request of resources `(service, [(span name, env)])`.
    fn request(resources: &[(&str, &[(&str, &str)])]) -> Batch {
        let resource_spans = resources.iter().map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .iter()
                    .map(|(name, env)| Span {
                        name: name.to_string(),
                        attributes: vec![attr("env", env), zero()],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let message = ExportTraceServiceRequest {
            resource_spans: resource_spans.collect(),
        };
        Batch::from_message(Signal::Traces, &message, RequestContext::internal("test"))
    }

    /// Routes `batch` with the routing settings `config` (YAML); each output as its
    /// fan-out's index in creation order (routes first, then the default) and its spans'
    /// names, or the error.
    fn route(config: &str, batch: Batch) -> Result<Vec<(usize, Vec<String>)>, String> {
        let config: RoutingConnectorConfig = serde_saphyr::from_str(config).unwrap();
        assert_eq!(config.problems(), []);
        let registry = Registry::default();
        let made = std::cell::RefCell::new(Vec::new());
        let outlet = |_: &[ComponentId]| {
            let metrics = ReceiverMetrics::new(&registry, "routing", Signal::Traces);
            let fanout = Arc::new(Fanout::new(Signal::Traces, Vec::new(), metrics));
            made.borrow_mut().push(fanout.clone());
            fanout
        };
        let routing = Routing::new("routing", Signal::Traces, &config, outlet)?;
        let connected = routing.consume(batch).map_err(|e| e.to_string())?;
        let made = made.borrow();
        let mut outputs = Vec::new();
        for (to, part) in connected.outputs {
            let index = made.iter().position(|f| Arc::ptr_eq(f, &to)).unwrap();
            let decoded = ExportTraceServiceRequest::decode(part.payload.to_bytes()).unwrap();
            let names = decoded.resource_spans.iter().flat_map(|r| &r.scope_spans);
            let names = names
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone())
                .collect();
            outputs.push((index, names));
        }
        outputs.sort();
        Ok(outputs)
    }

    use crate::config::ComponentId;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const TWO_SERVICES: &[(&str, &[(&str, &str)])] = &[
        ("cart", &[("c1", "prod"), ("c2", "dev")]),
        ("shop", &[("s1", "prod")]),
    ];

    // Resource context: a resource goes to the first route it meets, whole; what none takes
    // goes to the default pipelines, or nowhere without them.
    #[test]
    fn a_resource_goes_to_its_first_matching_route() {
        let config = "default_pipelines: [traces/d]\ntable:\n  - {condition: 'attributes[\"service.name\"] == \"cart\"', pipelines: [traces/a]}\n  - {statement: 'route() where attributes[\"service.name\"] != \"\"', pipelines: [traces/b]}\n";
        let got = route(config, request(TWO_SERVICES)).unwrap();
        assert_eq!(got, [(0, names(&["c1", "c2"])), (1, names(&["s1"]))]);
        let none = "default_pipelines: [traces/d]\ntable:\n  - {condition: 'attributes[\"service.name\"] == \"x\"', pipelines: [traces/a]}\n";
        assert_eq!(
            route(none, request(TWO_SERVICES)).unwrap(),
            [(1, names(&["c1", "c2", "s1"]))]
        );
        let no_default = "table:\n  - {condition: 'attributes[\"service.name\"] == \"shop\"', pipelines: [traces/a]}\n";
        assert_eq!(
            route(no_default, request(TWO_SERVICES)).unwrap(),
            [(0, names(&["s1"]))]
        );
    }

    // Span context: each span on its own; a later resource route takes what is left of its
    // resource.
    #[test]
    fn spans_route_one_by_one_before_later_resource_routes() {
        let config = "default_pipelines: [traces/d]\ntable:\n  - {context: span, condition: 'attributes[\"env\"] == \"prod\"', pipelines: [traces/a]}\n  - {condition: 'attributes[\"service.name\"] == \"cart\"', pipelines: [traces/b]}\n";
        let got = route(config, request(TWO_SERVICES)).unwrap();
        assert_eq!(got, [(0, names(&["c1", "s1"])), (1, names(&["c2"]))]);
    }

    // error_mode: `propagate` (the default) fails the request; `ignore` and `silent` count
    // the failing condition as unmet, so the item goes on to later routes or the default.
    #[test]
    fn error_mode_decides_what_a_failing_condition_does() {
        let table = "default_pipelines: [traces/d]\ntable:\n  - {context: span, condition: '10 / attributes[\"zero\"] > 1', pipelines: [traces/a]}\n";
        let batch = || request(&[("cart", &[("c1", "prod")])]);
        let error = route(table, batch()).unwrap_err();
        assert!(error.contains("failed to eval condition"), "{error}");
        for mode in ["ignore", "silent"] {
            let config = format!("error_mode: {mode}\n{table}");
            assert_eq!(route(&config, batch()).unwrap(), [(1, names(&["c1"]))]);
        }
    }

    // The collector's validation, each on its key.
    #[test]
    fn bad_tables_are_refused_on_their_keys() {
        let problems = |yaml: &str| {
            let config: RoutingConnectorConfig = serde_saphyr::from_str(yaml).unwrap();
            config.problems()
        };
        let one = |key: &str, why: &str| vec![(key.to_string(), why.to_string())];
        assert_eq!(
            problems("default_pipelines: [traces]\n"),
            one("table", "invalid routing table: the routing table is empty")
        );
        assert_eq!(
            problems("table: [{pipelines: [traces]}]\n"),
            one(
                "table[0]",
                "invalid route: no condition or statement provided"
            )
        );
        assert_eq!(
            problems("table: [{condition: 'true', statement: 'route()', pipelines: [traces]}]\n"),
            one(
                "table[0]",
                "invalid route: both condition and statement provided"
            )
        );
        assert_eq!(
            problems("table: [{condition: 'true'}]\n"),
            one("table[0].pipelines", "invalid route: no pipelines defined")
        );
        assert_eq!(
            problems("table: [{context: scope, condition: 'true', pipelines: [t]}]\n"),
            one("table[0].context", "invalid context: scope")
        );
        let bad_path = problems("table: [{condition: 'name == \"x\"', pipelines: [t]}]\n");
        assert_eq!(bad_path[0].0, "table[0].condition");
        assert!(
            bad_path[0]
                .1
                .contains("unknown path `name` in the resource context"),
            "{bad_path:?}"
        );
        let log = problems("table: [{context: log, condition: 'true', pipelines: [t]}]\n");
        assert!(log[0].1.contains("not supported by trailhead"), "{log:?}");
        assert_eq!(
            problems("error_mode: loud\ntable: [{condition: 'true', pipelines: [t]}]\n")[0].0,
            "error_mode"
        );
    }
}
