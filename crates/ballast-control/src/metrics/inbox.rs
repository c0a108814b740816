//! A bounded inbox of samples produced outside the pool task: Prometheus pollers now,
//! metrics pushed through the admin API later. Producers [`push`](MetricInbox::push);
//! the pool's feed drains the inbox into its windows at every tick.

use super::PoolWindows;
use ballast_core::autoscale::MetricKind;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// One waiting sample: metric, time, value.
type Sample = (MetricKind, DateTime<Utc>, f64);

/// Samples waiting for the feed (cheap to clone; shared by producers and the feed).
#[derive(Debug, Clone)]
pub struct MetricInbox {
    queue: Arc<Mutex<VecDeque<Sample>>>,
    cap: usize,
}

impl MetricInbox {
    /// Holds at most `cap` samples (at least 1); when full the oldest is dropped, so a
    /// stalled pool task cannot make producers grow memory.
    pub fn new(cap: usize) -> Self {
        MetricInbox { queue: Arc::default(), cap: cap.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a sample.
    pub fn push(&self, metric: MetricKind, at: DateTime<Utc>, value: f64) {
        let mut q = self.lock();
        if q.len() == self.cap {
            q.pop_front();
        }
        q.push_back((metric, at, value));
    }

    /// Moves every waiting sample into `windows` (which drops non-finite values).
    pub fn drain_into(&self, windows: &mut PoolWindows) {
        let taken = std::mem::take(&mut *self.lock());
        for (metric, at, value) in taken {
            windows.push(metric, at, value);
        }
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::autoscale::{at_epoch_millis, MetricSource};

    #[test]
    fn bounded_and_drained_into_windows() {
        let inbox = MetricInbox::new(2);
        let m = MetricKind::Custom("queue".into());
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            inbox.push(m.clone(), at_epoch_millis(i as i64 * 1000), v);
        }
        assert_eq!(inbox.len(), 2, "the oldest was dropped");
        let mut w = PoolWindows::new(Default::default());
        inbox.clone().drain_into(&mut w);
        assert!(inbox.is_empty(), "clones share one queue");
        let s = w.summary(&m, at_epoch_millis(-1), at_epoch_millis(5000)).expect("samples");
        assert_eq!((s.count, s.mean), (2, 2.5));
    }
}
