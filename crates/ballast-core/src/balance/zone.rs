//! Zone-aware balancing: keep a client's requests in its own zone while that zone can
//! take them, spill over to every zone when it cannot.
//!
//! The rule follows Envoy's locality handling: a zone whose eligible fraction `h`
//! (healthy, not draining, not avoided, over its non-draining backends) is at least
//! `zone_local_threshold` (default `1 / 1.4`, Envoy's overprovisioning factor) keeps every
//! pick; below that it keeps a share `h / threshold` and the rest goes to the whole pool,
//! so losing one backend of three moves little traffic while losing most of a zone moves
//! most of it. A zone with no eligible backend spills everything. The decision is made
//! once per pick and then restricts the shared `View`, so every algorithm, slow start,
//! panic mode and `avoid` work unchanged inside the chosen set. Counting the local zone
//! costs O(local backends) per pick (about 0.4 µs for a zone of 333).

use super::view::Rng;
use super::{Backend, BackendStats};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Zone id of a backend without a zone label: matches no client zone.
pub(super) const NO_ZONE: u32 = u32::MAX;

/// The pool's zones, interned at build time.
#[derive(Debug, Default)]
pub(super) struct Zones {
    /// Zone id of each backend (`NO_ZONE` when unlabelled).
    ids: Vec<u32>,
    /// Zone name to id.
    by_name: HashMap<String, u32>,
    /// Backend indexes of each zone, by id.
    members: Vec<Vec<usize>>,
}

impl Zones {
    /// Interns the zone labels of `backends`.
    pub(super) fn new(backends: &[Backend]) -> Self {
        let mut zones = Zones::default();
        for (i, b) in backends.iter().enumerate() {
            let id = match &b.zone {
                None => NO_ZONE,
                Some(name) => {
                    let next = zones.members.len() as u32;
                    let id = *zones.by_name.entry(name.clone()).or_insert(next);
                    if id == next {
                        zones.members.push(Vec::new());
                    }
                    zones.members[id as usize].push(i);
                    id
                }
            };
            zones.ids.push(id);
        }
        zones
    }

    /// Zone id of each backend, by index.
    pub(super) fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The zone this pick is restricted to, or None to use every zone (see the module
    /// doc). `rng` is drawn only when the local zone is partly available.
    pub(super) fn local(
        &self,
        client_zone: Option<&str>,
        stats: &[Arc<BackendStats>],
        avoid: &[usize],
        threshold: f64,
        rng: &mut Rng,
    ) -> Option<u32> {
        let id = *self.by_name.get(client_zone?)?;
        let (mut present, mut eligible) = (0usize, 0usize);
        for &i in &self.members[id as usize] {
            let s = &stats[i];
            if !s.draining.load(Ordering::Relaxed) {
                present += 1;
                eligible += usize::from(s.healthy.load(Ordering::Relaxed) && !avoid.contains(&i));
            }
        }
        if eligible == 0 {
            return None;
        }
        let fraction = eligible as f64 / present as f64;
        (fraction >= threshold || rng.unit() * threshold < fraction).then_some(id)
    }
}
