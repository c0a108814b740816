//! The pool task's failure accounting: provider actions that fail (create, destroy) and
//! instances that end before they were ever ready (a command that exits at once, a
//! start timeout) both back off exponentially and, after `error_after` in a row, put
//! the pool in `error` with the cause. A successful create clears provider failures;
//! an instance passing its first health check clears a crash loop; the pool is `ok`
//! again (a `recovered` event) once neither is at the threshold.

use super::pool::PoolTask;
use super::{EventKind, PoolStatus};
use crate::provider::ProviderError;
use std::time::Duration;

impl PoolTask {
    /// The delay before the `n`-th retry in a row (n ≥ 1).
    fn backoff(&self, n: u32) -> Duration {
        let s = self.spec.settings;
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        s.retry_initial.saturating_mul(factor).min(s.retry_max)
    }

    fn enter_error(&mut self, now: Duration, cause: String) {
        if self.status == PoolStatus::Ok {
            self.event(now, EventKind::PoolError, cause.clone(), "pool in error".into());
        }
        self.status = PoolStatus::Error { cause };
    }

    fn maybe_recover(&mut self, now: Duration, what: &str) {
        let limit = self.spec.settings.error_after;
        if self.failures >= limit || self.crashes >= limit {
            return;
        }
        if let PoolStatus::Error { cause } = std::mem::replace(&mut self.status, PoolStatus::Ok) {
            self.event(now, EventKind::Recovered, format!("{what} (was: {cause})"), "pool ok".into());
        }
    }

    /// A provider action failed: back off, and enter `error` after `error_after` in a row.
    pub(super) fn provider_failed(&mut self, now: Duration, action: &str, e: ProviderError) {
        self.failures += 1;
        let delay = self.backoff(self.failures);
        self.retry_at = now + delay;
        self.event(now, EventKind::ProviderError, format!("{action}: {e}"), format!("attempt {}, retry in {delay:?}", self.failures));
        if self.failures >= self.spec.settings.error_after {
            self.enter_error(now, format!("{action} failed {} times in a row: {e}", self.failures));
        }
    }

    /// Instance `who` ended before it was ever ready, for `reason`.
    pub(super) fn start_failed(&mut self, now: Duration, who: &str, reason: &str) {
        self.crashes += 1;
        let delay = self.backoff(self.crashes);
        self.retry_at = self.retry_at.max(now + delay);
        self.event(
            now,
            EventKind::ProviderError,
            format!("start: {who} never became ready: {reason}"),
            format!("attempt {}, retry in {delay:?}", self.crashes),
        );
        if self.crashes >= self.spec.settings.error_after {
            self.enter_error(now, format!("{} instances in a row never became ready; the last: {who}: {reason}", self.crashes));
        }
    }

    /// A create succeeded.
    pub(super) fn created_fine(&mut self, now: Duration) {
        self.failures = 0;
        self.maybe_recover(now, "provider works again");
    }

    /// An instance passed its first health check.
    pub(super) fn started_fine(&mut self, now: Duration) {
        self.crashes = 0;
        self.maybe_recover(now, "instances start again");
    }
}
