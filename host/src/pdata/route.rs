//! Grouping an encoded export request by a routing key (a span's trace ID, a resource's
//! `service.name`, the resource itself), so each group can go to the backend that owns its key.
//!
//! The one idea: a group keeps the structure the items came in. Each item is written back under
//! a copy of its own scope's fields, under a copy of its own resource's fields, so a backend
//! receives the same resources and scopes for its share. When every item lands in one group
//! (a request of one trace, the common case from an SDK batch of one service) the request is
//! passed on as it is, without a copy.

use super::payload::Payload;
use super::wire::{self, Value};
use super::{Signal, split::Piece};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

/// What a request is grouped by (the loadbalancing exporter's `routing_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteBy {
    /// A span's (or log record's) trace ID; a log record without one is keyed by its bytes.
    TraceId,
    /// The resource's `service.name` (empty when it has none).
    Service,
    /// The resource's whole encoding: its attributes and their order.
    Resource,
}

/// Splits `payload` (an export request of `signal` holding `items`) into one piece per owner. `owner` maps a
/// key to the index of its owner. The request arrived checked, so a field that does not parse
/// is kept in the group of the items around it rather than dropped.
pub fn group(
    signal: Signal,
    payload: &Payload,
    items: usize,
    by: RouteBy,
    mut owner: impl FnMut(&[u8]) -> usize,
) -> BTreeMap<usize, Piece> {
    let bytes = payload.to_bytes();
    let layout = Layout::of(signal, &bytes, |resource, item| {
        owner(&key(signal, by, resource, item))
    });
    let mut groups = BTreeMap::new();
    let Some(first) = layout.items.first().map(|i| i.owner) else {
        return groups;
    };
    if layout.items.iter().all(|i| i.owner == first) {
        let piece = Piece {
            payload: payload.clone(),
            items,
        };
        groups.insert(first, piece);
        return groups;
    }
    layout
        .write()
        .into_iter()
        .map(|(owner, request, items)| {
            let payload = Payload::new(vec![Bytes::from(request)]);
            (owner, Piece { payload, items })
        })
        .collect()
}

/// One trace's share of an encoded traces request, from [`group_by_trace`].
#[derive(Debug)]
pub struct TraceGroup<'a> {
    /// The trace ID field as its spans carry it (possibly empty or of another length).
    pub trace_id: &'a [u8],
    /// `resource_spans` fields of an export request: one per incoming resource holding spans
    /// of the trace, each under copies of its resource's and scopes' own fields.
    pub encoded: Vec<u8>,
    pub spans: usize,
    /// Whether a span of the group has no parent span ID (a root span).
    pub has_root: bool,
}

/// Groups an encoded traces request by the spans' trace ID fields, in the order each trace
/// first appears, copying bytes rather than decoding (the tail-sampling processor holds
/// traces this way). Spans with equal trace ID bytes share a group.
pub fn group_by_trace(request: &[u8]) -> Vec<TraceGroup<'_>> {
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut groups: Vec<TraceGroup<'_>> = Vec::new();
    // The spans of a trace usually come one after another: the last group is checked first.
    let mut last: Option<(&[u8], usize)> = None;
    let layout = Layout::of(Signal::Traces, request, |_, span| {
        let (id, root) = trace_id_and_root(span);
        let at = match last {
            Some((previous, at)) if previous == id => at,
            _ => *index.entry(id).or_insert_with(|| {
                groups.push(TraceGroup {
                    trace_id: id,
                    encoded: Vec::new(),
                    spans: 0,
                    has_root: false,
                });
                groups.len() - 1
            }),
        };
        last = Some((id, at));
        groups[at].has_root |= root;
        at
    });
    for (at, encoded, spans) in layout.write() {
        groups[at].encoded = encoded;
        groups[at].spans = spans;
    }
    groups
}

/// A span's trace ID field (empty when absent) and whether it is a root (no parent span ID),
/// in one pass over its fields: Span.trace_id is field 1, parent_span_id field 4.
fn trace_id_and_root(span: &[u8]) -> (&[u8], bool) {
    let (mut id, mut parent): (&[u8], &[u8]) = (&[], &[]);
    for (number, value, _) in wire::fields(span) {
        let bytes = match value {
            Value::Bytes(bytes) => bytes,
            _ => &[],
        };
        match number {
            1 => id = bytes,
            4 => parent = bytes,
            _ => {}
        }
    }
    (id, parent.is_empty())
}

