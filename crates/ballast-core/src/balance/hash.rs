//! Ring hash (ketama style) for ip-hash and consistent-hash.
//!
//! Each backend owns `round(VNODES × weight / max_weight)` points (at least one) on a
//! 64-bit ring, placed at `xxh3(id, seed = j)`: the points depend only on the backend's id
//! and weight, so when a backend joins or leaves only the keys on its own points move
//! (about 1/n of them), as long as the pool's largest weight stays the same. A key maps to
//! the first point clockwise from `xxh3(key)`. xxh3 is a specified hash, so every ballast
//! node and version maps a key the same way.
//!
//! An ineligible owner does not re-hash the key: the walk continues clockwise to the next
//! point whose backend may be picked, so keys owned by eligible backends never move when
//! another backend goes down. Slow start does not apply (it would move keys).
//!
//! Missing key: a request without the hash key (no header/cookie, no client IP) gets a
//! random point of the ring, i.e. a weighted random pick with the same eligibility walk.

use super::view::View;
use super::Backend;
use std::net::IpAddr;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Points on the ring for a backend of the pool's largest weight (ketama's 160).
pub const VNODES: u64 = 160;

/// A sorted ring of `(point, backend index)`.
#[derive(Debug, Clone)]
pub(super) struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring of a pool (weight 0 counts as 1).
    pub(super) fn new(backends: &[Backend]) -> Self {
        let max_weight = backends.iter().map(|b| u64::from(b.weight.max(1))).max().unwrap_or(1);
        let mut points = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let w = u64::from(b.weight.max(1));
            let vnodes = ((VNODES * w + max_weight / 2) / max_weight).max(1);
            points.extend((0..vnodes).map(|j| (xxh3_64_with_seed(b.id.as_bytes(), j), i as u32)));
        }
        points.sort_unstable();
        Ring { points }
    }

    /// Number of points on the ring.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.points.len()
    }

    /// The backend for a key hashed to `point`: the owner of the first point at or after
    /// it, walking on past backends the view does not allow.
    pub(super) fn pick(&self, view: &View<'_>, point: u64) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.points.partition_point(|p| p.0 < point) % len;
        let owner = self.points[start].1 as usize;
        if view.allows(owner) {
            return Some(owner);
        }
        view.first_along((0..len).map(move |k| self.points[(start + k) % len].1 as usize))
    }
}

/// The ring point of a hash key (header value, cookie value or path).
pub(super) fn key_point(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The ring point of a client address; an IPv4-mapped IPv6 address hashes as its IPv4
/// form, so a dual-stack listener maps a client the same way on both.
pub(super) fn ip_point(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => xxh3_64(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => xxh3_64(&v4.octets()),
            None => xxh3_64(&v6.octets()),
        },
    }
}
