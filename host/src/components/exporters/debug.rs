//! The `debug` exporter kind: prints what arrives on stdout.

use crate::components::{Build, Exporter, Kind, StartError};
use crate::config::or_default;
use crate::exporters::ExporterSpec;
use crate::exporters::debug::DebugExporterConfig;
use crate::pdata::Signal;
use serde::Deserializer;

impl Kind for DebugExporterConfig {
    const NAME: &'static str = "debug";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Exporter for DebugExporterConfig {
    fn spec(&self, id: &str, signal: Signal, _: &Build<'_>) -> Result<ExporterSpec, StartError> {
        Ok(self.build(id, signal))
    }
}
