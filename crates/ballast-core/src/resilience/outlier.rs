//! Passive outlier detection on real traffic, after Envoy: `consecutive_failures` 5xx
//! responses or connect failures in a row eject an instance for `base_ejection` × the
//! number of times it has been ejected (at most `max_ejection`), while never more than
//! `max_ejected_percent` of the pool is ejected at once.
//!
//! Per-instance state lives in an [`OutlierSlot`] (atomics, `Arc`-shared so it survives
//! snapshot swaps like `BackendStats`); the pool's [`OutlierDetector`] is rebuilt from
//! the slots whenever membership changes.

use super::events::{EventCounts, EventKind, HealthEvent};
use super::{as_ms, Outcome};
use crate::config::OutlierConfig;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Passive-detection state of one instance.
#[derive(Debug, Default)]
pub struct OutlierSlot {
    failures: AtomicU32,
    ejections: AtomicU32,
    /// End of the latest ejection in ms on the caller's origin (0: never ejected).
    until_ms: AtomicU64,
    /// Set on ejection, cleared once the return has been reported.
    return_pending: AtomicBool,
}

impl OutlierSlot {
    /// Failures in a row since the last success or ejection.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Times ejected since the multiplier was last reset.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Whether the instance is ejected at `now`.
    pub fn is_ejected(&self, now: Duration) -> bool {
        as_ms(now) < self.until_ms.load(Ordering::Acquire)
    }

    /// Ends an ejection early (an active health check just passed `rise` checks: the
    /// instance has recovered, as Envoy's `successful_active_health_check_uneject_host`).
    /// The ejection count stays, so a relapse is ejected for longer; the return is still
    /// reported once by [`OutlierDetector::returned`]. Returns whether it was ejected.
    pub fn reinstate(&self, now: Duration) -> bool {
        let until = self.until_ms.load(Ordering::Acquire);
        if as_ms(now) >= until {
            return false;
        }
        self.failures.store(0, Ordering::Relaxed);
        self.until_ms.compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// A change made by outlier detection; the caller turns it into a `HealthEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierTransition {
    /// Taken out of rotation.
    Ejected {
        /// For how long.
        duration: Duration,
        /// Times ejected, this one included.
        ejections: u32,
        /// Failures in a row that triggered it.
        consecutive_failures: u32,
    },
    /// The ejection ran out.
    Returned,
}

impl OutlierTransition {
    /// The log entry for this transition of `instance` in `pool` at `now`.
    pub fn event(&self, now: Duration, pool: &str, instance: &str) -> HealthEvent {
        HealthEvent::new(now, pool, instance, self.event_kind(), self.reason(), self.counts())
    }

    /// The event kind for the log.
    pub fn event_kind(&self) -> EventKind {
        match *self {
            OutlierTransition::Ejected { duration, ejections, .. } => {
                EventKind::Ejected { for_ms: as_ms(duration), ejections }
            }
            OutlierTransition::Returned => EventKind::Returned,
        }
    }

    /// Counters for the log.
    pub fn counts(&self) -> EventCounts {
        match *self {
            OutlierTransition::Ejected { consecutive_failures, .. } => {
                EventCounts { consecutive_successes: 0, consecutive_failures }
            }
            OutlierTransition::Returned => EventCounts::default(),
        }
    }

    /// A human reason.
    pub fn reason(&self) -> String {
        match *self {
            OutlierTransition::Ejected { duration, ejections, consecutive_failures } => format!(
                "{consecutive_failures} failed requests in a row (5xx or connect errors); ejected for {}s (ejection {ejections})",
                duration.as_secs_f64()
            ),
            OutlierTransition::Returned => "ejection time passed".to_string(),
        }
    }
}

/// Outlier detection for one pool. Index `i` in every method is the instance's position
/// in the slot list given to [`OutlierDetector::new`] (the balancer's backend order);
/// an index out of range is ignored.
#[derive(Debug)]
pub struct OutlierDetector {
    enabled: bool,
    threshold: u32,
    base_ms: u64,
    max_ms: u64,
    max_percent: u32,
    slots: Vec<Arc<OutlierSlot>>,
    /// Held while one ejection is decided, so two can never both see room under the cap.
    deciding: AtomicBool,
}

impl OutlierDetector {
    /// A detector over `slots` with the pool's `[pool.outlier]` settings.
    pub fn new(cfg: &OutlierConfig, slots: Vec<Arc<OutlierSlot>>) -> Self {
        OutlierDetector {
            enabled: cfg.enabled,
            threshold: cfg.consecutive_failures.max(1),
            base_ms: as_ms(cfg.base_ejection.0),
            max_ms: as_ms(cfg.max_ejection.0).max(as_ms(cfg.base_ejection.0)),
            max_percent: cfg.max_ejected_percent.min(100),
            slots,
            deciding: AtomicBool::new(false),
        }
    }

