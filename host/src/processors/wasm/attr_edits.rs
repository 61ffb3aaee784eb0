//! Attribute writes to an item that was never decoded, applied to its encoding. A plugin that
//! sets or removes a few attributes on every span (transform's `set`, `delete_key`; attributes'
//! `insert`) made the host decode each span into prost structs, validate every string, and
//! encode it back: 3–4 µs a span for one constant attribute (S10's transform, 2026-12-07).
//! Here the span's fields are copied as they are and only its attribute list is rebuilt, from
//! the original `KeyValue` bytes and the new ones.
//!
//! The result is what the decoded path gives ([`super::host::upsert`], `retain`): a set
//! overwrites the first attribute with its key in place or appends one; a removal takes every
//! attribute with one of its keys; operations apply in the order the plugin made them.

use super::host::upsert;
use crate::pdata::wire;
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use std::ops::Range;
use std::sync::Arc;

/// An item's writes not yet applied. Most calls leave one or two per item, held inline: a
/// vector each was an allocation per span per call.
pub type Pending = smallvec::SmallVec<[AttrOp; 2]>;

/// One attribute write, kept until the item is read or encoded.
#[derive(Clone, Debug)]
pub enum AttrOp {
    /// Shared by every item of one `set-attr` call.
    Set(Arc<Written>),
    Remove(Arc<[Bytes]>),
}

/// An attribute as a set writes it: its `KeyValue` encoded once for every item it goes to,
/// which then copies it whole.
#[derive(Debug)]
pub struct Written {
    kv: Vec<u8>,
    key: Range<usize>,
    value: Range<usize>,
}

impl Written {
    fn key(&self) -> &[u8] {
        &self.kv[self.key.clone()]
    }

    /// The encoded `AnyValue`.
    fn value(&self) -> &[u8] {
        &self.kv[self.value.clone()]
    }
}

impl AttrOp {
    /// Sets `key` to `value`, encoded once for every entry it is applied to.
    pub fn set(key: String, value: &AnyValue) -> AttrOp {
        let value = value.encode_to_vec();
        let mut kv = Vec::with_capacity(key.len() + value.len() + 6);
        wire::put_bytes_field(&mut kv, 1, key.as_bytes());
        let key_at = kv.len() - key.len()..kv.len();
        wire::put_bytes_field(&mut kv, 2, &value);
        let value_at = kv.len() - value.len()..kv.len();
        AttrOp::Set(Arc::new(Written {
            kv,
            key: key_at,
            value: value_at,
        }))
    }

    /// Removes every attribute named by one of `keys`.
    pub fn remove(keys: &[String]) -> AttrOp {
        AttrOp::Remove(
            keys.iter()
                .map(|k| Bytes::copy_from_slice(k.as_bytes()))
                .collect(),
        )
    }

    /// The same write on a decoded attribute list (entries other than items, and items
    /// already decoded): what [`apply`] does to an encoding.
    pub fn apply_decoded(self, attributes: &mut Vec<KeyValue>) {
        match self {
            AttrOp::Set(written) => {
                let key = String::from_utf8_lossy(written.key()).into_owned();
                let value = AnyValue::decode(written.value()).unwrap_or_default();
                upsert(attributes, key, value);
            }
            AttrOp::Remove(keys) => {
                attributes.retain(|kv| !keys.iter().any(|k| k == kv.key.as_bytes()))
            }
        }
    }

    /// What this write leaves of `key`: `Some(None)` removed, `None` not written.
    fn written(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        match self {
            AttrOp::Set(written) if written.key() == key => Some(Some(written.value())),
            AttrOp::Remove(keys) if keys.iter().any(|k| k == key) => Some(None),
            _ => None,
        }
    }
}

/// What the last of `ops` that writes `key` left: `Some(None)` removed, `None` not written.
pub fn pending<'a>(ops: &'a [AttrOp], key: &str) -> Option<Option<&'a [u8]>> {
    ops.iter().rev().find_map(|op| op.written(key.as_bytes()))
}

/// An attribute of the item being rebuilt: as it came (the byte range of its whole field,
/// framing included), or written now.
enum Entry<'a> {
    Original { key: &'a [u8], at: Range<usize> },
    New(&'a Written),
}

impl Entry<'_> {
    fn key(&self) -> &[u8] {
        match self {
            Entry::Original { key, .. } => key,
            Entry::New(written) => written.key(),
        }
    }
}