/// The routing key of one item.
fn key<'a>(signal: Signal, by: RouteBy, resource: &'a [u8], item: &'a [u8]) -> Vec<u8> {
    match by {
        RouteBy::TraceId => {
            // Span.trace_id is field 1; LogRecord.trace_id is field 9.
            let number = if signal == Signal::Logs { 9 } else { 1 };
            match wire::last(item, number) {
                Some(Value::Bytes(id)) if !id.is_empty() => id.to_vec(),
                _ => item.to_vec(),
            }
        }
        RouteBy::Service => service_name(resource).unwrap_or_default().to_vec(),
        RouteBy::Resource => match wire::last(resource, 1) {
            Some(Value::Bytes(attributes)) => attributes.to_vec(),
            _ => Vec::new(),
        },
    }
}

/// The string value of the resource's `service.name` attribute.
fn service_name(resource_message: &[u8]) -> Option<&[u8]> {
    let Some(Value::Bytes(resource)) = wire::last(resource_message, 1) else {
        return None;
    };
    let mut found = None;
    for (number, value, _) in wire::fields(resource) {
        let (1, Value::Bytes(kv)) = (number, value) else {
            continue;
        };
        if let Some(Value::Bytes(b"service.name")) = wire::last(kv, 1)
            && let Some(Value::Bytes(any)) = wire::last(kv, 2)
            && let Some(Value::Bytes(text)) = wire::last(any, 1)
        {
            found = Some(text);
        }
    }
    found
}

/// One item's place in a request: its owner, its resource's and scope's positions, its whole
/// field (tag and length included) and how many items it counts for.
struct Placed<'a> {
    owner: usize,
    resource: usize,
    scope: usize,
    field: &'a [u8],
    count: usize,
}

/// A request's items with their owners, and the own fields (all but the children) of each of its
/// resources and scopes, so each owner's share is written once with its lengths known: one copy
/// of each item instead of one per nesting level.
struct Layout<'a> {
    resources: Vec<Vec<u8>>,
    scopes: Vec<Vec<u8>>,
    items: Vec<Placed<'a>>,
}

impl<'a> Layout<'a> {
    fn of(
        signal: Signal,
        request: &'a [u8],
        mut owner: impl FnMut(&'a [u8], &'a [u8]) -> usize,
    ) -> Self {
        let mut layout = Layout {
            resources: Vec::new(),
            scopes: Vec::new(),
            items: Vec::new(),
        };
        for resource in wire::messages(request, 1) {
            layout.resources.push(own_fields(resource, &[2]));
            for scope in wire::messages(resource, 2) {
                layout.scopes.push(own_fields(scope, &[2]));
                for (number, value, field) in wire::fields(scope) {
                    let (2, Value::Bytes(item)) = (number, value) else {
                        continue;
                    };
                    layout.items.push(Placed {
                        owner: owner(resource, item),
                        resource: layout.resources.len() - 1,
                        scope: layout.scopes.len() - 1,
                        field,
                        count: wire::count_item(signal, item),
                    });
                }
            }
        }
        layout
    }

    /// Each owner's export request and item count, by owner: its items in request order, each
    /// under its own resource's and scope's fields.
    fn write(mut self) -> Vec<(usize, Vec<u8>, usize)> {
        // Stable: an owner's items keep their order.
        self.items.sort_by_key(|item| item.owner);
        let mut out = Vec::new();
        for share in self.items.chunk_by(|a, b| a.owner == b.owner) {
            let mut request = Vec::with_capacity(self.request_len(share));
            for resource in share.chunk_by(|a, b| a.resource == b.resource) {
                let own = &self.resources[resource[0].resource];
                put_header(&mut request, 1, own.len() + self.scopes_len(resource));
                request.extend_from_slice(own);
                for scope in resource.chunk_by(|a, b| a.scope == b.scope) {
                    let own = &self.scopes[scope[0].scope];
                    put_header(&mut request, 2, own.len() + fields_len(scope));
                    request.extend_from_slice(own);
                    scope
                        .iter()
                        .for_each(|i| request.extend_from_slice(i.field));
                }
            }
            let items = share.iter().map(|i| i.count).sum();
            out.push((share[0].owner, request, items));
        }
        out
    }

    fn request_len(&self, share: &[Placed]) -> usize {
        share
            .chunk_by(|a, b| a.resource == b.resource)
            .map(|r| field_len(self.resources[r[0].resource].len() + self.scopes_len(r)))
            .sum()
    }

    /// The length of a resource's scope fields holding `items`.
    fn scopes_len(&self, items: &[Placed]) -> usize {
        items
            .chunk_by(|a, b| a.scope == b.scope)
            .map(|s| field_len(self.scopes[s[0].scope].len() + fields_len(s)))
            .sum()
    }
}

