//! The per-pick view of a pool, shared by every algorithm: which backends may take this
//! request (health, draining, `avoid`, panic mode), their slow-start ramp, the cheap
//! random source, and the full scans that the O(1) algorithms fall back to.
//!
//! Eligibility rules, in order:
//! - A draining backend is never picked.
//! - Normal mode: only healthy backends that are not in `avoid`.
//! - Panic mode (the eligible fraction of the non-draining backends is below
//!   `panic_threshold`): unhealthy backends may be picked too; `avoid` is still honoured,
//!   unless every non-draining backend is in it (then a retry may go back to one).
//!
//! Panic mode is decided lazily: counting eligible backends is O(n), so it happens only
//! when a pick actually meets an ineligible backend.
//!
//! A zone-aware pick may further restrict the view to one zone ([`View::restrict_to_zone`],
//! decided by the `zone` module); the rules above then apply inside that zone.

use super::BackendStats;
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How many O(1) draws an algorithm makes before falling back to a full scan.
pub(super) const MAX_DRAWS: usize = 16;

/// splitmix64: turns the one `PickContext::rand` into as many well-mixed values as a pick
/// needs, with no state shared between picks.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator seeded with the caller's random bits.
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift, no division); `n` must be > 0.
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Which backends a scan accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// Normal rules (see the module doc), panic mode included.
    Strict,
    /// Panic mode's last resort: any non-draining backend, `avoid` ignored.
    Relaxed,
}

/// One pick's view of the pool.
pub(super) struct View<'a> {
    /// Configured weights (at least 1), kept apart from `Backend` so a scan reads one
    /// dense array instead of one struct per backend.
    weights: &'a [f64],
    stats: &'a [Arc<BackendStats>],
    avoid: &'a [usize],
    now: Duration,
    slow_start: Option<Duration>,
    panic_threshold: f64,
    panic: Cell<Option<bool>>,
    /// Zone id of each backend, and the zone this pick is restricted to (if any).
    zones: &'a [u32],
    local: Option<u32>,
}

impl<'a> View<'a> {
    /// A view for one pick at `now`.
    pub(super) fn new(
        weights: &'a [f64],
        stats: &'a [Arc<BackendStats>],
        avoid: &'a [usize],
        now: Duration,
        slow_start: Option<Duration>,
        panic_threshold: f64,
    ) -> Self {
        View {
            weights,
            stats,
            avoid,
            now,
            slow_start,
            panic_threshold,
            panic: Cell::new(None),
            zones: &[],
            local: None,
        }
    }

    /// Restricts the pick to backends whose id in `zones` is `local` (no restriction when
    /// `local` is None).
    pub(super) fn restrict_to_zone(mut self, zones: &'a [u32], local: Option<u32>) -> Self {
        self.zones = zones;
        self.local = local;
        self
    }

    /// Number of backends in the pool.
    pub(super) fn len(&self) -> usize {
        self.weights.len()
    }

    /// The time of this pick.
    pub(super) fn now(&self) -> Duration {
        self.now
    }

    /// Live stats of backend `i`.
    pub(super) fn stats(&self, i: usize) -> &BackendStats {
        &self.stats[i]
    }

    /// Whether backend `i` may take this request under the normal rules (panic included).
    pub(super) fn allows(&self, i: usize) -> bool {
        self.allows_in(i, Tier::Strict)
    }

    fn allows_in(&self, i: usize, tier: Tier) -> bool {
        let s = &self.stats[i];
        if s.draining.load(Ordering::Relaxed) {
            return false;
        }
        if self.local.is_some_and(|z| self.zones.get(i) != Some(&z)) {
            return false;
        }
        match tier {
            Tier::Strict => {
                !self.avoid.contains(&i) && (s.healthy.load(Ordering::Relaxed) || self.in_panic())
            }
            Tier::Relaxed => self.in_panic(),
        }
    }

