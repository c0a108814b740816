//! Damping of active health-check results: an instance changes state only after `rise`
//! successes (or `fall` failures) in a row, as in HAProxy and pingora.

use crate::config::HealthCheckConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Whether active checks consider an instance fit for traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Passing: gets traffic.
    Healthy,
    /// Failing: out of rotation until `rise` successes in a row.
    Unhealthy,
}

impl Health {
    /// The lower-case name used in events and the API.
    pub fn name(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The consecutive counters of one instance and the thresholds they are held against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    /// Successful probes in a row (0 after a failure).
    pub consecutive_successes: u32,
    /// Failed probes in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Successes in a row that make an unhealthy instance healthy.
    pub rise: u32,
    /// Failures in a row that make a healthy instance unhealthy.
    pub fall: u32,
}

/// A change of [`Health`], returned by [`HealthState::record`] when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTransition {
    /// State before.
    pub from: Health,
    /// State after.
    pub to: Health,
    /// Counters right after the result that caused the change.
    pub counts: HealthCounts,
}

impl HealthTransition {
    /// A human reason: `"3 failed checks in a row (fall 3); last: status 500"`.
    pub fn reason(&self, last: &str) -> String {
        let c = &self.counts;
        let head = match self.to {
            Health::Unhealthy => format!("{} failed checks in a row (fall {})", c.consecutive_failures, c.fall),
            Health::Healthy => format!("{} passed checks in a row (rise {})", c.consecutive_successes, c.rise),
        };
        if last.is_empty() {
            head
        } else {
            format!("{head}; last: {last}")
        }
    }
}

/// Active-check state of one instance: the current [`Health`], consecutive counters, and
/// when it last became healthy (for uptime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    health: Health,
    successes: u32,
    failures: u32,
    rise: u32,
    fall: u32,
    healthy_since: Option<Duration>,
    changed_at: Duration,
}

impl HealthState {
    /// A state starting as `initial` at `now`. `rise` and `fall` below 1 count as 1.
    pub fn new(initial: Health, rise: u32, fall: u32, now: Duration) -> Self {
        HealthState {
            health: initial,
            successes: 0,
            failures: 0,
            rise: rise.max(1),
            fall: fall.max(1),
            healthy_since: (initial == Health::Healthy).then_some(now),
            changed_at: now,
        }
    }

    /// A state with the `rise`/`fall` of a `[pool.health]` section.
    pub fn from_config(cfg: &HealthCheckConfig, initial: Health, now: Duration) -> Self {
        HealthState::new(initial, cfg.rise, cfg.fall, now)
    }

    /// Records one probe result at `now`; returns the transition when this result is the
    /// `rise`-th success (or `fall`-th failure) in a row against the current state.
    pub fn record(&mut self, success: bool, now: Duration) -> Option<HealthTransition> {
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let to = match self.health {
            Health::Healthy if self.failures >= self.fall => Health::Unhealthy,
            Health::Unhealthy if self.successes >= self.rise => Health::Healthy,
            _ => return None,
        };
        let from = self.health;
        self.health = to;
        self.changed_at = now;
        self.healthy_since = (to == Health::Healthy).then_some(now);
        Some(HealthTransition { from, to, counts: self.counts() })
    }

    /// Current state.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Current counters and thresholds.
    pub fn counts(&self) -> HealthCounts {
        HealthCounts {
            consecutive_successes: self.successes,
            consecutive_failures: self.failures,
            rise: self.rise,
            fall: self.fall,
        }
    }

    /// Time healthy without interruption, `None` while unhealthy.
    pub fn uptime(&self, now: Duration) -> Option<Duration> {
        self.healthy_since.map(|since| now.saturating_sub(since))
    }

    /// When the state last changed (or the state was created).
    pub fn changed_at(&self) -> Duration {
        self.changed_at
    }

    /// Takes new thresholds (a config reload), keeping state and counters. A counter
    /// already past the new threshold flips on the next matching result.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }
}
