//! The configuration model: TOML file → typed config → validation with precise errors.
//!
//! The types here mirror the file one to one (see [`EXAMPLE`] for a complete file).
//! [`parse`] only checks shapes and types and stops at the first problem, naming its field
//! path and line; [`validate`] checks meaning and reports every problem with its field
//! path, the bad value and what is allowed. [`parse_and_validate`] does both, as
//! `ballast check` needs. This module does no I/O: the binary reads the file.

mod balancer;
mod duration;
mod health;
mod load;
mod net;
mod pool;
mod provider;
mod validate;

#[cfg(test)]
mod tests;

pub use balancer::{
    AccessLogFormat, BalancerConfig, ClientZoneConfig, LimitsConfig, RateLimitConfig,
    RateLimitKey, RouteConfig, SplitConfig, TimeoutsConfig, TlsCertConfig,
};
pub use duration::ConfigDuration;
pub use health::{
    CircuitBreakerConfig, HealthCheckConfig, HealthCheckKind, OutlierConfig, PoolLimitsConfig,
    RetryConfig, StatusRange,
};
pub use load::{parse, parse_and_validate, to_toml, ConfigError, MAX_CONFIG_BYTES};
pub use net::{check_dns_name, check_host_pattern, check_host_port, check_token, Cidr};
pub use pool::{InstanceConfig, PoolConfig, StickyConfig};
pub use provider::{
    ExecProvider, PortRange, ProcessProvider, ProviderConfig, ProviderKind, RawProvider,
    PLACEHOLDERS,
};
pub use validate::validate;

use serde::{Deserialize, Serialize};

/// A complete, valid example configuration using every section; `ballast check` and the
/// README point to it and a test keeps it valid.
pub const EXAMPLE: &str = include_str!("example.toml");

/// One validation problem: the field path (`pool "api".scaling.min`), and what is wrong,
/// with the bad value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Where in the file, e.g. `balancer "web".route[0].split[1].weight`.
    pub path: String,
    /// What is wrong and what is allowed, e.g. `0 is not allowed; use 1 to 10000`.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), message: message.into() }
    }
}

/// A whole ballast configuration file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, each with its routes.
    #[serde(default, rename = "balancer")]
    pub balancers: Vec<BalancerConfig>,
    /// Pools of replicas that routes send traffic to.
    #[serde(default, rename = "pool")]
    pub pools: Vec<PoolConfig>,
}
