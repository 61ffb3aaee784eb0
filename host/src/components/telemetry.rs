//! `service.telemetry` settled when the file is read: the collector's `metrics.readers` become
//! the address trailhead serves its metrics at and the OTLP pushes, the log and span processors
//! and the resource become `push`, and levels are checked, each problem located.

use super::Config;
use crate::components::otelconf::{self, Batching, CollectorTraces, Destination};
use crate::components::readers;
use crate::config::Diagnostic;
use crate::exporters::otlp::OtlpExporterConfig;
use crate::pdata::Signal;
use std::time::Duration;

const METRICS: [&str; 3] = ["service", "telemetry", "metrics"];
const LOGS: [&str; 3] = ["service", "telemetry", "logs"];
const TRACES: [&str; 3] = ["service", "telemetry", "traces"];
const RESOURCE: [&str; 3] = ["service", "telemetry", "resource"];

impl Config {
    /// Checks `service.telemetry` and sets the metrics address its readers give.
    pub(super) fn settle_telemetry(&mut self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        match self.settle_traces() {
            Ok(batching) => self.service.telemetry.push.traces = batching,
            Err((position, message)) => problems.push(Diagnostic {
                file: self.source.display().to_string(),
                position,
                component: Some("service.telemetry.traces".into()),
                message,
            }),
        }
        let mut report = |base: &[&str], key: &str, message: String| {
            problems.push(Diagnostic {
                file: self.source.display().to_string(),
                position: self
                    .tree
                    .locate_dotted(base, key)
                    .or_else(|| self.tree.locate(base, None)),
                component: Some(format!("service.telemetry.{}", base[2])),
                message,
            });
        };
        let logs = &self.service.telemetry.logs;
        if logs.directive().is_none() {
            let why = format!(
                "unknown level `{}`: use debug, info, warn or error",
                logs.level
            );
            report(&LOGS, "level", why);
        }
        for (key, paths) in [
            ("output_paths", &logs.output_paths),
            ("error_output_paths", &logs.error_output_paths),
        ] {
            if paths.iter().any(|p| p != "stderr") {
                report(&LOGS, key, "trailhead writes its logs to stderr only; collect them from there (`stderr` is the one value accepted)".into());
            }
        }
        match otelconf::batching(&logs.processors, Signal::Logs, 1000) {
            Ok(batching) => self.service.telemetry.push.logs = batching,
            Err((key, why)) => report(&LOGS, &key, why),
        }
        match otelconf::resource(self.service.telemetry.resource.as_ref()) {
            Ok(resource) => self.service.telemetry.push.resource = resource,
            Err((key, why)) => report(&RESOURCE, &key, why),
        }
        let metrics = &mut self.service.telemetry.metrics;
        metrics.level = metrics.level.to_ascii_lowercase();
        if !["none", "basic", "normal", "detailed"].contains(&metrics.level.as_str()) {
            let why = format!(
                "unknown level `{}`: use none, basic, normal or detailed",
                metrics.level
            );
            report(&METRICS, "level", why);
        }
        let Some(readers) = &metrics.readers else {
            return problems;
        };
        if self
            .tree
            .get(&[METRICS[0], METRICS[1], METRICS[2], "address"])
            .is_some()
        {
            report(&METRICS, "address", "`address` and `readers` both say where the metrics are served; keep `readers`, the collector's form".into());
        }
        if metrics.level != "none" {
            match readers::settle(readers) {
                Ok((address, pushed)) => {
                    metrics.address = address.unwrap_or(metrics.address);
                    self.service.telemetry.push.metrics = pushed;
                }
                Err(found) => found
                    .into_iter()
                    .for_each(|(key, why)| report(&METRICS, &key, why)),
            }
        }
        problems
    }