    /// Whether the pool is in panic mode (computed once per pick, on first need).
    pub(super) fn in_panic(&self) -> bool {
        if let Some(p) = self.panic.get() {
            return p;
        }
        let (mut present, mut eligible) = (0usize, 0usize);
        for s in self.stats {
            if !s.draining.load(Ordering::Relaxed) {
                present += 1;
                eligible += usize::from(s.healthy.load(Ordering::Relaxed));
            }
        }
        let p = present > 0 && (eligible as f64) < self.panic_threshold * present as f64;
        self.panic.set(Some(p));
        p
    }

    /// Slow-start factor of backend `i` (1.0 when slow start is off or it is warm).
    pub(super) fn ramp(&self, i: usize) -> f64 {
        match self.slow_start {
            Some(window) => self.stats[i].slow_start_factor(self.now, window),
            None => 1.0,
        }
    }

    /// Effective weight of backend `i`: its configured weight (at least 1) times its ramp.
    pub(super) fn weight(&self, i: usize) -> f64 {
        self.weights[i] * self.ramp(i)
    }

    /// Runs an O(1) draw up to [`MAX_DRAWS`] times and keeps the first allowed backend,
    /// accepting a warming backend only with probability equal to its ramp (so its share
    /// scales with the ramp and the rest is spread by the draw itself). When every draw
    /// misses, falls back to a weighted random scan with weights `weigh`.
    pub(super) fn draw(
        &self,
        rng: &mut Rng,
        mut draw: impl FnMut(&mut Rng) -> usize,
        weigh: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        for _ in 0..MAX_DRAWS {
            let i = draw(rng);
            if self.allows(i) {
                let ramp = self.ramp(i);
                if ramp >= 1.0 || rng.unit() < ramp {
                    return Some(i);
                }
            }
        }
        self.weighted_scan(rng, weigh)
    }

    /// Weighted random choice over the allowed backends (one pass, reservoir style).
    pub(super) fn weighted_scan(
        &self,
        rng: &mut Rng,
        weigh: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        self.scan(|tier| {
            let (mut total, mut chosen) = (0.0, None);
            for i in (0..self.len()).filter(|&i| self.allows_in(i, tier)) {
                let w = weigh(i).max(f64::MIN_POSITIVE);
                total += w;
                if rng.unit() * total < w {
                    chosen = Some(i);
                }
            }
            chosen
        })
    }

    /// The allowed backend with the lowest `cost`; ties are broken uniformly at random.
    pub(super) fn min_cost_scan(
        &self,
        rng: &mut Rng,
        cost: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        self.scan(|tier| {
            let (mut best, mut best_cost, mut ties) = (None, f64::INFINITY, 0u32);
            for i in (0..self.len()).filter(|&i| self.allows_in(i, tier)) {
                let c = cost(i);
                if best.is_none() || c < best_cost {
                    (best, best_cost, ties) = (Some(i), c, 1);
                } else if c == best_cost {
                    ties += 1;
                    if rng.below(ties as usize) == 0 {
                        best = Some(i);
                    }
                }
            }
            best
        })
    }

    /// The first allowed backend along `order` (e.g. a hash ring walk), which must visit
    /// every backend at least once for the result to be exact.
    pub(super) fn first_along(&self, order: impl Iterator<Item = usize> + Clone) -> Option<usize> {
        self.scan(|tier| {
            // Only walk when someone can match: a walk of a large ring is far longer than n.
            if (0..self.len()).any(|i| self.allows_in(i, tier)) {
                order.clone().find(|&i| self.allows_in(i, tier))
            } else {
                None
            }
        })
    }

    /// Runs `pass` with the strict rules, then (panic mode only) with the relaxed ones.
    fn scan(&self, mut pass: impl FnMut(Tier) -> Option<usize>) -> Option<usize> {
        pass(Tier::Strict).or_else(|| if self.in_panic() { pass(Tier::Relaxed) } else { None })
    }
}
