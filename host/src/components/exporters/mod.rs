//! Exporter kinds, one file each.

mod debug;
mod loadbalancing;
mod otlp;
mod otlp_http;
mod prometheus;

use crate::exporters::{BatchSettings, QueueSettings};

/// Where an exporter's own batch keys are, if it has any: trailhead's `batch:` (which wins) or
/// the collector's `sending_queue.batch:`.
fn own_batch(batch: &Option<BatchSettings>, queue: &QueueSettings) -> Option<&'static str> {
    match (batch, &queue.batch) {
        (Some(_), _) => Some("batch"),
        (None, Some(_)) => Some("sending_queue.batch"),
        (None, None) => None,
    }
}
