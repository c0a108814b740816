//! [`Balancer`]: one pool's backends, their live stats and the chosen algorithm.

use super::{Algorithm, Backend, BackendStats, BalanceOptions, PickContext};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A pool's selector, rebuilt when membership changes and shared read-only by requests.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    backends: Vec<Backend>,
    stats: Vec<Arc<BackendStats>>,
    options: BalanceOptions,
    next: AtomicUsize,
}

impl Balancer {
    /// Builds a balancer; `stats[i]` are the live stats of `backends[i]`.
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
        Balancer { algorithm, backends, stats, options, next: AtomicUsize::new(0) }
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

    /// Picks the backend for one request, or None when no backend may take it.
    pub fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.stats[i].is_eligible() && !ctx.avoid.contains(&i))
    }
}
