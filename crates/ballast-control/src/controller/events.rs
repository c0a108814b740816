//! The controller's event log: every decision and action with its reason, the inputs it
//! saw and what came of it. In memory and bounded (oldest dropped first); the store and
//! the SSE stream of later issues read from here. Every event is also logged (tracing,
//! `info`) and sent to [`EventLog::subscribe`]rs (what `ballast demo` prints).

use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The engine decided a new target.
    Decision,
    /// An instance was created.
    Created,
    /// An instance passed its first health check.
    Ready,
    /// An instance was taken out of rotation.
    Drain,
    /// An instance was stopped.
    Stopped,
    /// An instance is being replaced (auto-healing).
    Replace,
    /// A provider action failed (will be retried).
    ProviderError,
    /// The pool entered the `error` state.
    PoolError,
    /// The pool left the `error` state.
    Recovered,
    /// The proxy's membership could not be updated.
    MembershipError,
    /// A rollout started, was refused or finished.
    Rollout,
    /// A rollout failed and is being rolled back.
    RolledBack,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// The pool.
    pub pool: String,
    /// What.
    pub kind: EventKind,
    /// Why, in words.
    pub reason: String,
    /// What the controller saw (counts, target, metric values).
    pub inputs: String,
    /// What came of it.
    pub outcome: String,
}

/// A shared, bounded event log (cheap to clone).
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Mutex<VecDeque<ControlEvent>>>,
    cap: usize,
    live: tokio::sync::broadcast::Sender<ControlEvent>,
}

/// Events a slow subscriber may fall behind by before it misses some.
const LIVE_BACKLOG: usize = 1024;

impl EventLog {
    /// Keeps the newest `cap` events (at least 1).
    pub fn new(cap: usize) -> Self {
        EventLog { inner: Arc::default(), cap: cap.max(1), live: tokio::sync::broadcast::channel(LIVE_BACKLOG).0 }
    }

    /// Every event pushed from now on (a receiver more than 1024 events behind misses
    /// the oldest and is told how many).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ControlEvent> {
        self.live.subscribe()
    }

    /// Appends an event, dropping the oldest when full.
    pub fn push(&self, event: ControlEvent) {
        tracing::info!(pool = %event.pool, kind = ?event.kind, reason = %event.reason, inputs = %event.inputs, outcome = %event.outcome, "control event");
        let _ = self.live.send(event.clone());
        let mut q = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() == self.cap {
            q.pop_front();
        }
        q.push_back(event);
    }

    /// Every event held, oldest first.
    pub fn snapshot(&self) -> Vec<ControlEvent> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_events() {
        let log = EventLog::new(2);
        for i in 0..3 {
            log.push(ControlEvent {
                at: DateTime::<Utc>::MIN_UTC,
                pool: "p".into(),
                kind: EventKind::Decision,
                reason: format!("r{i}"),
                inputs: String::new(),
                outcome: String::new(),
            });
        }
        let reasons: Vec<String> = log.snapshot().into_iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["r1", "r2"]);
    }

    #[test]
    fn subscribers_see_events_pushed_after_they_subscribed() {
        let log = EventLog::new(10);
        let event = |reason: &str| ControlEvent {
            at: DateTime::<Utc>::MIN_UTC,
            pool: "p".into(),
            kind: EventKind::Created,
            reason: reason.into(),
            inputs: String::new(),
            outcome: String::new(),
        };
        log.push(event("before"));
        let mut rx = log.subscribe();
        log.push(event("after"));
        assert_eq!(rx.try_recv().expect("one event").reason, "after");
        assert!(rx.try_recv().is_err(), "nothing else");
    }
}
