//! The scaling decision engine: a pure function from pool state, policies and metric
//! windows to a [`Decision`] that explains itself. No I/O, no wall clock: `now` comes in.
//!
//! # Entry points
//! - [`decide`]`(state, config, cost, metrics, memory, now) -> Decision`: one decision
//!   for one pool. Call it every sync interval (15s by default) with:
//!   - [`PoolState`]: instances now (`current`), how many are ready, the measured
//!     start-up time, the budget spent this period, requests held while at zero, and an
//!     optional [`ManualOverride`];
//!   - [`ScalingConfig`]: `[pool.scaling]` (bounds, policies, damping); build one from a
//!     TOML file, or take [`named_policy`] (`target`, `step`, `score`, `predictive`,
//!     `hpa`) and set `min`/`max`;
//!   - an optional [`CostConfig`] (`[pool.cost]`);
//!   - a [`MetricSource`]: [`MetricWindows`] (push samples as they arrive), or your own
//!     implementation over a trace. Totals (rps, concurrency, queue depth) are pool-wide;
//!     cpu and memory are percent averages over the ready instances (see [`MetricKind`]);
//!   - [`EngineMemory`]: owned by the caller, one per pool, passed to every call; it holds
//!     cooldown times, the stabilisation history, scaling events and forecaster history;
//!   - `now`: a `DateTime<Utc>` (use [`at_epoch_millis`] from a trace's clock).
//! - Act on [`Decision::desired`] when [`Decision::should_act`]; log
//!   [`Decision::reason`], show [`Decision::recommendations`] and [`Decision::alerts`].
//! - [`ScalingConfig::validate`] and [`CostConfig::validate`] report every problem with
//!   its field path; [`template`] and [`TEMPLATE_NAMES`] list the policy templates.
//!
//! # How a decision is made
//! Each policy votes ([`Recommendation`]); the safest combination wins: the largest vote
//! when any wants more, a scale-down only when every acting policy has data and wants
//! less (then to the largest of their votes). Then, in order: bounds (pool `min`/`max`,
//! overridden by open schedule windows, `max` capped by the budget), scale to zero,
//! manual override, stabilisation (the HPA's: a scale-down goes only to the highest
//! recommendation in the window), cooldowns, rate limits, and a final clamp: bounds
//! beat damping, so `min ≤ desired ≤ max` always holds (or 0 with scale to zero).
//!
//! Per-instance metrics (cpu, memory, latency, error rate, Prometheus, custom) are read
//! only from the decision that last saw the ready count change: older samples were
//! spread over a different number of instances and would make new instances look as
//! loaded as the old ones (and scale up again). Totals are read over their whole window.

mod combine;
mod config;
mod cost;
mod decision;
mod forecast;
mod memory;
mod metrics;
mod prometheus;
mod schedule;
mod score;
mod step;
mod target;
mod templates;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_config;
#[cfg(test)]
mod tests_drive;
#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_units;

pub use config::{
    LimitSelect, PolicyConfig, RateLimit, ScaleToZero, ScalingConfig, DEFAULT_HOLD_QUEUE, DEFAULT_HOLD_TIMEOUT,
    DEFAULT_SCALE_DOWN_COOLDOWN, DEFAULT_SCALE_DOWN_STABILIZATION, DEFAULT_SCALE_UP_COOLDOWN, MAX_HOLD_QUEUE,
    MAX_HOLD_TIMEOUT,
};
pub use cost::{BudgetPeriod, CostConfig};
pub use decision::{Alert, AlertLevel, Decision, Direction, Recommendation};
pub use forecast::{Forecaster, PredictivePolicy};
pub use memory::{EngineMemory, ScaleEvent};
pub use metrics::{summarise, MetricKind, MetricSource, MetricWindows, Summary, UnknownMetric, METRIC_NAMES};
pub use prometheus::{prometheus_metrics, PrometheusSource};
pub use schedule::{ScheduleCache, SchedulePolicy};
pub use score::{default_weights, ScorePolicy};
pub use step::{StepPolicy, StepSize};
pub use target::TargetPolicy;
pub use templates::{named_policy, template, templates, Template, NAMED_POLICIES, TEMPLATE_NAMES};

use chrono::{DateTime, Utc};
use std::time::Duration;

/// What the engine needs to know about a pool right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolState {
    /// Instances that exist: ready plus starting.
    pub current: u32,
    /// Instances that are ready and serving (they report metrics); at most `current`.
    pub ready: u32,
    /// Measured time from start to ready; the predictive lead adds it. Default 0.
    pub startup_time: Duration,
    /// Money spent in the current budget period (cost-aware scaling).
    pub spend_this_period: f64,
    /// Requests held by the proxy while the pool has no ready instance.
    pub pending_requests: u32,
    /// An operator's manual count, if one is set.
    pub manual: Option<ManualOverride>,
}

impl PoolState {
    /// `current` instances of which `ready` are ready; everything else zero.
    pub fn new(current: u32, ready: u32) -> Self {
        PoolState { current, ready: ready.min(current), ..Self::default() }
    }
}

/// An operator's fixed count, which beats every policy (not the bounds) until it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualOverride {
    /// The count to hold.
    pub replicas: u32,
    /// Why, for the audit trail.
    pub reason: String,
    /// When the policies take over again; None: until removed.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One scaling decision for one pool. See the module documentation.
pub fn decide(
    state: &PoolState,
    config: &ScalingConfig,
    cost: Option<&CostConfig>,
    metrics: &dyn MetricSource,
    memory: &mut EngineMemory,
    now: DateTime<Utc>,
) -> Decision {
    combine::run(state, config, cost, metrics, memory, now)
}

/// The instant `ms` milliseconds after the Unix epoch (clamped to chrono's range).
pub fn at_epoch_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// What policies read while voting.
pub(crate) struct Ctx<'a> {
    pub state: &'a PoolState,
    pub metrics: &'a dyn MetricSource,
    pub now: DateTime<Utc>,
    /// When the ready count last changed (see [`EngineMemory::ready_changed_at`]).
    pub ready_since: Option<DateTime<Utc>>,
}

impl Ctx<'_> {
    /// Summary of `metric` over the last `window`. Per-instance metrics (all but totals)
    /// are read only after the ready count last changed: samples taken with fewer ready
    /// instances would make each new one look as loaded as the old ones were and scale
    /// up again. Right at a change only the newest sample counts.
    pub fn read(&self, metric: &MetricKind, window: Duration) -> Option<Summary> {
        let from = memory::before(self.now, window);
        match self.ready_since {
            Some(since) if !metric.is_total() && since > from => {
                let clean = if since < self.now { self.metrics.summary(metric, since, self.now) } else { None };
                clean.or_else(|| {
                    let s = self.metrics.summary(metric, from, self.now)?;
                    Some(Summary { mean: s.latest, max: s.latest, latest: s.latest, count: 1 })
                })
            }
            _ => self.metrics.summary(metric, from, self.now),
        }
    }
}
