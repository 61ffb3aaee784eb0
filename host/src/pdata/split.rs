//! Splitting an encoded export request into requests that fit a bound in bytes and items, at
//! its own boundaries: whole resources first, then whole scopes under a copy of their resource,
//! then whole items under a copy of their scope. An item is never cut, and a profiles request
//! is never split at all (its profiles share its one dictionary).
//!
//! The pieces share the request's bytes: a resource or scope that is re-framed gets a new
//! header of a few bytes and a copy of its own small fields (the resource's attributes, the
//! scope's name); every scope and item inside is a slice of the original parts.

use super::payload::Payload;
use super::{Signal, wire};
use bytes::{Buf, Bytes};
use std::ops::Range;

/// How large one export request may be. `usize::MAX` in either means no bound in that unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub bytes: usize,
    pub items: usize,
}

/// One request of a split.
#[derive(Clone, Debug)]
pub struct Piece {
    pub payload: Payload,
    pub items: usize,
}

/// A complete field of a message (tag, length and body) as slices of the request, with its size.
#[derive(Default)]
struct Unit {
    parts: Vec<Bytes>,
    bytes: usize,
    items: usize,
}

impl Unit {
    /// Whether this unit, under a header of `overhead` bytes, is too large for `bound`.
    fn exceeds(&self, bound: Bound, overhead: usize) -> bool {
        self.bytes + overhead > bound.bytes || self.items > bound.items
    }
}

/// Splits `payload` (an export request of `signal` holding `items`) into pieces within `bound`.
/// A request within it comes back whole; an item larger than the bound on its own comes back as
/// a piece of its own, for the caller to send or refuse. A request that does not read as one
/// (it was checked on the way in, so this does not happen) comes back whole.
pub fn split(signal: Signal, payload: &Payload, items: usize, bound: Bound) -> Vec<Piece> {
    let whole = || {
        vec![Piece {
            payload: payload.clone(),
            items,
        }]
    };
    // A profiles request is not split: its profiles index into one dictionary.
    if (payload.len() <= bound.bytes && items <= bound.items) || !signal.merges_by_concatenation() {
        return whole();
    }
    let Some(fields) = fields_in(payload, 0..payload.len()) else {
        return whole();
    };
    let units = child_units(signal, payload, &fields, Kind::Resource, 0, bound);
    pack(units, bound, 0)
        .into_iter()
        .map(|group| {
            let items = group.iter().map(|u| u.items).sum();
            let parts = group.into_iter().flat_map(|u| u.parts).collect();
            Piece {
                payload: Payload::new(parts),
                items,
            }
        })
        .collect()
}

/// What a field is: a resource of the request, a scope of a resource, an item of a scope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resource,
    Scope,
    Item,
}

/// Re-frames a resource (or scope) that exceeds `bound` as several, each holding its own
/// fields and a share of its scopes (or items). `None` if it has fewer than two to share.
fn split_message(
    signal: Signal,
    payload: &Payload,
    field: &Field,
    kind: Kind,
    bound: Bound,
) -> Option<Vec<Unit>> {
    let fields = fields_in(payload, field.body.clone())?;
    let (children, own): (Vec<Field>, Vec<Field>) = fields.into_iter().partition(|f| f.number == 2);
    let own: Vec<Bytes> = own
        .iter()
        .flat_map(|f| payload.slice(f.start..f.body.end))
        .collect();
    let own_len: usize = own.iter().map(Bytes::len).sum();
    // The new header: a one-byte tag and a length of at most 10 bytes.
    let overhead = own_len + 11;
    let child_kind = match kind {
        Kind::Resource => Kind::Scope,
        _ => Kind::Item,
    };
    let units = child_units(signal, payload, &children, child_kind, overhead, bound);
    if units.len() < 2 {
        return None;
    }
    let groups = pack(units, bound, overhead);
    Some(
        groups
            .into_iter()
            .map(|group| reframe(field, &own, own_len, group))
            .collect(),
    )
}

/// Each of `children` (fields of `kind`) as a unit; a resource or scope too large for `bound`
/// under `overhead` is split into several. Of the request's fields only resources (field 1)
/// are split; any other is passed on whole.
fn child_units(
    signal: Signal,
    payload: &Payload,
    children: &[Field],
    kind: Kind,
    overhead: usize,
    bound: Bound,
) -> Vec<Unit> {
    let mut units = Vec::with_capacity(children.len());
    for child in children {
        let unit = field_unit(signal, payload, child, kind);
        let splittable = match kind {
            Kind::Resource => child.number == 1,
            Kind::Scope => true,
            Kind::Item => false,
        };
        let smaller = (splittable && unit.exceeds(bound, overhead))
            .then(|| split_message(signal, payload, child, kind, bound))
            .flatten();
        match smaller {
            Some(smaller) => units.extend(smaller),
            None => units.push(unit),
        }
    }
    units
}

