//! Health and resilience events: every transition (active check, outlier ejection,
//! circuit breaker) with its reason and counters, kept in a bounded in-memory ring until
//! the store persists them.

use super::breaker::CircuitState;
use super::health::Health;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum EventKind {
    /// Active health checks flipped the instance.
    Health {
        /// State before.
        from: Health,
        /// State after.
        to: Health,
    },
    /// Outlier detection took the instance out of rotation.
    Ejected {
        /// How long, in milliseconds.
        for_ms: u64,
        /// How many times it has been ejected, this one included.
        ejections: u32,
    },
    /// An ejection ran out: the instance is back in rotation.
    Returned,
    /// The circuit breaker changed state.
    Circuit {
        /// State before.
        from: CircuitState,
        /// State after.
        to: CircuitState,
    },
}

/// Counters at the moment of the transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventCounts {
    /// Successes in a row.
    pub consecutive_successes: u32,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

/// One transition of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Position in the log, from 1, increasing; assigned by [`EventLog::push`].
    pub seq: u64,
    /// When, on the caller's monotonic origin.
    pub at: Duration,
    /// Pool name.
    pub pool: String,
    /// Instance id.
    pub instance: String,
    /// What changed.
    pub kind: EventKind,
    /// Why, for a human: `"3 failed checks in a row (fall 3); last: status 500"`.
    pub reason: String,
    /// Counters at the moment of the change.
    pub counts: EventCounts,
}

impl HealthEvent {
    /// An event not yet in a log (`seq` 0 until pushed).
    pub fn new(
        at: Duration,
        pool: impl Into<String>,
        instance: impl Into<String>,
        kind: EventKind,
        reason: impl Into<String>,
        counts: EventCounts,
    ) -> Self {
        HealthEvent { seq: 0, at, pool: pool.into(), instance: instance.into(), kind, reason: reason.into(), counts }
    }
}

/// A bounded ring of the most recent [`HealthEvent`]s, shared by the checkers and the
/// proxy (`Arc<EventLog>`). The lock is held only to push or copy out, never on the
/// request path unless something changed state.
#[derive(Debug)]
pub struct EventLog {
    capacity: usize,
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<HealthEvent>,
    next_seq: u64,
    dropped: u64,
}

impl EventLog {
    /// Default number of events kept.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A log keeping the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        EventLog { capacity: capacity.max(1), inner: Mutex::new(Ring { next_seq: 1, ..Ring::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent: every
        // mutation is a single push/pop.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `event`, assigning its `seq`, dropping the oldest when full; returns the seq.
    pub fn push(&self, mut event: HealthEvent) -> u64 {
        let mut ring = self.lock();
        event.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
            ring.dropped += 1;
        }
        let seq = event.seq;
        ring.events.push_back(event);
        seq
    }

    /// The last `n` events, oldest first.
    pub fn recent(&self, n: usize) -> Vec<HealthEvent> {
        let ring = self.lock();
        let skip = ring.events.len().saturating_sub(n);
        ring.events.iter().skip(skip).cloned().collect()
    }

    /// Events with `seq` greater than `after`, oldest first (a reader's cursor; events
    /// already dropped from the ring are gone, see [`EventLog::dropped`]).
    pub fn since(&self, after: u64) -> Vec<HealthEvent> {
        self.lock().events.iter().filter(|e| e.seq > after).cloned().collect()
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events pushed out of the ring because it was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The most events held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(EventLog::DEFAULT_CAPACITY)
    }
}
