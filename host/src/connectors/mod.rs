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

use crate::pdata::{Batch, RequestContext, Signal};
use crate::pipeline::Fanout;
use crate::pipeline::connector::ConnectError;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::time::Instant;

/// A traces batch decoded, for the connectors that aggregate spans (a receiver already checked
/// its framing, so this fails only on a malformed field).
pub fn decode_traces(id: &str, batch: &Batch) -> Result<ExportTraceServiceRequest, ConnectError> {
    ExportTraceServiceRequest::decode(batch.payload.to_bytes()).map_err(|e| ConnectError {
        connector: id.to_string(),
        message: format!("undecodable spans: {e}"),
    })
}

/// Hands connector `id`'s flushed `metrics` (`what` they are, for the log) to `downstream`,
/// waiting for room there until `deadline`; nothing to send is not an error.
pub async fn send_metrics(
    id: &str,
    what: &str,
    downstream: &Fanout,
    metrics: Option<ExportMetricsServiceRequest>,
    deadline: Instant,
) {
    let Some(metrics) = metrics else {
        return;
    };
    let batch = Batch::from_message(Signal::Metrics, &metrics, RequestContext::internal(id));
    if let Err(error) = downstream.consume_within(batch, deadline).await {
        tracing::error!(connector = %id, %error, "{what} were not accepted downstream");
    }
}

/// A connector's config read from JSON, then checked by `problems`: the first problem, or a
/// field that does not read, is the error, led by its key path.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    problems: fn(&T) -> Vec<(String, String)>,
) -> Result<T, String> {
    let value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other.clone(),
    };
    let config: T =
        serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
            path if path == "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        })?;
    match problems(&config).into_iter().next() {
        Some((key, why)) => Err(format!("{key}: {why}")),
        None => Ok(config),
    }
}

/// Now, in Unix nanoseconds (the time metrics are stamped with).
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
