//! The configuration model: TOML file → typed config → validation with precise errors.
//!
//! The types here mirror the file one to one (see [`EXAMPLE`] for a complete file).
//! [`parse`] only checks shapes and types and stops at the first problem, naming its field
//! path and line; [`validate`] checks meaning and reports every problem with its field
//! path, the bad value and what is allowed. [`parse_and_validate`] does both, as
//! `ballast check` needs. This module does no I/O: the binary reads the file.

mod health;
mod load;
mod net;
mod provider;
mod rate_limit;
mod route;
mod validate;

#[cfg(test)]
mod tests;

pub use health::{
    CircuitBreakerConfig, HealthCheckConfig, HealthCheckKind, OutlierConfig, PoolLimitsConfig,
    RetryConfig, StatusRange,
};
pub use load::{parse, parse_and_validate, to_toml, ConfigError, MAX_CONFIG_BYTES};
pub use net::{check_dns_name, check_host_pattern, check_host_port, check_token, Cidr, ClientZoneConfig};
pub use provider::{
    expand_template, ExecProvider, PortRange, ProcessProvider, ProviderConfig, ProviderKind,
    PLACEHOLDERS,
};
pub use rate_limit::{RateLimitConfig, RateLimitKey};
pub use route::{BackupConfig, OverrideConfig};
pub use validate::validate;

/// A complete, valid example configuration using every section; `ballast check` and the
/// README point to it and a test keeps it valid.
pub const EXAMPLE: &str = include_str!("example.toml");

mod admin;
mod duration;

pub use admin::AdminConfig;
pub use duration::ConfigDuration;

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

use crate::balance::{Algorithm, HashOn};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// The admin listener (`/metrics`, `/healthz`, `/api/v1/pools`); default none: no
    /// admin listener is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
}

/// One listener (`[[balancer]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    /// Unique name: 1–64 characters from `A-Z a-z 0-9 - _ .`.
    pub name: String,
    /// Address to listen on, an IP and a port, e.g. `127.0.0.1:8080`; port 0 lets the OS
    /// choose.
    pub listen: String,
    /// TLS certificates; when present the listener speaks HTTPS (HTTP/1.1 and h2 by ALPN).
    #[serde(default)]
    pub tls: Vec<TlsCertConfig>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Size and connection limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Access log format.
    #[serde(default)]
    pub access_log: AccessLogFormat,
    /// What ballast adds to the requests it forwards (`[balancer.forwarding]`).
    #[serde(default)]
    pub forwarding: ForwardingConfig,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed when finding the
    /// client address; default none (the TCP peer is the client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<Cidr>,
    /// Client networks and the zone each is in, for zone-aware balancing; first match
    /// wins; default none.
    #[serde(default, rename = "client_zone", skip_serializing_if = "Vec::is_empty")]
    pub client_zones: Vec<ClientZoneConfig>,
    /// Request header that names the client's zone (it wins over `client_zone`); default
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_header: Option<String>,
    /// Rate limit over every request of this listener; default none.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Routes, matched in order; the first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// A certificate and key, selected by SNI among its server names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertConfig {
    /// PEM certificate chain file.
    pub cert: String,
    /// PEM private key file.
    pub key: String,
    /// SNI names served with this certificate (`*.example.com` allowed); empty: the
    /// default certificate (at most one per listener).
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// Listener timeouts. Defaults: connect 5s, header_read 10s, upstream_response 60s, idle 60s.
/// All must be above 0; connect and header_read at most 5m, the others at most 1 day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    /// Connecting to an upstream.
    pub connect: ConfigDuration,
    /// Reading a client's request headers (slowloris guard).
    pub header_read: ConfigDuration,
    /// Waiting for an upstream's response headers.
    pub upstream_response: ConfigDuration,
    /// An idle client keep-alive connection is closed after this.
    pub idle: ConfigDuration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            connect: ConfigDuration::from_secs(5),
            header_read: ConfigDuration::from_secs(10),
            upstream_response: ConfigDuration::from_secs(60),
            idle: ConfigDuration::from_secs(60),
        }
    }
}

/// Listener limits. Defaults: headers 64 KiB, body unlimited (0), 10,000 connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request head (request line + headers) in bytes, 1 KiB to 1 MiB.
    pub max_header_bytes: u64,
    /// Largest request body in bytes, at most 1 TiB; 0 means no limit.
    pub max_body_bytes: u64,
    /// Most concurrent client connections, 1 to 1,000,000.
    pub max_connections: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_header_bytes: 64 * 1024, max_body_bytes: 0, max_connections: 10_000 }
    }
}

