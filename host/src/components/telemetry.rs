//! `service.telemetry` settled when the file is read: the collector's `metrics.readers` become
//! the address trailhead serves its metrics at, and levels are checked, each problem located.

use super::Config;
use crate::config::Diagnostic;
use crate::telemetry::readers;

const METRICS: [&str; 3] = ["service", "telemetry", "metrics"];
const LOGS: [&str; 3] = ["service", "telemetry", "logs"];

impl Config {
    /// Checks `service.telemetry` and sets the metrics address its readers give.
    pub(super) fn settle_telemetry(&mut self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
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
            match readers::pull_address(readers) {
                Ok(address) => metrics.address = address,
                Err(found) => found
                    .into_iter()
                    .for_each(|(key, why)| report(&METRICS, &key, why)),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use std::path::Path;

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
            both.contains("t.yaml:15:11: service.telemetry.metrics: a periodic reader"),
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
        let off = load("    metrics:\n      level: none\n      readers: []\n");
        assert!(off.is_ok(), "{off:?}");
        let empty = load("    metrics:\n      readers: []\n").unwrap_err();
        assert!(empty.contains("no pull reader"), "{empty}");
    }
}
