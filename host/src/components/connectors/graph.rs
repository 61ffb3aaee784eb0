//! The graph connectors make of the pipelines, with the collector's rules (v0.161.0,
//! `service/internal/graph` and `otelcol/config.go`): a connector listed as an exporter of
//! pipelines of signal X and as a receiver of pipelines of signal Y is one instance per
//! (X, Y) pair its kind connects; every signal it is exported in must reach a receiving
//! pipeline it connects to and every signal it is received in must come from one; an id may
//! not be both a connector and a receiver or exporter; the graph has no cycle. A connector
//! defined and listed nowhere is left alone, as the collector leaves any unused component.

use crate::components::{Config, ConnectorConfig};
use crate::config::{ComponentId, Diagnostic, Report};
use crate::pdata::Signal;
use std::collections::{BTreeMap, BTreeSet};

/// One connector instance: its id and the signals it takes and gives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    pub id: ComponentId,
    pub from: Signal,
    pub to: Signal,
}

/// Where one connector is listed: the pipelines exporting to it and receiving from it.
#[derive(Default)]
struct Uses<'c> {
    upstream: Vec<&'c ComponentId>,
    downstream: Vec<&'c ComponentId>,
}

/// A node of the graph walked for cycles and for the build order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node<'c> {
    Pipeline(&'c ComponentId),
    Connector(Instance),
}

fn signal_of(pipeline: &ComponentId) -> Option<Signal> {
    Signal::parse(&pipeline.kind)
}

