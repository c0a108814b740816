//! Why a probe failed, or why a check cannot be set up.

use ballast_core::config::StatusRange;
use std::time::Duration;

/// A failed probe (the instance counts one failure) or a check that cannot run at all
/// (returned by [`Prober::new`](super::Prober::new) and
/// [`HealthChecker::spawn`](super::HealthChecker::spawn)).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        /// The instance address as configured.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The probe took longer than `health.timeout`.
    #[error("no answer within {}ms", .after.as_millis())]
    Timeout {
        /// The timeout that passed.
        after: Duration,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The HTTP exchange failed (connection closed, malformed response, ...).
    #[error("HTTP request failed: {0}")]
    Http(String),
    /// The status is outside `health.expected_status`.
    #[error("status {status} is outside {expected}")]
    Status {
        /// Status received.
        status: u16,
        /// Statuses accepted.
        expected: StatusRange,
    },
    /// The body does not contain `health.body_contains` (within the first
    /// [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES)).
    #[error("body does not contain {needle:?} (read {read} bytes)")]
    BodyMismatch {
        /// The text looked for.
        needle: String,
        /// Bytes read.
        read: usize,
    },
    /// The check's settings cannot be used (e.g. `health.host` is not a valid header).
    #[error("health.{field}: {reason}")]
    Config {
        /// The field under `[pool.health]`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// This process may not send ICMP echo requests.
    #[error("ICMP health checks are not permitted here: {0}")]
    IcmpNotPermitted(String),
    /// An ICMP socket error other than permission.
    #[error("ICMP echo to {addr} failed: {source}")]
    Icmp {
        /// The address pinged.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
}
