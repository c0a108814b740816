//! What the engine remembers between decisions. The caller owns it and passes it to every
//! [`decide`](super::decide) call for the same pool, so the live controller and the
//! simulator drive the same state machine; it serialises, so it can survive restarts.

use super::forecast::Forecaster;
use super::schedule::ScheduleCache;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Engine state of one pool across decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineMemory {
    /// Recent clamped recommendations `(time, count)`, oldest first, for stabilisation.
    pub recommendations: VecDeque<(DateTime<Utc>, u32)>,
    /// Recent scaling actions, oldest first, for the rate limits.
    pub scale_events: VecDeque<ScaleEvent>,
    /// When the pool last grew.
    pub last_scale_up: Option<DateTime<Utc>>,
    /// When the pool last shrank.
    pub last_scale_down: Option<DateTime<Utc>>,
    /// The first decision seen (scale to zero waits a full idle period after it).
    pub first_seen: Option<DateTime<Utc>>,
    /// The last decision (demand is looked for since then).
    pub last_decide: Option<DateTime<Utc>>,
    /// The ready count seen by the last decision.
    pub last_ready: Option<u32>,
    /// When a decision last saw the ready count change: per-instance metrics are read
    /// only from then on, since older samples were spread over a different count.
    pub ready_changed_at: Option<DateTime<Utc>>,
    /// The last time any request, in-flight request or queued item was seen.
    pub last_demand: Option<DateTime<Utc>>,
    /// Demand history per predictive policy, keyed by policy index.
    pub forecasters: BTreeMap<usize, Forecaster>,
    /// Parsed schedules and their known open/closed spans; rebuilt on demand.
    #[serde(skip)]
    pub schedules: ScheduleCache,
}

/// One scaling action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Count before.
    pub from: u32,
    /// Count after.
    pub to: u32,
}

impl EngineMemory {
    /// Nothing remembered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a change of the pool's size made at `at`. The engine calls this for its
    /// own (non-dry-run) decisions; call it for changes made elsewhere (manual scaling)
    /// so cooldowns and rate limits count them.
    pub fn record_scale(&mut self, at: DateTime<Utc>, from: u32, to: u32) {
        if to > from {
            self.last_scale_up = Some(at);
        } else if to < from {
            self.last_scale_down = Some(at);
        } else {
            return;
        }
        self.scale_events.push_back(ScaleEvent { at, from, to });
    }

    /// Notes the ready count of this decision, remembering when it changed.
    pub(crate) fn observe_ready(&mut self, ready: u32, now: DateTime<Utc>) {
        if self.last_ready.is_some_and(|r| r != ready) {
            self.ready_changed_at = Some(now);
        }
        self.last_ready = Some(ready);
    }

    /// The last scaling action in either direction.
    pub fn last_scale(&self) -> Option<DateTime<Utc>> {
        self.last_scale_up.max(self.last_scale_down)
    }

    /// Drops recommendations and events older than `keep` before `now`.
    pub(crate) fn prune(&mut self, now: DateTime<Utc>, keep: Duration) {
        let cutoff = before(now, keep);
        while self.recommendations.front().is_some_and(|(t, _)| *t < cutoff) {
            self.recommendations.pop_front();
        }
        while self.scale_events.front().is_some_and(|e| e.at < cutoff) {
            self.scale_events.pop_front();
        }
    }

    /// The forecaster of policy `idx`, new if absent or if its bucket size changed.
    pub(crate) fn forecaster(&mut self, idx: usize, interval_secs: i64) -> &mut Forecaster {
        let f = self.forecasters.entry(idx).or_insert_with(|| Forecaster::new(interval_secs));
        if f.interval_secs() != interval_secs.max(1) {
            *f = Forecaster::new(interval_secs);
        }
        f
    }
}

/// `now − d`, saturating at the earliest representable time.
pub(crate) fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Time left of `d` since `since`, if any (for "cooldown 42s left").
pub(crate) fn left(since: Option<DateTime<Utc>>, d: Duration, now: DateTime<Utc>) -> Option<Duration> {
    let since = since?;
    let elapsed = (now - since).to_std().unwrap_or(Duration::ZERO);
    d.checked_sub(elapsed).filter(|l| !l.is_zero())
}