impl Config {
    /// Each connector listed by a pipeline, with where it is listed.
    fn connector_uses(&self) -> BTreeMap<&ComponentId, (&ConnectorConfig, Uses<'_>)> {
        let mut uses: BTreeMap<&ComponentId, (&ConnectorConfig, Uses<'_>)> = BTreeMap::new();
        for (pid, pipeline) in &self.service.pipelines {
            let listed = [(&pipeline.exporters, true), (&pipeline.receivers, false)];
            for (ids, as_exporter) in listed {
                for id in ids {
                    let Some(connector) = self.connectors.get(id) else {
                        continue;
                    };
                    let (_, found) = uses.entry(id).or_insert((connector, Uses::default()));
                    match as_exporter {
                        true => found.upstream.push(pid),
                        false => found.downstream.push(pid),
                    }
                }
            }
        }
        uses
    }

    /// Every connector instance the pipelines make, in id order.
    pub fn connector_instances(&self) -> Vec<Instance> {
        let mut instances = BTreeSet::new();
        for (id, (connector, uses)) in self.connector_uses() {
            for from in uses.upstream.iter().filter_map(|p| signal_of(p)) {
                for to in uses.downstream.iter().filter_map(|p| signal_of(p)) {
                    if connector.behaviour().connects(from, to) {
                        let (id, from, to) = (id.clone(), from, to);
                        instances.insert(Instance { id, from, to });
                    }
                }
            }
        }
        instances.into_iter().collect()
    }

    /// The pipelines each node leads to: a pipeline to the instances of the connectors it
    /// exports to, an instance to the pipelines of its out-signal receiving from it.
    fn connector_edges(&self) -> BTreeMap<Node<'_>, Vec<Node<'_>>> {
        let mut edges: BTreeMap<Node<'_>, Vec<Node<'_>>> = BTreeMap::new();
        for instance in self.connector_instances() {
            for (pid, pipeline) in &self.service.pipelines {
                let signal = signal_of(pid);
                let node = Node::Connector(instance.clone());
                if signal == Some(instance.from) && pipeline.exporters.contains(&instance.id) {
                    edges
                        .entry(Node::Pipeline(pid))
                        .or_default()
                        .push(node.clone());
                }
                if signal == Some(instance.to) && pipeline.receivers.contains(&instance.id) {
                    edges.entry(node).or_default().push(Node::Pipeline(pid));
                }
            }
        }
        edges
    }

    /// The pipelines in an order that builds each after every pipeline downstream of it
    /// (a pipeline holds the connectors it exports to, and they its downstream pipelines).
    pub fn pipelines_downstream_first(&self) -> Vec<&ComponentId> {
        let edges = self.connector_edges();
        let mut done = BTreeSet::new();
        let mut order = Vec::new();
        for pid in self.service.pipelines.keys() {
            post_order(Node::Pipeline(pid), &edges, &mut done, &mut order);
        }
        order
    }

    /// The collector's refusals of how connectors are defined and listed, each located; those
    /// inside a connector's settings are returned.
    pub(in crate::components) fn check_connectors(&self, report: Report) -> Vec<Diagnostic> {
        let mut inside = Vec::new();
        for (id, connector) in self.connectors.iter() {
            let id_text = id.to_string();
            let at = ["connectors", id_text.as_str()];
            let component = format!("connector `{id}`");
            for (section, defined) in [
                ("exporter", self.exporters.contains(id)),
                ("receiver", self.receivers.contains(id)),
            ] {
                if defined {
                    let message = format!(
                        "ambiguous id: `{id}` is both a {section} and a connector; rename one (e.g. the connector to `{id}/connector`)"
                    );
                    report(&at, None, component.clone(), message);
                }
            }
            for (key, why) in connector.behaviour().problems() {
                let message = format!("{key}: {why}");
                inside.push(dotted(self, &at, &key, component.clone(), message));
            }
        }
        for (id, (connector, uses)) in self.connector_uses() {
            self.check_signals(id, connector, &uses, report);
            for (key, pipeline) in connector.behaviour().named_pipelines() {
                if !uses.downstream.contains(&pipeline) {
                    let id_text = id.to_string();
                    let at = ["connectors", id_text.as_str()];
                    let message = format!(
                        "{key}: pipeline `{pipeline}` does not list connector `{id}` as a receiver"
                    );
                    let component = format!("connector `{id}`");
                    inside.push(dotted(self, &at, &key, component, message));
                }
            }
        }
        for instance in self.connector_instances() {
            let Some(connector) = self.connectors.get(&instance.id) else {
                continue;
            };
            for (key, why) in connector.behaviour().signal_problems(instance.from) {
                let id = instance.id.to_string();
                let component = format!("connector `{id}`");
                let message = format!("{key}: {why}");
                let found = dotted(self, &["connectors", &id], &key, component, message);
                if !inside.contains(&found) {
                    inside.push(found);
                }
            }
        }
        self.check_cycles(report);
        inside
    }

    /// A connector's build error (`table[0].context: why`), placed on its key.
    pub fn connector_diagnostic(&self, id: &str, message: String) -> Diagnostic {
        let key = message
            .split_once(": ")
            .map_or("", |(key, _)| key)
            .to_string();
        dotted(
            self,
            &["connectors", id],
            &key,
            format!("connector `{id}`"),
            message,
        )
    }

    /// Every signal a connector is exported in reaches a pipeline it can give to, and every
    /// signal it is received in comes from one it can take.
    fn check_signals(
        &self,
        id: &ComponentId,
        connector: &ConnectorConfig,
        uses: &Uses,
        report: Report,
    ) {
        let signals = |pipelines: &[&ComponentId]| -> BTreeSet<Signal> {
            pipelines.iter().filter_map(|p| signal_of(p)).collect()
        };
        let (ins, outs) = (signals(&uses.upstream), signals(&uses.downstream));
        let connects = |from: Signal, to: Signal| connector.behaviour().connects(from, to);
        for from in &ins {
            if !outs.iter().any(|to| connects(*from, *to)) {
                self.report_unmatched(id, "exporter", *from, &uses.upstream, report);
            }
        }
        for to in &outs {
            if !ins.iter().any(|from| connects(*from, *to)) {
                self.report_unmatched(id, "receiver", *to, &uses.downstream, report);
            }
        }
    }

    /// The collector's message for a connector listed as `role` in pipelines of `signal`
    /// that no use in the other role matches; placed where the first of them lists it.
    fn report_unmatched(
        &self,
        id: &ComponentId,
        role: &str,
        signal: Signal,
        pipelines: &[&ComponentId],
        report: Report,
    ) {
        let named: Vec<String> = pipelines
            .iter()
            .filter(|p| signal_of(p) == Some(signal))
            .map(|p| p.to_string())
            .collect();
        let other = if role == "exporter" {
            "receiver"
        } else {
            "exporter"
        };
        let message = format!(
            "used as {role} in [{}] pipeline but not used in any supported {other} pipeline",
            named.join(" ")
        );
        let key = if role == "exporter" {
            "exporters"
        } else {
            "receivers"
        };
        let at = ["service", "pipelines", named[0].as_str(), key];
        let id_text = id.to_string();
        report(&at, Some(&id_text), format!("connector `{id}`"), message);
    }

    /// A cycle through connectors, as the collector reports it: from a connector round to
    /// it again, naming each processor on the way; placed where the pipeline closing the
    /// cycle lists that connector.
    fn check_cycles(&self, report: Report) {
        let edges = self.connector_edges();
        let mut state = BTreeMap::new();
        let mut path = Vec::new();
        for pid in self.service.pipelines.keys() {
            if let Some(cycle) = find_cycle(Node::Pipeline(pid), &edges, &mut state, &mut path) {
                self.report_cycle(cycle, report);
                return; // the collector reports the first
            }
        }
    }

    fn report_cycle(&self, mut cycle: Vec<Node<'_>>, report: Report) {
        let first = cycle.iter().position(|n| matches!(n, Node::Connector(_)));
        cycle.rotate_left(first.unwrap_or(0));
        let closing = cycle.iter().rev().find_map(|n| match n {
            Node::Pipeline(pid) => Some(*pid),
            Node::Connector(_) => None,
        });
        let Some(Node::Connector(start)) = cycle.first().cloned() else {
            return;
        };
        cycle.push(Node::Connector(start.clone()));
        let mut steps = Vec::new();
        for node in &cycle {
            match node {
                Node::Connector(i) => {
                    steps.push(format!("connector `{}` ({} to {})", i.id, i.from, i.to))
                }
                Node::Pipeline(pid) => {
                    for p in &self.service.pipelines[*pid].processors {
                        steps.push(format!("processor `{p}` in pipeline `{pid}`"));
                    }
                }
            }
        }
        let message = format!("cycle detected: {}", steps.join(" -> "));
        let closing = closing.map(|p| p.to_string()).unwrap_or_default();
        let at = ["service", "pipelines", closing.as_str(), "exporters"];
        let id_text = start.id.to_string();
        report(
            &at,
            Some(&id_text),
            format!("connector `{}`", start.id),
            message,
        );
    }
}

/// `message` placed at the dotted `key` under `at` (routing's `table[1].pipelines`).
fn dotted(
    config: &Config,
    at: &[&str],
    key: &str,
    component: String,
    message: String,
) -> Diagnostic {
    Diagnostic {
        file: config.source.display().to_string(),
        position: config.tree.locate_dotted(at, key),
        component: Some(component),
        message,
    }
}

/// Appends `node` and everything below it to `order`, downstream first.
fn post_order<'c>(
    node: Node<'c>,
    edges: &BTreeMap<Node<'c>, Vec<Node<'c>>>,
    done: &mut BTreeSet<Node<'c>>,
    order: &mut Vec<&'c ComponentId>,
) {
    if !done.insert(node.clone()) {
        return;
    }
    for next in edges.get(&node).into_iter().flatten() {
        post_order(next.clone(), edges, done, order);
    }
    if let Node::Pipeline(pid) = node {
        order.push(pid);
    }
}

