//! The consistent-hash ring that maps a routing key to a backend.
//!
//! Each backend is placed at [`VIRTUAL_NODES`] points on a 64-bit ring, each point the hash of
//! its endpoint and the point's number; a key belongs to the first point at or after its own
//! hash. A backend's points depend on its endpoint alone, so adding one takes over only the keys
//! that now fall just before its points (about 1/n of them) and removing one hands only its own
//! keys to the points that follow. Order of the endpoint list does not matter.

use std::sync::Arc;

/// Points per backend. 200 keeps the largest share within about ±15% of the mean for a handful
/// of backends (the unit test checks ±30% for 3), for 200 × 16 bytes of ring per backend.
pub const VIRTUAL_NODES: u32 = 200;

/// Backends placed on the ring.
#[derive(Debug, Default)]
pub struct Ring {
    /// (position, index into `endpoints`), sorted by position.
    points: Vec<(u64, u32)>,
    /// The members, sorted and without duplicates.
    endpoints: Vec<Arc<str>>,
}

impl Ring {
    /// A ring of `endpoints` (duplicates count once).
    pub fn new(endpoints: impl IntoIterator<Item = Arc<str>>) -> Ring {
        let mut endpoints: Vec<Arc<str>> = endpoints.into_iter().collect();
        endpoints.sort();
        endpoints.dedup();
        let mut points = Vec::with_capacity(endpoints.len() * VIRTUAL_NODES as usize);
        for (index, endpoint) in endpoints.iter().enumerate() {
            for point in 0..VIRTUAL_NODES {
                let mut seed = endpoint.as_bytes().to_vec();
                seed.extend_from_slice(&point.to_le_bytes());
                points.push((hash(&seed), index as u32));
            }
        }
        // Ties (vanishingly rare) go to the smaller endpoint whatever the insertion order.
        points.sort_unstable();
        Ring { points, endpoints }
    }

    /// The members, sorted.
    pub fn endpoints(&self) -> &[Arc<str>] {
        &self.endpoints
    }

    /// The index (into [`Ring::endpoints`]) of the backend owning `key`; `None` on an empty ring.
    pub fn owner(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let position = hash(key);
        let at = self.points.partition_point(|(p, _)| *p < position);
        let (_, index) = self.points[at % self.points.len()];
        Some(index as usize)
    }

    /// Whether `endpoint` is a member.
    pub fn contains(&self, endpoint: &str) -> bool {
        self.endpoints
            .binary_search_by(|e| e.as_ref().cmp(endpoint))
            .is_ok()
    }
}

/// FNV-1a, then a SplitMix64 finaliser so that keys differing in a few bits (endpoints with
/// consecutive ports, sequential IDs) spread over the whole ring. Stable across builds and
/// processes, so every front-tier replica routes a key the same way.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(endpoints: &[&str]) -> Ring {
        Ring::new(endpoints.iter().map(|e| Arc::from(*e)))
    }

    fn owners(ring: &Ring, keys: u32) -> Vec<Arc<str>> {
        (0..keys)
            .map(|k| ring.endpoints()[ring.owner(&k.to_le_bytes()).unwrap()].clone())
            .collect()
    }

    // Adding a third backend moves about a third of the keys, all of them to the new backend;
    // removing it again moves exactly those back. A modulo hash would move two thirds.
    #[test]
    fn a_membership_change_moves_only_the_keys_that_must_move() {
        let keys = 30_000;
        let two = owners(&ring(&["10.0.0.1:4317", "10.0.0.2:4317"]), keys);
        let three = owners(
            &ring(&["10.0.0.2:4317", "10.0.0.3:4317", "10.0.0.1:4317"]),
            keys,
        );
        let moved: Vec<usize> = (0..keys as usize).filter(|&k| two[k] != three[k]).collect();
        assert!(moved.iter().all(|&k| &*three[k] == "10.0.0.3:4317"));
        let share = moved.len() as f64 / f64::from(keys);
        assert!((0.25..0.42).contains(&share), "moved {share}");
        let back = owners(&ring(&["10.0.0.1:4317", "10.0.0.2:4317"]), keys);
        assert_eq!(back, two);
    }

    // Keys spread evenly enough over three backends.
    #[test]
    fn keys_spread_over_the_members() {
        let ring = ring(&["a:1", "b:1", "c:1"]);
        let all = owners(&ring, 30_000);
        for endpoint in ring.endpoints() {
            let n = all.iter().filter(|e| *e == endpoint).count();
            assert!((7_000..13_000).contains(&n), "{endpoint}: {n}");
        }
        assert!(ring.contains("b:1") && !ring.contains("d:1"));
        assert_eq!(Ring::new(Vec::new()).owner(b"x"), None);
    }
}
