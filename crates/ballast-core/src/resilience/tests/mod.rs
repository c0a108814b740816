//! Table tests for every transition and property tests for the invariants of the
//! resilience module.

mod breaker;
mod breaker_rate;
mod events;
mod health;
mod limits;
mod outlier;
mod retry;

use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}
