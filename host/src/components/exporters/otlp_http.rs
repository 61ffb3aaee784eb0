//! The `otlp_http` exporter kind (alias `otlphttp`, the collector's name): OTLP/HTTP to a
//! peer such as Grafana Alloy or a vendor's intake.

use crate::auth::AuthConfig;
use crate::components::{Build, Exporter, Kind, StartError};
use crate::exporters::otlp_http::OtlpHttpExporterConfig;
use crate::exporters::{ExporterSpec, QueueSettings};
use crate::pdata::Signal;
use serde::Deserializer;
use std::path::PathBuf;

impl Kind for OtlpHttpExporterConfig {
    const NAME: &'static str = "otlp_http";
    const ALIASES: &'static [&'static str] = &["otlphttp"];
    const SIGNALS: &'static [Signal] = &Signal::ALL;
    /// Every key has a default, but an endpoint is needed: `problems` says so, placed.
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::or_default(d)
    }
}

impl Exporter for OtlpHttpExporterConfig {
    fn auth(&self) -> Option<&AuthConfig> {
        self.auth.as_ref()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        OtlpHttpExporterConfig::problems(self)
    }

    fn sending_queue(&self) -> Option<&QueueSettings> {
        Some(&self.sending_queue)
    }

    fn own_batch(&self) -> Option<&'static str> {
        super::own_batch(&self.batch, &self.sending_queue)
    }

    fn spec(
        &self,
        id: &str,
        signal: Signal,
        build: &Build<'_>,
    ) -> Result<ExporterSpec, StartError> {
        let token = build.exporter_auth(id, self.auth.as_ref())?;
        let resolve = |p: &PathBuf| build.resolve_path(p);
        self.build(id, signal, resolve, token, build.secrets)
            .map_err(|source| StartError::Exporter {
                id: id.to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::components::{Config, ExporterConfig};
    use crate::config::ComponentId;
    use std::path::Path;

    fn load(exporter: &str) -> Result<Config, String> {
        let text = format!(
            "receivers: {{otlp: }}\nexporters:\n  {exporter}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [{}]\n",
            exporter.split(':').next().unwrap()
        );
        Config::from_text(&text, Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    // Both names read the same kind; a body with an endpoint loads.
    #[test]
    fn both_names_load() {
        for name in ["otlp_http", "otlphttp/alloy"] {
            let config = load(&format!("{name}: {{endpoint: \"http://alloy:4318\"}}")).unwrap();
            let id = ComponentId::parse(name).unwrap();
            assert!(matches!(
                config.exporters.get(&id),
                Some(ExporterConfig::OtlpHttp(_))
            ));
        }
    }

    // Bad config is refused with the file, line and column, the exporter and the key.
    #[test]
    fn mistakes_are_located() {
        let error = load("otlphttp: {endpoint: \"http://a:1\", endpiont: x}").unwrap_err();
        assert!(
            error.contains("t.yaml:3:") && error.contains("endpiont"),
            "{error}"
        );
        let error = load("otlphttp: {endpoint: \"http://a:1\", encoding: xml}").unwrap_err();
        assert!(
            error.contains("t.yaml:3:") && error.contains("encoding"),
            "{error}"
        );
        let error = load("otlphttp:").unwrap_err();
        assert!(error.contains("t.yaml:3:"), "{error}");
        assert!(error.contains("exporter `otlphttp`"), "{error}");
        assert!(
            error.contains("at least one endpoint must be specified"),
            "{error}"
        );
        let error = load("otlphttp: {logs_endpoint: \"alloy:4318\"}").unwrap_err();
        assert!(
            error.contains("logs_endpoint") && error.contains("http://"),
            "{error}"
        );
    }
}
