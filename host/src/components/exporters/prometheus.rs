//! The `prometheus` (pull) and `prometheusremotewrite` exporter kinds: metrics only.

use crate::auth::AuthConfig;
use crate::components::{Build, Exporter, Kind, StartError};
use crate::config::or_default;
use crate::exporters::ExporterSpec;
use crate::exporters::prometheus::pull::PrometheusExporterConfig;
use crate::exporters::prometheus::remote_write::RemoteWriteExporterConfig;
use crate::pdata::Signal;
use serde::Deserializer;
use std::path::PathBuf;

impl Kind for PrometheusExporterConfig {
    const NAME: &'static str = "prometheus";
    const SIGNALS: &'static [Signal] = &[Signal::Metrics];
    /// Every key has a default but `endpoint`, which `problems` asks for, placed.
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Exporter for PrometheusExporterConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        PrometheusExporterConfig::problems(self)
    }

    fn spec(&self, id: &str, _: Signal, _: &Build<'_>) -> Result<ExporterSpec, StartError> {
        self.build(id).map_err(|source| StartError::Exporter {
            id: id.to_string(),
            source,
        })
    }
}

impl Kind for RemoteWriteExporterConfig {
    const NAME: &'static str = "prometheusremotewrite";
    const SIGNALS: &'static [Signal] = &[Signal::Metrics];
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Exporter for RemoteWriteExporterConfig {
    fn auth(&self) -> Option<&AuthConfig> {
        self.auth.as_ref()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        RemoteWriteExporterConfig::problems(self)
    }

    fn spec(&self, id: &str, _: Signal, build: &Build<'_>) -> Result<ExporterSpec, StartError> {
        let token = build.exporter_auth(id, self.auth.as_ref())?;
        let resolve = |p: &PathBuf| build.resolve_path(p);
        self.build(id, resolve, token, build.secrets)
            .map_err(|source| StartError::Exporter {
                id: id.to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::components::Config;
    use std::path::Path;

    fn load(exporter: &str, signal: &str) -> Result<Config, String> {
        let text = format!(
            "receivers: {{otlp: }}\nexporters:\n  {exporter}\nservice:\n  pipelines:\n    {signal}:\n      receivers: [otlp]\n      exporters: [{}]\n",
            exporter.split(':').next().unwrap()
        );
        Config::from_text(&text, Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    // Both kinds load for metrics; a mistake is refused at its line with the key named.
    #[test]
    fn load_and_refuse() {
        load("prometheus: {endpoint: \"0.0.0.0:8889\"}", "metrics").unwrap();
        load("prometheusremotewrite: {endpoint: \"http://mimir:9009/api/v1/push\", add_metric_suffixes: false, tls: {insecure: true}}", "metrics").unwrap();
        let error = load(
            "prometheus: {endpoint: \"0.0.0.0:8889\", enable_open_metrics: true}",
            "metrics",
        )
        .unwrap_err();
        assert!(
            error.contains("t.yaml:3:") && error.contains("enable_open_metrics"),
            "{error}"
        );
        let error = load(
            "prometheusremotewrite: {endpoint: \"http://m/push\", wal: {directory: /x}}",
            "metrics",
        )
        .unwrap_err();
        assert!(
            error.contains("t.yaml:3:") && error.contains("wal"),
            "{error}"
        );
        let error = load("prometheus: {endpoint: \"0.0.0.0:8889\"}", "traces").unwrap_err();
        assert!(error.contains("prometheus"), "{error}");
    }
}