/// One message of `field`'s number holding `own` fields and `children`.
fn reframe(field: &Field, own: &[Bytes], own_len: usize, children: Vec<Unit>) -> Unit {
    let body_len = own_len + children.iter().map(|u| u.bytes).sum::<usize>();
    let mut header = Vec::with_capacity(11);
    wire::put_varint(&mut header, field.number << 3 | 2);
    wire::put_varint(&mut header, body_len as u64);
    let header = Bytes::from(header);
    let items = children.iter().map(|u| u.items).sum();
    let mut parts = Vec::with_capacity(2 + own.len() + children.len());
    let bytes = header.len() + body_len;
    parts.push(header);
    parts.extend(own.iter().cloned());
    parts.extend(children.into_iter().flat_map(|u| u.parts));
    Unit {
        parts,
        bytes,
        items,
    }
}

/// Groups consecutive units so each group, plus `overhead`, stays within `bound`; a unit that
/// cannot fit even alone is a group of its own.
fn pack(units: Vec<Unit>, bound: Bound, overhead: usize) -> Vec<Vec<Unit>> {
    let mut groups: Vec<Vec<Unit>> = Vec::new();
    let (mut bytes, mut items) = (0, 0);
    for unit in units {
        let fits =
            bytes + unit.bytes + overhead <= bound.bytes && items + unit.items <= bound.items;
        match groups.last_mut() {
            Some(group) if fits => {
                bytes += unit.bytes;
                items += unit.items;
                group.push(unit);
            }
            _ => {
                (bytes, items) = (unit.bytes, unit.items);
                groups.push(vec![unit]);
            }
        }
    }
    groups
}

/// A field's whole encoding as a unit, with the items it holds.
fn field_unit(signal: Signal, payload: &Payload, field: &Field, kind: Kind) -> Unit {
    let items = {
        // Joined (copied) only when the field spans parts; only a request being split is
        // counted this way.
        let body = Payload::new(payload.slice(field.body.clone())).to_bytes();
        match kind {
            Kind::Resource => wire::count_resource_items(signal, &body),
            Kind::Scope => wire::count_scope_items(signal, &body),
            Kind::Item => wire::count_item(signal, &body),
        }
    };
    Unit {
        parts: payload.slice(field.start..field.body.end),
        bytes: field.body.end - field.start,
        items,
    }
}

/// A field of a message in a payload: its number, where its encoding starts and its body.
struct Field {
    number: u64,
    start: usize,
    body: Range<usize>,
}

