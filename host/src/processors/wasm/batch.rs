//! The host side of a batch lent to a plugin: decoded only as far as the plugin asks, and
//! changed on a working copy, so a failed call leaves the original untouched (the journal is
//! the copy; `into_encoded` applies it).
//!
//! All three OTLP requests share their field numbers down to the scope level (resource = 1,
//! scopes = 2, schema_url = 3; in a scope: scope = 1, items = 2). One skeleton therefore holds
//! any signal with its resources decoded and its scopes still encoded. Resource-attribute work
//! never touches an item.

use super::attr_edits::{self, AttrOp, Pending};
use super::items::{Item, Level};
use crate::pdata::{Payload, Signal, wire};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct Skeleton {
    #[prost(message, repeated, tag = "1")]
    resources: Vec<RawResource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawResource {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    /// `ScopeSpans` / `ScopeLogs` / `ScopeMetrics`, still encoded.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    scopes: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

/// A scope shorter than this is copied into the encoding around it rather than shared as a
/// part of its own: a part costs a slice and, at the exporter, a write of its own.
const SHARE_MIN: usize = 4096;

impl Skeleton {
    /// Encodes the request as prost does, in parts: the resources and the framing are written
    /// anew, and every scope of `SHARE_MIN` bytes or more is shared, not copied.
    fn encode_shared(&self) -> Payload {
        use prost::encoding::{WireType, encode_key, encode_varint, message, string};
        let (mut parts, mut head) = (Vec::new(), Vec::new());
        for resource in &self.resources {
            encode_key(1, WireType::LengthDelimited, &mut head);
            encode_varint(resource.encoded_len() as u64, &mut head);
            if let Some(r) = &resource.resource {
                message::encode(1, r, &mut head);
            }
            for scope in &resource.scopes {
                encode_key(2, WireType::LengthDelimited, &mut head);
                encode_varint(scope.len() as u64, &mut head);
                if scope.len() < SHARE_MIN {
                    head.extend_from_slice(scope);
                } else {
                    parts.push(Bytes::from(std::mem::take(&mut head)));
                    parts.push(scope.clone());
                }
            }
            if !resource.schema_url.is_empty() {
                string::encode(3, &resource.schema_url, &mut head);
            }
        }
        if !head.is_empty() {
            parts.push(Bytes::from(head));
        }
        Payload::new(parts)
    }
}

/// A scope message of one signal: its item type. Every signal's scope holds its items in
/// field 2 and its `InstrumentationScope` in field 1.
pub trait Scope {
    type Item: Item;
    const SIGNAL: Signal;
    /// The nested level 0.1's `drop-events` / `drop-points` address (none for logs).
    const PART: Option<Level>;
}

macro_rules! scope {
    ($scope:ty, $item:ty, $signal:expr, $part:expr) => {
        impl Scope for $scope {
            type Item = $item;
            const SIGNAL: Signal = $signal;
            const PART: Option<Level> = $part;
        }
    };
}
scope!(ScopeSpans, Span, Signal::Traces, Some(Level::Event));
scope!(ScopeLogs, LogRecord, Signal::Logs, None);
scope!(ScopeMetrics, Metric, Signal::Metrics, Some(Level::Point));

/// Where a flat item index points.
#[derive(Clone, Copy)]
pub struct Position {
    pub resource: u32,
    /// The scope within its resource, and across the batch.
    pub scope: u32,
    pub scope_flat: u32,
    pub item: u32,
}

/// One scope as it arrived: the fields other than its items, and which flat items it holds.
#[derive(Clone)]
struct ScopeParts {
    original: Bytes,
    /// Every field but the items, still encoded, to rebuild the scope around kept items.
    head: Vec<u8>,
    name: String,
    schema_url: String,
    items: std::ops::Range<usize>,
    /// Its `InstrumentationScope`, decoded once a plugin reads its attributes or version.
    decoded: Option<Box<InstrumentationScope>>,
    /// Its `InstrumentationScope` changed: the head is written anew.
    dirty: bool,
}

impl ScopeParts {
    fn instrumentation(&mut self) -> &mut InstrumentationScope {
        let head = &self.head;
        self.decoded.get_or_insert_with(|| {
            let scope = match wire::last(head, 1) {
                Some(wire::Value::Bytes(b)) => InstrumentationScope::decode(b).ok(),
                _ => None,
            };
            Box::new(scope.unwrap_or_default())
        })
    }

    /// The head with the changed `InstrumentationScope` in place of the old one.
    fn rewritten_head(&self) -> Vec<u8> {
        let mut head = Vec::with_capacity(self.head.len());
        if let Some(scope) = &self.decoded {
            prost::encoding::message::encode(1, &**scope, &mut head);
        }
        for (number, _, whole) in wire::fields(&self.head) {
            if number != 1 {
                head.extend_from_slice(whole);
            }
        }
        head
    }
}

/// An item decoded because a plugin changed it or read a nested part.
#[derive(Clone)]
enum Decoded<I> {
    No,
    Yes(Box<I>),
    /// Not valid protobuf beyond its framing; it passes through as it came.
    Fails,
}

/// The items of a batch. Each stays encoded (`raw`) until a plugin changes it; reads of
/// names, kinds, attributes and the like scan the encoding. A changed item lives decoded
/// until the next read or the end, when it is encoded back (`flush`).
#[derive(Clone)]
struct Items<I> {
    scopes: Vec<Vec<ScopeParts>>,
    /// (resource, scope within it) of every scope, by flat scope index.
    scope_index: Vec<(u32, u32)>,
    index: Vec<Position>,
    raw: Vec<Bytes>,
    decoded: Vec<Decoded<I>>,
    /// Decoded and changed since its last encoding.
    dirty: Vec<bool>,
    /// Changed at some point: its scope is rebuilt.
    changed: Vec<bool>,
    dropped: Vec<bool>,
    /// (flat item, index within the item) of every nested entry, by level (`nested_slot`),
    /// built on first use. Entries added during the call are appended.
    nested: [Option<Vec<(u32, u32)>>; 4],
    /// (level, flat item, index within the item) of nested entries to drop.
    dropped_nested: Vec<(Level, u32, u32)>,
    /// Attribute writes to items not decoded, by flat item (empty until the first): applied
    /// to the encoding before the item is read or encoded (`attr_edits`).
    edits: Vec<Pending>,
}

impl<I: Item> Items<I> {
    fn index(resources: &[RawResource]) -> Self {
        let mut items = Items {
            scopes: Vec::with_capacity(resources.len()),
            scope_index: Vec::new(),
            index: Vec::new(),
            raw: Vec::new(),
            decoded: Vec::new(),
            dirty: Vec::new(),
            changed: Vec::new(),
            dropped: Vec::new(),
            nested: Default::default(),
            dropped_nested: Vec::new(),
            edits: Vec::new(),
        };
        for (r, resource) in resources.iter().enumerate() {
            let mut scopes = Vec::with_capacity(resource.scopes.len());
            for (s, scope) in resource.scopes.iter().enumerate() {
                let scope_flat = items.scope_index.len() as u32;
                items.scope_index.push((r as u32, s as u32));
                scopes.push(items.index_scope(r as u32, s as u32, scope_flat, scope));
            }
            items.scopes.push(scopes);
        }
        let n = items.raw.len();
        items.decoded = (0..n).map(|_| Decoded::No).collect();
        items.dirty = vec![false; n];
        items.changed = vec![false; n];
        items.dropped = vec![false; n];
        items
    }

    /// Records a scope's items as flat items and keeps its other fields as its head.
    fn index_scope(
        &mut self,
        resource: u32,
        scope: u32,
        scope_flat: u32,
        bytes: &Bytes,
    ) -> ScopeParts {
        let first = self.raw.len();
        let (mut head, mut name, mut schema_url) = (Vec::new(), String::new(), String::new());
        for (number, value, whole) in wire::fields(bytes) {
            match (number, value) {
                (2, wire::Value::Bytes(item)) => {
                    self.index.push(Position {
                        resource,
                        scope,
                        scope_flat,
                        item: (self.raw.len() - first) as u32,
                    });
                    self.raw.push(bytes.slice_ref(item));
                }
                (1, wire::Value::Bytes(instrumentation)) => {
                    head.extend_from_slice(whole);
                    if let Some(wire::Value::Bytes(n)) = wire::last(instrumentation, 1) {
                        name = String::from_utf8_lossy(n).into_owned();
                    }
                }
                (3, wire::Value::Bytes(url)) => {
                    head.extend_from_slice(whole);
                    schema_url = String::from_utf8_lossy(url).into_owned();
                }
                _ => head.extend_from_slice(whole),
            }
        }
        ScopeParts {
            original: bytes.clone(),
            head,
            name,
            schema_url,
            items: first..self.raw.len(),
            decoded: None,
            dirty: false,
        }
    }

    fn scope(&mut self, flat: u32) -> Option<&mut ScopeParts> {
        let (r, s) = *self.scope_index.get(flat as usize)?;
        Some(&mut self.scopes[r as usize][s as usize])
    }

    /// Item `flat` decoded (cached), or `None` if it is out of range or does not decode.
    fn decoded(&mut self, flat: usize) -> Option<&mut I> {
        self.apply_edits(flat);
        let slot = self.decoded.get_mut(flat)?;
        if let Decoded::No = slot {
            *slot = I::decode(self.raw[flat].clone())
                .map_or(Decoded::Fails, |item| Decoded::Yes(Box::new(item)));
        }
        match slot {
            Decoded::Yes(item) => Some(item),
            _ => None,
        }
    }

    /// Item `flat` decoded for changing: it is encoded back and its scope rebuilt.
    fn decoded_mut(&mut self, flat: usize) -> Option<&mut I> {
        self.decoded(flat)?;
        self.dirty[flat] = true;
        self.changed[flat] = true;
        self.decoded(flat)
    }

    /// (flat item, index within it) of every entry of a nested level.
    fn nested(&mut self, level: Level) -> &mut Vec<(u32, u32)> {
        let slot = level.nested_slot().expect("a nested level");
        if self.nested[slot].is_none() {
            let mut entries = Vec::new();
            if I::NESTED.contains(&level) {
                for flat in 0..self.raw.len() {
                    let n = self.decoded(flat).map_or(0, |item| item.children(level));
                    entries.extend((0..n as u32).map(|w| (flat as u32, w)));
                }
            }
            self.nested[slot] = Some(entries);
        }
        self.nested[slot].as_mut().expect("built above")
    }

    /// Writes an attribute of item `flat`: on its encoding while it is not decoded, else on
    /// the decoded item. `false` when it is out of range or does not decode.
    fn edit_attributes(&mut self, flat: usize, op: AttrOp) -> bool {
        match self.decoded.get(flat) {
            Some(Decoded::No) => {
                if self.edits.is_empty() {
                    self.edits = vec![Pending::new(); self.raw.len()];
                }
                self.edits[flat].push(op);
                self.changed[flat] = true;
                true
            }
            Some(Decoded::Yes(_)) => {
                let Some(item) = self.decoded_mut(flat) else {
                    return false;
                };
                op.apply_decoded(item.attributes_mut());
                true
            }
            _ => false,
        }
    }

    /// Applies the pending attribute writes of item `flat` to its encoding.
    fn apply_edits(&mut self, flat: usize) {
        let Some(ops) = self.edits.get_mut(flat).filter(|ops| !ops.is_empty()) else {
            return;
        };
        let ops = std::mem::take(ops);
        match attr_edits::apply(&self.raw[flat], I::ATTRIBUTES, &ops) {
            Some(bytes) => self.raw[flat] = bytes,
            // It does not walk, so it will not decode either: it passes through as it came.
            None => self.decoded[flat] = Decoded::Fails,
        }
    }

    /// Encodes changed items back, so `raw` is current.
    fn flush(&mut self) {
        for flat in 0..self.edits.len() {
            self.apply_edits(flat);
        }
        self.flush_decoded();
    }

    /// Encodes decoded items changed since back; pending attribute writes stay pending.
    fn flush_decoded(&mut self) {
        for (flat, dirty) in self.dirty.iter_mut().enumerate() {
            if std::mem::take(dirty)
                && let Decoded::Yes(item) = &self.decoded[flat]
            {
                self.raw[flat] = Bytes::from(item.encode_to_vec());
            }
        }
    }

    /// Applies nested drops, deepest level first (an exemplar's index counts across its
    /// metric's points, so it goes before any point); an item left without the entries that
    /// make it is dropped with them.
    fn apply_nested_drops(&mut self) {
        let mut drops = std::mem::take(&mut self.dropped_nested);
        drops.sort_unstable_by_key(|&(level, flat, within)| {
            (flat, std::cmp::Reverse(level), within)
        });
        drops.dedup();
        for group in drops.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (level, flat) = (group[0].0, group[0].1 as usize);
            let Some(item) = self.decoded_mut(flat) else {
                continue;
            };
            let emptied = item.retain_children(level, &mut |i| {
                group.binary_search_by_key(&(i as u32), |g| g.2).is_err()
            });
            if emptied {
                self.dropped[flat] = true;
            }
        }
    }

    /// The encoded scopes of resource `r` after drops and changes: untouched scopes keep
    /// their original bytes, the others are rebuilt from their head and kept items.
    fn encode_scopes(&self, r: usize) -> Vec<Bytes> {
        self.scopes[r]
            .iter()
            .filter_map(|scope| {
                let range = scope.items.clone();
                let kept = range.clone().filter(|&i| !self.dropped[i]);
                // As the collector does, a scope left empty goes.
                kept.clone().next()?;
                if !scope.dirty && !range.clone().any(|i| self.dropped[i] || self.changed[i]) {
                    return Some(scope.original.clone());
                }
                let rewritten;
                let head = if scope.dirty {
                    rewritten = scope.rewritten_head();
                    &rewritten
                } else {
                    &scope.head
                };
                let mut out = Vec::with_capacity(scope.original.len());
                out.extend_from_slice(head);
                for i in kept {
                    wire::put_bytes_field(&mut out, 2, &self.raw[i]);
                }
                Some(Bytes::from(out))
            })
            .collect()
    }
}

/// A batch lent to a plugin for one call.
pub struct Working<S: Scope> {
    original: Payload,
    skeleton: Skeleton,
    items: Option<Items<S::Item>>,
    changed: bool,
    /// The plugin replaced the whole request (`replace-from-otlp`).
    replaced: bool,
}

pub type SpanWork = Working<ScopeSpans>;
pub type LogWork = Working<ScopeLogs>;
pub type MetricWork = Working<ScopeMetrics>;

/// A batch the host cannot lend: its resources do not decode.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the batch's resources: {0}")]
pub struct LendError(#[from] prost::DecodeError);

impl<S: Scope> Working<S> {
    /// Decodes the resources of an encoded request; items stay encoded, sharing its bytes.
    pub fn lend(payload: Payload) -> Result<Self, LendError> {
        let skeleton = Skeleton::decode(payload.reader())?;
        Ok(Working {
            original: payload,
            skeleton,
            items: None,
            changed: false,
            replaced: false,
        })
    }

    /// Whether the plugin changed anything so far.
    pub fn changed(&self) -> bool {
        self.changed
    }

    pub fn resource_count(&self) -> u32 {
        self.skeleton.resources.len() as u32
    }

    /// The attributes of resource `res`, if it exists.
    pub fn resource_attributes(&self, res: u32) -> &[KeyValue] {
        self.skeleton
            .resources
            .get(res as usize)
            .and_then(|r| r.resource.as_ref())
            .map_or(&[], |r| r.attributes.as_slice())
    }

    pub fn resource_attributes_mut(&mut self, res: u32) -> Option<&mut Vec<KeyValue>> {
        self.changed = true;
        let resource = self.skeleton.resources.get_mut(res as usize)?;
        Some(
            &mut resource
                .resource
                .get_or_insert_with(Resource::default)
                .attributes,
        )
    }

    fn items(&mut self) -> &mut Items<S::Item> {
        let resources = &self.skeleton.resources;
        self.items.get_or_insert_with(|| Items::index(resources))
    }

    pub fn item_count(&mut self) -> u32 {
        self.items().index.len() as u32
    }

    pub fn positions(&mut self) -> &[Position] {
        &self.items().index
    }

    /// Every item still encoded, with its scope's name, in flat-index order: what column
    /// reads scan without decoding.
    pub fn encoded_items(&mut self) -> impl Iterator<Item = (&str, &[u8])> {
        let items = self.items();
        items.flush();
        let items = &*items;
        items.index.iter().zip(&items.raw).map(|(p, raw)| {
            let scope = &items.scopes[p.resource as usize][p.scope as usize];
            (scope.name.as_str(), raw.as_ref())
        })
    }

    /// The encoded value of attribute `key` of every item, pending attribute writes read
    /// where they are: reads between a plugin's writes rewrite no item (transform reads and
    /// writes a column per statement).
    pub fn item_attribute<'a>(
        &'a mut self,
        key: &'a str,
    ) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let items = self.items();
        items.flush_decoded();
        let items = &*items;
        (0..items.raw.len()).map(move |flat| {
            match items
                .edits
                .get(flat)
                .and_then(|ops| attr_edits::pending(ops, key))
            {
                Some(written) => written,
                None => super::encoded::attribute(&items.raw[flat], S::Item::ATTRIBUTES, key),
            }
        })
    }

    /// Visits every item decoded, in flat-index order (one that does not decode reads as
    /// empty; it still passes through as it came).
    pub fn for_each_decoded(&mut self, mut visit: impl FnMut(u32, &S::Item)) {
        let items = self.items();
        let empty = S::Item::default();
        for flat in 0..items.raw.len() {
            visit(
                flat as u32,
                items.decoded(flat).map_or(&empty, |item| &*item),
            );
        }
    }

    /// Item `flat` decoded, for reading; `None` when out of range or not decodable.
    pub fn item(&mut self, flat: u32) -> Option<&S::Item> {
        self.items().decoded(flat as usize).map(|item| &*item)
    }

    /// Writes an attribute of entry `index` of `level`: an item's on its encoding while it is
    /// not decoded (see [`attr_edits`]), any other's decoded. `false` when there is no such
    /// entry or the item does not decode.
    pub fn edit_attributes(&mut self, level: Level, index: u32, op: AttrOp) -> bool {
        if level == Level::Item {
            self.changed = true;
            return self.items().edit_attributes(index as usize, op);
        }
        match self.attributes_mut(level, index) {
            Some(attributes) => {
                op.apply_decoded(attributes);
                true
            }
            None => false,
        }
    }

    /// Item `flat`, for changing; `None` when out of range or not decodable.
    pub fn item_mut(&mut self, flat: u32) -> Option<&mut S::Item> {
        self.items().decoded(flat as usize)?;
        self.changed = true;
        self.items().decoded_mut(flat as usize)
    }

    pub fn drop_items(&mut self, flats: &[u32]) {
        if flats.is_empty() {
            return;
        }
        self.changed = true;
        let items = self.items();
        for &flat in flats {
            if let Some(d) = items.dropped.get_mut(flat as usize) {
                *d = true;
            }
        }
    }

    /// Every 0.1 part (span event, data point) as (flat item, part index within the item).
    pub fn part_positions(&mut self) -> Vec<(u32, u32)> {
        match S::PART {
            Some(level) => self.nested(level).to_vec(),
            None => Vec::new(),
        }
    }

    /// Drops 0.1 parts given by their flat part index (the order of [`Self::part_positions`]).
    pub fn drop_parts(&mut self, flats: &[u32]) {
        if let Some(level) = S::PART {
            self.remove(level, flats);
        }
    }

    /// (flat item, index within it) of every entry of a nested level.
    pub fn nested(&mut self, level: Level) -> &[(u32, u32)] {
        self.items().nested(level)
    }

    /// How many entries `level` has (0 for a level the signal lacks).
    pub fn count(&mut self, level: Level) -> usize {
        match level {
            Level::Resource => self.skeleton.resources.len(),
            Level::Scope => self.items().scope_index.len(),
            Level::Item => self.items().index.len(),
            nested => self.nested(nested).len(),
        }
    }

    /// The index of every entry's parent, one level up (empty for resources).
    pub fn parents(&mut self, level: Level) -> Vec<u32> {
        match level {
            Level::Resource => Vec::new(),
            Level::Scope => self.items().scope_index.iter().map(|p| p.0).collect(),
            Level::Item => self.items().index.iter().map(|p| p.scope_flat).collect(),
            Level::Exemplar => self.exemplar_points(),
            nested => self.nested(nested).iter().map(|e| e.0).collect(),
        }
    }

    /// The flat point index of every exemplar.
    fn exemplar_points(&mut self) -> Vec<u32> {
        let mut first_point = vec![0; self.count(Level::Item)];
        for (point, &(flat, within)) in self.nested(Level::Point).iter().enumerate() {
            if within == 0 {
                first_point[flat as usize] = point as u32;
            }
        }
        let exemplars = self.nested(Level::Exemplar).to_vec();
        exemplars
            .into_iter()
            .map(|(flat, within)| {
                let point = self
                    .item(flat)
                    .and_then(|m| m.exemplar_point(within as usize));
                first_point[flat as usize] + point.unwrap_or(0) as u32
            })
            .collect()
    }

    /// Removes entries and what is under them (see the WIT's `remove`). Indexes were checked
    /// by the caller; the others keep their numbers until the call ends.
    pub fn remove(&mut self, level: Level, indexes: &[u32]) {
        if indexes.is_empty() {
            return;
        }
        self.changed = true;
        match level {
            Level::Resource | Level::Scope | Level::Item => {
                // Marked first, so the pass over the items costs the same for any number of
                // indexes (they were checked to be in range by the caller).
                let mut marked = vec![false; indexes.iter().max().map_or(0, |&m| m as usize + 1)];
                indexes.iter().for_each(|&i| marked[i as usize] = true);
                let items = self.items();
                for (flat, position) in items.index.iter().enumerate() {
                    let owner = match level {
                        Level::Resource => position.resource,
                        Level::Scope => position.scope_flat,
                        _ => flat as u32,
                    };
                    if marked.get(owner as usize).copied().unwrap_or(false) {
                        items.dropped[flat] = true;
                    }
                }
            }
            nested => {
                let items = self.items();
                let entries = items.nested(nested).clone();
                let drops = indexes
                    .iter()
                    .filter_map(|&i| entries.get(i as usize))
                    .map(|&(flat, within)| (nested, flat, within));
                items.dropped_nested.extend(drops);
            }
        }
    }

    /// The attributes of entry `index` of `level`; empty when it has none or is out of range.
    pub fn attributes(&mut self, level: Level, index: u32) -> &[KeyValue] {
        match level {
            Level::Resource => self.resource_attributes(index),
            Level::Scope => match self.items().scope(index) {
                Some(scope) => &scope.instrumentation().attributes,
                None => &[],
            },
            Level::Item => self.item(index).map_or(&[], |item| item.attributes()),
            nested => {
                let Some(&(flat, within)) = self.nested(nested).get(index as usize) else {
                    return &[];
                };
                self.item(flat)
                    .and_then(|item| item.child_attributes(nested, within as usize))
                    .unwrap_or(&[])
            }
        }
    }

    /// The attributes of entry `index` of `level`, for changing.
    pub fn attributes_mut(&mut self, level: Level, index: u32) -> Option<&mut Vec<KeyValue>> {
        match level {
            Level::Resource => self.resource_attributes_mut(index),
            Level::Scope => {
                self.changed = true;
                let scope = self.items().scope(index)?;
                scope.dirty = true;
                Some(&mut scope.instrumentation().attributes)
            }
            Level::Item => self.item_mut(index).map(|item| item.attributes_mut()),
            nested => {
                let &(flat, within) = self.nested(nested).get(index as usize)?;
                self.item_mut(flat)?
                    .child_attributes_mut(nested, within as usize)
            }
        }
    }

    /// `dropped_attributes_count` of every entry of `level`.
    pub fn dropped_attributes(&mut self, level: Level) -> Vec<u32> {
        let count = self.count(level) as u32;
        match level {
            Level::Resource => (0..count)
                .map(|r| {
                    let resource = self.skeleton.resources[r as usize].resource.as_ref();
                    resource.map_or(0, |r| r.dropped_attributes_count)
                })
                .collect(),
            Level::Scope => (0..count)
                .map(|s| {
                    self.items()
                        .scope(s)
                        .map_or(0, |s| s.instrumentation().dropped_attributes_count)
                })
                .collect(),
            Level::Item => match S::Item::DROPPED_ATTRIBUTES {
                Some(number) => self
                    .encoded_items()
                    .map(|(_, item)| match wire::last(item, number) {
                        Some(wire::Value::Varint(n)) => n as u32,
                        _ => 0,
                    })
                    .collect(),
                None => vec![0; count as usize],
            },
            nested => {
                let entries = self.nested(nested).to_vec();
                entries
                    .into_iter()
                    .map(|(flat, within)| {
                        self.item(flat).map_or(0, |item| {
                            item.child_dropped_attributes(nested, within as usize)
                        })
                    })
                    .collect()
            }
        }
    }

    /// The `schema_url` of every resource or scope (nothing for other levels).
    pub fn schema_urls(&mut self, level: Level) -> Vec<&str> {
        match level {
            Level::Resource => self
                .skeleton
                .resources
                .iter()
                .map(|r| r.schema_url.as_str())
                .collect(),
            Level::Scope => self.scopes().map(|s| s.schema_url.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// The name and version of every scope.
    pub fn scope_names_and_versions(&mut self) -> Vec<(String, String)> {
        let items = self.items();
        let mut out = Vec::with_capacity(items.scope_index.len());
        for s in 0..items.scope_index.len() as u32 {
            let scope = items.scope(s).expect("in range");
            let name = scope.name.clone();
            out.push((name, scope.instrumentation().version.clone()));
        }
        out
    }

    fn scopes(&mut self) -> impl Iterator<Item = &ScopeParts> {
        let items = &*self.items();
        items
            .scope_index
            .iter()
            .map(|&(r, s)| &items.scopes[r as usize][s as usize])
    }

    /// Appends a nested entry to item `flat` with `add`, which returns its index within the
    /// item; it gets the next flat index of `level`.
    pub fn add_nested(&mut self, level: Level, flat: u32, add: impl FnOnce(&mut S::Item) -> usize) {
        self.nested(level);
        let Some(item) = self.item_mut(flat) else {
            return;
        };
        let within = add(item) as u32;
        self.items().nested(level).push((flat, within));
    }

    /// Replaces the whole batch with another encoded request of the same signal.
    pub fn replace(&mut self, payload: Bytes) -> Result<(), String> {
        wire::count_items(S::SIGNAL, &payload).map_err(|e| e.to_string())?;
        let skeleton = Skeleton::decode(payload.clone()).map_err(|e| e.to_string())?;
        *self = Working {
            original: payload.into(),
            skeleton,
            items: None,
            changed: true,
            replaced: true,
        };
        Ok(())
    }

    /// The batch as it stands, leaving this working copy usable (the `to-otlp` escape hatch).
    /// Pending attribute writes are applied to the items here, not to the copy: otherwise
    /// the call's end applies them a second time (with `truncate_all` reading through
    /// `to-otlp`, that second pass was 15% of transform's CPU).
    pub fn encode(&mut self) -> Payload {
        if !self.changed {
            return self.original.clone();
        }
        if let Some(items) = &mut self.items {
            items.flush();
        }
        let copy = Working::<S> {
            original: self.original.clone(),
            skeleton: self.skeleton.clone(),
            items: self.items.clone(),
            changed: true,
            replaced: self.replaced,
        };
        copy.into_encoded()
    }

    /// The item count of the batch as it will be encoded, where it is known without counting
    /// again: `before` when no item was dropped, else the items left. `None` after a
    /// replacement, and for metrics once items were touched (their unit is the data point).
    pub fn item_count_after(&self, before: usize) -> Option<usize> {
        match &self.items {
            _ if self.replaced => None,
            None => Some(before),
            Some(_) if S::SIGNAL == Signal::Metrics => None,
            Some(items) => Some(items.dropped.iter().filter(|d| !**d).count()),
        }
    }

    /// The batch as it stands, applying drops in place: the original bytes when nothing changed.
    pub fn into_encoded(mut self) -> Payload {
        if !self.changed {
            return self.original;
        }
        self.settle();
        self.skeleton.encode_shared()
    }

    /// [`Self::into_encoded`] with the batch's item count: known from the changes where
    /// [`Self::item_count_after`] tells it, else counted over the rebuilt scopes.
    pub fn into_counted(mut self, before: usize) -> (Payload, usize) {
        if let Some(count) = self.item_count_after(before) {
            return (self.into_encoded(), count);
        }
        self.settle();
        let count = self
            .skeleton
            .resources
            .iter()
            .flat_map(|r| &r.scopes)
            .map(|scope| wire::count_scope_items(S::SIGNAL, scope))
            .sum();
        (self.skeleton.encode_shared(), count)
    }

    /// Applies drops and changes to the skeleton: its scopes are then the batch's.
    fn settle(&mut self) {
        if let Some(mut items) = self.items.take() {
            items.apply_nested_drops();
            items.flush();
            for (r, resource) in self.skeleton.resources.iter_mut().enumerate() {
                resource.scopes = items.encode_scopes(r);
            }
            self.skeleton.resources.retain(|r| !r.scopes.is_empty());
        }
    }

    /// Whether the plugin decoded or indexed items (for the lazy-decoding benchmark and tests).
    pub fn touched_items(&self) -> bool {
        self.items.is_some()
    }

    /// How many items the plugin made the host decode.
    pub fn items_decoded(&self) -> usize {
        self.items.as_ref().map_or(0, |items| {
            items
                .decoded
                .iter()
                .filter(|d| !matches!(d, Decoded::No))
                .count()
        })
    }
}

/// The batch lent for this call, from the store's resource table.
pub fn work<'a, S: Scope + Send + 'static>(
    table: &'a mut wasmtime::component::ResourceTable,
    batch: &wasmtime::component::Resource<Working<S>>,
) -> &'a mut Working<S> {
    // The host created the resource for this call and removes it after, so it is always there.
    table
        .get_mut(batch)
        .expect("batch resource outlives the call")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::wire::tests_support::{gauges_request, traces_request};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use std::sync::Arc;

    // Attribute writes to items stay pending: a read of the attribute sees the last write
    // (set, then removal, per item), no item is decoded, and the encoding carries them all.
    #[test]
    fn pending_attribute_writes_read_and_encode() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
        let string = |s: &str| AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        };
        let mut work = SpanWork::lend(traces_request(3).into()).unwrap();
        let set = AttrOp::set("tier".into(), &string("gold"));
        for flat in 0..3 {
            assert!(work.edit_attributes(Level::Item, flat, set.clone()));
        }
        let gone = AttrOp::Remove(Arc::from(vec![Bytes::from_static(b"tier")]));
        assert!(work.edit_attributes(Level::Item, 1, gone));
        let read: Vec<Option<AnyValue>> = work
            .item_attribute("tier")
            .map(|v| v.map(|v| AnyValue::decode(v).unwrap()))
            .collect();
        assert_eq!(read, [Some(string("gold")), None, Some(string("gold"))]);
        assert_eq!(work.items_decoded(), 0);
        let out = ExportTraceServiceRequest::decode(work.into_encoded().to_bytes()).unwrap();
        let tiers: Vec<usize> = out.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.attributes.len())
            .collect();
        assert_eq!(tiers, [1, 0, 1]);
    }

    // Untouched, the batch is the original bytes; resource edits re-encode without decoding
    // a span; drops remove exactly the dropped spans.
    #[test]
    fn lazy_and_journalled() {
        let payload = traces_request(5);
        let mut work = SpanWork::lend(payload.clone().into()).unwrap();
        assert_eq!(work.encode().to_bytes(), payload);
        work.resource_attributes_mut(0).unwrap().push(KeyValue {
            key: "k8s.pod.name".into(),
            ..Default::default()
        });
        assert!(!work.touched_items());
        assert_eq!(work.item_count_after(5), Some(5));
        let out = ExportTraceServiceRequest::decode(work.encode().to_bytes()).unwrap();
        assert_eq!(
            out.resource_spans[0].resource.as_ref().unwrap().attributes[0].key,
            "k8s.pod.name"
        );
        assert_eq!(out.resource_spans[0].scope_spans[0].spans.len(), 5);
        assert_eq!(work.item_count(), 5);
        work.drop_items(&[1, 3]);
        assert_eq!(
            wire::count_items(Signal::Traces, &work.encode().to_bytes()),
            Ok(3)
        );
        assert_eq!(work.item_count_after(5), Some(3));
        work.replace(traces_request(2)).unwrap();
        assert_eq!(
            work.item_count_after(5),
            None,
            "a replacement is counted again"
        );
    }

    // A resource edit writes the resource anew and shares the scopes: the big scope goes out
    // as a slice of the request it came in, the bytes are prost's own encoding, and the next
    // plugin lends the parts without copying the spans.
    #[test]
    fn resource_edits_share_the_scopes() {
        let payload = traces_request(1000);
        let mut request = ExportTraceServiceRequest::decode(payload.clone()).unwrap();
        let mut work = SpanWork::lend(payload.clone().into()).unwrap();
        let pod = KeyValue {
            key: "k8s.pod.name".into(),
            ..Default::default()
        };
        work.resource_attributes_mut(0).unwrap().push(pod.clone());
        let out = work.into_encoded();
        let range = payload.as_ptr_range();
        let shared = |part: &[u8]| range.contains(&part.as_ptr());
        assert!(
            out.parts().len() > 1
                && out
                    .parts()
                    .iter()
                    .any(|p| p.len() >= SHARE_MIN && shared(p))
        );
        let resource = request.resource_spans[0].resource.get_or_insert_default();
        resource.attributes.push(pod);
        assert_eq!(out.to_bytes(), request.encode_to_vec());

        let mut next = SpanWork::lend(out).unwrap();
        assert_eq!(
            next.resource_attributes(0).last().unwrap().key,
            "k8s.pod.name"
        );
        assert!(next.encoded_items().all(|(_, span)| shared(span)));
    }

    // Items stay encoded: a drop rebuilds its scope around the kept spans with the scope's own
    // fields, a changed span is encoded back and read through its encoding, and a scope
    // nothing touched keeps its original bytes.
    #[test]
    fn scopes_rebuild_around_kept_items() {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
        let spans = |prefix: &str, n: usize| -> Vec<Span> {
            (0..n)
                .map(|i| Span {
                    name: format!("{prefix}{i}"),
                    ..Default::default()
                })
                .collect()
        };
        let scope = |name: &str, spans| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.into(),
                version: "1.2".into(),
                ..Default::default()
            }),
            spans,
            schema_url: format!("https://schemas/{name}"),
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![scope("a", spans("a", 3)), scope("b", spans("b", 2))],
                ..Default::default()
            }],
        };
        let mut work = SpanWork::lend(Bytes::from(request.encode_to_vec()).into()).unwrap();
        let scopes: Vec<String> = work.encoded_items().map(|(s, _)| s.to_string()).collect();
        assert_eq!(scopes, ["a", "a", "a", "b", "b"]);
        work.item_mut(1).unwrap().name = "changed".into();
        work.drop_items(&[0]);
        let second = work
            .encoded_items()
            .nth(1)
            .map(|(_, span)| span.to_vec())
            .unwrap();
        assert_eq!(Span::decode(second.as_slice()).unwrap().name, "changed");
        assert_eq!(work.items_decoded(), 1);

        let out = ExportTraceServiceRequest::decode(work.into_encoded().to_bytes()).unwrap();
        let scopes = &out.resource_spans[0].scope_spans;
        let names: Vec<&str> = scopes[0].spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["changed", "a2"]);
        assert_eq!(
            scopes[0].scope,
            request.resource_spans[0].scope_spans[0].scope
        );
        assert_eq!(scopes[0].schema_url, "https://schemas/a");
        assert_eq!(scopes[1], request.resource_spans[0].scope_spans[1]);
    }

    // Events and data points drop on their own; a metric whose points all go goes too, and
    // a span keeps living without its events.
    #[test]
    fn parts_drop_with_their_rules() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::span::Event;

        let mut request = ExportTraceServiceRequest::decode(traces_request(2)).unwrap();
        let spans = &mut request.resource_spans[0].scope_spans[0].spans;
        spans[0].events = vec![Event::default(), Event::default()];
        spans[1].events = vec![Event::default()];
        let mut work = SpanWork::lend(Bytes::from(request.encode_to_vec()).into()).unwrap();
        assert_eq!(work.part_positions(), [(0, 0), (0, 1), (1, 0)]);
        work.drop_parts(&[1, 2]);
        let out = ExportTraceServiceRequest::decode(work.into_encoded().to_bytes()).unwrap();
        let spans = &out.resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            (spans.len(), spans[0].events.len(), spans[1].events.len()),
            (2, 1, 0)
        );

        let mut work = MetricWork::lend(gauges_request(&[2, 1]).into()).unwrap();
        work.drop_parts(&[0, 1]);
        assert_eq!(
            work.item_count_after(3),
            None,
            "metric items are data points"
        );
        let out = ExportMetricsServiceRequest::decode(work.into_encoded().to_bytes()).unwrap();
        assert_eq!(out.resource_metrics[0].scope_metrics[0].metrics.len(), 1);
    }

    // Where the changes do not tell the count (metrics' points, a replaced request), it is
    // counted over the rebuilt scopes, and agrees with counting the whole request.
    #[test]
    fn counts_what_the_changes_do_not_tell() {
        let mut work = MetricWork::lend(gauges_request(&[2, 3]).into()).unwrap();
        work.drop_parts(&[0]);
        let (out, count) = work.into_counted(5);
        assert_eq!(count, 4);
        assert_eq!(wire::count_items(Signal::Metrics, &out.to_bytes()), Ok(4));

        let mut work = SpanWork::lend(traces_request(5).into()).unwrap();
        work.replace(traces_request(2)).unwrap();
        assert_eq!(work.into_counted(5).1, 2);
    }
}
