//! Zipkin v2 spans to an OTLP trace request, as the collector's Zipkin receiver maps them, with
//! its known gaps fixed: `otel.status_code` spelled `OK`/`ERROR` (as the OpenTelemetry Zipkin
//! exporters write it) sets the status, `otel.scope.*`/`otel.library.*` become the scope, and
//! `shared` is kept (as the `zipkin.shared` attribute).
//!
//! Spans are written straight into the protobuf encoding of the request, from strings borrowed
//! from the body: building `opentelemetry_proto` messages first cost an owned string per field
//! and a size walk per nesting level (the Zipkin path, the one every Dapr sidecar takes, was the
//! costliest trailhead had). Each span's body is written once into one buffer; the request is
//! then framed around those bodies, copying each once. Annotations and the status, rare and
//! small, still go through prost's messages.

use super::model::{Endpoint, Kind, Tags, Text, ZipkinError, ZipkinSpan};
use crate::pdata::wire::{put_bytes_field, put_varint};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Status, span, status};
use std::ops::Range;

/// Tags that become span fields rather than attributes.
const STATUS_CODE: &str = "otel.status_code";
const STATUS_DESCRIPTION: &str = "otel.status_description";
const ERROR: &str = "error";
const TRACE_STATE: &str = "w3c.tracestate";
const SCOPE_NAME: [&str; 2] = ["otel.scope.name", "otel.library.name"];
const SCOPE_VERSION: [&str; 2] = ["otel.scope.version", "otel.library.version"];
const FIELD_TAGS: [&str; 8] = [
    STATUS_CODE,
    STATUS_DESCRIPTION,
    ERROR,
    TRACE_STATE,
    SCOPE_NAME[0],
    SCOPE_NAME[1],
    SCOPE_VERSION[0],
    SCOPE_VERSION[1],
];

/// The tags of a span that become its fields, taken out of its tags in one pass.
fn take_field_tags<'a>(tags: &mut Tags<'a>) -> Tags<'a> {
    // Most spans have none: a first-byte check rejects nearly every key at once.
    tags.take_if(|k| {
        matches!(k.as_bytes().first(), Some(b'o' | b'e' | b'w')) && FIELD_TAGS.contains(&k)
    })
}

/// One instrumentation scope of a service: its name and version, and where its spans' encoded
/// bodies are in the shared buffer.
struct Scope<'a> {
    name: Text<'a>,
    version: Text<'a>,
    spans: Vec<Range<usize>>,
}

/// One local service: a resource.
struct Service<'a> {
    name: Option<Text<'a>>,
    scopes: Vec<Scope<'a>>,
}

/// Converts spans to an encoded `ExportTraceServiceRequest`: one resource per local service
/// (in first-seen order) and one scope per instrumentation library (sorted by name and version).
/// `parse_string_tags` turns tag strings that look like bools and numbers into typed values.
pub fn to_otlp(
    spans: Vec<ZipkinSpan<'_>>,
    parse_string_tags: bool,
) -> Result<Vec<u8>, ZipkinError> {
    let mut converter = Converter::new(parse_string_tags, spans.len());
    spans
        .into_iter()
        .try_for_each(|span| converter.push(span))?;
    Ok(converter.finish().0)
}

/// Spans converted one at a time, as they are read, into one request.
pub struct Converter<'a> {
    parse_string_tags: bool,
    /// Every span's encoded body, one after the other.
    bodies: Vec<u8>,
    services: Vec<Service<'a>>,
    spans: usize,
}

impl<'a> Converter<'a> {
    /// `expected` spans size the buffer (0 when unknown).
    pub fn new(parse_string_tags: bool, expected: usize) -> Self {
        Converter {
            parse_string_tags,
            bodies: Vec::with_capacity(expected.max(16) * 512),
            services: Vec::new(),
            spans: 0,
        }
    }

    /// Converts one span; an error names it by its place in the body.
    pub fn push(&mut self, mut zipkin: ZipkinSpan<'a>) -> Result<(), ZipkinError> {
        let index = self.spans;
        let service = zipkin
            .local_endpoint
            .as_ref()
            .and_then(|e| e.service_name.clone());
        let mut fields = take_field_tags(&mut zipkin.tags);
        let name = take_first(&mut fields, SCOPE_NAME);
        let version = take_first(&mut fields, SCOPE_VERSION);
        let start = self.bodies.len();
        encode_span(&mut self.bodies, zipkin, fields, self.parse_string_tags)
            .map_err(|message| ZipkinError::Span { index, message })?;
        self.spans += 1;
        let slot = match self.services.iter().position(|s| s.name == service) {
            Some(slot) => slot,
            None => {
                self.services.push(Service {
                    name: service,
                    scopes: Vec::new(),
                });
                self.services.len() - 1
            }
        };
        let scopes = &mut self.services[slot].scopes;
        let body = start..self.bodies.len();
        match scopes
            .iter_mut()
            .find(|s| s.name == name && s.version == version)
        {
            Some(scope) => scope.spans.push(body),
            None => scopes.push(Scope {
                name,
                version,
                spans: vec![body],
            }),
        }
        Ok(())
    }

