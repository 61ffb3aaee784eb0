//! The OTLP/JSON mapping (hex trace and span ids, lowerCamelCase names, integer enums, 64-bit
//! integers as strings or numbers) to and from the encoded protobuf batches trailhead carries.

use super::{Batch, RequestContext, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// A JSON body that is not an OTLP export request; says where, by field path and position.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct JsonError {
    /// The field path, e.g. `resourceSpans[0].scopeSpans`.
    pub path: String,
    pub source: serde_json::Error,
}

impl JsonError {
    pub fn line(&self) -> usize {
        self.source.line()
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| JsonError {
        path: e.path().to_string(),
        source: e.into_inner(),
    })
}

/// A profiles request: read as JSON (syntax errors have their line), brought to the shape the
/// crate's types read ([`super::profiles_json`]), then decoded with the field path in errors.
fn decode_profiles(body: &[u8]) -> Result<ExportProfilesServiceRequest, JsonError> {
    let mut value: serde_json::Value = decode(body)?;
    super::profiles_json::normalize(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| JsonError {
        path: e.path().to_string(),
        source: e.into_inner(),
    })
}

/// Decodes an OTLP/JSON export request of `signal` into a batch.
pub fn batch_from_json(
    signal: Signal,
    body: &[u8],
    context: RequestContext,
) -> Result<Batch, JsonError> {
    Ok(match signal {
        Signal::Traces => {
            Batch::from_message(signal, &decode::<ExportTraceServiceRequest>(body)?, context)
        }
        Signal::Metrics => Batch::from_message(
            signal,
            &decode::<ExportMetricsServiceRequest>(body)?,
            context,
        ),
        Signal::Logs => {
            Batch::from_message(signal, &decode::<ExportLogsServiceRequest>(body)?, context)
        }
        Signal::Profiles => Batch::from_message(signal, &decode_profiles(body)?, context),
    })
}

/// Renders an encoded export request as OTLP/JSON (the debug exporter's detailed view).
pub fn to_json(signal: Signal, payload: &[u8]) -> Result<serde_json::Value, String> {
    use prost::Message;
    let value = match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(payload).map(serde_json::to_value),
        Signal::Metrics => ExportMetricsServiceRequest::decode(payload).map(serde_json::to_value),
        Signal::Logs => ExportLogsServiceRequest::decode(payload).map(serde_json::to_value),
        Signal::Profiles => ExportProfilesServiceRequest::decode(payload).map(serde_json::to_value),
    };
    value.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext {
        RequestContext::internal("test")
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/conformance/otlp/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    // Every public OTLP/JSON example decodes, with the item counts the examples hold.
    #[test]
    fn conformance_examples_decode() {
        let trace = batch_from_json(Signal::Traces, &fixture("trace.json"), context()).unwrap();
        assert_eq!(trace.items, 1);
        let events = batch_from_json(Signal::Logs, &fixture("events.json"), context()).unwrap();
        assert!(events.items >= 1);
        let logs = batch_from_json(Signal::Logs, &fixture("logs.json"), context()).unwrap();
        assert_eq!(logs.items, 1);
        let metrics =
            batch_from_json(Signal::Metrics, &fixture("metrics.json"), context()).unwrap();
        assert!(metrics.items >= 4, "{}", metrics.items);
    }

    // Ids are hex in JSON and raw bytes on the wire, both ways.
    #[test]
    fn trace_ids_round_trip_as_hex() {
        let trace = batch_from_json(Signal::Traces, &fixture("trace.json"), context()).unwrap();
        let json = to_json(Signal::Traces, &trace.payload.to_bytes()).unwrap();
        let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["spanId"], "eee19b7ec3c1b174");
    }

    // A JSON error names the line and column.
    #[test]
    fn broken_json_is_located() {
        let err =
            batch_from_json(Signal::Traces, b"{\n  \"resourceSpans\": [}", context()).unwrap_err();
        assert_eq!(err.line(), 2);
    }
}