/// The encoding of the fields of `message` other than those numbered in `except` (its
/// children), as written.
pub(super) fn own_fields(message: &[u8], except: &[u64]) -> Vec<u8> {
    let mut own = Vec::new();
    for (_, _, whole) in wire::fields(message).filter(|(n, _, _)| !except.contains(n)) {
        own.extend_from_slice(whole);
    }
    own
}

fn fields_len(items: &[Placed]) -> usize {
    items.iter().map(|i| i.field.len()).sum()
}

/// The length of a length-delimited field with a one-byte tag and a `body`-byte body.
fn field_len(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// A length-delimited field's tag and length.
fn put_header(out: &mut Vec<u8>, number: u64, body: usize) {
    wire::put_varint(out, number << 3 | 2);
    wire::put_varint(out, body as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn span(trace: u8, name: &str) -> Span {
        Span {
            trace_id: vec![trace; 16],
            name: name.into(),
            ..Default::default()
        }
    }

    fn resource(service: &str, spans: Vec<Span>) -> ResourceSpans {
        let value = any_value::Value::StringValue(service.into());
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            schema_url: "s".into(),
        }
    }

    fn request(resources: Vec<ResourceSpans>) -> Payload {
        let request = ExportTraceServiceRequest {
            resource_spans: resources,
        };
        Payload::new(vec![Bytes::from(request.encode_to_vec())])
    }

    fn decode(piece: &Piece) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(piece.payload.to_bytes()).unwrap()
    }

    // Spans of one trace go to one group, each under its own resource and scope, whole.
    #[test]
    fn groups_spans_by_trace_keeping_resource_and_scope() {
        let payload = request(vec![
            resource("a", vec![span(1, "x"), span(2, "y"), span(1, "z")]),
            resource("b", vec![span(2, "w")]),
        ]);
        let groups = group(Signal::Traces, &payload, 4, RouteBy::TraceId, |k| {
            k[0] as usize
        });
        assert_eq!(groups.len(), 2);
        let one = decode(&groups[&1]);
        assert_eq!(groups[&1].items, 2);
        assert_eq!(one.resource_spans.len(), 1);
        assert_eq!(one.resource_spans[0].schema_url, "s");
        let scope = &one.resource_spans[0].scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "lib");
        let names: Vec<&str> = scope.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["x", "z"]);
        let two = decode(&groups[&2]);
        assert_eq!(groups[&2].items, 2);
        assert_eq!(two.resource_spans.len(), 2, "trace 2 spans two resources");
        assert_eq!(two.resource_spans[1].scope_spans[0].spans[0].name, "w");
    }

    // Grouping by trace keeps first-appearance order, counts spans, and sees root spans.
    #[test]
    fn groups_by_trace_with_counts_and_roots() {
        let mut child = span(2, "c");
        child.parent_span_id = vec![7; 8];
        let payload = request(vec![
            resource("a", vec![span(1, "x"), child.clone(), span(1, "z")]),
            resource("b", vec![child]),
        ]);
        let bytes = payload.to_bytes();
        let groups = group_by_trace(&bytes);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].trace_id, [1; 16]);
        assert_eq!((groups[0].spans, groups[0].has_root), (2, true));
        assert_eq!((groups[1].spans, groups[1].has_root), (2, false));
        let two = ExportTraceServiceRequest::decode(groups[1].encoded.as_slice()).unwrap();
        assert_eq!(two.resource_spans.len(), 2, "trace 2 spans two resources");
        assert_eq!(two.resource_spans[0].schema_url, "s");
        assert_eq!(two.resource_spans[1].scope_spans[0].spans[0].name, "c");
    }

    // A request wholly owned by one backend is passed on as it came, without a copy.
    #[test]
    fn one_owner_keeps_the_request() {
        let payload = request(vec![resource("a", vec![span(1, "x"), span(1, "y")])]);
        let groups = group(Signal::Traces, &payload, 2, RouteBy::TraceId, |_| 3);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[&3].items, 2);
        assert_eq!(
            groups[&3].payload.parts()[0].as_ptr(),
            payload.parts()[0].as_ptr()
        );
    }

    // `service` routes whole resources by their service.name.
    #[test]
    fn groups_by_service() {
        let payload = request(vec![
            resource("a", vec![span(1, "x")]),
            resource("b", vec![span(1, "y")]),
        ]);
        let groups = group(Signal::Traces, &payload, 2, RouteBy::Service, |k| {
            usize::from(k == b"b")
        });
        assert_eq!(
            decode(&groups[&0]).resource_spans[0].scope_spans[0].spans[0].name,
            "x"
        );
        assert_eq!(
            decode(&groups[&1]).resource_spans[0].scope_spans[0].spans[0].name,
            "y"
        );
    }
}
