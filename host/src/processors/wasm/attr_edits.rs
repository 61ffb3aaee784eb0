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
use std::sync::Arc;

/// One attribute write, kept until the item is read or encoded.
#[derive(Clone, Debug)]
pub enum AttrOp {
    /// Key and its encoded `AnyValue`: shared by every item of one `set-attr` call.
    Set(Bytes, Bytes),
    Remove(Arc<[Bytes]>),
}

impl AttrOp {
    /// Sets `key` to `value`, encoded once for every entry it is applied to.
    pub fn set(key: String, value: &AnyValue) -> AttrOp {
        AttrOp::Set(Bytes::from(key.into_bytes()), value.encode_to_vec().into())
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
            AttrOp::Set(key, value) => {
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = AnyValue::decode(value).unwrap_or_default();
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
            AttrOp::Set(k, value) if k == key => Some(Some(value)),
            AttrOp::Remove(keys) if keys.iter().any(|k| k == key) => Some(None),
            _ => None,
        }
    }
}

/// What the last of `ops` that writes `key` left: `Some(None)` removed, `None` not written.
pub fn pending<'a>(ops: &'a [AttrOp], key: &str) -> Option<Option<&'a [u8]>> {
    ops.iter().rev().find_map(|op| op.written(key.as_bytes()))
}

/// An attribute of the item being rebuilt: as it came, or written now.
enum Entry<'a> {
    Original { key: &'a [u8], kv: &'a [u8] },
    New { key: Bytes, value: Bytes },
}

impl Entry<'_> {
    fn key(&self) -> &[u8] {
        match self {
            Entry::Original { key, .. } => key,
            Entry::New { key, .. } => key,
        }
    }
}

/// `item` with `ops` applied to its attributes (field `attributes`), or `None` when its
/// encoding does not walk to its end (it is left as it came, as the decoded path would).
pub fn apply(item: &Bytes, attributes: u64, ops: &[AttrOp]) -> Option<Bytes> {
    let mut entries = Vec::new();
    let mut walked = 0;
    for (number, value, whole) in wire::fields(item) {
        walked += whole.len();
        if let (true, wire::Value::Bytes(kv)) = (number == attributes, value) {
            entries.push(Entry::Original {
                key: key_of(kv)?,
                kv,
            });
        }
    }
    if walked != item.len() {
        return None;
    }
    let before = entries.len();
    for op in ops {
        match op {
            AttrOp::Set(key, value) => set(&mut entries, key, value),
            AttrOp::Remove(keys) => entries.retain(|e| !keys.iter().any(|k| k == e.key())),
        }
    }
    Some(match appended_only(&entries, before) {
        // The common edits (a key inserted, a key removed that no item had) leave the
        // original attributes as they were: the item is kept, or copied once with the new
        // ones after it (a repeated field's entries may follow other fields).
        Some(0) => item.clone(),
        Some(_) => {
            let mut out = Vec::with_capacity(item.len() + 64);
            out.extend_from_slice(item);
            put_entries(&mut out, attributes, &entries[before..]);
            Bytes::from(out)
        }
        None => encode(item, attributes, &entries),
    })
}

/// How many entries were appended, when the first `before` are the original ones untouched
/// and in order; `None` when an original one was overwritten or removed.
fn appended_only(entries: &[Entry<'_>], before: usize) -> Option<usize> {
    let untouched = entries.len() >= before
        && entries[..before]
            .iter()
            .all(|e| matches!(e, Entry::Original { .. }));
    untouched.then(|| entries.len() - before)
}

fn set(entries: &mut Vec<Entry<'_>>, key: &Bytes, value: &Bytes) {
    let new = Entry::New {
        key: key.clone(),
        value: value.clone(),
    };
    match entries.iter_mut().find(|e| e.key() == key.as_ref()) {
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
/// (at the end when it had none).
fn encode(item: &[u8], attributes: u64, entries: &[Entry<'_>]) -> Bytes {
    let mut out = Vec::with_capacity(item.len() + 64);
    let mut written = false;
    for (number, _, whole) in wire::fields(item) {
        if number != attributes {
            out.extend_from_slice(whole);
        } else if !std::mem::replace(&mut written, true) {
            put_entries(&mut out, attributes, entries);
        }
    }
    if !written {
        put_entries(&mut out, attributes, entries);
    }
    Bytes::from(out)
}

fn put_entries(out: &mut Vec<u8>, attributes: u64, entries: &[Entry<'_>]) {
    let mut kv = Vec::new();
    for entry in entries {
        match entry {
            Entry::Original { kv: bytes, .. } => wire::put_bytes_field(out, attributes, bytes),
            Entry::New { key, value } => {
                kv.clear();
                wire::put_bytes_field(&mut kv, 1, key);
                wire::put_bytes_field(&mut kv, 2, value);
                wire::put_bytes_field(out, attributes, &kv);
            }
        }
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

    // An encoding that stops short is left alone (the caller keeps the item as it came).
    #[test]
    fn a_truncated_item_is_not_edited() {
        let bytes = Bytes::from(span_with(&["a"]).encode_to_vec());
        let ops = [AttrOp::Remove(Arc::from(vec![Bytes::from_static(b"a")]))];
        assert!(apply(&bytes.slice(..bytes.len() - 1), 9, &ops).is_none());
    }
}
