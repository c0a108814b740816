//! Health and resilience logic, pure: active-check damping ([`HealthState`]), passive
//! outlier ejection ([`OutlierDetector`]), the per-instance [`CircuitBreaker`], the
//! [`RetryBudget`], the pool limits' admission ([`PendingGate`],
//! [`try_acquire_in_flight`]) and the in-memory [`EventLog`] of transitions.
//!
//! Nothing here reads a clock or does I/O: every call takes `now`, a [`Duration`] on the
//! caller's monotonic origin (the proxy's `Clock`). What sits on the request path
//! (outlier recording, breaker admission, retry budget) is atomics only, no lock; the
//! event log takes a lock, but only when something changes state.
//!
//! # Where each piece sits in a proxied request
//!
//! 1. Pool admission: [`try_acquire_in_flight`] on the picked instance (when
//!    `max_in_flight_per_instance` is set); when no instance has room, enter the pool's
//!    [`PendingGate`] (refused: 503 with `Retry-After`), wait up to its queue timeout.
//! 2. Pick: skip instances that [`OutlierDetector::is_ejected`] or whose
//!    [`CircuitBreaker::allow`] refuses (all refused: 503 with the smallest
//!    [`Rejected::retry_after`]). Keep the [`Ticket`].
//! 3. First attempt: [`RetryBudget::deposit`].
//! 4. Outcome: [`Outcome::from_status`] (or `ConnectFailure`/`Timeout`) goes to
//!    [`CircuitBreaker::record`] with the ticket and to [`OutlierDetector::record`];
//!    push any transition to the [`EventLog`] (`transition.event(..)`).
//! 5. Retry (idempotent method, or nothing sent): only if [`RetryBudget::try_withdraw`]
//!    says yes, on another instance, back to step 2.
//! 6. Periodically: [`OutlierDetector::returned`] for `Returned` events.

mod breaker;
mod events;
mod health;
mod limits;
mod outlier;
mod retry;
mod window;

#[cfg(test)]
mod tests;

pub use breaker::{CircuitBreaker, CircuitState, CircuitTransition, Rejected, Ticket};
pub use events::{EventCounts, EventKind, EventLog, HealthEvent};
pub use health::{Health, HealthCounts, HealthState, HealthTransition};
pub use limits::{try_acquire_in_flight, PendingGate, PendingPermit, QueueFull};
pub use outlier::{OutlierDetector, OutlierSlot, OutlierTransition};
pub use retry::RetryBudget;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How one request to an instance ended, as passive detection and the breaker see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A response that is not a 5xx (4xx is the client's fault, not the instance's).
    Success,
    /// A 5xx response from the instance.
    ServerError,
    /// The TCP (or TLS) connection to the instance could not be made.
    ConnectFailure,
    /// The instance did not answer within the upstream timeout.
    Timeout,
}

impl Outcome {
    /// The outcome of a response with HTTP status `status`.
    pub fn from_status(status: u16) -> Outcome {
        if (500..=599).contains(&status) {
            Outcome::ServerError
        } else {
            Outcome::Success
        }
    }

    /// Whether this counts against the instance.
    pub fn is_failure(self) -> bool {
        self != Outcome::Success
    }
}

/// A duration as whole milliseconds, saturating at `u64::MAX`.
fn as_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
