//! A least-recently-used map of bounded size, for the connectors' caches (the collector uses
//! hashicorp's simplelru for the same caches). Reading an entry makes it the most recent;
//! inserting beyond the capacity hands back the least recent entry.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map holding at most `capacity` entries.
#[derive(Debug)]
pub struct Lru<K, V> {
    capacity: usize,
    entries: HashMap<K, (V, u64)>,
    by_age: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map; a capacity of zero is taken as one.
    pub fn new(capacity: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            clock: 0,
        }
    }

    fn touch(&mut self, key: &K) {
        self.clock += 1;
        let clock = self.clock;
        if let Some((_, age)) = self.entries.get_mut(key) {
            self.by_age.remove(age);
            *age = clock;
            self.by_age.insert(clock, key.clone());
        }
    }

    /// The entry under `key`, made the most recent.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.touch(key);
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    /// The entry under `key`, without making it recent.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Whether `key` is held (without making it recent).
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Inserts or replaces `key` as the most recent; returns the entry evicted to make room.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(slot) = self.entries.get_mut(&key) {
            slot.0 = value;
            self.touch(&key);
            return None;
        }
        self.clock += 1;
        self.by_age.insert(self.clock, key.clone());
        self.entries.insert(key, (value, self.clock));
        if self.entries.len() <= self.capacity {
            return None;
        }
        let (_, oldest) = self.by_age.pop_first()?;
        let (value, _) = self.entries.remove(&oldest)?;
        Some((oldest, value))
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, age) = self.entries.remove(key)?;
        self.by_age.remove(&age);
        Some(value)
    }

    /// Empties the map.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_age.clear();
    }

    /// The keys, least recent first.
    pub fn keys(&self) -> Vec<K> {
        self.by_age.values().cloned().collect()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, least recent first, without changing their order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        let mut entries: Vec<(&K, &mut (V, u64))> = self.entries.iter_mut().collect();
        entries.sort_by_key(|(_, (_, age))| *age);
        entries.into_iter().map(|(key, (value, _))| (key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn the_least_recent_goes_first() {
        let mut lru = Lru::new(2);
        assert!(lru.insert("a", 1).is_none());
        assert!(lru.insert("b", 2).is_none());
        assert_eq!(lru.get_mut(&"a"), Some(&mut 1));
        assert_eq!(lru.insert("c", 3), Some(("b", 2)));
        assert_eq!(lru.keys(), vec!["a", "c"]);
        assert_eq!(lru.remove(&"a"), Some(1));
        assert_eq!(lru.len(), 1);
    }
}
