//! A traces request split by trace ID, and a held trace read back for the policies.
//!
//! Each piece is `resource_spans` entries of an export request (field 1, tag and length
//! included) holding one trace's spans from one incoming request, each under a copy of its own
//! resource and scopes. Pieces of any traces concatenate into a valid export request, so
//! releasing sampled traces is concatenation, as the exporters batch. Policies read a held
//! trace in place through [`SpanView`]s: the one idea, encoded batches and never object trees.

use crate::pdata::route;
use crate::pdata::wire::{self, Value, messages};

/// A trace ID as the table keys it.
pub type TraceId = [u8; 16];

/// One trace's spans from one incoming `ResourceSpans`, encoded.
#[derive(Debug)]
pub struct Piece {
    pub trace_id: TraceId,
    /// `resource_spans` fields of an export request: tag, length, `ResourceSpans`.
    pub encoded: Vec<u8>,
    pub spans: u64,
    /// Whether a span has no parent (a root span arrived).
    pub has_root: bool,
    /// The `ResourceSpans` size without tag and length, as the collector counts trace size.
    pub size: u64,
}

/// The trace ID of a span as the table keys it; an ID of another length (malformed) is kept
/// as far as it goes, so its spans still travel together.
fn key(id: &[u8]) -> TraceId {
    let mut key = [0; 16];
    let n = id.len().min(16);
    key[..n].copy_from_slice(&id[..n]);
    key
}

/// Splits an encoded export request into one piece per trace, in the order the traces first
/// appear (the order the collector's policies see them in), copying each span's bytes under
/// its own resource and scope rather than decoding (`pdata::route` does the walk).
pub fn split(payload: &[u8]) -> Vec<Piece> {
    route::group_by_trace(payload)
        .into_iter()
        .filter(|group| group.spans > 0)
        .map(|group| Piece {
            trace_id: key(group.trace_id),
            size: resource_sizes(&group.encoded),
            encoded: group.encoded,
            spans: group.spans as u64,
            has_root: group.has_root,
        })
        .collect()
}

/// The sizes of the `ResourceSpans` in `resource_spans` fields, without tags and lengths.
fn resource_sizes(encoded: &[u8]) -> u64 {
    wire::fields(encoded)
        .map(|(_, value, _)| match value {
            Value::Bytes(body) => body.len() as u64,
            _ => 0,
        })
        .sum()
}

/// A held trace as the policies read it: its pieces' encoding, read in place (no decode).
pub struct TraceData {
    pub id: TraceId,
    pub span_count: i64,
    /// The trace's pieces concatenated: an encoded `ExportTraceServiceRequest`.
    encoded: Vec<u8>,
}

impl TraceData {
    /// A trace from its concatenated pieces (trailhead's own encoding, framing checked).
    pub fn new(id: TraceId, encoded: Vec<u8>, span_count: u64) -> TraceData {
        TraceData {
            id,
            span_count: span_count as i64,
            encoded,
        }
    }

    /// The trace as an encoded `ExportTraceServiceRequest` (its pieces in arrival order), for
    /// policies that hand the whole trace on, as plugins do.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The encoding back, so a held trace's one chunk is lent to the policies, not copied.
    pub fn into_encoded(self) -> Vec<u8> {
        self.encoded
    }

    /// The trace's `ResourceSpans`, in arrival order.
    pub fn resources(&self) -> impl Iterator<Item = ResourceView<'_>> {
        messages(&self.encoded, 1).map(|body| ResourceView { body })
    }
}

/// The last fixed-width or varint value of field `number` (protobuf: the last one wins).
fn last_scalar(message: &[u8], number: u64) -> Option<u64> {
    wire::values(message).fold(None, |found, (n, value)| match value {
        Value::Varint(v) | Value::Fixed64(v) if n == number => Some(v),
        Value::Fixed32(v) if n == number => Some(u64::from(v)),
        _ => found,
    })
}

/// One encoded `ResourceSpans` of a held trace.
#[derive(Clone, Copy)]
pub struct ResourceView<'a> {
    body: &'a [u8],
}

impl<'a> ResourceView<'a> {
    /// The resource's attributes (`KeyValue` encodings), every `resource` field merged.
    pub fn attributes(self) -> impl Iterator<Item = &'a [u8]> {
        messages(self.body, 1).flat_map(|resource| messages(resource, 1))
    }

    /// The spans under every scope, in order.
    pub fn spans(self) -> impl Iterator<Item = SpanView<'a>> {
        messages(self.body, 2)
            .flat_map(|scope| messages(scope, 2))
            .map(|body| SpanView { body })
    }
}

/// One encoded `Span`, read field by field as a policy asks.
#[derive(Clone, Copy)]
pub struct SpanView<'a> {
    body: &'a [u8],
}

impl<'a> SpanView<'a> {
    pub fn start_time_unix_nano(self) -> u64 {
        last_scalar(self.body, 7).unwrap_or(0)
    }

    pub fn end_time_unix_nano(self) -> u64 {
        last_scalar(self.body, 8).unwrap_or(0)
    }

    pub fn flags(self) -> u32 {
        last_scalar(self.body, 16).unwrap_or(0) as u32
    }

    /// The W3C tracestate; one that is not UTF-8 reads as empty.
    pub fn trace_state(self) -> &'a str {
        let last = messages(self.body, 3).last().unwrap_or_default();
        std::str::from_utf8(last).unwrap_or_default()
    }

    /// `status.code`, every `status` field merged (0, unset, when absent).
    pub fn status_code(self) -> i32 {
        messages(self.body, 15).fold(0, |code, status| {
            last_scalar(status, 3).map_or(code, |c| c as i32)
        })
    }

    /// The span's attributes (`KeyValue` encodings).
    pub fn attributes(self) -> impl Iterator<Item = &'a [u8]> {
        messages(self.body, 9)
    }
}

