//! Run a plugin natively, in `cargo test`, over batches built from OTLP JSON.
//!
//! [`Spans`], [`Logs`] and [`Metrics`] hold a decoded export request in memory and implement
//! [`SpanBatch`](crate::SpanBatch), [`LogBatch`](crate::LogBatch) and
//! [`MetricBatch`](crate::MetricBatch) with the host's semantics: one flat index per level
//! across the whole batch, indexes stable for the whole call (a removal takes effect when the
//! call ends), removing an entry removes what is under it, a scope or resource left empty goes
//! and so does a metric left without points. A bad index or a list of values of the wrong
//! length panics with the message the host traps with. [`Profiles`] implements
//! [`ProfileBatch`](crate::ProfileBatch) the same way, at the resource level only.
//!
//! [`NativeBatch::run`] calls the plugin the way trailhead does: changes are kept only if it
//! returns `Ok`.
//!
//! ```
//! use trailhead_plugin::testing::{self, Spans};
//! # use trailhead_plugin::{Error, Plugin, Signal, SpanBatch};
//! # struct Noop;
//! # impl Plugin for Noop {
//! #     type Config = serde_json::Value;
//! #     const NAME: &'static str = "noop";
//! #     const VERSION: &'static str = "0";
//! #     fn new(_: serde_json::Value) -> Result<Self, String> { Ok(Noop) }
//! #     fn signals(&self) -> Vec<Signal> { vec![Signal::Traces] }
//! # }
//! let mut plugin: Noop = testing::init("{}").unwrap();
//! let mut spans = Spans::from_json(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [
//!     {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
//!      "name": "GET /", "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}]}]}]}"#).unwrap();
//! spans.run(&mut plugin).unwrap();
//! assert_eq!(spans.request().resource_spans[0].scope_spans[0].spans[0].name, "GET /");
//! ```
//!
//! The harness is compiled only for native targets: a component never carries it. Since a
//! plugin's `.cargo/config.toml` usually makes `wasm32-wasip2` the default target, run tests
//! with `cargo test --target x86_64-unknown-linux-gnu` (or your machine's triple).

mod convert;
mod native;
mod profiles;
#[cfg(test)]
mod tests;
#[doc(hidden)]
pub mod tree;

use crate::{Batch, Error, Level, Plugin};
use std::cell::{Ref, RefCell, RefMut};
use tree::{Item, ResourceNode};

/// The OTLP types (`otlp::trace::v1::Span`, `otlp::collector::trace::v1::ExportTraceServiceRequest`,
/// …), for building requests and asserting on results.
pub use opentelemetry_proto::tonic as otlp;

pub use crate::plugin::init;

/// A batch of spans in memory.
pub type Spans = NativeBatch<otlp::trace::v1::Span>;
/// A batch of log records in memory.
pub type Logs = NativeBatch<otlp::logs::v1::LogRecord>;
/// A batch of metrics in memory.
pub type Metrics = NativeBatch<otlp::metrics::v1::Metric>;
pub use profiles::Profiles;

/// A batch held in memory: an OTLP export request the batch traits read and change.
pub struct NativeBatch<I: Item> {
    state: RefCell<State<I>>,
}

impl<I: Item> NativeBatch<I> {
    /// A batch of this request.
    pub fn from_request(request: I::Request) -> Self {
        NativeBatch {
            state: RefCell::new(State::new(I::split(request))),
        }
    }

    /// A batch of a request in OTLP/JSON (hex IDs, camelCase names, 64-bit ints as strings or
    /// numbers). The error names the path of the field at fault.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let request = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        Ok(Self::from_request(request))
    }

    /// The batch as it stands, with the removals of the current call applied.
    pub fn request(&self) -> I::Request {
        let mut state = self.state.borrow().clone();
        state.commit();
        I::join(state.resources)
    }

    /// [`Self::request`] in OTLP/JSON, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.request()).expect("an OTLP request serializes")
    }

    /// Calls the plugin's `process_*` for this signal as trailhead does: the changes are kept
    /// if it returns `Ok` and discarded if it returns `Err`. A panic (trailhead's trap)
    /// propagates. Every index is renumbered after the call.
    pub fn run<P: Plugin>(&mut self, plugin: &mut P) -> Result<(), Error> {
        let before = self.state.borrow().clone();
        let result = I::process(plugin, self);
        match &result {
            Ok(()) => self.state.get_mut().commit(),
            Err(_) => *self.state.get_mut() = before,
        }
        result
    }

    fn state(&self) -> Ref<'_, State<I>> {
        self.state.borrow()
    }

    fn state_mut(&self) -> RefMut<'_, State<I>> {
        self.state.borrow_mut()
    }
}

