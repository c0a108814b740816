//! The retry budget (Finagle's `RetryBudget`, tower's `TpsBudget`): every first attempt
//! deposits `budget_percent` of a retry, every retry withdraws a whole one, and
//! `min_per_second` retries per second are always allowed, all over a sliding window of
//! [`RetryBudget::WINDOW`]. So retries add at most `budget_percent` of the load (plus the
//! small floor) and cannot multiply an outage.
//!
//! The window is ten one-second slots of atomics (the shared `Window`): no lock. Under
//! concurrency two callers may both take the last retry of a window; the overshoot is
//! bounded by the number of threads racing for it.

use super::window::Window;
use crate::config::RetryConfig;
use std::time::Duration;

/// A retry budget for one pool, shared by all its requests.
#[derive(Debug)]
pub struct RetryBudget {
    /// Retries earned per first attempt, in thousandths (20% → 200).
    permille: u64,
    /// Retries always allowed per window.
    floor: u64,
    /// First attempts (`a`) and retries (`b`).
    window: Window,
}

impl RetryBudget {
    /// The sliding window over which deposits and withdrawals are counted.
    pub const WINDOW: Duration = Window::SPAN;

    /// A budget of `budget_percent` (clamped to 0.1–100) with `min_per_second` retries per
    /// second always allowed.
    pub fn new(cfg: &RetryConfig) -> Self {
        let pct = if cfg.budget_percent.is_finite() { cfg.budget_percent.clamp(0.1, 100.0) } else { 20.0 };
        RetryBudget {
            permille: (pct * 10.0).round() as u64,
            floor: u64::from(cfg.min_per_second).saturating_mul(Window::SPAN.as_secs()),
            window: Window::default(),
        }
    }

    /// Records a first attempt (not a retry) at `now`.
    pub fn deposit(&self, now: Duration) {
        self.window.add(now, 1, 0);
    }

    /// Asks for one retry at `now`; true (and the retry is counted) when the window's
    /// retries stay within `floor + budget_percent × first attempts`.
    pub fn try_withdraw(&self, now: Duration) -> bool {
        let (deposits, withdrawals) = self.window.totals(now);
        let earned = self.floor.saturating_mul(1000).saturating_add(self.permille.saturating_mul(deposits));
        if withdrawals.saturating_add(1).saturating_mul(1000) > earned {
            return false;
        }
        self.window.add(now, 0, 1);
        true
    }

    /// Retries still available in the window ending at `now` (for metrics).
    pub fn remaining(&self, now: Duration) -> u64 {
        let (deposits, withdrawals) = self.window.totals(now);
        let earned = self.floor.saturating_mul(1000).saturating_add(self.permille.saturating_mul(deposits));
        (earned / 1000).saturating_sub(withdrawals)
    }
}
