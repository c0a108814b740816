//! The `adaptive` algorithm: Prequal's hot-cold rule on requests-in-flight and latency.
//!
//! Why (Wydrowski, Kleinberg, Rumble, "Load is not what you should balance", NSDI 2024):
//! counting connections balances *load*, but what clients feel is *latency*. A backend
//! that answers 20 ms late holds few connections yet costs every request sent to it
//! 20 ms; least-connections keeps sending it its "fair" share and the tail of the whole
//! pool becomes that backend's latency. Prequal selects with two signals instead:
//! - **Requests in flight (RIF)** is a leading signal: it rises the instant a request is
//!   sent, before any latency is measured, so it catches a backend that is being piled on.
//! - **Latency at that RIF** is the informative one: it says how fast this backend
//!   actually answers at the load it is under, which captures slow hardware, noisy
//!   neighbours and queueing that RIF alone cannot see. It lags, which RIF makes up for.
//!
//! The **hot-cold rule** combines them lexicographically: a candidate whose RIF is above a
//! quantile ([`HOT_RIF_QUANTILE`], interpolated so that it means something in a pool of
//! three) of the pool's RIF distribution is *hot* (about to queue, whatever its last
//! latency said); among the *cold* ones the lowest latency estimate wins; if every
//! candidate is hot, the lowest RIF wins. The hot rule is also what stops herding: a
//! backend that is clearly the fastest (say one that just recovered) takes every pick
//! only until its RIF rises above the others', then it is hot and they share. Candidates are a few random
//! backends ([`ADAPTIVE_CHOICES`], the power of d choices): sampling keeps a pick O(1) and
//! spreads concurrent picks instead of herding them onto one "best" backend.
//!
//! Adaptations for a proxy that sees all of its own traffic:
//! - RIF is exact (the proxy's own in-flight counter), weighted like least-request:
//!   `(in_flight + 1) / effective_weight`, so weights and slow start count.
//! - Latency estimates come from the proxy's responses, averaged over time (50 ms) per
//!   RIF level and overall; a level answers only while it is steady, else the overall
//!   average does (`estimate`). Plus probes sent off the request path to backends without
//!   recent traffic, so a slow backend that stopped getting requests is still measured
//!   and wins its share back once it answers fast again.
//! - Latencies within [`LATENCY_MARGIN`] (plus [`LATENCY_SLACK`]) of the best cold one
//!   count as equal and the lowest RIF among them wins: measurement noise between equal
//!   backends must not decide, load should.
//! - Missing estimates (new backends, no probes yet) count as "as good as the best", so
//!   with no estimates at all the rule is least-request over the candidates.
//! - A warming backend joins the candidates only with probability equal to its
//!   slow-start ramp, so slow start bounds its share whatever its latency.
//! - The hot rule never prefers a cold backend measured more than [`HOT_LATENCY_GUARD`]
//!   times slower than a hot one: hot candidates then compete on latency too. Prequal's
//!   fleets are large, so a sample of only hot fast backends beside a cold slow one is
//!   rare there; in a pool of a handful of backends with one slow, whose RIF is low
//!   precisely because it is avoided, it is common, and every such pick would cost a
//!   request the slow backend's latency.

use super::least;
use super::view::{Rng, View, MAX_DRAWS};
use std::time::Duration;

/// How many backends a pick samples (the d of the power of d choices). Three keeps a
/// pick O(1) and, with one slow backend, makes a candidate set of only that backend and
/// hot ones rare.
pub const ADAPTIVE_CHOICES: usize = 3;

/// A candidate is hot when its load is above this quantile (interpolated) of the loads
/// of the pool (up to 8 sampled backends). Prequal runs it in 0.6–0.9.
pub const HOT_RIF_QUANTILE: f64 = 0.75;

/// A hot candidate stays in the running when every cold candidate's latency estimate is
/// more than this multiple of the best hot one's (2×).
pub const HOT_LATENCY_GUARD: f64 = 2.0;

/// Relative margin within which two latency estimates are treated as equal (25%).
pub const LATENCY_MARGIN: f64 = 0.25;

/// Absolute margin added to [`LATENCY_MARGIN`]: sub-0.1 ms differences are noise.
pub const LATENCY_SLACK: Duration = Duration::from_micros(100);

/// How many backends the RIF quantile looks at: every allowed one up to this pool size,
/// this many random draws above it.
const RIF_SAMPLE: usize = 8;

/// One candidate of a pick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Candidate {
    /// Backend index.
    pub(super) index: usize,
    /// `(in_flight + 1) / effective_weight`.
    pub(super) load: f64,
    /// Latency estimate in ns at `in_flight + 1`, if any.
    pub(super) estimate: Option<f64>,
    /// Load above the pool's hot quantile.
    pub(super) hot: bool,
}

