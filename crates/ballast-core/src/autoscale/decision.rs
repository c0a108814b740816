//! What the engine returns: the desired count, every policy's vote, alerts, and a reason.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The outcome of one call to [`decide`](super::decide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When it was decided (the `now` passed in).
    pub at: DateTime<Utc>,
    /// Instances when deciding (ready or starting).
    pub current: u32,
    /// Instances the pool should have.
    pub desired: u32,
    /// Which way `desired` moves from `current`.
    pub direction: Direction,
    /// Each policy's vote, in config order (template policy last).
    pub recommendations: Vec<Recommendation>,
    /// The bounds that applied after schedules and budget: `[min, max]`.
    pub min: u32,
    /// Upper bound that applied.
    pub max: u32,
    /// Damping that held the count back, e.g. `scale-down blocked: cooldown 42s left`.
    pub blocked: Vec<String>,
    /// Budget alerts and other warnings for the operator.
    pub alerts: Vec<Alert>,
    /// Cost per hour of `desired` instances, when the pool has a price.
    pub hourly_cost: Option<f64>,
    /// The pool is in dry-run: the caller must not act on `desired`.
    pub dry_run: bool,
    /// The whole story in one line, for events and logs.
    pub reason: String,
}

impl Decision {
    /// True when the caller should change the pool (a change and not dry-run).
    pub fn should_act(&self) -> bool {
        !self.dry_run && self.desired != self.current
    }
}

/// Direction of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// More instances.
    Up,
    /// Fewer instances.
    Down,
    /// No change.
    Hold,
}

impl Direction {
    /// The direction from `current` to `desired`.
    pub fn between(current: u32, desired: u32) -> Self {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        }
    }
}

/// One policy's vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Index among the effective policies (explicit ones, then the template's).
    pub policy: usize,
    /// The policy's `kind`.
    pub kind: Cow<'static, str>,
    /// The count it wants; `None` when it has no data (it then blocks scale-down and
    /// cannot scale up, as a failed metric does in the Kubernetes HPA).
    pub desired: Option<u32>,
    /// False for votes that are recorded but not combined (`forecast_only`, inactive
    /// schedule windows, switched-off policies).
    pub acting: bool,
    /// Why, e.g. `cpu 83% > target 70% over 3 samples → 4 → 5`.
    pub reason: String,
}

impl Recommendation {
    /// A vote for `desired` instances.
    pub fn wants(policy: usize, kind: &'static str, desired: u32, reason: String) -> Self {
        Recommendation { policy, kind: Cow::Borrowed(kind), desired: Some(desired), acting: true, reason }
    }

    /// A policy without data.
    pub fn no_data(policy: usize, kind: &'static str, reason: String) -> Self {
        Recommendation { policy, kind: Cow::Borrowed(kind), desired: None, acting: true, reason }
    }

    /// A policy that records but does not act.
    pub fn passive(mut self) -> Self {
        self.acting = false;
        self
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertLevel {
    /// Worth knowing.
    Info,
    /// Act soon (budget past its warning level).
    Warning,
    /// Act now (budget past its critical level, or exhausted).
    Critical,
}

/// An alert raised while deciding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// How urgent.
    pub level: AlertLevel,
    /// What happened, with numbers.
    pub message: String,
}
