//! Load-aware picks: weighted least-connections (full scan), least-request (power of two
//! choices) and peak-EWMA (power of two choices over a latency × load cost).
//!
//! Costs are divided by the backend's effective weight (weight × slow-start ramp), so a
//! weight-2 backend is "as loaded" as a weight-1 one when it has twice the requests, and a
//! warming backend looks up to 10× busier than it is (see `MIN_SLOW_START_FACTOR`).

use super::view::{Rng, View, MAX_DRAWS};

/// Weighted least-connections: `(in_flight + 1) / effective_weight`, lowest wins.
///
/// The `+ 1` makes an idle heavy backend beat an idle light one (nginx's least_conn
/// compares `in_flight / weight`, which ties every idle backend).
pub(super) fn connection_cost(view: &View<'_>, i: usize) -> f64 {
    (f64::from(view.stats(i).in_flight.load(std::sync::atomic::Ordering::Relaxed)) + 1.0)
        / view.weight(i)
}

/// Peak-EWMA cost: `ewma_latency × (in_flight + 1) / effective_weight`.
pub(super) fn ewma_cost(view: &View<'_>, i: usize) -> f64 {
    view.stats(i).peak_ewma_cost(view.now()) / view.weight(i)
}

/// Least-connections: an exact scan of every allowed backend, ties broken at random.
/// O(n), which is what operators expect from "least": the global minimum, not a sample.
pub(super) fn least_connections(view: &View<'_>, rng: &mut Rng) -> Option<usize> {
    view.min_cost_scan(rng, |i| connection_cost(view, i))
}

/// Power of two choices: two distinct allowed backends drawn uniformly, the cheaper wins
/// (the first drawn on a tie, which is itself random).
///
/// Used for least-request and peak-EWMA rather than a full scan because it is O(1) at any
/// pool size and it does not herd: between two stats updates a full scan sends every
/// concurrent pick to the same "best" backend, while two random samples spread them and
/// still avoid the worst backends with high probability (Mitzenmacher). When draws keep
/// landing on backends that may not be picked, it falls back to an exact scan.
pub(super) fn two_choices(
    view: &View<'_>,
    rng: &mut Rng,
    cost: impl Fn(usize) -> f64,
) -> Option<usize> {
    let n = view.len();
    if n >= 2 {
        let first = (0..MAX_DRAWS).map(|_| rng.below(n)).find(|&i| view.allows(i));
        if let Some(a) = first {
            let second = (0..MAX_DRAWS)
                .map(|_| {
                    let j = rng.below(n - 1);
                    if j >= a {
                        j + 1
                    } else {
                        j
                    }
                })
                .find(|&j| view.allows(j));
            if let Some(b) = second {
                return Some(if cost(b) < cost(a) { b } else { a });
            }
        }
    }
    view.min_cost_scan(rng, cost)
}
