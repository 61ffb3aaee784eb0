//! The `routing` connector kind: a signal to the same signal, split by the table's routes.

use super::outlet;
use crate::components::{Build, ConnectorKind, Kind, StartError};
use crate::config::{ComponentId, or_default};
use crate::connectors::routing::{Routing, RoutingConnectorConfig};
use crate::pdata::Signal;
use crate::pipeline::Pipeline;
use crate::pipeline::connector::Connector;
use serde::Deserializer;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Kind for RoutingConnectorConfig {
    const NAME: &'static str = "routing";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl ConnectorKind for RoutingConnectorConfig {
    /// The collector's routing connector has no profiles (v0.161.0).
    fn connects(&self, from: Signal, to: Signal) -> bool {
        from == to && from != Signal::Profiles
    }

    fn problems(&self) -> Vec<(String, String)> {
        RoutingConnectorConfig::problems(self)
    }

    fn signal_problems(&self, signal: Signal) -> Vec<(String, String)> {
        RoutingConnectorConfig::signal_problems(self, signal)
    }

    fn named_pipelines(&self) -> Vec<(String, &ComponentId)> {
        let defaults = self.default_pipelines.iter().enumerate();
        let mut named: Vec<(String, &ComponentId)> = defaults
            .map(|(i, p)| (format!("default_pipelines[{i}]"), p))
            .collect();
        for (i, route) in self.table.iter().enumerate() {
            let listed = route.pipelines.iter().enumerate();
            named.extend(listed.map(|(j, p)| (format!("table[{i}].pipelines[{j}]"), p)));
        }
        named
    }

    fn build(
        &self,
        id: &str,
        (_, to): (Signal, Signal),
        downstream: &BTreeMap<ComponentId, Arc<Pipeline>>,
        build: &Build<'_>,
    ) -> Result<Arc<dyn Connector>, StartError> {
        let outlet = |ids: &[ComponentId]| outlet(id, to, downstream, Some(ids), build);
        let routing = Routing::new(id, to, self, outlet).map_err(|message| {
            StartError::Processor(build.config.connector_diagnostic(id, message))
        })?;
        Ok(Arc::new(routing))
    }
}