/// An item's attribute fields as they came, and where they lie.
struct Walked<'a> {
    entries: Vec<Entry<'a>>,
    /// Byte range from the first attribute field to the end of the last, when no other
    /// field lies between them (how every encoder writes a repeated field).
    run: Option<Range<usize>>,
}

/// `item` with `ops` applied to its attributes (field `attributes`), or `None` when its
/// encoding does not walk to its end (it is left as it came, as the decoded path would).
pub fn apply(item: &Bytes, attributes: u64, ops: &[AttrOp]) -> Option<Bytes> {
    let Walked { mut entries, run } = walk(item, attributes)?;
    let before = entries.len();
    for op in ops {
        match op {
            AttrOp::Set(written) => set(&mut entries, written),
            AttrOp::Remove(keys) => entries.retain(|e| !keys.iter().any(|k| k == e.key())),
        }
    }
    // An edit that changes nothing (a key removed that no item had) keeps the item: a set
    // or a removal that hit would have left a new entry or one fewer.
    let untouched =
        entries.len() == before && entries.iter().all(|e| matches!(e, Entry::Original { .. }));
    if untouched {
        return Some(item.clone());
    }
    // Otherwise its other fields are copied as they came around the new list.
    let mut out = Vec::with_capacity(item.len() + 64);
    match run {
        Some(run) => {
            out.extend_from_slice(&item[..run.start]);
            put_entries(&mut out, item, attributes, &entries);
            out.extend_from_slice(&item[run.end..]);
        }
        None => encode(&mut out, item, attributes, &entries),
    }
    Some(Bytes::from(out))
}

/// The attribute fields of `item`, or `None` when it does not walk to its end.
fn walk(item: &[u8], attributes: u64) -> Option<Walked<'_>> {
    let mut entries = Vec::new();
    let (mut walked, mut run, mut split) = (0, None, false);
    for (number, value, whole) in wire::fields(item) {
        let at = walked;
        walked += whole.len();
        if let (true, wire::Value::Bytes(kv)) = (number == attributes, value) {
            entries.push(Entry::Original {
                key: key_of(kv)?,
                at: at..walked,
            });
            run = match run {
                None => Some(at..walked),
                Some(run) => {
                    split |= run.end != at;
                    Some(run.start..walked)
                }
            };
        }
    }
    (walked == item.len()).then_some(Walked {
        entries,
        run: if split { None } else { run },
    })
}

fn set<'a>(entries: &mut Vec<Entry<'a>>, written: &'a Written) {
    let new = Entry::New(written);
    match entries.iter_mut().find(|e| e.key() == written.key()) {
        Some(entry) => *entry = new,
        None => entries.push(new),
    }
}

/// A `KeyValue`'s key: protobuf's last `key` field, empty when it has none.
fn key_of(kv: &[u8]) -> Option<&[u8]> {
    if let Some((key, _)) = wire::plain_key_value(kv) {
        return Some(key);
    }
    let mut key: &[u8] = &[];
    let mut walked = 0;
    for (number, value, whole) in wire::fields(kv) {
        walked += whole.len();
        if let (1, wire::Value::Bytes(k)) = (number, value) {
            key = k;
        }
    }
    (walked == kv.len()).then_some(key)
}