/// An attribute value as the policies read it: the types they test, and the rest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    /// A string's bytes (checked as UTF-8 where read as text).
    Str(&'a [u8]),
    Int(i64),
    Bool(bool),
    /// No value, or a type no policy reads (double, bytes, array, map).
    Other,
}

/// The key and value of an encoded `KeyValue`; the last key wins and every `value` field
/// merges, and of an `AnyValue`'s oneof the last field set wins.
pub fn key_value(kv: &[u8]) -> (&[u8], AttrValue<'_>) {
    if let Some((key, value)) = wire::plain_key_value(kv) {
        return (
            key,
            value.map_or(AttrValue::Other, |v| any_value(v, AttrValue::Other)),
        );
    }
    let (mut key, mut value): (&[u8], _) = (&[], AttrValue::Other);
    for (number, field) in wire::values(kv) {
        match (number, field) {
            (1, Value::Bytes(k)) => key = k,
            (2, Value::Bytes(v)) => value = any_value(v, value),
            _ => {}
        }
    }
    (key, value)
}

/// `current` updated by the fields of one encoded `AnyValue`.
fn any_value<'a>(any: &'a [u8], mut current: AttrValue<'a>) -> AttrValue<'a> {
    for (number, field) in wire::values(any) {
        current = match (number, field) {
            (1, Value::Bytes(s)) => AttrValue::Str(s),
            (2, Value::Varint(b)) => AttrValue::Bool(b != 0),
            (3, Value::Varint(i)) => AttrValue::Int(i as i64),
            (4..=7, _) => AttrValue::Other,
            _ => continue,
        };
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
    use prost::Message;

    pub fn span(trace: u8, id: u8, parent: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: format!("s{id}"),
            ..Default::default()
        }
    }

    fn scope(name: &str, spans: Vec<Span>) -> ScopeSpans {
        ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }
    }

    // Two traces interleaved over two scopes come apart into one piece each, every span kept
    // under its own scope, and the pieces concatenated decode as a valid request again.
    #[test]
    fn splits_by_trace_keeping_scopes() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![
                    scope("a", vec![span(1, 1, 0), span(2, 2, 9)]),
                    scope("b", vec![span(1, 3, 1)]),
                ],
                schema_url: "u".into(),
            }],
        };
        let pieces = split(&request.encode_to_vec());
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].trace_id, [1; 16]);
        assert_eq!((pieces[0].spans, pieces[0].has_root), (2, true));
        assert_eq!((pieces[1].spans, pieces[1].has_root), (1, false));
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.encoded.clone()).collect();
        let back = ExportTraceServiceRequest::decode(joined.as_slice()).unwrap();
        let first = &back.resource_spans[0];
        assert_eq!(first.schema_url, "u");
        let scopes: Vec<&str> = first
            .scope_spans
            .iter()
            .map(|s| s.scope.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(scopes, ["a", "b"]);
        assert_eq!(
            back.resource_spans[1].scope_spans[0].spans[0].span_id,
            [2; 8]
        );
        assert_eq!(pieces[0].size, first.encoded_len() as u64);
    }

    // The view reads fields as prost decodes them: the last scalar wins, `status` fields
    // merge, a KeyValue written value-first still reads, and an AnyValue's last oneof wins.
    #[test]
    fn span_view_reads_as_a_decode_would() {
        use opentelemetry_proto::tonic::trace::v1::Status;
        let mut span = Span {
            start_time_unix_nano: 1,
            end_time_unix_nano: 9,
            flags: 3,
            trace_state: "a=1".into(),
            status: Some(Status {
                code: 2,
                ..Default::default()
            }),
            ..span(1, 1, 0)
        }
        .encode_to_vec();
        span.extend_from_slice(&[7 << 3 | 1, 5, 0, 0, 0, 0, 0, 0, 0]); // start again: 5
        wire::put_bytes_field(&mut span, 15, &[]); // an empty status keeps the code
        let mut any = Vec::new();
        wire::put_bytes_field(&mut any, 1, b"text");
        any.extend_from_slice(&[3 << 3, 7]); // then int_value 7: the oneof reads 7
        let mut kv = Vec::new();
        wire::put_bytes_field(&mut kv, 2, &any);
        wire::put_bytes_field(&mut kv, 1, b"k");
        wire::put_bytes_field(&mut span, 9, &kv);
        let (mut scope, mut resource, mut request) = (Vec::new(), Vec::new(), Vec::new());
        wire::put_bytes_field(&mut scope, 2, &span);
        wire::put_bytes_field(&mut resource, 2, &scope);
        wire::put_bytes_field(&mut request, 1, &resource);
        let decoded = ExportTraceServiceRequest::decode(request.as_slice()).unwrap();
        let want = &decoded.resource_spans[0].scope_spans[0].spans[0];
        let trace = TraceData::new([1; 16], request, 1);
        let view = trace.resources().next().unwrap().spans().next().unwrap();
        assert_eq!(view.start_time_unix_nano(), want.start_time_unix_nano);
        assert_eq!(view.start_time_unix_nano(), 5);
        assert_eq!(view.end_time_unix_nano(), want.end_time_unix_nano);
        assert_eq!(view.flags(), want.flags);
        assert_eq!(view.trace_state(), want.trace_state);
        assert_eq!(view.status_code(), want.status.as_ref().unwrap().code);
        let (key, value) = key_value(view.attributes().next().unwrap());
        assert_eq!((key, value), (&b"k"[..], AttrValue::Int(7)));
    }
}
