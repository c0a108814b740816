//! Per-pool health and resilience settings: active health checks (`[pool.health]`),
//! passive outlier detection (`[pool.outlier]`), the per-instance circuit breaker
//! (`[pool.circuit_breaker]`), request limits with a bounded queue (`[pool.limits]`) and
//! retries under a budget (`[pool.retry]`).
//!
//! Names follow Envoy and HAProxy where they exist (`rise`/`fall`, `base_ejection`,
//! `max_ejected_percent`); defaults are theirs unless a comment says otherwise.

use super::ConfigDuration;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Active health checks (`[pool.health]`). Absent: no active checks, instances are
/// healthy until passive detection says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// How to probe; default `http`.
    #[serde(default)]
    pub kind: HealthCheckKind,
    /// Request path for `http`/`https`; default `/`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Statuses that count as healthy for `http`/`https`, `"200-399"` (default) or `"204"`.
    #[serde(default)]
    pub expected_status: StatusRange,
    /// For `http`/`https`: the body must contain this text; default: not checked.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// For `http`/`https`: the `Host` header to send; default: the instance address.
    #[serde(default)]
    pub host: Option<String>,
    /// Time between probes of one instance; default 5s.
    #[serde(default = "default_health_interval")]
    pub interval: ConfigDuration,
    /// A probe that takes longer fails; must be shorter than `interval`; default 2s.
    #[serde(default = "default_health_timeout")]
    pub timeout: ConfigDuration,
    /// Consecutive successes that make an unhealthy instance healthy; default 2.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that make a healthy instance unhealthy; default 3.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            kind: HealthCheckKind::default(),
            path: default_health_path(),
            expected_status: StatusRange::default(),
            body_contains: None,
            host: None,
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            rise: default_rise(),
            fall: default_fall(),
        }
    }
}

fn default_health_path() -> String {
    "/".to_string()
}
fn default_health_interval() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}
fn default_health_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(2)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// How an active health check probes an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthCheckKind {
    /// `GET path` over plain HTTP; healthy when the status is in `expected_status`.
    #[default]
    Http,
    /// The same over TLS (certificates are not verified: instances are often
    /// self-signed).
    Https,
    /// A TCP connect that succeeds within the timeout.
    Tcp,
    /// An ICMP echo (needs a raw socket; the check reports clearly when not permitted).
    Icmp,
}

impl HealthCheckKind {
    /// The config-file name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            HealthCheckKind::Http => "http",
            HealthCheckKind::Https => "https",
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Icmp => "icmp",
        }
    }

    /// Whether this kind sends an HTTP request (so path, status and body apply).
    pub fn is_http(self) -> bool {
        matches!(self, HealthCheckKind::Http | HealthCheckKind::Https)
    }
}

/// An inclusive range of HTTP statuses, written `"200-399"` or `"204"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    /// Lowest accepted status.
    pub min: u16,
    /// Highest accepted status.
    pub max: u16,
}

impl StatusRange {
    /// Whether `status` is inside the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.min..=self.max).contains(&status)
    }
}

impl Default for StatusRange {
    fn default() -> Self {
        StatusRange { min: 200, max: 399 }
    }
}

impl FromStr for StatusRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a status range; write e.g. \"200-399\" or \"204\"");
        let status = |t: &str| t.trim().parse::<u16>().map_err(|_| bad());
        let (min, max) = match s.split_once('-') {
            Some((lo, hi)) => (status(lo)?, status(hi)?),
            None => (status(s)?, status(s)?),
        };
        if !(100..=599).contains(&min) || !(100..=599).contains(&max) {
            return Err(format!("status range {s:?} must lie within 100-599"));
        }
        if min > max {
            return Err(format!("status range {s:?} starts above where it ends"));
        }
        Ok(StatusRange { min, max })
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct StatusVisitor;

