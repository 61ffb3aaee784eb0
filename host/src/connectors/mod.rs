//! The connector kinds at run time: `forward` and `routing` (the collector's
//! `connector/forwardconnector` and contrib's `connector/routingconnector`, v0.161.0), and the
//! traces-to-metrics aggregators `spanmetrics` and `servicegraph` (contrib). Each implements
//! [`crate::pipeline::connector::Connector`]; the components table parses their settings and
//! builds them between the pipelines (`components::connectors`).
//!
//! Layer: above `processors` (routing evaluates OTTL conditions with the machinery the
//! tail_sampling processor's `ottl_condition` policy has) and below `receivers`, which never
//! name a connector: a connector is fed by pipelines, not by the network.

pub mod attributes;
pub mod exponential;
pub mod forward;
pub mod lru;
pub mod routing;
pub mod servicegraph;
pub mod spanmetrics;

use crate::pdata::Batch;
use crate::pipeline::connector::ConnectError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// A traces batch decoded, for the connectors that aggregate spans (a receiver already checked
/// its framing, so this fails only on a malformed field).
pub fn decode_traces(id: &str, batch: &Batch) -> Result<ExportTraceServiceRequest, ConnectError> {
    ExportTraceServiceRequest::decode(batch.payload.to_bytes()).map_err(|e| ConnectError {
        connector: id.to_string(),
        message: format!("undecodable spans: {e}"),
    })
}

/// Now, in Unix nanoseconds (the time metrics are stamped with).
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
