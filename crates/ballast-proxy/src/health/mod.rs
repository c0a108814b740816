//! Active health checks: probes (HTTP, HTTPS, TCP connect, ICMP echo) and the
//! [`HealthChecker`] task that runs them for one pool.
//!
//! The checker owns `BackendStats::healthy` for its instances: it writes the flag only
//! when [`HealthState`](ballast_core::resilience::HealthState) reports a transition (after
//! `rise`/`fall` results in a row), and appends a [`HealthEvent`] for each transition to
//! the shared [`EventLog`]. Everything timing-related reads tokio's clock, so tests run on
//! a paused clock.
//!
//! [`HealthEvent`]: ballast_core::resilience::HealthEvent
//! [`EventLog`]: ballast_core::resilience::EventLog

mod checker;
mod error;
mod http;
mod icmp;
mod probe;
mod tls;

#[cfg(test)]
mod tests;

pub use checker::{HealthChecker, HealthHandle, HealthTarget, InstanceHealth};
pub use error::HealthError;
pub use http::MAX_BODY_BYTES;
pub use icmp::icmp_available;
pub use probe::{Probe, ProbeFuture, Prober};