    /// The encoded request and how many spans it holds.
    pub fn finish(mut self) -> (Vec<u8>, usize) {
        for service in &mut self.services {
            service
                .scopes
                .sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        }
        (frame(&self.services, &self.bodies), self.spans)
    }
}

/// The first of `keys` present, removed (the others too), or empty.
fn take_first<'a>(tags: &mut Tags<'a>, keys: [&str; 2]) -> Text<'a> {
    let mut found = keys.iter().filter_map(|k| tags.remove(k));
    let first = found.next();
    found.for_each(drop);
    first.unwrap_or_default()
}

/// The request around the span bodies: resource spans, scope spans, spans.
fn frame(services: &[Service], bodies: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bodies.len() + bodies.len() / 16 + 64);
    for service in services {
        let mut resource = Vec::new();
        if let Some(name) = &service.name {
            put_attribute(&mut resource, 1, "service.name", Value::Str(name));
        }
        let scope_lengths: Vec<usize> = service.scopes.iter().map(|s| scope_len(s)).collect();
        let length =
            field_len(resource.len()) + scope_lengths.iter().map(|&l| field_len(l)).sum::<usize>();
        put_header(&mut out, 1, length); // ExportTraceServiceRequest.resource_spans
        put_bytes_field(&mut out, 1, &resource); // ResourceSpans.resource
        for (scope, &length) in service.scopes.iter().zip(&scope_lengths) {
            put_header(&mut out, 2, length); // ResourceSpans.scope_spans
            if !scope.name.is_empty() {
                put_header(&mut out, 1, str_len(&scope.name) + str_len(&scope.version));
                put_str(&mut out, 1, &scope.name);
                put_str(&mut out, 2, &scope.version);
            }
            for span in &scope.spans {
                put_bytes_field(&mut out, 2, &bodies[span.clone()]); // ScopeSpans.spans
            }
        }
    }
    out
}

fn scope_len(scope: &Scope) -> usize {
    let header = match scope.name.is_empty() {
        true => 0,
        false => field_len(str_len(&scope.name) + str_len(&scope.version)),
    };
    header
        + scope
            .spans
            .iter()
            .map(|s| field_len(s.len()))
            .sum::<usize>()
}

/// Appends one `Span`'s fields, in field order, to `out`.
fn encode_span<'a>(
    out: &mut Vec<u8>,
    zipkin: ZipkinSpan<'a>,
    mut fields: Tags<'a>,
    parse_string_tags: bool,
) -> Result<(), String> {
    let mut trace_id = [0u8; 16];
    match zipkin.trace_id.len() {
        // A 64-bit trace id is the low half of a 128-bit one.
        16 => decode_id(&zipkin.trace_id, &mut trace_id[8..], "traceId", "16 or 32")?,
        _ => decode_id(&zipkin.trace_id, &mut trace_id, "traceId", "16 or 32")?,
    }
    let mut span_id = [0u8; 8];
    decode_id(&zipkin.id, &mut span_id, "id", "16")?;
    let mut parent = [0u8; 8];
    let has_parent = match zipkin.parent_id.as_deref() {
        Some(p) if !p.is_empty() => {
            decode_id(p, &mut parent, "parentId", "16")?;
            true
        }
        _ => false,
    };
    let status = take_status(&mut fields);
    let trace_state = fields.remove(TRACE_STATE).unwrap_or_default();
    put_bytes_field(out, 1, &trace_id);
    put_bytes_field(out, 2, &span_id);
    put_str(out, 3, &trace_state);
    if has_parent {
        put_bytes_field(out, 4, &parent);
    }
    put_str(out, 5, zipkin.name.as_deref().unwrap_or_default());
    put_varint_field(out, 6, span_kind(zipkin.kind) as u64);
    let start = zipkin.timestamp.unwrap_or(0).saturating_mul(1000);
    let end = start.saturating_add(zipkin.duration.unwrap_or(0).saturating_mul(1000));
    put_fixed64_field(out, 7, start);
    put_fixed64_field(out, 8, end);
    for (key, value) in zipkin.tags.iter() {
        put_attribute(out, 9, key, tag_value(value, parse_string_tags));
    }
    if let Some(local) = &zipkin.local_endpoint {
        endpoint_attributes(out, local, "net.host.ip", "net.host.port", None);
    }
    if let Some(remote) = &zipkin.remote_endpoint {
        endpoint_attributes(
            out,
            remote,
            "net.peer.ip",
            "net.peer.port",
            Some("peer.service"),
        );
    }
    if zipkin.shared == Some(true) {
        put_attribute(out, 9, "zipkin.shared", Value::Bool(true));
    }
    for annotation in zipkin.annotations {
        let event = event(annotation.timestamp, annotation.value.into_owned());
        prost::encoding::message::encode(11, &event, out);
    }
    if let Some(status) = status {
        prost::encoding::message::encode(15, &status, out);
    }
    Ok(())
}

