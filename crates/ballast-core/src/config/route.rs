//! Route extras beyond the weighted split: overrides that force a request to one pool
//! (`override = [{ header = "x-canary", value = "1", pool = "api-canary" }]`) and a
//! backup pool for failover (`backup = { pool = "dr", min_healthy = 2 }`).

use serde::{Deserialize, Serialize};

/// A split override: a request whose header (or cookie) `value` matches goes to `pool`,
/// whatever the weights say. Exactly one of `header` and `cookie` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// Request header to look at (an HTTP token).
    #[serde(default)]
    pub header: Option<String>,
    /// Cookie to look at.
    #[serde(default)]
    pub cookie: Option<String>,
    /// The value that triggers the override (exact match).
    pub value: String,
    /// The pool the request then goes to.
    pub pool: String,
}

/// Failover: the route's traffic goes to `pool` only while its chosen pool has fewer than
/// `min_healthy` healthy instances, and comes back as soon as it has enough again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The backup pool.
    pub pool: String,
    /// Healthy instances the primary needs to keep its traffic, at least 1; default 1.
    #[serde(default = "default_min_healthy")]
    pub min_healthy: u32,
}

fn default_min_healthy() -> u32 {
    1
}