/// One adaptive pick (see the module doc).
pub(super) fn pick(view: &View<'_>, rng: &mut Rng) -> Option<usize> {
    let mut buf = [0usize; ADAPTIVE_CHOICES];
    let k = candidates(view, rng, &mut buf);
    if k == 0 {
        return view.min_cost_scan(rng, |i| least::connection_cost(view, i));
    }
    let threshold = hot_threshold(view, rng);
    let now = view.now();
    let blank = Candidate { index: 0, load: 0.0, estimate: None, hot: false };
    let mut entries = [blank; ADAPTIVE_CHOICES];
    for (entry, &index) in entries.iter_mut().zip(&buf[..k]) {
        let load = least::connection_cost(view, index);
        let estimate = view.stats(index).latency_estimate(now).map(|d| d.as_nanos() as f64);
        *entry = Candidate { index, load, estimate, hot: load > threshold };
    }
    choose(&entries[..k])
}

/// The hot-cold rule over the candidates, in random order (ties go to the first):
/// all hot → lowest load; else, among the cold ones (and the hot ones too when every cold
/// one is [`HOT_LATENCY_GUARD`] times slower), those within the latency margin of the
/// best estimate or without one → lowest load.
pub(super) fn choose(entries: &[Candidate]) -> Option<usize> {
    let best_of = |hot: bool| {
        let set = entries.iter().filter(|c| c.hot == hot);
        set.filter_map(|c| c.estimate).min_by(f64::total_cmp)
    };
    let lowest_load = |set: &mut dyn Iterator<Item = &Candidate>| {
        set.fold(None::<&Candidate>, |b, c| match b {
            Some(b) if b.load <= c.load => Some(b),
            _ => Some(c),
        })
        .map(|c| c.index)
    };
    if entries.iter().all(|c| c.hot) {
        return lowest_load(&mut entries.iter());
    }
    // Hot candidates stay out unless every cold one is measured far slower (see the doc).
    let keep_hot = matches!((best_of(false), best_of(true)),
        (Some(cold), Some(hot)) if cold > HOT_LATENCY_GUARD * hot);
    let allowed = |c: &&Candidate| keep_hot || !c.hot;
    let best = entries
        .iter()
        .filter(allowed)
        .filter_map(|c| c.estimate)
        .min_by(f64::total_cmp);
    let bound = best.map_or(f64::INFINITY, |b| {
        b * (1.0 + LATENCY_MARGIN) + LATENCY_SLACK.as_nanos() as f64
    });
    let mut near = entries
        .iter()
        .filter(allowed)
        .filter(|c| c.estimate.is_none_or(|e| e <= bound));
    lowest_load(&mut near)
}

/// Fills `buf` with up to [`ADAPTIVE_CHOICES`] distinct allowed backends in random order
/// and returns how many. A warming backend is accepted with probability equal to its ramp.
fn candidates(view: &View<'_>, rng: &mut Rng, buf: &mut [usize; ADAPTIVE_CHOICES]) -> usize {
    let n = view.len();
    let mut k = 0;
    let mut accept = |i: usize, k: &mut usize, rng: &mut Rng| {
        if view.allows(i) && !buf[..*k].contains(&i) {
            let ramp = view.ramp(i);
            if ramp >= 1.0 || rng.unit() < ramp {
                buf[*k] = i;
                *k += 1;
            }
        }
    };
    if n <= ADAPTIVE_CHOICES {
        let start = rng.below(n);
        for j in 0..n {
            accept((start + j) % n, &mut k, rng);
        }
    } else {
        for _ in 0..MAX_DRAWS {
            if k == ADAPTIVE_CHOICES {
                break;
            }
            let i = rng.below(n);
            accept(i, &mut k, rng);
        }
    }
    k
}

/// The load above which a candidate is hot: the [`HOT_RIF_QUANTILE`] (interpolated) of
/// the loads of every allowed backend (pools up to 8) or of 8 random draws (larger
/// pools). Infinite when nothing was sampled.
fn hot_threshold(view: &View<'_>, rng: &mut Rng) -> f64 {
    let n = view.len();
    let mut loads = [0.0f64; RIF_SAMPLE];
    let mut m = 0;
    let mut push = |i: usize| {
        if view.allows(i) {
            loads[m] = least::connection_cost(view, i);
            m += 1;
        }
    };
    if n <= RIF_SAMPLE {
        (0..n).for_each(&mut push);
    } else {
        (0..RIF_SAMPLE).for_each(|_| push(rng.below(n)));
    }
    if m == 0 {
        return f64::INFINITY;
    }
    quantile(&mut loads[..m], HOT_RIF_QUANTILE)
}

/// The `q` quantile of `values` (not empty), interpolated linearly between the two
/// nearest ranks. Interpolated rather than nearest-rank because pools are often tiny:
/// with 3 backends the nearest-rank 75th percentile is the maximum, nothing is ever above
/// it, and the hot rule would never fire; interpolated, the busiest of three is hot as
/// soon as it is busier than the midpoint of the two busiest.
pub(super) fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (pos - lo as f64) * (values[hi] - values[lo])
}
