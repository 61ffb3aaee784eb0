//! Connector kinds, one file each, and the graph they make of the pipelines ([`graph`]): which
//! instances exist, the collector's refusals of a wiring, and the order pipelines are built in.

mod forward;
pub mod graph;
mod routing;
mod servicegraph;
mod spanmetrics;

use super::Build;
use crate::config::ComponentId;
use crate::pdata::Signal;
use crate::pipeline::{Fanout, Pipeline};
use crate::telemetry::ReceiverMetrics;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The downstream pipelines `ids` as one fan-out, all of them if `ids` is `None`. Its
/// counts are under the connector's id, as a receiver's (they count what the connector sends
/// on its own schedule; what it passes on in an upstream hand-off is counted there).
fn outlet(
    id: &str,
    signal: Signal,
    downstream: &BTreeMap<ComponentId, Arc<Pipeline>>,
    ids: Option<&[ComponentId]>,
    build: &Build<'_>,
) -> Arc<Fanout> {
    let pipelines = downstream
        .iter()
        .filter(|(pid, _)| ids.is_none_or(|ids| ids.contains(pid)))
        .map(|(_, p)| p.clone())
        .collect();
    let metrics = ReceiverMetrics::new(&build.telemetry.registry, id, signal);
    Arc::new(Fanout::new(signal, pipelines, metrics))
}
