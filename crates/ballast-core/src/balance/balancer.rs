//! [`Balancer`]: one pool's backends, their live stats and the chosen algorithm.
//!
//! Built once per membership change (the tables it needs, a weighted schedule or a hash
//! ring, are computed here), then shared read-only: `pick` takes no lock and its only
//! shared write is one relaxed `fetch_add` for the round-robin algorithms.

use super::hash::{self, Ring};
use super::least;
use super::view::{Rng, View};
use super::weighted::Schedule;
use super::zone::Zones;
use super::adaptive;
use super::{Algorithm, Backend, BackendStats, BalanceOptions, PickContext};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The algorithm with the tables it needs, built once.
#[derive(Debug)]
enum Selector {
    /// Each backend in turn.
    RoundRobin,
    /// Weighted round-robin (`sequential`, walks the schedule) or weighted random.
    Weighted { schedule: Schedule, sequential: bool },
    /// Exact weighted least-connections.
    LeastConnections,
    /// Power of two choices on in-flight requests.
    LeastRequest,
    /// Power of two choices on the peak-EWMA cost.
    PeakEwma,
    /// Prequal hot-cold rule over sampled backends.
    Adaptive,
    /// ip-hash (`on_ip`) or consistent-hash on the hash key.
    Hash { ring: Ring, on_ip: bool },
}

impl Selector {
    fn new(algorithm: Algorithm, backends: &[Backend]) -> Self {
        let schedule = || Schedule::new(&backends.iter().map(|b| b.weight).collect::<Vec<_>>());
        match algorithm {
            Algorithm::RoundRobin => Selector::RoundRobin,
            Algorithm::WeightedRoundRobin => {
                Selector::Weighted { schedule: schedule(), sequential: true }
            }
            Algorithm::Random => Selector::Weighted { schedule: schedule(), sequential: false },
            Algorithm::LeastConnections => Selector::LeastConnections,
            Algorithm::LeastRequest => Selector::LeastRequest,
            Algorithm::PeakEwma => Selector::PeakEwma,
            Algorithm::Adaptive => Selector::Adaptive,
            Algorithm::IpHash => Selector::Hash { ring: Ring::new(backends), on_ip: true },
            Algorithm::ConsistentHash => Selector::Hash { ring: Ring::new(backends), on_ip: false },
        }
    }
}

/// The round-robin position, alone on its cache line: every pick writes it, and sharing a
/// line with the read-only fields would make every core re-fetch those after each pick.
#[derive(Debug)]
#[repr(align(64))]
struct Counter(AtomicUsize);

/// A pool's selector, rebuilt when membership changes and shared read-only by requests.
///
/// `pick` applies, in order: sticky affinity (an eligible, not-avoided backend named by
/// `ctx.sticky` wins), then the algorithm, restricted to the backends that may take the
/// request (see the `view` module: health, draining, `avoid`, panic mode) and biased by
/// slow start; zone-aware pools first restrict it to the client's zone while that zone
/// can take the request (see the `zone` module). Fallbacks when the algorithm's input is
/// missing:
/// - ip-hash without `client_ip`, consistent-hash without `hash_key`: a random point on
///   the ring (a weighted random pick).
/// - adaptive without latency estimates: least-request among the sampled backends.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    backends: Vec<Backend>,
    stats: Vec<Arc<BackendStats>>,
    options: BalanceOptions,
    next: Counter,
    /// `backends[i].weight` as f64, at least 1 (see `View`).
    weights: Vec<f64>,
    selector: Selector,
    by_id: HashMap<String, usize>,
    zones: Zones,
}

impl Balancer {
    /// Builds a balancer; `stats[i]` are the live stats of `backends[i]`.
    ///
    /// Cost: O(n) for most algorithms; O(S log S) for weighted round-robin and random
    /// (S = period length, at most 65,536 unless n is larger); O(160·n·log n) for the
    /// hashing algorithms.
    ///
    /// # Panics
    /// When `backends` and `stats` differ in length (a caller bug, not an input error).
    pub fn new(
        algorithm: Algorithm,
        backends: Vec<Backend>,
        stats: Vec<Arc<BackendStats>>,
        options: BalanceOptions,
    ) -> Self {
        assert_eq!(backends.len(), stats.len(), "one stats entry per backend");
        let selector = Selector::new(algorithm, &backends);
        let weights = backends.iter().map(|b| f64::from(b.weight.max(1))).collect();
        let by_id = backends.iter().enumerate().map(|(i, b)| (b.id.clone(), i)).collect();
        let zones = Zones::new(&backends);
        Balancer {
            algorithm,
            backends,
            stats,
            options,
            next: Counter(AtomicUsize::new(0)),
            weights,
            selector,
            by_id,
            zones,
        }
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The pool-level options in use.
    pub fn options(&self) -> &BalanceOptions {
        &self.options
    }

    /// The backends, in build order (`pick` returns an index into this).
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Live stats of backend `i`.
    pub fn stats(&self, i: usize) -> &Arc<BackendStats> {
        &self.stats[i]
    }

    /// The index of the backend with this id, if it is in the pool.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Picks the backend for one request, or None when no backend may take it.
    pub fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        if self.backends.is_empty() {
            return None;
        }
        if let Some(i) = ctx.sticky.and_then(|id| self.index_of(id)) {
            if self.stats[i].is_eligible() && !ctx.avoid.contains(&i) {
                return Some(i);
            }
        }
        let mut rng = Rng::new(ctx.rand);
        let local = if self.options.zone_aware {
            let threshold = self.options.zone_local_threshold;
            self.zones.local(ctx.client_zone, &self.stats, ctx.avoid, threshold, &mut rng)
        } else {
            None
        };
        let view = View::new(
            &self.weights,
            &self.stats,
            ctx.avoid,
            ctx.now,
            self.options.slow_start,
            self.options.panic_threshold,
        )
        .restrict_to_zone(self.zones.ids(), local);
        let n = self.backends.len();
        let next = || self.next.0.fetch_add(1, Ordering::Relaxed);
        match &self.selector {
            Selector::RoundRobin => {
                // Weights ignored; slow start still ramps a new backend in.
                view.draw(&mut rng, |_| next() % n, |i| view.ramp(i))
            }
            Selector::Weighted { schedule, sequential: true } => {
                view.draw(&mut rng, |_| schedule.slot(next()), |i| view.weight(i))
            }
            Selector::Weighted { schedule, sequential: false } => {
                view.draw(&mut rng, |r| schedule.slot(r.below(schedule.len())), |i| view.weight(i))
            }
            Selector::LeastConnections => least::least_connections(&view, &mut rng),
            Selector::LeastRequest => {
                least::two_choices(&view, &mut rng, |i| least::connection_cost(&view, i))
            }
            Selector::PeakEwma => {
                least::two_choices(&view, &mut rng, |i| least::ewma_cost(&view, i))
            }
            Selector::Adaptive => adaptive::pick(&view, &mut rng),
            Selector::Hash { ring, on_ip } => {
                let point = if *on_ip {
                    ctx.client_ip.map(hash::ip_point)
                } else {
                    ctx.hash_key.map(hash::key_point)
                };
                ring.pick(&view, point.unwrap_or_else(|| rng.next_u64()))
            }
        }
    }
}