/// Where an item sits: its resource, its scope (within the resource and flat), its place.
#[derive(Clone, Copy)]
struct Position {
    resource: usize,
    scope: usize,
    scope_flat: u32,
    item: usize,
}

/// The flat numbering of every level, built when a call starts.
#[derive(Clone, Default)]
struct Index {
    /// (resource, scope within it) of every scope.
    scopes: Vec<(usize, usize)>,
    items: Vec<Position>,
    /// (flat item, index within it) of every event, link, point and exemplar.
    nested: [Vec<(u32, u32)>; 4],
}

fn nested_slot(level: Level) -> usize {
    match level {
        Level::Event => 0,
        Level::Link => 1,
        Level::Point => 2,
        Level::Exemplar => 3,
        _ => unreachable!("only nested levels have a slot"),
    }
}

impl Index {
    fn build<I: Item>(resources: &[ResourceNode<I>]) -> Self {
        let mut index = Index::default();
        for (r, resource) in resources.iter().enumerate() {
            for (s, scope) in resource.scopes.iter().enumerate() {
                let scope_flat = index.scopes.len() as u32;
                index.scopes.push((r, s));
                for (i, item) in scope.items.iter().enumerate() {
                    let flat = index.items.len() as u32;
                    index.items.push(Position {
                        resource: r,
                        scope: s,
                        scope_flat,
                        item: i,
                    });
                    for &level in I::NESTED {
                        let children = (0..item.children(level) as u32).map(|w| (flat, w));
                        index.nested[nested_slot(level)].extend(children);
                    }
                }
            }
        }
        index
    }
}

/// The request and this call's journal of removals.
#[derive(Clone)]
struct State<I> {
    resources: Vec<ResourceNode<I>>,
    index: Index,
    removed: Vec<(Level, u32)>,
}

impl<I: Item> State<I> {
    fn new(resources: Vec<ResourceNode<I>>) -> Self {
        let index = Index::build(&resources);
        State {
            resources,
            index,
            removed: Vec::new(),
        }
    }

    fn count(&self, level: Level) -> usize {
        match level {
            Level::Resource => self.resources.len(),
            Level::Scope => self.index.scopes.len(),
            Level::Item => self.index.items.len(),
            nested if I::NESTED.contains(&nested) => self.index.nested[nested_slot(nested)].len(),
            _ => 0,
        }
    }

    /// Panics, as the host traps, unless every index is an entry of `level`.
    fn check(&self, method: &str, level: Level, indexes: &[u32]) {
        let count = self.count(level);
        if let Some(bad) = indexes.iter().find(|&&i| i as usize >= count) {
            panic!(
                "{method}: index {bad} is out of range: level `{}` has {count} entries in this batch",
                level.as_str()
            );
        }
    }

    fn item(&self, flat: u32) -> &I {
        let p = self.index.items[flat as usize];
        &self.resources[p.resource].scopes[p.scope].items[p.item]
    }

    fn item_mut(&mut self, flat: u32) -> &mut I {
        let p = self.index.items[flat as usize];
        &mut self.resources[p.resource].scopes[p.scope].items[p.item]
    }

    /// (flat item, index within it) of every entry of a nested level.
    fn nested(&self, level: Level) -> &[(u32, u32)] {
        if I::NESTED.contains(&level) {
            &self.index.nested[nested_slot(level)]
        } else {
            &[]
        }
    }

    fn scope_mut(&mut self, flat: u32) -> &mut tree::ScopeNode<I> {
        let (r, s) = self.index.scopes[flat as usize];
        &mut self.resources[r].scopes[s]
    }

