//! Live per-backend statistics: atomics written by the proxy and health checks, read by
//! the balancer on every pick. They outlive balancer rebuilds (the proxy keeps them by id).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Live state of one backend. All fields are atomics: no lock is ever taken.
#[derive(Debug)]
pub struct BackendStats {
    /// Requests currently in flight to this backend.
    pub in_flight: AtomicU32,
    /// Total requests sent.
    pub requests: AtomicU64,
    /// Total failed requests (connect errors, timeouts, 5xx).
    pub failures: AtomicU64,
    /// False when health checking or outlier detection took it out of rotation.
    pub healthy: AtomicBool,
    /// True while the controller drains it: no new requests.
    pub draining: AtomicBool,
    /// When it became ready (nanoseconds on the caller's monotonic origin); slow start
    /// ramps from here.
    pub ready_at_ns: AtomicU64,
    /// Peak-EWMA latency estimate in nanoseconds.
    pub ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated (nanoseconds on the caller's origin).
    pub ewma_at_ns: AtomicU64,
}

impl Default for BackendStats {
    fn default() -> Self {
        BackendStats {
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            ready_at_ns: AtomicU64::new(0),
            ewma_ns: AtomicU64::new(0),
            ewma_at_ns: AtomicU64::new(0),
        }
    }
}

impl BackendStats {
    /// A backend that became ready at `now` (slow start ramps from there).
    pub fn ready_at(now: Duration) -> Self {
        let s = BackendStats::default();
        s.ready_at_ns.store(duration_ns(now), Ordering::Relaxed);
        s
    }

    /// Whether the balancer may send it new requests (outside panic mode).
    pub fn is_eligible(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }
}

/// A duration as whole nanoseconds, saturating at `u64::MAX` (~584 years).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
