//! Listener-side config: `[[balancer]]`, its TLS certificates, timeouts, limits, rate
//! limits, trusted proxies, client zones and `[[balancer.route]]`s.

use super::{Cidr, ConfigDuration};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One listener (`[[balancer]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    /// Unique name: 1–64 characters from `A-Z a-z 0-9 - _ .`.
    pub name: String,
    /// Address to listen on, an IP and a port, e.g. `127.0.0.1:8080`. Port 0 lets the OS
    /// choose a free port.
    pub listen: String,
    /// TLS certificates; when present the listener speaks HTTPS (HTTP/1.1 and h2 by ALPN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsCertConfig>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Size and connection limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Access log format; default `off`.
    #[serde(default)]
    pub access_log: AccessLogFormat,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed when finding the
    /// client address; default none (the TCP peer is the client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<Cidr>,
    /// Client networks and the zone each is in, for zone-aware balancing; first match
    /// wins; default none.
    #[serde(default, rename = "client_zone", skip_serializing_if = "Vec::is_empty")]
    pub client_zones: Vec<ClientZoneConfig>,
    /// Rate limit over every request of this listener; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Routes, matched in order; the first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// A certificate and key, selected by SNI among its server names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertConfig {
    /// PEM certificate chain file (existence is checked when the listener starts).
    pub cert: String,
    /// PEM private key file.
    pub key: String,
    /// SNI names served with this certificate (`*.example.com` allowed); empty: the
    /// default certificate (at most one per listener).
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// Listener timeouts. Defaults: connect 5s, header_read 10s, upstream_response 60s, idle 60s.
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
    /// Largest request head (request line + headers) in bytes: 1 KiB to 1 MiB.
    pub max_header_bytes: u64,
    /// Largest request body in bytes, at most 1 TiB; 0 means no limit.
    pub max_body_bytes: u64,
    /// Most concurrent client connections, at least 1.
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

/// Clients in `cidr` are in `zone` (`[[balancer.client_zone]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientZoneConfig {
    /// Client network.
    pub cidr: Cidr,
    /// Zone label, matched against instance zones.
    pub zone: String,
}

/// A token-bucket (GCRA) rate limit; excess requests get 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// What each bucket is keyed by; default `client-ip`.
    #[serde(default)]
    pub key: RateLimitKey,
    /// Sustained requests per second per key, greater than 0 (fractions allowed).
    pub rate: f64,
    /// Requests allowed in a burst above the rate; default: `rate` rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimitConfig {
    /// The burst size in force: `burst`, or `rate` rounded up (at least 1).
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| {
            // Saturating float→int cast; validation bounds `rate`.
            (self.rate.ceil() as u32).max(1)
        })
    }
}

/// The key of a rate limit: written `"client-ip"`, `"global"` or `"header:X-Api-Key"`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RateLimitKey {
    /// One bucket per client IP (after trusted-proxy resolution).
    #[default]
    ClientIp,
    /// One bucket per value of this request header (requests without it share one).
    Header(String),
    /// One bucket for everything.
    Global,
}

impl FromStr for RateLimitKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client-ip" => Ok(RateLimitKey::ClientIp),
            "global" => Ok(RateLimitKey::Global),
            _ => match s.strip_prefix("header:") {
                Some(name) => Ok(RateLimitKey::Header(name.to_string())),
                None => Err(format!(
                    "unknown rate limit key {s:?}; expected \"client-ip\", \"global\" or \"header:NAME\""
                )),
            },
        }
    }
}

impl fmt::Display for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitKey::ClientIp => f.write_str("client-ip"),
            RateLimitKey::Global => f.write_str("global"),
            RateLimitKey::Header(name) => write!(f, "header:{name}"),
        }
    }
}

impl Serialize for RateLimitKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = RateLimitKey;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"client-ip\", \"global\" or \"header:NAME\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RateLimitKey, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for RateLimitKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

/// A route (`[[balancer.route]]`): a match and a weighted split over pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host to match (exact, or `*.example.com`); None matches any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path prefix to match; default `/`.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Headers that must be present with these exact values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Rate limit over the requests this route matches, on top of the listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Weighted split over pools (canary, A/B, blue-green).
    pub split: Vec<SplitConfig>,
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
    /// Relative weight, 0–10,000 (0 drains the arm); default 100.
    #[serde(default = "default_split_weight")]
    pub weight: u32,
}

fn default_split_weight() -> u32 {
    100
}
