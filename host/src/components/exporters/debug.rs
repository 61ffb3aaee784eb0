//! The `debug` exporter kind: prints what arrives on stdout; and `logging`, its old name.

use crate::components::{Build, Exporter, Kind, StartError};
use crate::config::or_default;
use crate::exporters::ExporterSpec;
use crate::exporters::debug::{DebugExporterConfig, LoggingExporterConfig};
use crate::pdata::Signal;
use serde::Deserializer;

impl Kind for DebugExporterConfig {
    const NAME: &'static str = "debug";
    const SIGNALS: &'static [Signal] = &Signal::ALL;
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Exporter for DebugExporterConfig {
    fn spec(&self, id: &str, signal: Signal, _: &Build<'_>) -> Result<ExporterSpec, StartError> {
        Ok(self.build(id, signal))
    }
}

impl Kind for LoggingExporterConfig {
    const NAME: &'static str = "logging";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Exporter for LoggingExporterConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        LoggingExporterConfig::problems(self)
    }

    // Warned when it starts, once per signal it serves: logs are not set up while the file
    // is read.
    fn spec(&self, id: &str, signal: Signal, _: &Build<'_>) -> Result<ExporterSpec, StartError> {
        tracing::warn!(exporter = %id, signal = %signal, "{}", self.warning());
        Ok(self.as_debug().build(id, signal))
    }
}
