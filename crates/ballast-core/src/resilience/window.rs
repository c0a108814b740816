//! A sliding window of two event counters over [`Window::SPAN`] (ten one-second slots of
//! atomics, no lock), shared by the [`RetryBudget`](super::RetryBudget) (first attempts,
//! retries) and the [`CircuitBreaker`](super::CircuitBreaker)'s failure-rate rule
//! (requests, failures).
//!
//! A slot holding an older second is emptied by the first caller of its new second.
//! Under concurrency a count racing with that emptying may be lost; the error is bounded
//! by the number of threads racing and only ever concerns the newest second.

use super::as_ms;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SLOTS: usize = 10;
const SLOT_MS: u64 = 1000;

#[derive(Debug, Default)]
struct Slot {
    /// The slot's second on the caller's origin, plus 1 (0: never used or cleared).
    epoch: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
}

/// Two counters (`a`, `b`) summed over the last [`Window::SPAN`].
#[derive(Debug, Default)]
pub(super) struct Window {
    slots: [Slot; SLOTS],
}

impl Window {
    /// The span counted: the current second and the nine before it.
    pub(super) const SPAN: Duration = Duration::from_secs(SLOTS as u64);

    /// The epoch (second + 1) of `now`.
    fn epoch(now: Duration) -> u64 {
        (as_ms(now) / SLOT_MS).saturating_add(1)
    }

    /// Adds `a` and `b` to the slot of `now`, emptying it first if it holds an older second.
    pub(super) fn add(&self, now: Duration, a: u64, b: u64) {
        let epoch = Self::epoch(now);
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        let old = slot.epoch.load(Ordering::Acquire);
        if old < epoch && slot.epoch.compare_exchange(old, epoch, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            slot.a.store(0, Ordering::Relaxed);
            slot.b.store(0, Ordering::Relaxed);
        }
        if a > 0 {
            slot.a.fetch_add(a, Ordering::Relaxed);
        }
        if b > 0 {
            slot.b.fetch_add(b, Ordering::Relaxed);
        }
    }

    /// The sums of `a` and `b` over the window ending at `now`.
    pub(super) fn totals(&self, now: Duration) -> (u64, u64) {
        let epoch = Self::epoch(now);
        let oldest = epoch.saturating_sub(SLOTS as u64 - 1).max(1);
        self.slots
            .iter()
            .filter(|s| (oldest..=epoch).contains(&s.epoch.load(Ordering::Acquire)))
            .fold((0, 0), |(a, b), s| {
                (a.saturating_add(s.a.load(Ordering::Relaxed)), b.saturating_add(s.b.load(Ordering::Relaxed)))
            })
    }

    /// Forgets everything counted so far.
    pub(super) fn clear(&self) {
        for s in &self.slots {
            s.epoch.store(0, Ordering::Release);
            s.a.store(0, Ordering::Relaxed);
            s.b.store(0, Ordering::Relaxed);
        }
    }
}
