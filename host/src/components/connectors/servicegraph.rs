//! The `servicegraph` connector kind (`service_graph` is its alias, the collector's newer
//! name): traces to metrics.

use super::outlet;
use crate::components::{Build, ConnectorKind, Kind, StartError};
use crate::config::{ComponentId, or_default};
use crate::connectors::servicegraph::ServiceGraphConfig;
use crate::connectors::servicegraph::run::ServiceGraphConnector;
use crate::pdata::Signal;
use crate::pipeline::Pipeline;
use crate::pipeline::connector::Connector;
use serde::Deserializer;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Kind for ServiceGraphConfig {
    const NAME: &'static str = "servicegraph";
    const ALIASES: &'static [&'static str] = &["service_graph"];
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics];
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl ConnectorKind for ServiceGraphConfig {
    fn connects(&self, from: Signal, to: Signal) -> bool {
        (from, to) == (Signal::Traces, Signal::Metrics)
    }

    fn problems(&self) -> Vec<(String, String)> {
        ServiceGraphConfig::problems(self)
    }

    fn build(
        &self,
        id: &str,
        (_, to): (Signal, Signal),
        downstream: &BTreeMap<ComponentId, Arc<Pipeline>>,
        build: &Build<'_>,
    ) -> Result<Arc<dyn Connector>, StartError> {
        let all = outlet(id, to, downstream, None, build);
        Ok(Arc::new(ServiceGraphConnector::new(id, self, all)))
    }
}
