//! Running the actions over a level of a lent batch. The one idea: when no action has a
//! `pattern` over keys, the actions can only read and write the keys they name, so those keys
//! are fetched as columns (one host call per key per batch) instead of every item's whole map;
//! either way the changes go back grouped, one `set-attr` per key and value for all the items
//! that get it, one `remove-attrs` per key.

use crate::engine::{Action, AttrMap, process, unchanged};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use trailhead_plugin::{AnyValue, Batch, KeyValue, Level, host};

/// A checked list of actions, ready to run.
#[derive(Debug, Clone)]
pub struct Engine {
    actions: Vec<Action>,
    /// Every key the actions name, once each, in order.
    keys: Vec<String>,
    /// An action matches keys by pattern: read each item's whole map.
    every_key: bool,
}

impl Engine {
    pub fn new(actions: Vec<Action>) -> Self {
        let mut keys: Vec<String> = Vec::new();
        for key in actions.iter().flat_map(Action::keys) {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
        }
        let every_key = actions.iter().any(Action::needs_every_key);
        Engine {
            actions,
            keys,
            every_key,
        }
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Runs the actions over the attributes of the entries `indexes` of `level`.
    pub fn apply(&self, batch: &impl Batch, level: Level, indexes: &[u32]) {
        if indexes.is_empty() {
            return;
        }
        let mut address: Option<String> = None;
        let mut client = || address.get_or_insert_with(client_address).clone();
        let mut writes = Writes::default();
        if self.every_key {
            for &i in indexes {
                let before = AttrMap {
                    entries: batch
                        .attrs(level, i)
                        .into_iter()
                        .map(|kv| (kv.key, kv.value))
                        .collect(),
                };
                let mut after = before.clone();
                process(&self.actions, &mut after, &mut client);
                writes.diff(i, &before, &after);
            }
        } else {
            let columns: Vec<_> = self
                .keys
                .iter()
                .map(|k| batch.attr_column(level, k))
                .collect();
            for &i in indexes {
                let before = AttrMap {
                    entries: self
                        .keys
                        .iter()
                        .zip(&columns)
                        .filter_map(|(k, c)| {
                            c.get(i as usize).map(|v| (k.clone(), v.to_any_value()))
                        })
                        .collect(),
                };
                let mut after = before.clone();
                process(&self.actions, &mut after, &mut client);
                writes.diff(i, &before, &after);
            }
        }
        writes.flush(batch, level);
    }
}

/// The sender's IP as the collector's `client.address` gives it: the address without its port
/// (an IPv4-mapped IPv6 address as IPv4), or an empty string when there is no peer.
pub fn client_address() -> String {
    let Some(peer) = host::context().peer_address else {
        return String::new();
    };
    let ip = match peer.parse::<SocketAddr>() {
        Ok(addr) => Some(addr.ip()),
        Err(_) => peer
            .rsplit_once(':')
            .and_then(|(ip, _)| ip.trim_matches(['[', ']']).parse::<IpAddr>().ok()),
    };
    match ip {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        Some(ip) => ip.to_string(),
        None => peer,
    }
}

/// A value as a map key, to group the items that get the same one.
#[derive(Hash, PartialEq, Eq)]
enum ValueKey {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(u64),
    Bytes(Vec<u8>),
    Array(Vec<u8>),
    Kvlist(Vec<u8>),
}

impl ValueKey {
    fn of(value: &AnyValue) -> Self {
        match value {
            AnyValue::Str(s) => ValueKey::Str(s.clone()),
            AnyValue::Boolean(b) => ValueKey::Bool(*b),
            AnyValue::Int(i) => ValueKey::Int(*i),
            AnyValue::Double(d) => ValueKey::Double(d.to_bits()),
            AnyValue::Bytes(b) => ValueKey::Bytes(b.clone()),
            AnyValue::Array(b) => ValueKey::Array(b.clone()),
            AnyValue::Kvlist(b) => ValueKey::Kvlist(b.clone()),
        }
    }
}

/// The changes of a batch, grouped for as few host calls as possible, in the order first seen.
#[derive(Default)]
struct Writes {
    sets: Vec<(String, AnyValue, Vec<u32>)>,
    set_index: HashMap<(String, ValueKey), usize>,
    removes: Vec<(String, Vec<u32>)>,
    remove_index: HashMap<String, usize>,
}

impl Writes {
    fn diff(&mut self, item: u32, before: &AttrMap, after: &AttrMap) {
        for (key, value) in &after.entries {
            if before.get(key).is_some_and(|b| unchanged(b, value)) {
                continue;
            }
            let slot = self
                .set_index
                .entry((key.clone(), ValueKey::of(value)))
                .or_insert_with(|| {
                    self.sets.push((key.clone(), value.clone(), Vec::new()));
                    self.sets.len() - 1
                });
            self.sets[*slot].2.push(item);
        }
        for (key, _) in &before.entries {
            if after.get(key).is_none() {
                let slot = self.remove_index.entry(key.clone()).or_insert_with(|| {
                    self.removes.push((key.clone(), Vec::new()));
                    self.removes.len() - 1
                });
                self.removes[*slot].1.push(item);
            }
        }
    }

    fn flush(self, batch: &impl Batch, level: Level) {
        for (key, indexes) in self.removes {
            batch.remove_attrs(level, &indexes, &[key]);
        }
        // A value only one item gets (a hash, an extracted part) goes with that item's other
        // such values in one `set-attrs`: a host call costs more than the write.
        let mut single: Vec<(u32, Vec<KeyValue>)> = Vec::new();
        let mut slot_of: HashMap<u32, usize> = HashMap::new();
        for (key, value, indexes) in self.sets {
            if let [item] = indexes[..] {
                let slot = *slot_of.entry(item).or_insert_with(|| {
                    single.push((item, Vec::new()));
                    single.len() - 1
                });
                single[slot].1.push(KeyValue { key, value });
            } else {
                batch.set_attr(level, &indexes, &key, &value);
            }
        }
        for (item, attrs) in single {
            batch.set_attrs(level, item, &attrs);
        }
    }
}