    /// Most instances ejected at once: `max_ejected_percent` of the pool rounded down, but
    /// at least 1 (so small pools can eject at all); 0 when the percentage is 0.
    pub fn max_ejected(&self) -> usize {
        if self.max_percent == 0 || self.slots.is_empty() {
            return 0;
        }
        (self.slots.len() * self.max_percent as usize / 100).max(1)
    }

    /// Records how a request to instance `i` ended at `now`. Returns the ejection it
    /// caused, if any. Lock-free: a success is one relaxed store at most.
    pub fn record(&self, i: usize, outcome: Outcome, now: Duration) -> Option<OutlierTransition> {
        let slot = self.slots.get(i)?;
        if !self.enabled {
            return None;
        }
        let now_ms = as_ms(now);
        if !outcome.is_failure() {
            if slot.failures.load(Ordering::Relaxed) != 0 {
                slot.failures.store(0, Ordering::Relaxed);
            }
            // Back in rotation for a whole max_ejection: forget past ejections.
            let until = slot.until_ms.load(Ordering::Relaxed);
            if slot.ejections.load(Ordering::Relaxed) != 0 && now_ms >= until.saturating_add(self.max_ms) {
                slot.ejections.store(0, Ordering::Relaxed);
            }
            return None;
        }
        if slot.is_ejected(now) {
            return None;
        }
        let failures = slot.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures < self.threshold {
            return None;
        }
        self.try_eject(slot, failures, now_ms)
    }

    fn try_eject(&self, slot: &OutlierSlot, failures: u32, now_ms: u64) -> Option<OutlierTransition> {
        if self.deciding.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            // Another ejection is being decided; this instance's counter stays at or
            // above the threshold, so its next failure tries again.
            return None;
        }
        let ejected = self.slots.iter().filter(|s| now_ms < s.until_ms.load(Ordering::Acquire)).count();
        let result = if ejected >= self.max_ejected() || now_ms < slot.until_ms.load(Ordering::Acquire) {
            None
        } else {
            let ejections = slot.ejections.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            let ms = self.base_ms.saturating_mul(u64::from(ejections)).min(self.max_ms);
            slot.failures.store(0, Ordering::Relaxed);
            slot.return_pending.store(true, Ordering::Relaxed);
            slot.until_ms.store(now_ms.saturating_add(ms), Ordering::Release);
            Some(OutlierTransition::Ejected {
                duration: Duration::from_millis(ms),
                ejections,
                consecutive_failures: failures,
            })
        };
        self.deciding.store(false, Ordering::Release);
        result
    }

    /// Whether instance `i` is ejected at `now` (false for an unknown index).
    pub fn is_ejected(&self, i: usize, now: Duration) -> bool {
        self.slots.get(i).is_some_and(|s| s.is_ejected(now))
    }

    /// Instances ejected at `now`.
    pub fn ejected_count(&self, now: Duration) -> usize {
        self.slots.iter().filter(|s| s.is_ejected(now)).count()
    }

    /// Instances whose ejection has run out by `now` and was not reported yet, each
    /// reported once (call it from a periodic task to log `Returned` events). An instance
    /// is back in rotation as soon as its time passes, whether or not this is called.
    pub fn returned(&self, now: Duration) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_ejected(now) && s.return_pending.swap(false, Ordering::AcqRel))
            .map(|(i, _)| i)
            .collect()
    }

    /// The slots, in index order.
    pub fn slots(&self) -> &[Arc<OutlierSlot>] {
        &self.slots
    }
}