/// The fields of the message occupying `range` of `payload`; `None` if it does not read.
fn fields_in(payload: &Payload, range: Range<usize>) -> Option<Vec<Field>> {
    let mut reader = payload.reader();
    reader.advance(range.start);
    let mut at = range.start;
    let mut fields = Vec::new();
    while at < range.end {
        let before = reader.remaining();
        let key = prost::encoding::decode_varint(&mut reader).ok()?;
        let length = match key & 7 {
            0 => {
                prost::encoding::decode_varint(&mut reader).ok()?;
                0
            }
            1 => 8,
            2 => usize::try_from(prost::encoding::decode_varint(&mut reader).ok()?).ok()?,
            5 => 4,
            _ => return None,
        };
        let body_start = at + (before - reader.remaining());
        if length > reader.remaining() || body_start + length > range.end {
            return None;
        }
        reader.advance(length);
        fields.push(Field {
            number: key >> 3,
            start: at,
            body: body_start..body_start + length,
        });
        at = body_start + length;
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    /// `resources` resources, each with `scopes` scopes of `spans` spans of ~`size` bytes.
    fn request(
        resources: usize,
        scopes: usize,
        spans: usize,
        size: usize,
    ) -> ExportTraceServiceRequest {
        let span = |r, s, i| Span {
            name: format!("r{r}s{s}i{i}"),
            attributes: vec![attribute("url.full", &"x".repeat(size))],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: (0..resources)
                .map(|r| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![attribute("service.name", &format!("svc{r}"))],
                        ..Default::default()
                    }),
                    scope_spans: (0..scopes)
                        .map(|s| ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: format!("scope{s}"),
                                ..Default::default()
                            }),
                            spans: (0..spans).map(|i| span(r, s, i)).collect(),
                            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                        })
                        .collect(),
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    /// Every span with the service and scope it sits under, in order.
    fn spans_of(request: &ExportTraceServiceRequest) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for rs in &request.resource_spans {
            let service = format!("{:?}", rs.resource.as_ref().unwrap().attributes[0].value);
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().unwrap().name.clone();
                for span in &ss.spans {
                    out.push((service.clone(), scope.clone(), span.name.clone()));
                }
            }
        }
        out
    }

    /// Splits `original` within `bound` and checks what every split must hold: each piece
    /// decodes, fits (unless it is one item), counts its items right, and together the
    /// pieces hold every span once, in order, under its own resource and scope.
    fn check(original: &ExportTraceServiceRequest, bound: Bound) -> Vec<Piece> {
        let bytes = Bytes::from(original.encode_to_vec());
        let items = wire::count_items(Signal::Traces, &bytes).unwrap();
        let pieces = split(Signal::Traces, &Payload::from(bytes.clone()), items, bound);
        let mut all = Vec::new();
        for piece in &pieces {
            let joined = piece.payload.to_bytes();
            assert_eq!(wire::count_items(Signal::Traces, &joined), Ok(piece.items));
            assert!(
                piece.items == 1 || (joined.len() <= bound.bytes && piece.items <= bound.items),
                "a piece of {} bytes, {} items over {bound:?}",
                joined.len(),
                piece.items
            );
            let decoded = ExportTraceServiceRequest::decode(joined).unwrap();
            all.extend(spans_of(&decoded));
            // Shared, not copied: the longest part of a multi-span piece lies in the original.
            let longest = piece
                .payload
                .parts()
                .iter()
                .max_by_key(|p| p.len())
                .unwrap();
            let inside = bytes.as_ptr_range();
            assert!(
                inside.contains(&longest.as_ptr()),
                "a piece's spans were copied"
            );
        }
        assert_eq!(all, spans_of(original));
        assert_eq!(pieces.iter().map(|p| p.items).sum::<usize>(), items);
        pieces
    }

    /// A bound in bytes alone.
    fn at_most_bytes(bytes: usize) -> Bound {
        Bound {
            bytes,
            items: usize::MAX,
        }
    }

    // A request within the bound is not touched.
    #[test]
    fn a_request_within_the_bound_comes_back_whole() {
        let bytes = Bytes::from(request(2, 2, 3, 10).encode_to_vec());
        let payload = Payload::from(bytes.clone());
        let pieces = split(
            Signal::Traces,
            &payload,
            12,
            Bound {
                bytes: bytes.len(),
                items: 12,
            },
        );
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].payload.parts()[0].as_ptr(), bytes.as_ptr());
    }

    // Whole resources go together while they fit.
    #[test]
    fn splits_between_resources() {
        let original = request(8, 1, 4, 1000);
        let pieces = check(&original, at_most_bytes(10_000));
        assert_eq!(pieces.len(), 4, "two resources of ~4 KB a piece");
    }

    // One resource too large alone is split between its scopes, then between items, each
    // piece carrying a copy of the resource and scope it came from.
    #[test]
    fn splits_inside_a_resource_and_a_scope() {
        let original = request(1, 3, 50, 900);
        let pieces = check(&original, at_most_bytes(8_000));
        assert!(pieces.len() >= 20, "{} pieces", pieces.len());
        let pieces = check(
            &original,
            Bound {
                bytes: usize::MAX,
                items: 7,
            },
        );
        assert!(pieces.iter().all(|p| p.items <= 7));
        assert_eq!(
            pieces.len(),
            3 * 8,
            "each scope of 50 in pieces of 7: 7 full and 1 of 1"
        );
    }

    // An item larger than the bound alone becomes a piece of its own; the others still fit.
    #[test]
    fn an_item_over_the_bound_is_a_piece_alone() {
        let mut original = request(1, 1, 5, 100);
        original.resource_spans[0].scope_spans[0].spans[2].attributes[0] =
            attribute("big", &"y".repeat(50_000));
        let pieces = check(&original, at_most_bytes(2_000));
        let big: Vec<_> = pieces.iter().filter(|p| p.payload.len() > 2_000).collect();
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].items, 1);
    }

    // Pieces of a request that arrives in parts (as the exporter merges and plugins share
    // them) are slices of those parts; metric items are data points.
    #[test]
    fn splits_across_parts_and_counts_points() {
        let first = wire::tests_support::gauges_request(&[3, 4]);
        let second = wire::tests_support::gauges_request(&[5]);
        let payload = Payload::new(vec![first.clone(), second.slice(..3), second.slice(3..)]);
        let pieces = split(
            Signal::Metrics,
            &payload,
            12,
            Bound {
                bytes: usize::MAX,
                items: 5,
            },
        );
        let items: Vec<usize> = pieces.iter().map(|p| p.items).collect();
        assert_eq!(items, [3, 4, 5]);
        for piece in &pieces {
            let joined = piece.payload.to_bytes();
            assert_eq!(wire::count_items(Signal::Metrics, &joined), Ok(piece.items));
        }
    }
}
