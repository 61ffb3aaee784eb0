//! The store that pairs a request's two spans: an edge is keyed by (trace id, the client's
//! span id), which a client span reaches through its own id and a server span through its
//! parent id. An edge is complete once both sides named their service; one that waits past
//! `ttl` expires, oldest first, and a new one beyond `max_items` is refused unless the oldest
//! has expired.

use std::collections::{HashMap, VecDeque};

/// (trace id, span id) of the client side.
pub type Key = (Vec<u8>, Vec<u8>);

/// One request between two services, as far as its spans have told.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    pub key: Key,
    pub connection_type: &'static str,
    pub client: String,
    pub server: String,
    pub client_latency: f64,
    pub server_latency: f64,
    /// Either side's status was an error.
    pub failed: bool,
    /// `client_<dimension>` and `server_<dimension>` values, in the order first set.
    pub dimensions: Vec<(String, String)>,
    /// The first peer attribute of the client span, for a virtual server node.
    pub peer: Vec<(String, String)>,
    /// `client` or `server` when a virtual node stands in for that side.
    pub virtual_node: &'static str,
    expires_at: u64,
}

impl Edge {
    pub fn is_complete(&self) -> bool {
        !self.client.is_empty() && !self.server.is_empty()
    }

    /// Sets `name` to `value`, keeping its first position.
    pub fn put(list: &mut Vec<(String, String)>, name: String, value: String) {
        match list.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => list.push((name, value)),
        }
    }
}

/// What happened to an edge the store let go of.
pub enum Outcome {
    Complete(Edge),
    Expired(Edge),
}

/// Why an upsert did nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyItems;

/// The edges waiting for their other span, oldest first.
pub struct Store {
    edges: HashMap<Key, (Edge, u64)>,
    /// (key, insertion number): entries whose number no longer matches were already removed.
    order: VecDeque<(Key, u64)>,
    inserted: u64,
    ttl: i128,
    max_items: i64,
    /// Edges let go of since the caller last took them.
    pub outcomes: Vec<Outcome>,
}

impl Store {
    pub fn new(ttl: i128, max_items: i64) -> Self {
        Store {
            edges: HashMap::new(),
            order: VecDeque::new(),
            inserted: 0,
            ttl,
            max_items,
            outcomes: Vec::new(),
        }
    }

    /// Updates the edge of `key` with `update` (a new edge if none, made at `now`); a complete
    /// edge leaves the store as an outcome. Whether the edge is new.
    pub fn upsert(
        &mut self,
        key: Key,
        now: u64,
        update: impl FnOnce(&mut Edge),
    ) -> Result<bool, TooManyItems> {
        if let Some((edge, _)) = self.edges.get_mut(&key) {
            update(edge);
            if edge.is_complete()
                && let Some((edge, _)) = self.edges.remove(&key)
            {
                self.outcomes.push(Outcome::Complete(edge));
            }
            return Ok(false);
        }
        let expires_at = (now as i128 + self.ttl).max(0) as u64;
        let mut edge = Edge {
            key: key.clone(),
            expires_at,
            ..Default::default()
        };
        update(&mut edge);
        if edge.is_complete() {
            self.outcomes.push(Outcome::Complete(edge));
            return Ok(true);
        }
        if self.edges.len() as i64 >= self.max_items && !self.evict_head(now) {
            return Err(TooManyItems);
        }
        self.inserted += 1;
        self.order.push_back((key.clone(), self.inserted));
        self.edges.insert(key, (edge, self.inserted));
        Ok(true)
    }

    /// Expires every edge past its time, oldest first, stopping at the first that is not.
    pub fn expire(&mut self, now: u64) {
        while self.evict_head(now) {}
    }

    /// Expires the oldest edge if its time has passed.
    fn evict_head(&mut self, now: u64) -> bool {
        while let Some((key, number)) = self.order.front() {
            let current = matches!(self.edges.get(key), Some((_, n)) if n == number);
            if current {
                break;
            }
            self.order.pop_front();
        }
        let Some((key, _)) = self.order.front() else {
            return false;
        };
        let expired = matches!(self.edges.get(key), Some((edge, _)) if now > edge.expires_at);
        if !expired {
            return false;
        }
        let Some((key, _)) = self.order.pop_front() else {
            return false;
        };
        if let Some((edge, _)) = self.edges.remove(&key) {
            self.outcomes.push(Outcome::Expired(edge));
        }
        true
    }

    /// How many edges wait.
    pub fn waiting(&self) -> usize {
        self.edges.len()
    }
}