    /// The attributes of an entry and its `dropped_attributes_count`, for reading: an absent
    /// resource or scope reads as empty and stays absent.
    fn attributes(&mut self, level: Level, index: u32) -> (&[otlp::common::v1::KeyValue], u32) {
        let (resource, scope) = match level {
            Level::Resource => (self.resources[index as usize].resource.as_ref(), None),
            Level::Scope => {
                let (r, s) = self.index.scopes[index as usize];
                (None, self.resources[r].scopes[s].scope.as_ref())
            }
            _ => {
                let (attributes, dropped) = self.attributes_mut(level, index);
                return (attributes, dropped);
            }
        };
        match (resource, scope) {
            (Some(r), _) => (&r.attributes, r.dropped_attributes_count),
            (_, Some(s)) => (&s.attributes, s.dropped_attributes_count),
            _ => (&[], 0),
        }
    }

    /// The attributes of an entry (checked), and its `dropped_attributes_count`.
    fn attributes_mut(
        &mut self,
        level: Level,
        index: u32,
    ) -> (&mut Vec<otlp::common::v1::KeyValue>, u32) {
        match level {
            Level::Resource => {
                let resource = self.resources[index as usize]
                    .resource
                    .get_or_insert_default();
                (&mut resource.attributes, resource.dropped_attributes_count)
            }
            Level::Scope => {
                let scope = self.scope_mut(index).scope.get_or_insert_default();
                (&mut scope.attributes, scope.dropped_attributes_count)
            }
            Level::Item => {
                let item = self.item_mut(index);
                let dropped = item.dropped_attributes();
                (item.attributes_mut(), dropped)
            }
            nested => {
                let (flat, within) = self.nested(nested)[index as usize];
                self.item_mut(flat)
                    .child_attributes_mut(nested, within as usize)
                    .expect("a counted entry has attributes")
            }
        }
    }

    /// Applies this call's removals and numbers the entries afresh.
    fn commit(&mut self) {
        let removed = std::mem::take(&mut self.removed);
        if removed.is_empty() {
            return;
        }
        let mut gone = Gone {
            resources: vec![false; self.resources.len()],
            scopes: vec![false; self.index.scopes.len()],
            items: vec![false; self.index.items.len()],
        };
        let mut nested = Vec::new();
        for (level, index) in removed {
            match level {
                Level::Resource => gone.resources[index as usize] = true,
                Level::Scope => gone.scopes[index as usize] = true,
                Level::Item => gone.items[index as usize] = true,
                level => {
                    let (flat, within) = self.nested(level)[index as usize];
                    nested.push((level, flat, within));
                }
            }
        }
        self.remove_nested(nested, &mut gone.items);
        self.remove_entries(&gone);
        self.index = Index::build(&self.resources);
    }

    /// Removes events, links, points and exemplars. Exemplars go first: their index counts
    /// across their metric's points, which a point's removal would shift.
    fn remove_nested(&mut self, mut drops: Vec<(Level, u32, u32)>, gone_items: &mut [bool]) {
        drops.sort_unstable_by_key(|&(level, flat, within)| {
            (flat, std::cmp::Reverse(level as u8), within)
        });
        drops.dedup();
        for group in drops.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (level, flat) = (group[0].0, group[0].1);
            let doomed = |within: usize| group.iter().any(|g| g.2 as usize == within);
            if self
                .item_mut(flat)
                .retain_children(level, &mut |w| !doomed(w))
            {
                gone_items[flat as usize] = true;
            }
        }
    }

    /// Removes resources, scopes and items, and the scopes and resources that left empty.
    fn remove_entries(&mut self, gone: &Gone) {
        let (mut scope_flat, mut item_flat) = (0, 0);
        let mut resource_flat = 0;
        self.resources.retain_mut(|resource| {
            let resource_gone = gone.resources[resource_flat];
            resource_flat += 1;
            let had_scopes = !resource.scopes.is_empty();
            resource.scopes.retain_mut(|scope| {
                let scope_gone = resource_gone || gone.scopes[scope_flat];
                scope_flat += 1;
                let had_items = !scope.items.is_empty();
                scope.items.retain(|_| {
                    item_flat += 1;
                    !scope_gone && !gone.items[item_flat - 1]
                });
                let emptied = had_items && scope.items.is_empty();
                !(scope_gone || emptied)
            });
            let emptied = had_scopes && resource.scopes.is_empty();
            !(resource_gone || emptied)
        });
    }
}

/// What a commit removes, by flat index.
struct Gone {
    resources: Vec<bool>,
    scopes: Vec<bool>,
    items: Vec<bool>,
}

