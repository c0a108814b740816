//! Per-pool request limits (`[pool.limits]`), the lock-free parts: reserving one of an
//! instance's `max_in_flight_per_instance` slots, and admission to the bounded pending
//! queue (`max_pending`). The waiting itself (until a slot frees or `queue_timeout`
//! passes) is the proxy's: it holds a [`PendingPermit`] while it waits, and answers a
//! refused admission with a fast 503 and `Retry-After`.

use crate::config::PoolLimitsConfig;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Takes one in-flight slot of an instance (`BackendStats::in_flight`) when it has fewer
/// than `max` in flight, or always when `max` is `None`; true when taken. The caller
/// releases it by decrementing `in_flight` when the request ends (as it does today), and
/// must not also increment it at start.
pub fn try_acquire_in_flight(in_flight: &AtomicU32, max: Option<u32>) -> bool {
    match max {
        None => {
            in_flight.fetch_add(1, Ordering::AcqRel);
            true
        }
        Some(max) => in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v < max).then_some(v + 1)).is_ok(),
    }
}

/// The pending queue is full (or `max_pending` is 0): answer 503 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// Suggested `Retry-After`: the queue timeout, at least one second (by then every
    /// request now waiting has been served or timed out).
    pub retry_after: Duration,
}

/// Admission to one pool's pending queue. Share it as `Arc<PendingGate>`.
#[derive(Debug)]
pub struct PendingGate {
    max: u32,
    timeout: Duration,
    pending: AtomicU32,
}

/// A place in the pending queue; dropping it leaves the queue.
#[derive(Debug)]
pub struct PendingPermit {
    gate: Arc<PendingGate>,
}

impl PendingGate {
    /// A gate admitting at most `max_pending` waiters, each for at most `queue_timeout`.
    pub fn new(cfg: &PoolLimitsConfig) -> Self {
        PendingGate { max: cfg.max_pending, timeout: cfg.queue_timeout.0, pending: AtomicU32::new(0) }
    }

    /// Enters the queue, or refuses when `max_pending` requests already wait.
    pub fn try_enter(self: &Arc<Self>) -> Result<PendingPermit, QueueFull> {
        let max = self.max;
        match self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v < max).then_some(v + 1)) {
            Ok(_) => Ok(PendingPermit { gate: Arc::clone(self) }),
            Err(_) => Err(QueueFull { retry_after: self.timeout.max(Duration::from_secs(1)) }),
        }
    }

    /// How long one request may wait (`queue_timeout`).
    pub fn queue_timeout(&self) -> Duration {
        self.timeout
    }

    /// Requests waiting now.
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Acquire)
    }
}

impl Drop for PendingPermit {
    fn drop(&mut self) {
        self.gate.pending.fetch_sub(1, Ordering::AcqRel);
    }
}
