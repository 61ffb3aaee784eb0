//! What an answer means, as the collector's otlphttp exporter reads it: 2xx delivered (with a
//! `partial_success` in the body's own content type), 429/502/503/504 worth a retry (after
//! `Retry-After` on 429 and 503), any other status refused for good. trailhead adds one case:
//! 413 is `TooLarge`, so the queue splits the request instead of dropping it.

use crate::exporters::{ExportError, SendOutcome};
use crate::pdata::Signal;
use crate::pdata::grpc::ExportResponse;
use http::{HeaderMap, StatusCode};
use std::time::{Duration, SystemTime};

/// How much of an answer is read, as the collector does.
pub const MAX_READ: usize = 64 * 1024;
pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

/// `google.rpc.Status`, the body OTLP/HTTP error answers carry; only its message is shown.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Classifies an answer from `uri` to a `signal` export; `now` dates an HTTP-date `Retry-After`.
pub fn classify(
    uri: &http::Uri,
    signal: Signal,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<SendOutcome, ExportError> {
    if status.is_success() {
        let content_type = headers.get(http::header::CONTENT_TYPE);
        let media = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
        return partial_success(signal, media, body)
            .map_err(|message| ExportError::Permanent { message });
    }
    let mut message = format!(
        "error exporting items, request to {uri} responded with HTTP Status Code {}",
        status.as_u16()
    );
    // The collector shows the Status only when the body decodes as one.
    if let Ok(rpc) = <RpcStatus as prost::Message>::decode(body)
        && !rpc.message.is_empty()
    {
        message.push_str(", Message=");
        message.push_str(&rpc.message);
    }
    match status.as_u16() {
        413 => Err(ExportError::TooLarge { message }),
        429 | 503 => Err(ExportError::Retryable {
            message,
            retry_after: headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now)),
        }),
        502 | 504 => Err(ExportError::Retryable {
            message,
            retry_after: None,
        }),
        _ => Err(ExportError::Permanent { message }),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past: no wait beyond the
/// backoff). Anything else is ignored, as the collector ignores it.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or_default())
}

