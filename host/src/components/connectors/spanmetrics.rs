//! The `span_metrics` connector kind (`spanmetrics`, the name most configs still use, is its
//! alias as in the collector): traces to metrics.

use super::outlet;
use crate::components::{Build, ConnectorKind, Kind, StartError};
use crate::config::{ComponentId, or_default};
use crate::connectors::spanmetrics::SpanMetricsConfig;
use crate::connectors::spanmetrics::run::SpanMetricsConnector;
use crate::pdata::Signal;
use crate::pipeline::Pipeline;
use crate::pipeline::connector::Connector;
use serde::Deserializer;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Kind for SpanMetricsConfig {
    const NAME: &'static str = "span_metrics";
    const ALIASES: &'static [&'static str] = &["spanmetrics"];
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics];
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl ConnectorKind for SpanMetricsConfig {
    fn connects(&self, from: Signal, to: Signal) -> bool {
        (from, to) == (Signal::Traces, Signal::Metrics)
    }

    fn problems(&self) -> Vec<(String, String)> {
        SpanMetricsConfig::problems(self)
    }

    fn build(
        &self,
        id: &str,
        (_, to): (Signal, Signal),
        downstream: &BTreeMap<ComponentId, Arc<Pipeline>>,
        build: &Build<'_>,
    ) -> Result<Arc<dyn Connector>, StartError> {
        let all = outlet(id, to, downstream, None, build);
        let instance = instance_id(build);
        Ok(Arc::new(SpanMetricsConnector::new(id, self, instance, all)))
    }
}

/// The `service.instance.id` of trailhead's own resource (`service.telemetry.resource`, else a
/// random one), which the collector labels span metrics with as `collector.instance.id`.
fn instance_id(build: &Build<'_>) -> String {
    let resource = build.config.service.telemetry.resource.as_ref();
    let attributes = crate::components::otelconf::resource(resource).unwrap_or_default();
    attributes
        .iter()
        .find(|kv| kv.key == "service.instance.id")
        .and_then(|kv| kv.value.as_ref())
        .map(crate::connectors::attributes::as_text)
        .unwrap_or_default()
}
