//! A small protobuf walk over an OTLP `ExportTraceServiceRequest`: only the span fields the
//! sampler reads, so the plugin needs no protobuf library. Malformed input ends the walk early
//! (what was read so far is kept) rather than trapping.

/// What the sampler reads of one span.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    pub start: u64,
    pub end: u64,
    pub status_code: u64,
}

/// One field: its number and its value.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Other,
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message, in order, until the end or the first malformed one.
fn fields(buf: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= buf.len() {
            return None;
        }
        let key = varint(buf, &mut at)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(buf, &mut at)?),
            1 => {
                let bytes = buf.get(at..at + 8)?;
                at += 8;
                Field::Fixed64(u64::from_le_bytes(bytes.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).ok()?;
                let bytes = buf.get(at..at.checked_add(len)?)?;
                at += len;
                Field::Bytes(bytes)
            }
            5 => {
                buf.get(at..at + 4)?;
                at += 4;
                Field::Other
            }
            _ => return None,
        };
        Some((key >> 3, field))
    })
}

/// The embedded messages at field `number`.
fn messages(buf: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    fields(buf).filter_map(move |(n, f)| match f {
        Field::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

/// Every span of the request (resource_spans = 1 → scope_spans = 2 → spans = 2).
pub fn spans(request: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    for resource in messages(request, 1) {
        for scope in messages(resource, 2) {
            out.extend(messages(scope, 2).map(span));
        }
    }
    out
}

/// name = 5, start_time_unix_nano = 7, end_time_unix_nano = 8, status = 15 (code = 3).
fn span(buf: &[u8]) -> Span {
    let mut span = Span::default();
    for (number, field) in fields(buf) {
        match (number, field) {
            (5, Field::Bytes(b)) => span.name = String::from_utf8_lossy(b).into_owned(),
            (7, Field::Fixed64(v)) => span.start = v,
            (8, Field::Fixed64(v)) => span.end = v,
            (15, Field::Bytes(status)) => {
                for (n, f) in fields(status) {
                    if let (3, Field::Varint(code)) = (n, f) {
                        span.status_code = code;
                    }
                }
            }
            _ => {}
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_bytes(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn fixed(number: u64, v: u64) -> Vec<u8> {
        let mut out = vec![(number << 3 | 1) as u8];
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    // A hand-encoded request with one span reads back its name, times and status code.
    #[test]
    fn reads_one_span() {
        let mut span = field_bytes(5, b"op");
        span.extend(fixed(7, 1_000));
        span.extend(fixed(8, 9_000));
        span.extend(field_bytes(15, &[3 << 3, 2]));
        let request = field_bytes(1, &field_bytes(2, &field_bytes(2, &span)));
        let read = spans(&request);
        assert_eq!(
            read,
            vec![Span {
                name: "op".into(),
                start: 1_000,
                end: 9_000,
                status_code: 2
            }]
        );
    }

    // Truncated input keeps what was read and does not panic.
    #[test]
    fn truncated_input_stops() {
        assert!(spans(&[0x0a, 0x40, 0x12]).is_empty());
    }
}
