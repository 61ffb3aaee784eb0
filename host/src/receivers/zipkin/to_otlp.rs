//! Zipkin v2 spans to an OTLP trace request, as the collector's Zipkin receiver maps them, with
//! its known gaps fixed: `otel.status_code` spelled `OK`/`ERROR` (as the OpenTelemetry Zipkin
//! exporters write it) sets the status, `otel.scope.*`/`otel.library.*` become the scope, and
//! `shared` is kept (as the `zipkin.shared` attribute).

use super::model::{Endpoint, Kind, ZipkinError, ZipkinSpan};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use std::collections::BTreeMap;

/// Tags that become span fields rather than attributes.
const STATUS_CODE: &str = "otel.status_code";
const STATUS_DESCRIPTION: &str = "otel.status_description";
const ERROR: &str = "error";
const TRACE_STATE: &str = "w3c.tracestate";
const SCOPE_NAME: [&str; 2] = ["otel.scope.name", "otel.library.name"];
const SCOPE_VERSION: [&str; 2] = ["otel.scope.version", "otel.library.version"];

/// Spans of one service keyed by (scope name, scope version).
type SpansByScope = BTreeMap<(String, String), Vec<Span>>;

/// Converts spans, one resource per local service and one scope per instrumentation library.
/// `parse_string_tags` turns tag strings that look like bools and numbers into typed values.
pub fn to_otlp(
    spans: Vec<ZipkinSpan>,
    parse_string_tags: bool,
) -> Result<ExportTraceServiceRequest, ZipkinError> {
    // service → (scope name, scope version) → spans, in first-seen order of services.
    let mut services: Vec<(Option<String>, SpansByScope)> = Vec::new();
    for (index, mut zipkin) in spans.into_iter().enumerate() {
        let bad = |message: String| ZipkinError::Span { index, message };
        let service = zipkin
            .local_endpoint
            .as_ref()
            .and_then(|e| e.service_name.clone());
        let take_first = |tags: &mut BTreeMap<String, String>, keys: [&str; 2]| {
            keys.iter()
                .filter_map(|k| tags.remove(*k))
                .next()
                .unwrap_or_default()
        };
        let scope = (
            take_first(&mut zipkin.tags, SCOPE_NAME),
            take_first(&mut zipkin.tags, SCOPE_VERSION),
        );
        let span = convert(zipkin, parse_string_tags).map_err(bad)?;
        let slot = match services.iter().position(|(s, _)| *s == service) {
            Some(i) => i,
            None => {
                services.push((service, BTreeMap::new()));
                services.len() - 1
            }
        };
        services[slot].1.entry(scope).or_default().push(span);
    }
    let resource_spans = services
        .into_iter()
        .map(|(service, scopes)| ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .into_iter()
                    .map(|s| string_attribute("service.name", s))
                    .collect(),
                ..Default::default()
            }),
            scope_spans: scopes
                .into_iter()
                .map(|((name, version), spans)| ScopeSpans {
                    scope: (!name.is_empty()).then(|| InstrumentationScope {
                        name,
                        version,
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn convert(mut zipkin: ZipkinSpan, parse_string_tags: bool) -> Result<Span, String> {
    let trace_id = decode_id(&zipkin.trace_id, &[16, 32], "traceId")?;
    let trace_id = if trace_id.len() == 8 {
        [vec![0; 8], trace_id].concat()
    } else {
        trace_id
    };
    let span_id = decode_id(&zipkin.id, &[16], "id")?;
    let parent_span_id = match zipkin.parent_id.as_deref() {
        Some(parent) if !parent.is_empty() => decode_id(parent, &[16], "parentId")?,
        _ => Vec::new(),
    };
    let start = zipkin.timestamp.unwrap_or(0).saturating_mul(1000);
    let end = start.saturating_add(zipkin.duration.unwrap_or(0).saturating_mul(1000));
    let status = take_status(&mut zipkin.tags);
    let trace_state = zipkin.tags.remove(TRACE_STATE).unwrap_or_default();
    let mut attributes: Vec<KeyValue> = zipkin
        .tags
        .into_iter()
        .map(|(key, value)| attribute(&key, tag_value(value, parse_string_tags)))
        .collect();
    if let Some(local) = &zipkin.local_endpoint {
        endpoint_attributes(&mut attributes, local, "net.host.ip", "net.host.port", None);
    }
    if let Some(remote) = &zipkin.remote_endpoint {
        endpoint_attributes(
            &mut attributes,
            remote,
            "net.peer.ip",
            "net.peer.port",
            Some("peer.service"),
        );
    }
    if zipkin.shared == Some(true) {
        attributes.push(attribute(
            "zipkin.shared",
            any_value::Value::BoolValue(true),
        ));
    }
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        name: zipkin.name.unwrap_or_default(),
        kind: match zipkin.kind {
            Some(Kind::Client) => span::SpanKind::Client,
            Some(Kind::Server) => span::SpanKind::Server,
            Some(Kind::Producer) => span::SpanKind::Producer,
            Some(Kind::Consumer) => span::SpanKind::Consumer,
            // The OpenTelemetry Zipkin exporters write INTERNAL spans without a kind.
            None => span::SpanKind::Internal,
        } as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events: zipkin
            .annotations
            .into_iter()
            .map(|a| event(a.timestamp, a.value))
            .collect(),
        status,
        ..Default::default()
    })
}

/// An annotation as an event. OpenTelemetry's Zipkin exporters write an event with attributes
/// as the JSON `{"name": {"key": value, …}}`; anything else is the event's name.
fn event(timestamp_us: u64, value: String) -> span::Event {
    let time_unix_nano = timestamp_us.saturating_mul(1000);
    if value.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(&value)
        && let Some((name, serde_json::Value::Object(fields))) =
            map.iter().next().filter(|_| map.len() == 1)
    {
        let attributes = fields
            .iter()
            .map(|(k, v)| attribute(k, json_value(v)))
            .collect();
        return span::Event {
            time_unix_nano,
            name: name.clone(),
            attributes,
            ..Default::default()
        };
    }
    span::Event {
        time_unix_nano,
        name: value,
        ..Default::default()
    }
}

fn json_value(value: &serde_json::Value) -> any_value::Value {
    use any_value::Value as V;
    use serde_json::Value as J;
    match value {
        J::Bool(b) => V::BoolValue(*b),
        J::Number(n) => n
            .as_i64()
            .map(V::IntValue)
            .unwrap_or_else(|| V::DoubleValue(n.as_f64().unwrap_or(0.0))),
        J::String(s) => V::StringValue(s.clone()),
        J::Array(items) => V::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: items
                .iter()
                .map(|v| AnyValue {
                    value: Some(json_value(v)),
                })
                .collect(),
        }),
        other => V::StringValue(other.to_string()),
    }
}

