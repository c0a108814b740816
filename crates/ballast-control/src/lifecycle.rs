//! The life of one instance as a pure state machine, and start-up time statistics.
//!
//! ```text
//!  pending ──started──▶ starting ──health passed──▶ ready ──drain──▶ draining ──stopped──▶ stopped
//!     │                    │  (start timeout)          │  (health failing > grace)   │ (exited: stopped)
//!     └─create failed──────┴──exited / timed out───────┴──exited──▶ failed          │
//! ```
//!
//! Times are `Duration`s since any monotonic origin the caller picks (the controller
//! uses its tokio clock), so the machine never reads a clock. Start-up time is
//! `ready_at - created_at`: what the predictive policy's lead time and the simulator's
//! model need.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Asked of the provider, not created yet.
    Pending,
    /// Created; waiting for its first passing health check.
    Starting,
    /// Passed a health check; in rotation.
    Ready,
    /// Out of rotation, finishing its in-flight requests.
    Draining,
    /// Gone after a drain or a stop (terminal).
    Stopped,
    /// Could not be created, exited on its own, or never became ready (terminal).
    Failed,
}

impl Phase {
    /// True for `stopped` and `failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Stopped | Phase::Failed)
    }

    /// Name as shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Draining => "draining",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What can happen to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The provider created it at this address.
    Started(String),
    /// The provider could not create it.
    CreateFailed(String),
    /// A health check passed.
    HealthPassed,
    /// A health check failed.
    HealthFailed,
    /// Taken out of rotation to be stopped.
    Drain,
    /// Stopped by ballast.
    Stopped,
    /// Exited on its own, with this status.
    Exited(String),
    /// Not ready within the start timeout.
    StartTimedOut,
}

/// An event that makes no sense in the current phase (e.g. a drain of a failed instance).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {id}: {event:?} is not possible while {phase}")]
pub struct BadTransition {
    /// The instance.
    pub id: String,
    /// Its phase.
    pub phase: Phase,
    /// The refused event.
    pub event: Event,
}

/// One instance's state. Create with [`Instance::pending`], then [`Instance::apply`]
/// events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Provider id (or a placeholder while pending).
    pub id: String,
    /// `host:port`, once started.
    pub address: Option<String>,
    /// Current phase.
    pub phase: Phase,
    /// When it was asked for.
    pub created_at: Duration,
    /// When it first passed a health check.
    pub ready_at: Option<Duration>,
    /// Since when health checks fail without a pass in between (ready instances only).
    pub unhealthy_since: Option<Duration>,
    /// Why it failed or was stopped, when it did.
    pub reason: Option<String>,
}

impl Instance {
    /// A new instance asked for at `now`.
    pub fn pending(id: impl Into<String>, now: Duration) -> Self {
        Instance {
            id: id.into(),
            address: None,
            phase: Phase::Pending,
            created_at: now,
            ready_at: None,
            unhealthy_since: None,
            reason: None,
        }
    }

    /// Applies `event` at `now`; returns the phase before. Health results while draining
    /// are ignored (the instance is leaving anyway).
    pub fn apply(&mut self, event: Event, now: Duration) -> Result<Phase, BadTransition> {
        use Phase::*;
        let from = self.phase;
        let to = match (from, &event) {
            (Pending, Event::Started(addr)) => {
                self.address = Some(addr.clone());
                Starting
            }
            (Pending, Event::CreateFailed(why)) => {
                self.reason = Some(format!("create failed: {why}"));
                Failed
            }
            (Starting, Event::HealthPassed) => {
                self.ready_at = Some(now);
                Ready
            }
            (Starting, Event::HealthFailed) => Starting,
            (Starting, Event::StartTimedOut) => {
                self.reason = Some(format!("not ready {:?} after start", now.saturating_sub(self.created_at)));
                Failed
            }
            (Ready, Event::HealthPassed) => {
                self.unhealthy_since = None;
                Ready
            }
            (Ready, Event::HealthFailed) => {
                self.unhealthy_since.get_or_insert(now);
                Ready
            }
            (Draining, Event::HealthPassed | Event::HealthFailed) => Draining,
            (Starting | Ready, Event::Drain) => Draining,
            (Starting | Ready | Draining, Event::Stopped) | (Draining, Event::Exited(_)) => Stopped,
            (Starting | Ready, Event::Exited(status)) => {
                self.reason = Some(format!("exited ({status})"));
                Failed
            }
            _ => return Err(BadTransition { id: self.id.clone(), phase: from, event }),
        };
        self.phase = to;
        Ok(from)
    }

    /// Time from request to ready, once ready.
    pub fn startup_time(&self) -> Option<Duration> {
        self.ready_at.map(|r| r.saturating_sub(self.created_at))
    }

    /// Why this instance should be replaced at `now`, if it should: it failed, or it has
    /// failed health checks for at least `health_grace`, or it has been starting for at
    /// least `start_timeout`.
    pub fn replacement_reason(&self, now: Duration, health_grace: Duration, start_timeout: Duration) -> Option<String> {
        match self.phase {
            Phase::Failed => Some(self.reason.clone().unwrap_or_else(|| "failed".into())),
            Phase::Ready => self
                .unhealthy_since
                .map(|s| now.saturating_sub(s))
                .filter(|d| *d >= health_grace)
                .map(|d| format!("failing health checks for {}s (grace {}s)", d.as_secs(), health_grace.as_secs())),
            Phase::Starting => {
                let age = now.saturating_sub(self.created_at);
                (age >= start_timeout).then(|| format!("not ready {}s after start", age.as_secs()))
            }
            _ => None,
        }
    }
}

/// Start-up times of a pool's latest instances (a bounded history) and their summary.
#[derive(Debug, Clone)]
pub struct StartupHistory {
    times: VecDeque<Duration>,
    cap: usize,
}

/// Summary of start-up times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StartupSummary {
    /// Instances measured.
    pub count: usize,
    /// Mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 95th percentile (nearest rank).
    pub p95: Duration,
    /// Longest.
    pub max: Duration,
}

impl StartupHistory {
    /// Keeps the last `cap` start-up times (at least 1).
    pub fn new(cap: usize) -> Self {
        StartupHistory { times: VecDeque::new(), cap: cap.max(1) }
    }

    /// Records one start-up time.
    pub fn record(&mut self, d: Duration) {
        if self.times.len() == self.cap {
            self.times.pop_front();
        }
        self.times.push_back(d);
    }

    /// Summary of the kept times; None before the first.
    pub fn summary(&self) -> Option<StartupSummary> {
        if self.times.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.times.iter().copied().collect();
        sorted.sort();
        let n = sorted.len();
        let rank = |q: f64| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = sorted.iter().sum();
        Some(StartupSummary {
            count: n,
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
            p50: rank(0.5),
            p95: rank(0.95),
            max: sorted[n - 1],
        })
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