/// The item's other fields as they came, with the attribute list where its first entry was
/// (at the end when it had none): for attribute fields split by other fields.
fn encode(out: &mut Vec<u8>, item: &[u8], attributes: u64, entries: &[Entry<'_>]) {
    let mut written = false;
    for (number, _, whole) in wire::fields(item) {
        if number != attributes {
            out.extend_from_slice(whole);
        } else if !std::mem::replace(&mut written, true) {
            put_entries(out, item, attributes, entries);
        }
    }
    if !written {
        put_entries(out, item, attributes, entries);
    }
}

/// The attribute fields: original ones copied as they came, adjacent ones in one copy.
fn put_entries(out: &mut Vec<u8>, item: &[u8], attributes: u64, entries: &[Entry<'_>]) {
    let mut pending: Option<Range<usize>> = None;
    for entry in entries {
        match entry {
            Entry::Original { at, .. } => {
                pending = match pending {
                    Some(run) if run.end == at.start => Some(run.start..at.end),
                    Some(run) => {
                        out.extend_from_slice(&item[run]);
                        Some(at.clone())
                    }
                    None => Some(at.clone()),
                };
            }
            Entry::New(written) => {
                if let Some(run) = pending.take() {
                    out.extend_from_slice(&item[run]);
                }
                wire::put_bytes_field(out, attributes, &written.kv);
            }
        }
    }
    if let Some(run) = pending {
        out.extend_from_slice(&item[run]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::trace::v1::{Span, span};

    fn string(s: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        }
    }

    fn span_with(keys: &[&str]) -> Span {
        Span {
            name: "GET /lessons".into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: keys
                .iter()
                .map(|k| KeyValue {
                    key: k.to_string(),
                    value: Some(string(&format!("v-{k}"))),
                    ..Default::default()
                })
                .collect(),
            events: vec![span::Event {
                name: "e".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// A key, and the value it is set to (`None`: removed).
    type Op<'a> = (&'a str, Option<&'a str>);

    /// The same operations through the decoded path the host used before.
    fn decoded_path(mut span: Span, ops: &[(&str, Option<&str>)]) -> Span {
        for (key, value) in ops {
            match value {
                Some(v) => upsert(&mut span.attributes, key.to_string(), string(v)),
                None => span.attributes.retain(|kv| kv.key != *key),
            }
        }
        span
    }

    fn wire_path(span: &Span, ops: &[(&str, Option<&str>)]) -> Span {
        let ops: Vec<AttrOp> = ops
            .iter()
            .map(|(key, value)| match value {
                Some(v) => AttrOp::set(key.to_string(), &string(v)),
                None => AttrOp::remove(&[key.to_string()]),
            })
            .collect();
        let bytes = apply(&Bytes::from(span.encode_to_vec()), 9, &ops).unwrap();
        Span::decode(bytes).unwrap()
    }

    // Sets over existing and new keys, removals of present, absent and re-added keys, and
    // duplicates in the input: the same span as decoding, editing and encoding it.
    #[test]
    fn edits_match_the_decoded_path() {
        let cases: Vec<(Vec<&str>, Vec<Op>)> = vec![
            (
                vec!["a", "b", "c"],
                vec![("b", Some("B")), ("d", Some("D"))],
            ),
            (vec!["a", "b", "c"], vec![("a", None), ("c", Some("C"))]),
            (
                vec![],
                vec![("x", Some("1")), ("y", Some("2")), ("x", None)],
            ),
            (vec!["a", "a", "b"], vec![("a", Some("first only"))]),
            (vec!["a", "a", "b"], vec![("a", None), ("a", Some("back"))]),
            (vec!["a"], vec![("zz", None)]),
        ];
        for (keys, ops) in cases {
            let span = span_with(&keys);
            assert_eq!(
                wire_path(&span, &ops),
                decoded_path(span.clone(), &ops),
                "{keys:?} {ops:?}"
            );
        }
    }

    // Attribute fields split by another field (legal protobuf, though no encoder writes it)
    // take the general path: still the decoded path's result, the list where it began.
    #[test]
    fn split_attribute_fields_match_the_decoded_path() {
        let span = span_with(&["a", "b"]);
        let mut bytes = span.encode_to_vec();
        let late = KeyValue {
            key: "c".into(),
            value: Some(string("v-c")),
            ..Default::default()
        };
        wire::put_bytes_field(&mut bytes, 9, &late.encode_to_vec());
        let decoded = Span::decode(&bytes[..]).unwrap();
        assert_eq!(decoded.attributes.len(), 3);
        let ops = [
            AttrOp::set("b".into(), &string("B")),
            AttrOp::remove(&["c".to_string()]),
        ];
        let edited = Span::decode(apply(&Bytes::from(bytes), 9, &ops).unwrap()).unwrap();
        let mut expected = decoded;
        for op in ops {
            op.apply_decoded(&mut expected.attributes);
        }
        assert_eq!(edited, expected);
    }

    // An encoding that stops short is left alone (the caller keeps the item as it came).
    #[test]
    fn a_truncated_item_is_not_edited() {
        let bytes = Bytes::from(span_with(&["a"]).encode_to_vec());
        let ops = [AttrOp::Remove(Arc::from(vec![Bytes::from_static(b"a")]))];
        assert!(apply(&bytes.slice(..bytes.len() - 1), 9, &ops).is_none());
    }
}
