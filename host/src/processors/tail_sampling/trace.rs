//! A traces request split by trace ID, and a held trace read back for the policies.
//!
//! Each piece is one `resource_spans` entry of an export request (field 1, tag and length
//! included) holding one trace's spans from one incoming `ResourceSpans`, with its resource and
//! scopes. Pieces of any traces concatenate into a valid export request, so releasing sampled
//! traces is concatenation, as the exporters batch.

use crate::pdata::route;
use crate::pdata::wire::{self, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

/// A trace ID as the table keys it.
pub type TraceId = [u8; 16];

/// One trace's spans from one incoming `ResourceSpans`, encoded.
#[derive(Debug)]
pub struct Piece {
    pub trace_id: TraceId,
    /// `resource_spans` field of an export request: tag, length, `ResourceSpans`.
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

/// A held trace as the policies read it: every piece decoded, in arrival order.
pub struct TraceData {
    pub id: TraceId,
    pub batches: Vec<ResourceSpans>,
    pub span_count: i64,
    /// The trace's pieces concatenated: an encoded `ExportTraceServiceRequest`.
    encoded: Vec<u8>,
}

impl TraceData {
    /// Decodes a trace's concatenated pieces. Pieces are trailhead's own encoding, so this
    /// fails only on a bug; the trace then reads as empty.
    pub fn decode(id: TraceId, encoded: Vec<u8>, span_count: u64) -> TraceData {
        let batches = ExportTraceServiceRequest::decode(encoded.as_slice())
            .map(|r| r.resource_spans)
            .unwrap_or_default();
        TraceData {
            id,
            batches,
            span_count: span_count as i64,
            encoded,
        }
    }

    /// The trace as an encoded `ExportTraceServiceRequest` (its pieces in arrival order), for
    /// policies that hand the whole trace on, as plugins do.
    // The plugin policy (being added alongside) is its first reader.
    #[allow(dead_code)]
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

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
}
