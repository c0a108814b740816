//! The retry budget (Finagle's `RetryBudget`, tower's `TpsBudget`): every first attempt
//! deposits `budget_percent` of a retry, every retry withdraws a whole one, and
//! `min_per_second` retries per second are always allowed, all over a sliding window of
//! [`RetryBudget::WINDOW`]. So retries add at most `budget_percent` of the load (plus the
//! small floor) and cannot multiply an outage.
//!
//! The window is ten one-second slots of atomics: no lock. Under concurrency two callers
//! may both take the last retry of a window; the overshoot is bounded by the number of
//! threads racing for it.

use super::as_ms;
use crate::config::RetryConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SLOTS: usize = 10;
const SLOT_MS: u64 = 1000;

#[derive(Debug, Default)]
struct Slot {
    /// The slot's second on the caller's origin, plus 1 (0: never used).
    epoch: AtomicU64,
    deposits: AtomicU64,
    withdrawals: AtomicU64,
}

/// A retry budget for one pool, shared by all its requests.
#[derive(Debug)]
pub struct RetryBudget {
    /// Retries earned per first attempt, in thousandths (20% → 200).
    permille: u64,
    /// Retries always allowed per window.
    floor: u64,
    slots: [Slot; SLOTS],
}

impl RetryBudget {
    /// The sliding window over which deposits and withdrawals are counted.
    pub const WINDOW: Duration = Duration::from_secs(SLOTS as u64);

    /// A budget of `budget_percent` (clamped to 0.1–100) with `min_per_second` retries per
    /// second always allowed.
    pub fn new(cfg: &RetryConfig) -> Self {
        let pct = if cfg.budget_percent.is_finite() { cfg.budget_percent.clamp(0.1, 100.0) } else { 20.0 };
        RetryBudget {
            permille: (pct * 10.0).round() as u64,
            floor: u64::from(cfg.min_per_second).saturating_mul(SLOTS as u64),
            slots: Default::default(),
        }
    }

    /// The slot for `now`, emptied first if it still holds an older second.
    fn slot(&self, now: Duration) -> (&Slot, u64) {
        let second = as_ms(now) / SLOT_MS;
        let slot = &self.slots[(second % SLOTS as u64) as usize];
        let epoch = second + 1;
        let old = slot.epoch.load(Ordering::Acquire);
        if old != epoch
            && old < epoch
            && slot.epoch.compare_exchange(old, epoch, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            slot.deposits.store(0, Ordering::Relaxed);
            slot.withdrawals.store(0, Ordering::Relaxed);
        }
        (slot, epoch)
    }

    /// Deposits and withdrawals in the window ending at `epoch`.
    fn totals(&self, epoch: u64) -> (u64, u64) {
        let oldest = epoch.saturating_sub(SLOTS as u64 - 1);
        self.slots
            .iter()
            .filter(|s| (oldest..=epoch).contains(&s.epoch.load(Ordering::Acquire)))
            .fold((0, 0), |(d, w), s| {
                (d + s.deposits.load(Ordering::Relaxed), w + s.withdrawals.load(Ordering::Relaxed))
            })
    }

    /// Records a first attempt (not a retry) at `now`.
    pub fn deposit(&self, now: Duration) {
        self.slot(now).0.deposits.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks for one retry at `now`; true (and the retry is counted) when the window's
    /// retries stay within `floor + budget_percent × first attempts`.
    pub fn try_withdraw(&self, now: Duration) -> bool {
        let (slot, epoch) = self.slot(now);
        let (deposits, withdrawals) = self.totals(epoch);
        let earned = self.floor.saturating_mul(1000).saturating_add(self.permille.saturating_mul(deposits));
        if withdrawals.saturating_add(1).saturating_mul(1000) > earned {
            return false;
        }
        slot.withdrawals.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Retries still available in the window ending at `now` (for metrics).
    pub fn remaining(&self, now: Duration) -> u64 {
        let epoch = as_ms(now) / SLOT_MS + 1;
        let (deposits, withdrawals) = self.totals(epoch);
        let earned = self.floor.saturating_mul(1000).saturating_add(self.permille.saturating_mul(deposits));
        (earned / 1000).saturating_sub(withdrawals)
    }
}
