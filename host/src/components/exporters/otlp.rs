//! The `otlp` exporter kind (alias `otlp_grpc`): OTLP/gRPC to a peer such as Grafana Alloy.

use crate::auth::AuthConfig;
use crate::components::{Build, Exporter, Kind, StartError};
use crate::exporters::otlp::OtlpExporterConfig;
use crate::exporters::{ExporterSpec, QueueSettings};
use crate::pdata::Signal;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

impl Kind for OtlpExporterConfig {
    const NAME: &'static str = "otlp";
    const ALIASES: &'static [&'static str] = &["otlp_grpc"];
    const SIGNALS: &'static [Signal] = &Signal::ALL;
    /// `endpoint` has no default, so an empty body is refused, in the collector's words.
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<OtlpExporterConfig>::deserialize(d)?.ok_or_else(|| {
            serde::de::Error::custom(
                "requires a non-empty \"endpoint\": the peer's host:port or URL",
            )
        })
    }
}

impl Exporter for OtlpExporterConfig {
    fn auth(&self) -> Option<&AuthConfig> {
        self.auth.as_ref()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        OtlpExporterConfig::problems(self)
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