impl Visitor<'_> for StatusVisitor {
    type Value = StatusRange;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a status range string such as \"200-399\" or \"204\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusRange, E> {
        v.parse().map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusRange, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusRange, E> {
        self.visit_str(&v.to_string())
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StatusVisitor)
    }
}

/// Passive outlier detection on real traffic (`[pool.outlier]`): after
/// `consecutive_failures` 5xx responses or connect errors in a row an instance is ejected
/// for `base_ejection` × (times ejected before), capped at `max_ejection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Whether passive detection runs; default true.
    pub enabled: bool,
    /// Failures in a row that eject an instance, at least 1; default 5.
    pub consecutive_failures: u32,
    /// First ejection time; default 30s.
    pub base_ejection: ConfigDuration,
    /// Longest ejection time, at least `base_ejection`; default 5m.
    pub max_ejection: ConfigDuration,
    /// Most instances of the pool ejected at once, as a percentage 0–100; default 10
    /// (at least one instance may always be ejected).
    pub max_ejected_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            enabled: true,
            consecutive_failures: 5,
            base_ejection: ConfigDuration::from_secs(30),
            max_ejection: ConfigDuration::from_secs(300),
            max_ejected_percent: 10,
        }
    }
}

/// The per-instance circuit breaker (`[pool.circuit_breaker]`): closed → open after
/// `failure_threshold` failures in a row, or once at least `min_requests` requests were
/// seen in the last 10 s and at least `failure_rate_threshold` of them failed → half-open
/// after `recovery_timeout`, when up to `half_open_requests` trial requests decide between
/// closed and open again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Whether the breaker runs; default true.
    pub enabled: bool,
    /// Failures in a row that open the circuit, at least 1; default 5.
    pub failure_threshold: u32,
    /// Time open before trying again; default 30s.
    pub recovery_timeout: ConfigDuration,
    /// Trial requests let through while half-open, at least 1; default 1.
    pub half_open_requests: u32,
    /// Requests that must have been seen in the 10 s window before the failure rate can
    /// open the circuit, 1–1,000,000; default 20.
    pub min_requests: u32,
    /// Fraction of the window's requests that, once failed, opens the circuit, in (0, 1];
    /// 0 turns the rate rule off (only failures in a row count); default 0.5.
    pub failure_rate_threshold: f64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            failure_threshold: 5,
            recovery_timeout: ConfigDuration::from_secs(30),
            half_open_requests: 1,
            min_requests: 20,
            failure_rate_threshold: 0.5,
        }
    }
}

/// Request limits of a pool (`[pool.limits]`): when every instance is at
/// `max_in_flight_per_instance` (or the pool has no instance yet, e.g. scaling from zero)
/// requests wait in a queue of `max_pending` for at most `queue_timeout`, then get 503.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolLimitsConfig {
    /// Most requests in flight to one instance, at least 1; default: no limit.
    
    pub max_in_flight_per_instance: Option<u32>,
    /// Most requests waiting for capacity; 0 means fail fast; default 1000.
    pub max_pending: u32,
    /// Longest wait in the queue; default 10s.
    pub queue_timeout: ConfigDuration,
}

impl Default for PoolLimitsConfig {
    fn default() -> Self {
        PoolLimitsConfig {
            max_in_flight_per_instance: None,
            max_pending: 1000,
            queue_timeout: ConfigDuration::from_secs(10),
        }
    }
}

/// Retries (`[pool.retry]`): only idempotent requests, or requests nothing was sent for,
/// go to another instance, and only while retries stay within the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt, 0–10 (0 disables); default 1.
    pub attempts: u32,
    /// Retries may add at most this percentage of the pool's request rate, in (0, 100];
    /// default 20.
    pub budget_percent: f64,
    /// Retries per second always allowed, whatever the budget, so low-traffic pools can
    /// retry at all; default 10.
    pub min_per_second: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { attempts: 1, budget_percent: 20.0, min_per_second: 10 }
    }
}
