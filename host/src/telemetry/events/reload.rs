//! The config reload's events: applied, unchanged or rejected, each with its span.

use super::Event;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Registry};
use crate::telemetry::traces::SelfTracer;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// `trailhead_config_reloads_total` by result, and the self-tracer.
pub struct ReloadInstruments {
    applied: Counter,
    unchanged: Counter,
    rejected: Counter,
    tracer: Option<Arc<SelfTracer>>,
}

impl ReloadInstruments {
    pub fn new(registry: &Registry, tracer: Option<Arc<SelfTracer>>) -> Self {
        let counter = |result| registry.counter(&catalog::CONFIG_RELOADS, &[result]);
        ReloadInstruments {
            applied: counter("applied"),
            unchanged: counter("unchanged"),
            rejected: counter("rejected"),
            tracer,
        }
    }

    fn span(&self, result: &str, started: SystemTime, error: Option<&str>) {
        let Some(tracer) = &self.tracer else { return };
        let attributes = [("trailhead.result", Value::StringValue(result.into()))];
        tracer.record(
            "config reload",
            started,
            SystemTime::now(),
            &attributes,
            error,
        );
    }
}

/// A reload changed processors and swapped them in.
pub struct ReloadApplied<'a> {
    pub started: SystemTime,
    pub config: &'a Path,
}

impl Event for ReloadApplied<'_> {
    type Instruments = ReloadInstruments;

    fn emit(self, to: &ReloadInstruments) {
        to.applied.add(1);
        tracing::info!(config = %self.config.display(), "config reloaded: changed processors swapped in");
        to.span("applied", self.started, None);
    }
}

/// A reload found nothing to change in the config (plugin files may still have changed).
pub struct ReloadUnchanged {
    pub started: SystemTime,
}

impl Event for ReloadUnchanged {
    type Instruments = ReloadInstruments;

    fn emit(self, to: &ReloadInstruments) {
        to.unchanged.add(1);
        to.span("unchanged", self.started, None);
    }
}

/// A reload was refused; the running config is kept.
pub struct ReloadRejected<'a> {
    pub started: SystemTime,
    pub error: &'a str,
}

impl Event for ReloadRejected<'_> {
    type Instruments = ReloadInstruments;

    fn emit(self, to: &ReloadInstruments) {
        to.rejected.add(1);
        tracing::error!(error = %self.error, "config reload rejected; the running config is kept");
        to.span("rejected", self.started, Some(self.error));
    }
}
