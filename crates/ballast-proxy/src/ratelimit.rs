//! Rate limits of a balancer or a route on `governor`'s GCRA: one bucket per client IP,
//! per value of a header, or one for everything. A refused request gets 429 with
//! `Retry-After` and the `RateLimit-*` headers ([`ProxyError::RateLimited`]).
//!
//! Memory is bounded: keys are 128-bit (an IPv6 address, or a keyed hash of the header
//! value, so no per-request allocation), and every [`SWEEP_EVERY`] checks, or as soon as
//! more than [`MAX_KEYS`] buckets exist, buckets that are full again (indistinguishable
//! from new ones) are dropped with `retain_recent`.

use crate::error::ProxyError;
use ballast_core::config::{RateLimitConfig, RateLimitKey};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderMap, HeaderName};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Checks between two sweeps of idle buckets.
pub const SWEEP_EVERY: u64 = 4096;

/// Buckets beyond which a sweep runs at once.
pub const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
enum Key {
    ClientIp,
    Header(HeaderName),
    Global,
}

/// One configured rate limit.
#[derive(Debug)]
pub struct RateLimiter {
    key: Key,
    limiter: DefaultKeyedRateLimiter<u128>,
    burst: u32,
    period: Duration,
    checks: AtomicU64,
    hasher: RandomState,
}

impl RateLimiter {
    /// A limiter for `cfg` (validated: `rate` > 0). Errors name the problem.
    pub fn new(cfg: &RateLimitConfig) -> Result<RateLimiter, String> {
        if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
            return Err(format!("rate {} must be a number above 0", cfg.rate));
        }
        let period = Duration::try_from_secs_f64(1.0 / cfg.rate).map_err(|e| format!("rate {}: {e}", cfg.rate))?;
        let burst = cfg.effective_burst();
        let quota = Quota::with_period(period)
            .ok_or_else(|| format!("rate {} is too high", cfg.rate))?
            .allow_burst(NonZeroU32::new(burst).ok_or("burst must be at least 1")?);
        let key = match &cfg.key {
            RateLimitKey::ClientIp => Key::ClientIp,
            RateLimitKey::Global => Key::Global,
            RateLimitKey::Header(name) => Key::Header(
                HeaderName::try_from(name.as_str()).map_err(|e| format!("key header {name:?}: {e}"))?,
            ),
        };
        Ok(RateLimiter {
            key,
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            burst,
            period,
            checks: AtomicU64::new(0),
            hasher: RandomState::new(),
        })
    }

    fn key_of(&self, client: IpAddr, headers: &HeaderMap) -> u128 {
        match &self.key {
            Key::Global => 0,
            Key::ClientIp => match client {
                IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                IpAddr::V6(v6) => u128::from(v6),
            },
            // Requests without the header share one bucket (hash of nothing).
            Key::Header(name) => {
                let value = headers.get(name).map_or(&[][..], |v| v.as_bytes());
                u128::from(self.hasher.hash_one(value))
            }
        }
    }

    /// Takes one request from the bucket of this request's key, or refuses it.
    pub fn check(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), ProxyError> {
        let key = self.key_of(client, headers);
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 || self.limiter.len() > MAX_KEYS {
            self.sweep();
        }
        match self.limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                let refill = self.period.saturating_mul(self.burst.saturating_sub(1));
                Err(ProxyError::RateLimited { limit: self.burst, retry_after, reset: retry_after + refill })
            }
        }
    }

    /// Drops buckets that are full again.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Buckets held now.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(key: &str, rate: f64, burst: Option<u32>) -> RateLimiter {
        let cfg = RateLimitConfig { key: key.parse().expect("key"), rate, burst };
        RateLimiter::new(&cfg).expect("valid")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn each_client_ip_has_its_own_bucket() {
        let l = limiter("client-ip", 1.0, Some(3));
        let h = HeaderMap::new();
        for _ in 0..3 {
            l.check(ip("10.0.0.1"), &h).expect("within burst");
        }
        let err = l.check(ip("10.0.0.1"), &h).expect_err("burst spent");
        match err {
            ProxyError::RateLimited { limit, retry_after, reset } => {
                assert_eq!(limit, 3);
                assert!(retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1));
                assert!(reset >= retry_after + Duration::from_secs(2) - Duration::from_millis(1));
            }
            other => panic!("{other:?}"),
        }
        l.check(ip("10.0.0.2"), &h).expect("another client is unaffected");
        l.check(ip("::1"), &h).expect("v6 too");
        assert_eq!(l.keys(), 3);
    }

    #[test]
    fn header_keys_and_global() {
        let l = limiter("header:x-api-key", 1.0, Some(1));
        let mut a = HeaderMap::new();
        a.insert("x-api-key", "alpha".parse().expect("value"));
        let mut b = HeaderMap::new();
        b.insert("x-api-key", "beta".parse().expect("value"));
        let none = HeaderMap::new();
        l.check(ip("10.0.0.1"), &a).expect("alpha first");
        l.check(ip("10.0.0.1"), &b).expect("beta first");
        l.check(ip("10.0.0.1"), &none).expect("no header first");
        assert!(l.check(ip("10.0.0.9"), &a).is_err(), "same key from another ip");
        assert!(l.check(ip("10.0.0.9"), &none).is_err(), "requests without the header share a bucket");
        let g = limiter("global", 1.0, Some(1));
        g.check(ip("10.0.0.1"), &none).expect("first");
        assert!(g.check(ip("10.0.0.2"), &none).is_err());
    }

    #[test]
    fn idle_buckets_are_swept() {
        let l = limiter("client-ip", 1_000_000.0, Some(1));
        for i in 0..1000u32 {
            let _ = l.check(IpAddr::from(i.to_be_bytes()), &HeaderMap::new());
        }
        std::thread::sleep(Duration::from_millis(5));
        l.sweep();
        assert_eq!(l.keys(), 0, "every bucket refilled and was dropped");
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |rate: f64, key: &str| {
            RateLimiter::new(&RateLimitConfig { key: key.parse().expect("key"), rate, burst: None }).expect_err("bad")
        };
        assert!(bad(0.0, "global").contains("above 0"));
        assert!(bad(-1.0, "global").contains("above 0"));
        assert!(bad(f64::NAN, "global").contains("above 0"));
        assert!(bad(1.0, "header:bad header").contains("key header"));
    }
}