    /// `service.telemetry.traces` in either shape: the collector's processors, or trailhead's
    /// older `otlp` exporter settings (sent every second, 512 spans held at most).
    fn settle_traces(&self) -> Result<Option<Batching>, (Option<(usize, usize)>, String)> {
        let (Some(raw), Some(node)) = (&self.service.telemetry.traces, self.tree.get(&TRACES))
        else {
            return Ok(None);
        };
        let located = |e: crate::config::tree::Error| (e.position(), e.to_string());
        let collectors = CollectorTraces::KEYS.iter().any(|k| raw.get(k).is_some());
        if !collectors {
            let otlp: OtlpExporterConfig =
                serde::Deserialize::deserialize(node).map_err(located)?;
            return Ok(Some(Batching {
                delay: Duration::from_secs(1),
                max_queue: 512,
                max_batch: 512,
                destination: Destination::Grpc(Box::new(otlp)),
            }));
        }
        let traces: CollectorTraces = serde::Deserialize::deserialize(node).map_err(located)?;
        if traces
            .level
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        otelconf::batching(&traces.processors, Signal::Traces, 5000)
            .map_err(|(key, why)| (self.tree.locate_dotted(&TRACES, &key), why))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use crate::components::otelconf::Destination;
    use std::path::Path;
    use std::time::Duration;

    const PIPELINE: &str = "receivers:\n  otlp:\nexporters:\n  logging:\n    loglevel: debug\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [logging]\n";

    fn load(telemetry: &str) -> Result<Config, String> {
        let text = format!("{PIPELINE}  telemetry:\n{telemetry}");
        Config::from_text(&text, Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    // The chart's shape serves the metrics at the pull reader's port; the collector's log
    // keys load and map onto trailhead's levels.
    #[test]
    fn the_collectors_telemetry_shape_loads() {
        let config = load("    resource:\n      service.name: gw\n    logs:\n      level: WARN\n      encoding: json\n      sampling: {enabled: false}\n      output_paths: [stderr]\n    metrics:\n      level: Detailed\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: localhost\n                port: 9999\n").unwrap();
        let telemetry = &config.service.telemetry;
        assert_eq!(telemetry.metrics.address, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(telemetry.metrics.level, "detailed");
        assert_eq!(telemetry.logs.directive(), Some("warn"));
    }

    // Each refusal names its key's line and says why.
    #[test]
    fn refusals_are_located() {
        let both = load("    metrics:\n      address: 127.0.0.1:1\n      readers:\n        - periodic: {exporter: {otlp: {endpoint: x}}}\n").unwrap_err();
        assert!(
            both.contains("t.yaml:13:7: service.telemetry.metrics: `address` and `readers`"),
            "{both}"
        );
        assert!(
            both.contains("t.yaml:15:33: service.telemetry.metrics: protocol must be specified"),
            "{both}"
        );
        let level = load("    logs:\n      level: verbose\n      output_paths: [/var/log/x]\n")
            .unwrap_err();
        assert!(
            level.contains("t.yaml:13:7: service.telemetry.logs: unknown level `verbose`"),
            "{level}"
        );
        assert!(
            level.contains(
                "t.yaml:14:7: service.telemetry.logs: trailhead writes its logs to stderr only"
            ),
            "{level}"
        );
        let console = load("    logs:\n      processors:\n        - batch:\n            exporter:\n              console: {}\n").unwrap_err();
        assert!(
            console.contains(
                "t.yaml:16:15: service.telemetry.logs: trailhead writes its logs to stderr"
            ),
            "{console}"
        );
        let two = load("    traces:\n      processors:\n        - simple: {exporter: {otlp: {protocol: grpc, endpoint: 'x:1'}}}\n        - simple: {exporter: {otlp: {protocol: grpc, endpoint: 'x:2'}}}\n").unwrap_err();
        assert!(
            two.contains("t.yaml:15:11: service.telemetry.traces: trailhead sends its own records to one exporter"),
            "{two}"
        );
        let sampler = load("    traces:\n      sampler: {always_on: {}}\n").unwrap_err();
        assert!(sampler.contains("t.yaml:13:7:"), "{sampler}");
        assert!(sampler.contains("unknown field `sampler`"), "{sampler}");
        let detection =
            load("    resource:\n      detection/development: {detectors: []}\n").unwrap_err();
        assert!(
            detection.contains(
                "t.yaml:13:7: service.telemetry.resource: resource detection is not supported"
            ),
            "{detection}"
        );
        let off = load("    metrics:\n      level: none\n      readers: []\n");
        assert!(off.is_ok(), "{off:?}");
        let empty = load("    metrics:\n      readers: []\n").unwrap_err();
        assert!(empty.contains("no reader says"), "{empty}");
    }

    fn attribute(config: &Config, key: &str) -> Option<String> {
        let resource = &config.service.telemetry.push.resource;
        let found = resource.iter().find(|kv| kv.key == key)?;
        Some(format!("{:?}", found.value.as_ref()?.value.as_ref()?))
    }

    // The chart's internalTelemetryViaOTLP example: logs, metrics and traces pushed over
    // OTLP/HTTP, with a resource that replaces, removes and adds to the collector's own.
    #[test]
    fn the_charts_push_shape_loads() {
        let config = load("    logs:\n      processors:\n        - batch: {exporter: {otlp: {endpoint: 'http://localhost:4318', protocol: http/protobuf}}}\n    metrics:\n      readers:\n        - periodic: {exporter: {otlp: {endpoint: 'http://localhost:4318', protocol: http/protobuf}}}\n    traces:\n      processors:\n        - batch: {schedule_delay: 200, exporter: {otlp: {endpoint: 'http://localhost:4318', headers: [{name: x-opentelemetry-customer, value: a value}], protocol: http/protobuf}}}\n    resource:\n      host.name: node-1\n      service.version: null\n      service.name: gw\n      attributes: [{name: k8s.pod.name, value: p}]\n").unwrap();
        let push = &config.service.telemetry.push;
        assert_eq!(push.metrics.len(), 1);
        assert_eq!(push.logs.as_ref().unwrap().delay, Duration::from_secs(1));
        let traces = push.traces.as_ref().unwrap();
        assert_eq!(traces.delay, Duration::from_millis(200));
        let Destination::Http(http) = &traces.destination else {
            panic!("{traces:?}")
        };
        assert_eq!(http.endpoint.as_deref(), Some("http://localhost:4318"));
        assert!(http.headers.contains_key("x-opentelemetry-customer"));
        assert_eq!(
            attribute(&config, "service.name").unwrap(),
            "StringValue(\"gw\")"
        );
        assert_eq!(
            attribute(&config, "host.name").unwrap(),
            "StringValue(\"node-1\")"
        );
        assert_eq!(
            attribute(&config, "k8s.pod.name").unwrap(),
            "StringValue(\"p\")"
        );
        assert_eq!(attribute(&config, "service.version"), None);
        let id = attribute(&config, "service.instance.id").unwrap();
        assert_eq!(id.len(), "StringValue(\"\")".len() + 36, "{id}");
        // trailhead's older shape, an otlp exporter's settings, still loads.
        let own = load("    traces:\n      endpoint: 'http://127.0.0.1:4317'\n").unwrap();
        let traces = own.service.telemetry.push.traces.unwrap();
        assert!(matches!(traces.destination, Destination::Grpc(_)));
    }
}
