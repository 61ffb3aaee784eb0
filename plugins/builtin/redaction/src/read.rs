//! Every span's attribute map from one `to_otlp`, as transform and filter read them: an `attrs`
//! call per span lifted ten string pairs across the boundary one span at a time and cost more
//! than the redaction itself.

use pdata_text::{Tree, pb};

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Calls `each` with every length-delimited field of a message, (number, bytes); `None` when
/// the message or `each` fails. No list is built: this runs for every attribute of the batch.
fn walk<'a>(mut b: &'a [u8], mut each: impl FnMut(u64, &'a [u8]) -> Option<()>) -> Option<()> {
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        let skip = match tag & 7 {
            0 => {
                varint(&mut b)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = varint(&mut b)? as usize;
                let (value, rest) = b.split_at_checked(len)?;
                b = rest;
                each(tag >> 3, value)?;
                0
            }
            _ => return None,
        };
        b = b.get(skip..)?;
    }
    Some(())
}

/// Calls `each` with every field numbered `number`.
fn each<'a>(b: &'a [u8], number: u64, mut each: impl FnMut(&'a [u8]) -> Option<()>) -> Option<()> {
    walk(
        b,
        |n, value| if n == number { each(value) } else { Some(()) },
    )
}

/// A `KeyValue`: its key and decoded value (the last of each field, as protobuf reads them).
fn key_value(kv: &[u8]) -> Option<(String, Tree)> {
    let (mut key, mut value): (&[u8], _) = (&[], None);
    walk(kv, |n, bytes| {
        match n {
            1 => key = bytes,
            2 => value = Some(bytes),
            _ => {}
        }
        Some(())
    })?;
    let value = value.map_or(Tree::Empty, pb::value);
    Some((String::from_utf8_lossy(key).into_owned(), value))
}

/// Every span's attributes, in item order, from an encoded trace export request; `None` when
/// it does not decode.
pub fn span_attributes(request: &[u8]) -> Option<Vec<Vec<(String, Tree)>>> {
    let mut out = Vec::new();
    each(request, 1, |resource| {
        each(resource, 2, |scope| {
            each(scope, 2, |span| {
                let mut attrs = Vec::new();
                each(span, 9, |kv| {
                    attrs.push(key_value(kv)?);
                    Some(())
                })?;
                out.push(attrs);
                Some(())
            })
        })
    })?;
    Some(out)
}
