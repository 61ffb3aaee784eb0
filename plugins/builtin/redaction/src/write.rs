//! Redacted attribute maps written back in a few batched calls per level, not two per entry.
//!
//! The one idea: the host applies item writes to the encoding (a set overwrites the key in
//! place or appends it, a removal deletes it), so an entry whose redacted map is "the kept keys
//! where they were, then the new ones" needs only its dropped keys removed and its changed
//! values set. Entries that drop the same keys share one `remove-attrs`, entries that get the
//! same value under the same key (`****`, a summary count) share one `set-attr`. An entry whose
//! new order the host cannot give that way (pdata's removal moved its last attribute into a
//! gap, a summary key was removed and written again at the end, a key repeats) is written whole.

use pdata_text::{Tree, pb};
use std::collections::HashMap;
use trailhead_plugin::{AnyValue, Batch, KeyValue, Level};

/// One `set-attr` call: a key and value and every entry that gets them.
struct Set {
    key: String,
    value: AnyValue,
    indexes: Vec<u32>,
}

/// The writes of one level, gathered over its entries and made by [`Writes::flush`].
#[derive(Default)]
pub struct Writes {
    removals: Vec<(Vec<String>, Vec<u32>)>,
    removal_at: HashMap<Vec<String>, usize>,
    sets: Vec<Set>,
    /// Each set's place in `sets`, by key and then by encoded value.
    set_at: HashMap<String, HashMap<Vec<u8>, usize>>,
    /// Appended keys in the order their sets must be made: an entry appending `a` then `b`
    /// needs `a`'s call first, so a key ranks by when an entry first appended it.
    rank: HashMap<String, usize>,
    /// Entries written whole: their index, their original keys, their new map.
    whole: Vec<(u32, Vec<String>, Vec<KeyValue>)>,
}

impl Writes {
    /// Records entry `i` going from `before` to `after`.
    pub fn add(&mut self, i: u32, before: &[(String, Tree)], after: &[(String, Tree)]) {
        if before == after || self.by_edits(i, before, after) {
            return;
        }
        let keys = before.iter().map(|(k, _)| k.clone()).collect();
        let all = after
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.to_any_value(),
            })
            .collect();
        self.whole.push((i, keys, all));
    }

    /// Records the entry as removals and sets when the host's edits give its new order;
    /// `false` (nothing recorded) when they do not. Keys are compared as few times as can be:
    /// this runs for every entry, and keys sharing a long prefix compare slowly in Wasm.
    fn by_edits(&mut self, i: u32, before: &[(String, Tree)], after: &[(String, Tree)]) -> bool {
        // Where each new entry was before: the kept ones must come first and in their old
        // order (which also rules out a repeated key), the added ones after them.
        let from: Vec<Option<usize>> = after
            .iter()
            .map(|(k, _)| before.iter().position(|(b, _)| b == k))
            .collect();
        let kept = from.iter().take_while(|f| f.is_some()).count();
        let in_order = from[..kept].windows(2).all(|w| w[0] < w[1]);
        if !in_order || from[kept..].iter().any(Option::is_some) {
            return false;
        }
        let added: Vec<&String> = after[kept..].iter().map(|(k, _)| k).collect();
        // A removal takes every entry with its key, so a removed key must not be kept too.
        let removed: Vec<String> = (0..before.len())
            .filter(|b| !from[..kept].contains(&Some(*b)))
            .map(|b| before[b].0.clone())
            .collect();
        let clash = removed
            .iter()
            .any(|r| after[..kept].iter().any(|(k, _)| k == r));
        if clash || !self.ranked(&added) {
            return false;
        }
        if !removed.is_empty() {
            self.remove(i, removed);
        }
        for (j, (k, v)) in after.iter().enumerate() {
            if from[j].is_none_or(|b| before[b].1 != *v) {
                self.set(i, k, v);
            }
        }
        true
    }

    /// Whether the sets can be ordered so these keys are appended in this order (ranking the
    /// ones not seen yet after all others).
    fn ranked(&mut self, added: &[&String]) -> bool {
        let mut last = None;
        for key in added {
            let next = self.rank.len();
            let rank = *self.rank.entry((*key).clone()).or_insert(next);
            if last.is_some_and(|last| last >= rank) {
                return false;
            }
            last = Some(rank);
        }
        true
    }

    fn remove(&mut self, i: u32, keys: Vec<String>) {
        match self.removal_at.get(&keys) {
            Some(&at) => self.removals[at].1.push(i),
            None => {
                self.removal_at.insert(keys.clone(), self.removals.len());
                self.removals.push((keys, vec![i]));
            }
        }
    }

    fn set(&mut self, i: u32, key: &str, value: &Tree) {
        // A value's encoding tells equal values apart where `Tree` cannot be hashed; the
        // maps are looked up by reference, so only a new group allocates its key.
        let encoded = pb::any_value(value);
        let groups = match self.set_at.get_mut(key) {
            Some(groups) => groups,
            None => self.set_at.entry(key.to_string()).or_default(),
        };
        match groups.get(encoded.as_slice()) {
            Some(&at) => self.sets[at].indexes.push(i),
            None => {
                groups.insert(encoded, self.sets.len());
                self.sets.push(Set {
                    key: key.to_string(),
                    value: value.to_any_value(),
                    indexes: vec![i],
                });
            }
        }
    }

    /// Makes the writes: removals before sets, so a set never lands on a key about to go.
    pub fn flush(mut self, b: &impl Batch, level: Level) {
        for (keys, indexes) in &self.removals {
            b.remove_attrs(level, indexes, keys);
        }
        for (i, keys, all) in &self.whole {
            b.remove_attrs(level, &[*i], keys);
            if !all.is_empty() {
                b.set_attrs(level, *i, all);
            }
        }
        // Overwrites land in place whenever they come; appends must come in rank order.
        let rank = &self.rank;
        self.sets
            .sort_by_key(|s| rank.get(&s.key).map_or(0, |r| r + 1));
        for set in &self.sets {
            b.set_attr(level, &set.indexes, &set.key, &set.value);
        }
    }
}