/// The span status from `otel.status_code` (`OK`, `ERROR`, `UNSET`, or `STATUS_CODE_*`), else
/// from an `error` tag (its value, unless just "true", is the message).
fn take_status(tags: &mut BTreeMap<String, String>) -> Option<Status> {
    let description = tags.remove(STATUS_DESCRIPTION).unwrap_or_default();
    let code = tags.remove(STATUS_CODE).and_then(|code| {
        match code
            .trim()
            .to_ascii_uppercase()
            .trim_start_matches("STATUS_CODE_")
        {
            "OK" => Some(status::StatusCode::Ok),
            "ERROR" => Some(status::StatusCode::Error),
            "UNSET" => Some(status::StatusCode::Unset),
            _ => None,
        }
    });
    // The OpenTelemetry exporters put an error's description in the `error` tag.
    let error = tags.remove(ERROR);
    let message = match &error {
        Some(error) if description.is_empty() && !error.eq_ignore_ascii_case("true") => {
            error.clone()
        }
        _ => description,
    };
    match (code, error) {
        (Some(code), _) => Some(Status {
            code: code as i32,
            message,
        }),
        (None, Some(_)) => Some(Status {
            code: status::StatusCode::Error as i32,
            message,
        }),
        (None, None) => None,
    }
}

fn endpoint_attributes(
    out: &mut Vec<KeyValue>,
    endpoint: &Endpoint,
    ip: &str,
    port: &str,
    service: Option<&str>,
) {
    if let (Some(key), Some(name)) = (service, &endpoint.service_name) {
        out.push(string_attribute(key, name.clone()));
    }
    if let Some(address) = endpoint.ipv4.as_ref().or(endpoint.ipv6.as_ref()) {
        out.push(string_attribute(ip, address.clone()));
    }
    if let Some(p) = endpoint.port {
        out.push(attribute(port, any_value::Value::IntValue(i64::from(p))));
    }
}

fn decode_id(text: &str, lengths: &[usize], field: &str) -> Result<Vec<u8>, String> {
    let valid = lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
    let expected = if lengths.len() == 2 { "16 or 32" } else { "16" };
    if !valid {
        return Err(format!("{field} `{text}` is not {expected} hex characters"));
    }
    hex::decode(text).map_err(|e| format!("{field} `{text}`: {e}"))
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value))
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn tag_value(value: String, parse: bool) -> any_value::Value {
    use any_value::Value as V;
    let typed = parse.then(|| {
        if let Ok(b) = value.parse::<bool>() {
            Some(V::BoolValue(b))
        } else if let Ok(i) = value.parse::<i64>() {
            Some(V::IntValue(i))
        } else {
            value
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(V::DoubleValue)
        }
    });
    typed.flatten().unwrap_or(V::StringValue(value))
}

