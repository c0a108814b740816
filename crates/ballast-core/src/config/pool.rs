//! Pool-side config: `[[pool]]`, its balancing options, stickiness, static instances, and
//! the health, resilience and provider sub-tables.

use super::{
    CircuitBreakerConfig, ConfigDuration, HealthCheckConfig, OutlierConfig, PoolLimitsConfig,
    ProviderConfig, RetryConfig,
};
use crate::balance::{Algorithm, HashOn};
use serde::{Deserialize, Serialize};

/// A pool of replicas (`[[pool]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique name: 1–64 characters from `A-Z a-z 0-9 - _ .`.
    pub name: String,
    /// Balancing algorithm; default `least-request`.
    #[serde(default = "default_algorithm")]
    pub balance: Algorithm,
    /// What `consistent-hash` hashes (required by it, refused by the other algorithms),
    /// e.g. `{ header = "X-User" }`, `{ cookie = "sid" }` or `"path"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// Cookie affinity; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickyConfig>,
    /// Weight ramp window for new instances, at most 1h; None disables slow start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<ConfigDuration>,
    /// Fraction (0.0–1.0) of eligible instances below which all are used; default 0.5;
    /// 0.0 disables panic mode.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: f64,
    /// Active health checks; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheckConfig>,
    /// Passive outlier detection; on by default.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// Per-instance circuit breaker; on by default.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// In-flight limits and the pending queue.
    #[serde(default)]
    pub limits: PoolLimitsConfig,
    /// Retries under a budget.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Where instances come from; default `static` (the `instance` list).
    #[serde(default)]
    pub provider: ProviderConfig,
    /// Static instances (only with the `static` provider).
    #[serde(default, rename = "instance")]
    pub instances: Vec<InstanceConfig>,
}

fn default_algorithm() -> Algorithm {
    Algorithm::LeastRequest
}

fn default_panic_threshold() -> f64 {
    0.5
}

/// Cookie affinity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    /// Cookie name (an HTTP token); default `ballast_affinity`.
    #[serde(default = "default_sticky_cookie")]
    pub cookie: String,
    /// Cookie lifetime; None: a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<ConfigDuration>,
}

fn default_sticky_cookie() -> String {
    "ballast_affinity".to_string()
}

/// A static instance of a pool (`[[pool.instance]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// `host:port` to connect to; host is an IP literal (`[...]` for IPv6) or a DNS name.
    pub address: String,
    /// Relative weight, 1–10,000; default 1.
    #[serde(default = "default_instance_weight")]
    pub weight: u32,
    /// Zone label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn default_instance_weight() -> u32 {
    1
}
