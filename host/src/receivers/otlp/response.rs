//! The body of a successful export: empty for a full success, `partial_success` when a
//! processor's failure policy dropped items after they were accepted (the OTLP spec's way of
//! telling a sender what was lost, without asking it to retry).

use crate::pdata::Signal;
use crate::pipeline::{Accepted, Rejection};
use opentelemetry_proto::tonic::collector::{logs, metrics, profiles, trace};
use prost::Message;

/// The `Export*ServiceResponse` in protobuf.
pub fn protobuf(signal: Signal, accepted: &Accepted) -> Vec<u8> {
    let Some(Rejection { items, reason }) = accepted.rejected.clone() else {
        return Vec::new();
    };
    let rejected = i64::try_from(items).unwrap_or(i64::MAX);
    match signal {
        Signal::Traces => trace::v1::ExportTraceServiceResponse {
            partial_success: Some(trace::v1::ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: reason,
            }),
        }
        .encode_to_vec(),
        Signal::Metrics => metrics::v1::ExportMetricsServiceResponse {
            partial_success: Some(metrics::v1::ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: reason,
            }),
        }
        .encode_to_vec(),
        Signal::Logs => logs::v1::ExportLogsServiceResponse {
            partial_success: Some(logs::v1::ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: reason,
            }),
        }
        .encode_to_vec(),
        // The count is of profiles in the proto; trailhead counts samples, the collector's
        // item unit for profiles, everywhere, so it says samples here too.
        Signal::Profiles => profiles::v1development::ExportProfilesServiceResponse {
            partial_success: Some(profiles::v1development::ExportProfilesPartialSuccess {
                rejected_profiles: rejected,
                error_message: reason,
            }),
        }
        .encode_to_vec(),
    }
}

/// The `Export*ServiceResponse` in OTLP/JSON (64-bit counts as decimal strings, as proto3's
/// JSON mapping writes them).
pub fn json(signal: Signal, accepted: &Accepted) -> String {
    let Some(Rejection { items, reason }) = &accepted.rejected else {
        return "{}".into();
    };
    let count = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
        Signal::Profiles => "rejectedProfiles",
    };
    serde_json::json!({ "partialSuccess": { count: items.to_string(), "errorMessage": reason } })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(items: u64) -> Accepted {
        Accepted {
            rejected: Some(Rejection {
                items,
                reason: "processor `p` failed: trap (on_failure: drop)".into(),
            }),
        }
    }

    // A full success is an empty message in both encodings; a rejection decodes, with the
    // signal's own count field, as the SDKs read it.
    #[test]
    fn partial_success_carries_the_count_and_reason() {
        assert!(protobuf(Signal::Traces, &Accepted::default()).is_empty());
        assert_eq!(json(Signal::Logs, &Accepted::default()), "{}");
        let logs = logs::v1::ExportLogsServiceResponse::decode(
            protobuf(Signal::Logs, &rejected(10)).as_slice(),
        )
        .unwrap();
        let partial = logs.partial_success.unwrap();
        assert_eq!(partial.rejected_log_records, 10);
        assert!(partial.error_message.contains("on_failure: drop"));
        let metrics = metrics::v1::ExportMetricsServiceResponse::decode(
            protobuf(Signal::Metrics, &rejected(3)).as_slice(),
        )
        .unwrap();
        assert_eq!(metrics.partial_success.unwrap().rejected_data_points, 3);
        let body: serde_json::Value =
            serde_json::from_str(&json(Signal::Traces, &rejected(7))).unwrap();
        assert_eq!(body["partialSuccess"]["rejectedSpans"], "7");
    }
}
