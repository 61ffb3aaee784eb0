//! The `forward` connector kind: any signal to the same signal.

use super::outlet;
use crate::components::{Build, ConnectorKind, Kind, StartError};
use crate::config::{ComponentId, or_default};
use crate::connectors::forward::{Forward, ForwardConnectorConfig};
use crate::pdata::Signal;
use crate::pipeline::Pipeline;
use crate::pipeline::connector::Connector;
use serde::Deserializer;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Kind for ForwardConnectorConfig {
    const NAME: &'static str = "forward";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl ConnectorKind for ForwardConnectorConfig {
    fn connects(&self, from: Signal, to: Signal) -> bool {
        from == to
    }

    fn build(
        &self,
        id: &str,
        (_, to): (Signal, Signal),
        downstream: &BTreeMap<ComponentId, Arc<Pipeline>>,
        build: &Build<'_>,
    ) -> Result<Arc<dyn Connector>, StartError> {
        let all = outlet(id, to, downstream, None, build);
        Ok(Arc::new(Forward::new(id, all)))
    }
}
