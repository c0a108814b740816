//! Rate limits (`rate_limit = { key, rate, burst }`) of a balancer or a route.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

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
    #[serde(default)]
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