/// Panics, as the host traps, unless there is one value per index or one for all.
fn lengths(method: &str, indexes: usize, values: usize) {
    if values != indexes && values != 1 {
        panic!(
            "{method}: {values} values for {indexes} indexes (give one per index, or one for all)"
        );
    }
}

/// Value `i` of a list checked by [`lengths`].
fn nth<T>(values: &[T], i: usize) -> &T {
    if values.len() == 1 {
        &values[0]
    } else {
        &values[i]
    }
}

impl<I: Item> Batch for NativeBatch<I> {
    fn count(&self, level: Level) -> u32 {
        self.state().count(level) as u32
    }
    fn parents(&self, level: Level) -> Vec<u32> {
        let state = self.state();
        match level {
            Level::Resource => Vec::new(),
            Level::Scope => state.index.scopes.iter().map(|&(r, _)| r as u32).collect(),
            Level::Item => state.index.items.iter().map(|p| p.scope_flat).collect(),
            Level::Exemplar => native::exemplar_points(&state),
            nested => state.nested(nested).iter().map(|&(flat, _)| flat).collect(),
        }
    }
    fn remove(&self, level: Level, indexes: &[u32]) {
        let mut state = self.state_mut();
        state.check("remove", level, indexes);
        state.removed.extend(indexes.iter().map(|&i| (level, i)));
    }
    fn attr_column(&self, level: Level, key: &str) -> crate::ValueColumn {
        let mut state = self.state_mut();
        let values: Vec<_> = (0..state.count(level) as u32)
            .map(|i| convert::find(state.attributes(level, i).0, key).cloned())
            .collect();
        convert::pack(values.iter().map(Option::as_ref))
    }
    fn attrs(&self, level: Level, index: u32) -> Vec<crate::KeyValue> {
        let mut state = self.state_mut();
        state.check("attrs", level, &[index]);
        convert::attrs_from_otlp(state.attributes(level, index).0)
    }
    fn set_attr(&self, level: Level, indexes: &[u32], key: &str, value: &crate::AnyValue) {
        let mut state = self.state_mut();
        state.check("set-attr", level, indexes);
        let value = convert::to_otlp(value, "set-attr");
        for &index in indexes {
            convert::upsert(state.attributes_mut(level, index).0, key, value.clone());
        }
    }
    fn set_attrs(&self, level: Level, index: u32, attrs: &[crate::KeyValue]) {
        let mut state = self.state_mut();
        state.check("set-attrs", level, &[index]);
        let attributes = state.attributes_mut(level, index).0;
        for kv in convert::attrs_to_otlp(attrs, "set-attrs") {
            convert::upsert(
                attributes,
                &kv.key,
                kv.value.expect("converted values are set"),
            );
        }
    }
    fn remove_attrs(&self, level: Level, indexes: &[u32], keys: &[String]) {
        let mut state = self.state_mut();
        state.check("remove-attrs", level, indexes);
        for &index in indexes {
            state
                .attributes_mut(level, index)
                .0
                .retain(|kv| !keys.contains(&kv.key));
        }
    }
    fn dropped_attrs_counts(&self, level: Level) -> Vec<u32> {
        let mut state = self.state_mut();
        (0..state.count(level) as u32)
            .map(|i| state.attributes(level, i).1)
            .collect()
    }
    fn schema_urls(&self, level: Level) -> crate::StringColumn {
        let state = self.state();
        let urls: Vec<&str> = match level {
            Level::Resource => state
                .resources
                .iter()
                .map(|r| r.schema_url.as_str())
                .collect(),
            Level::Scope => state
                .index
                .scopes
                .iter()
                .map(|&(r, s)| state.resources[r].scopes[s].schema_url.as_str())
                .collect(),
            _ => Vec::new(),
        };
        crate::StringColumn::from_strs(urls)
    }
    fn scope_names(&self) -> crate::StringColumn {
        native::scope_column(&self.state(), |s| &s.name)
    }
    fn scope_versions(&self) -> crate::StringColumn {
        native::scope_column(&self.state(), |s| &s.version)
    }
    fn to_otlp(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.request())
    }
    fn replace_from_otlp(&self, otlp: &[u8]) -> Result<(), String> {
        let request = <I::Request as prost::Message>::decode(otlp).map_err(|e| e.to_string())?;
        *self.state_mut() = State::new(I::split(request));
        Ok(())
    }
}