/// A cycle reachable from `node`, as the nodes on it, by a depth-first walk (`state`: true
/// while on the current path, false once finished).
fn find_cycle<'c>(
    node: Node<'c>,
    edges: &BTreeMap<Node<'c>, Vec<Node<'c>>>,
    state: &mut BTreeMap<Node<'c>, bool>,
    path: &mut Vec<Node<'c>>,
) -> Option<Vec<Node<'c>>> {
    match state.get(&node) {
        Some(true) => {
            let start = path.iter().position(|n| *n == node)?;
            return Some(path[start..].to_vec());
        }
        Some(false) => return None,
        None => {}
    }
    state.insert(node.clone(), true);
    path.push(node.clone());
    for next in edges.get(&node).into_iter().flatten() {
        if let Some(cycle) = find_cycle(next.clone(), edges, state, path) {
            return Some(cycle);
        }
    }
    path.pop();
    state.insert(node, false);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HEAD: &str = "receivers:\n  otlp:\nprocessors:\n  attributes: {actions: [{key: a, value: b, action: insert}]}\nexporters:\n  debug:\n";

    /// Every refusal `config` gets (`HEAD` above it), one per line.
    fn refusals(body: &str) -> String {
        match Config::from_text(&format!("{HEAD}{body}"), Path::new("t.yaml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    // forward fans a signal out to the pipelines of that signal receiving from it; the
    // pipelines are built downstream first.
    #[test]
    fn forward_makes_one_instance_per_signal_and_orders_the_build() {
        let text = format!(
            "{HEAD}connectors:\n  forward:\nservice:\n  pipelines:\n    traces/in: {{receivers: [otlp], exporters: [forward]}}\n    traces/z: {{receivers: [forward], exporters: [debug]}}\n    logs/in: {{receivers: [otlp], exporters: [forward]}}\n    logs/a: {{receivers: [forward], exporters: [debug]}}\n"
        );
        let config = Config::from_text(&text, Path::new("t.yaml")).unwrap();
        let instances: Vec<(String, Signal, Signal)> = config
            .connector_instances()
            .into_iter()
            .map(|i| (i.id.to_string(), i.from, i.to))
            .collect();
        let forward = "forward".to_string();
        assert_eq!(
            instances,
            [
                (forward.clone(), Signal::Traces, Signal::Traces),
                (forward, Signal::Logs, Signal::Logs)
            ]
        );
        let order: Vec<String> = config
            .pipelines_downstream_first()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let at = |p: &str| order.iter().position(|o| o == p).unwrap();
        assert!(
            at("traces/z") < at("traces/in") && at("logs/a") < at("logs/in"),
            "{order:?}"
        );
    }

    // Each refusal of the collector's graph, at the line and column listing the connector.
    #[test]
    fn graph_refusals_are_located() {
        let unmatched = "connectors:\n  forward:\nservice:\n  pipelines:\n    traces/in: {receivers: [otlp], exporters: [forward]}\n    logs/a: {receivers: [forward], exporters: [debug]}\n";
        assert_eq!(
            refusals(unmatched),
            "t.yaml:11:48: connector `forward`: used as exporter in [traces/in] pipeline but not used in any supported receiver pipeline\n\
             t.yaml:12:26: connector `forward`: used as receiver in [logs/a] pipeline but not used in any supported exporter pipeline"
        );
        let only_exported = "connectors:\n  forward:\nservice:\n  pipelines:\n    traces/in: {receivers: [otlp], exporters: [debug, forward]}\n";
        assert!(
            refusals(only_exported).starts_with(
                "t.yaml:11:55: connector `forward`: used as exporter in [traces/in] pipeline"
            ),
            "{}",
            refusals(only_exported)
        );
        let cycle = "connectors:\n  forward:\n  forward/2:\nservice:\n  pipelines:\n    traces/in: {receivers: [otlp], exporters: [forward]}\n    traces/a: {receivers: [forward], processors: [attributes], exporters: [forward/2]}\n    traces/b: {receivers: [forward/2], exporters: [debug, forward]}\n";
        assert_eq!(
            refusals(cycle),
            "t.yaml:13:76: connector `forward/2`: cycle detected: connector `forward/2` (traces to traces) -> connector `forward` (traces to traces) -> processor `attributes` in pipeline `traces/a` -> connector `forward/2` (traces to traces)"
        );
        let unknown = "connectors:\n  count/x:\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n";
        assert!(
            refusals(unknown)
                .starts_with("t.yaml:8:3: connectors.count/x: unknown connector type `count`"),
            "{}",
            refusals(unknown)
        );
        let undefined =
            "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [forward]}\n";
        assert!(
            refusals(undefined)
                .contains("references exporter `forward`, which is not defined under exporters"),
            "{}",
            refusals(undefined)
        );
    }

    // A connector defined and listed nowhere is left alone, as the collector leaves it.
    #[test]
    fn an_unused_connector_is_accepted() {
        let unused = "connectors:\n  forward:\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n";
        assert_eq!(refusals(unused), "");
    }
}