/// Access log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLogFormat {
    /// No access log.
    #[default]
    Off,
    /// Apache/nginx combined log format, one line per request on stdout.
    Combined,
    /// One JSON object per request on stdout.
    Json,
}

/// What a balancer adds to the requests it forwards (`[balancer.forwarding]`). Everything
/// is on by default, as a front door is expected to do; turn a part off when a proxy in
/// front of ballast already does it, or to pass requests on as the client sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardingConfig {
    /// Add `X-Forwarded-For` (the client appended to a chain from a trusted proxy),
    /// `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub x_forwarded: bool,
    /// Keep a sane incoming `X-Request-Id` or make one up, send it upstream, return it
    /// to the client and log it. Off: the field passes through as received.
    pub request_id: bool,
    /// W3C trace context (`traceparent`).
    pub trace_context: TraceContext,
}

impl Default for ForwardingConfig {
    fn default() -> Self {
        ForwardingConfig { x_forwarded: true, request_id: true, trace_context: TraceContext::Generate }
    }
}

/// How a balancer treats the W3C `traceparent` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceContext {
    /// Continue a valid incoming trace with ballast as the new parent; start a new
    /// sampled trace when there is none (or it is malformed).
    #[default]
    Generate,
    /// Continue a valid incoming trace only; a malformed one is dropped and none is
    /// started (sampling stays with the services that trace).
    Propagate,
    /// Pass `traceparent` on as received.
    Off,
}

/// A route (`[[balancer.route]]`): a match and a weighted split over pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host to match (exact, or `*.example.com`); None matches any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match; default `/`.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Headers that must be present with these exact values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Rate limit over the requests this route matches, on top of the listener's.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Weighted split over pools.
    pub split: Vec<SplitConfig>,
    /// Overrides that force a pool by header or cookie, tried in order before the split.
    #[serde(default, rename = "override", skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OverrideConfig>,
    /// Failover pool, used while the chosen pool is short of healthy instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfig>,
}

fn default_path_prefix() -> String {
    "/".to_string()
}

/// One arm of a route's split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Pool name.
    pub pool: String,
    /// Relative weight, 0–10,000 (0 drains the arm; not all arms may be 0); default 100.
    #[serde(default = "default_split_weight")]
    pub weight: u32,
}

fn default_split_weight() -> u32 {
    100
}

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
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    /// Cookie affinity.
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    /// Weight ramp window for new instances, at most 1h; None disables slow start.
    #[serde(default)]
    pub slow_start: Option<ConfigDuration>,
    /// Fraction (0.0–1.0) of eligible instances below which all are used; default 0.5.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: f64,
    /// Prefer instances in the client's zone (balancer `client_zone` map or
    /// `zone_header`), spilling over when the local zone is short; default false.
    #[serde(default)]
    pub zone_aware: bool,
    /// Active health checks (`[pool.health]`); default none.
    #[serde(default)]
    pub health: Option<HealthCheckConfig>,
    /// Passive outlier detection (`[pool.outlier]`); on by default.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// Per-instance circuit breaker (`[pool.circuit_breaker]`); on by default.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// In-flight limits and the pending queue (`[pool.limits]`).
    #[serde(default)]
    pub limits: PoolLimitsConfig,
    /// Retries under a budget (`[pool.retry]`).
    #[serde(default)]
    pub retry: RetryConfig,
    /// Where instances come from (`[pool.provider]`); default `static`: the instance list.
    #[serde(default)]
    pub provider: ProviderConfig,
    /// Static instances.
    #[serde(default, rename = "instance")]
    pub instances: Vec<InstanceConfig>,
    /// Autoscaling (`[pool.scaling]`); None: the pool keeps its instances.
    #[serde(default)]
    pub scaling: Option<crate::autoscale::ScalingConfig>,
    /// Price and budget (`[pool.cost]`); None: cost is not tracked.
    #[serde(default)]
    pub cost: Option<crate::autoscale::CostConfig>,
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
    #[serde(default)]
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
    /// Zone label (`A-Z a-z 0-9 - _ .`).
    #[serde(default)]
    pub zone: Option<String>,
}

fn default_instance_weight() -> u32 {
    1
}