fn span_kind(kind: Option<Kind>) -> span::SpanKind {
    match kind {
        Some(Kind::Client) => span::SpanKind::Client,
        Some(Kind::Server) => span::SpanKind::Server,
        Some(Kind::Producer) => span::SpanKind::Producer,
        Some(Kind::Consumer) => span::SpanKind::Consumer,
        // The OpenTelemetry Zipkin exporters write INTERNAL spans without a kind.
        None => span::SpanKind::Internal,
    }
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
fn take_status(tags: &mut Tags<'_>) -> Option<Status> {
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
            error.to_string()
        }
        _ => description.into_owned(),
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
    out: &mut Vec<u8>,
    endpoint: &Endpoint,
    ip: &str,
    port: &str,
    service: Option<&str>,
) {
    if let (Some(key), Some(name)) = (service, &endpoint.service_name) {
        put_attribute(out, 9, key, Value::Str(name));
    }
    if let Some(address) = endpoint.ipv4.as_ref().or(endpoint.ipv6.as_ref()) {
        put_attribute(out, 9, ip, Value::Str(address));
    }
    if let Some(p) = endpoint.port {
        put_attribute(out, 9, port, Value::Int(i64::from(p)));
    }
}

/// Decodes a hex id into `out`, which must be exactly its size.
fn decode_id(text: &str, out: &mut [u8], field: &str, expected: &str) -> Result<(), String> {
    if text.len() != out.len() * 2 {
        return Err(format!("{field} `{text}` is not {expected} hex characters"));
    }
    hex::decode_to_slice(text, out)
        .map_err(|_| format!("{field} `{text}` is not {expected} hex characters"))
}

/// An attribute value as the mapping produces it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

fn tag_value(value: &str, parse: bool) -> Value<'_> {
    if parse {
        if let Ok(b) = value.parse::<bool>() {
            return Value::Bool(b);
        } else if let Ok(i) = value.parse::<i64>() {
            return Value::Int(i);
        } else if let Some(f) = value.parse::<f64>().ok().filter(|f| f.is_finite()) {
            return Value::Double(f);
        }
    }
    Value::Str(value)
}

/// Appends field `number` holding a `KeyValue` of `key` and `value`.
fn put_attribute(out: &mut Vec<u8>, number: u32, key: &str, value: Value) {
    let any_len = match value {
        Value::Str(s) => field_len(s.len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(i as u64),
        Value::Double(_) => 9,
    };
    put_header(out, number, str_len(key) + field_len(any_len));
    put_str(out, 1, key); // KeyValue.key
    put_header(out, 2, any_len); // KeyValue.value: AnyValue, a oneof (written even when default)
    match value {
        Value::Str(s) => put_bytes_field(out, 1, s.as_bytes()),
        Value::Bool(b) => {
            out.push(2 << 3);
            out.push(u8::from(b));
        }
        Value::Int(i) => {
            out.push(3 << 3);
            put_varint(out, i as u64);
        }
        Value::Double(d) => {
            out.push(4 << 3 | 1);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
    }
}

/// The tag and length of a length-delimited field (field numbers below 16: a one-byte tag).
fn put_header(out: &mut Vec<u8>, number: u32, length: usize) {
    out.push((number << 3 | 2) as u8);
    put_varint(out, length as u64);
}

/// A string field, left out when empty (proto3).
fn put_str(out: &mut Vec<u8>, number: u32, text: &str) {
    if !text.is_empty() {
        put_bytes_field(out, u64::from(number), text.as_bytes());
    }
}

fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
    if value != 0 {
        out.push((number << 3) as u8);
        put_varint(out, value);
    }
}

fn put_fixed64_field(out: &mut Vec<u8>, number: u32, value: u64) {
    if value != 0 {
        out.push((number << 3 | 1) as u8);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// The encoded size of a length-delimited field with a one-byte tag.
fn field_len(length: usize) -> usize {
    1 + varint_len(length as u64) + length
}

/// The encoded size of a string field (nothing when empty).
fn str_len(text: &str) -> usize {
    match text.len() {
        0 => 0,
        n => field_len(n),
    }
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::parse_v2_json;
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::Span;

    /// The conversion, decoded back by prost: what the tests read.
    fn to_otlp(
        spans: Vec<ZipkinSpan<'_>>,
        parse: bool,
    ) -> Result<ExportTraceServiceRequest, ZipkinError> {
        let encoded = super::to_otlp(spans, parse)?;
        Ok(<ExportTraceServiceRequest as prost::Message>::decode(encoded.as_slice()).unwrap())
    }

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