/// The rejected count and message of a 2xx body. An empty body, or one in a content type other
/// than protobuf or JSON, is a plain success; one that does not decode in its declared type is
/// an error, as in the collector.
fn partial_success(signal: Signal, content_type: &str, body: &[u8]) -> Result<SendOutcome, String> {
    if body.is_empty() {
        return Ok(SendOutcome::default());
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(PROTOBUF) {
        let response = <ExportResponse as prost::Message>::decode(body)
            .map_err(|e| format!("error parsing protobuf response: {e}"))?;
        let partial = response.partial_success.unwrap_or_default();
        return Ok(SendOutcome {
            rejected: partial.rejected.max(0) as u64,
            message: partial.error_message,
        });
    }
    if media.eq_ignore_ascii_case(JSON) {
        return json_partial_success(signal, body)
            .map_err(|e| format!("error parsing json response: {e}"));
    }
    Ok(SendOutcome::default())
}

/// `{"partialSuccess": {"rejectedSpans": "3", "errorMessage": "…"}}`, the count a number or a
/// string and the names camelCase or as in the proto, as the collector's decoder takes them.
fn json_partial_success(signal: Signal, body: &[u8]) -> Result<SendOutcome, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let field = |v: &serde_json::Value, camel: &str, snake: &str| {
        v.get(camel).or_else(|| v.get(snake)).cloned()
    };
    let Some(partial) = field(&value, "partialSuccess", "partial_success") else {
        return Ok(SendOutcome::default());
    };
    let (camel, snake) = match signal {
        Signal::Traces => ("rejectedSpans", "rejected_spans"),
        Signal::Metrics => ("rejectedDataPoints", "rejected_data_points"),
        Signal::Logs => ("rejectedLogRecords", "rejected_log_records"),
        Signal::Profiles => ("rejectedProfiles", "rejected_profiles"),
    };
    let rejected = match field(&partial, camel, snake) {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().ok_or("rejected count is not an integer")?
        }
        Some(serde_json::Value::String(s)) => s.parse::<i64>().map_err(|e| e.to_string())?,
        Some(other) => return Err(format!("rejected count {other} is not an integer")),
    };
    let message = match field(&partial, "errorMessage", "error_message") {
        Some(serde_json::Value::String(s)) => s,
        _ => String::new(),
    };
    Ok(SendOutcome {
        rejected: rejected.max(0) as u64,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn answer(
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<SendOutcome, ExportError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let uri = http::Uri::from_static("http://peer/v1/traces");
        let status = StatusCode::from_u16(status).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        classify(&uri, Signal::Traces, status, &map, body, now)
    }

    fn kind(result: Result<SendOutcome, ExportError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(ExportError::Retryable { .. }) => "retry",
            Err(ExportError::TooLarge { .. }) => "split",
            Err(ExportError::Permanent { .. }) => "drop",
        }
    }

    // The collector's table, status by status: 2xx ok, 429/502/503/504 retried, 413 split
    // (trailhead's addition), every other status dropped, 3xx included (no redirects).
    #[test]
    fn statuses_classify_like_the_collector() {
        for (status, expected) in [
            (200, "ok"),
            (202, "ok"),
            (204, "ok"),
            (301, "drop"),
            (400, "drop"),
            (401, "drop"),
            (403, "drop"),
            (404, "drop"),
            (408, "drop"),
            (413, "split"),
            (429, "retry"),
            (500, "drop"),
            (501, "drop"),
            (502, "retry"),
            (503, "retry"),
            (504, "retry"),
        ] {
            assert_eq!(kind(answer(status, &[], b"")), expected, "HTTP {status}");
        }
    }

    fn waits(status: u16, value: &str) -> Option<Duration> {
        match answer(status, &[("retry-after", value)], b"") {
            Err(ExportError::Retryable { retry_after, .. }) => retry_after,
            other => panic!("{other:?}"),
        }
    }

    // Retry-After in seconds or as an HTTP date, honoured on 429 and 503 only, as the collector.
    #[test]
    fn retry_after_seconds_or_date() {
        assert_eq!(waits(503, "7"), Some(Duration::from_secs(7)));
        assert_eq!(waits(429, "0"), Some(Duration::ZERO));
        // `now` in `answer` is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            waits(503, "Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            waits(429, "Wed, 21 Oct 2015 07:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(waits(503, "soon"), None);
        assert_eq!(waits(502, "7"), None);
        assert_eq!(waits(504, "7"), None);
    }

    // A partial success is read in the answer's content type, JSON counts as number or string.
    #[test]
    fn partial_success_in_either_encoding() {
        use crate::pdata::grpc::PartialSuccess;
        let proto = prost::Message::encode_to_vec(&ExportResponse {
            partial_success: Some(PartialSuccess {
                rejected: 3,
                error_message: "bad spans".into(),
            }),
        });
        let outcome = answer(200, &[("content-type", PROTOBUF)], &proto).unwrap();
        assert_eq!(
            (outcome.rejected, outcome.message.as_str()),
            (3, "bad spans")
        );
        let json = br#"{"partialSuccess":{"rejectedSpans":"4","errorMessage":"x"}}"#;
        let outcome = answer(
            200,
            &[("content-type", "application/json; charset=utf-8")],
            json,
        );
        assert_eq!(outcome.unwrap().rejected, 4);
        let json = br#"{"partialSuccess":{"rejectedSpans":5}}"#;
        assert_eq!(
            answer(200, &[("content-type", JSON)], json)
                .unwrap()
                .rejected,
            5
        );
        assert_eq!(
            answer(200, &[("content-type", JSON)], b"{}").unwrap(),
            SendOutcome::default()
        );
        // Another content type is not read; a body that does not decode is an error.
        assert_eq!(
            answer(200, &[("content-type", "text/plain")], b"ok")
                .unwrap()
                .rejected,
            0
        );
        assert_eq!(
            kind(answer(200, &[("content-type", JSON)], b"{not json")),
            "drop"
        );
        assert_eq!(
            kind(answer(200, &[("content-type", PROTOBUF)], b"\xff\xff")),
            "drop"
        );
    }

    // An error answer's google.rpc.Status message is shown.
    #[test]
    fn error_message_carries_the_status() {
        let body = prost::Message::encode_to_vec(&RpcStatus {
            code: 3,
            message: "invalid span".into(),
        });
        match answer(400, &[], &body) {
            Err(ExportError::Permanent { message }) => {
                assert!(message.contains("HTTP Status Code 400"), "{message}");
                assert!(message.contains("Message=invalid span"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