#[cfg(test)]
mod tests {
    use super::super::model::parse_v2_json;
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/conformance/zipkin/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    // The collector's sample3: otel.status_code ERROR with a description (a gap the collector
    // leaves), remote endpoint to peer attributes, annotations to events, ids and timing.
    #[test]
    fn sample3_status_endpoints_and_events() {
        let request = to_otlp(
            parse_v2_json(&fixture("collector-sample3.json")).unwrap(),
            false,
        )
        .unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "4d1e00c0db9010db86154a4ba6e91385"
        );
        assert_eq!(hex::encode(&span.parent_span_id), "86154a4ba6e91385");
        assert_eq!(span.kind, span::SpanKind::Client as i32);
        assert_eq!(span.start_time_unix_nano, 1_472_470_996_199_000_000);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            207_000_000
        );
        let status = span.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (status::StatusCode::Error as i32, "Something failed")
        );
        assert!(attribute(span, STATUS_CODE).is_none());
        assert_eq!(
            attribute(span, "peer.service"),
            Some(&any_value::Value::StringValue("backend".into()))
        );
        assert_eq!(
            attribute(span, "net.peer.port"),
            Some(&any_value::Value::IntValue(9000))
        );
        assert_eq!(
            attribute(span, "http.path"),
            Some(&any_value::Value::StringValue("/api".into()))
        );
        assert_eq!(
            span.events
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            ["foo", "bar"]
        );
    }

    // sample4's `error` tag makes the status ERROR.
    #[test]
    fn sample4_error_tag() {
        let request = to_otlp(
            parse_v2_json(&fixture("collector-sample4.json")).unwrap(),
            false,
        )
        .unwrap();
        let spans: Vec<&Span> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert!(spans.iter().any(|s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.code == status::StatusCode::Error as i32)
        }));
    }

    // Spans group by service and by scope; 64-bit trace ids are widened; shared is kept.
    #[test]
    fn grouping_scope_and_shared() {
        let body = br#"[
          {"traceId":"0000000000000abc","id":"0000000000000001","name":"a","localEndpoint":{"serviceName":"orders"},
           "tags":{"otel.scope.name":"io.dapr","otel.scope.version":"1.14","retries":"3"},"shared":true},
          {"traceId":"0000000000000abc","id":"0000000000000002","name":"b","localEndpoint":{"serviceName":"users"}},
          {"traceId":"0000000000000abc","id":"0000000000000003","name":"c","localEndpoint":{"serviceName":"orders"},"kind":"SERVER"}
        ]"#;
        let request = to_otlp(parse_v2_json(body).unwrap(), true).unwrap();
        assert_eq!(request.resource_spans.len(), 2);
        let orders = &request.resource_spans[0];
        assert_eq!(orders.scope_spans.len(), 2);
        let dapr = orders
            .scope_spans
            .iter()
            .find(|s| s.scope.as_ref().is_some_and(|sc| sc.name == "io.dapr"))
            .unwrap();
        assert_eq!(dapr.scope.as_ref().unwrap().version, "1.14");
        let a = &dapr.spans[0];
        assert_eq!(a.trace_id.len(), 16);
        assert_eq!(hex::encode(&a.trace_id), "00000000000000000000000000000abc");
        assert_eq!(
            attribute(a, "zipkin.shared"),
            Some(&any_value::Value::BoolValue(true))
        );
        assert_eq!(
            attribute(a, "retries"),
            Some(&any_value::Value::IntValue(3))
        );
        assert!(attribute(a, "otel.scope.name").is_none());
        assert_eq!(a.kind, span::SpanKind::Internal as i32);
    }

    // An OpenTelemetry event written as {"name": {attributes}} comes back as that event.
    #[test]
    fn json_annotations_become_events_with_attributes() {
        let plain = event(5, "retry".into());
        assert_eq!((plain.name.as_str(), plain.time_unix_nano), ("retry", 5000));
        let rich = event(1, r#"{"cache miss": {"key": "u-1", "attempt": 2}}"#.into());
        assert_eq!(rich.name, "cache miss");
        assert_eq!(rich.attributes.len(), 2);
        assert_eq!(event(1, "{not json".into()).name, "{not json");
    }

    // A bad id names the span and the field.
    #[test]
    fn bad_ids_are_named() {
        let body = br#"[{"traceId":"0000000000000001","id":"0000000000000001"},{"traceId":"xyz","id":"0000000000000002"}]"#;
        let err = to_otlp(parse_v2_json(body).unwrap(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "span[1]: traceId `xyz` is not 16 or 32 hex characters"
        );
    }
}
