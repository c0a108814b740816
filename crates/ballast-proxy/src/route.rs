//! Route matching (host, path prefix, headers), the weighted split over pools, the
//! overrides that force a pool by header or cookie, and the backup pool for failover.

use crate::ratelimit::RateLimiter;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

/// How a route matches the request host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Any host (no `host` in the route).
    Any,
    /// Exactly this host, compared case-insensitively, port ignored.
    Exact(String),
    /// Any subdomain of this suffix: `*.example.com` is stored as `.example.com` and
    /// matches `a.example.com`, `a.b.example.com`, not `example.com`.
    Suffix(String),
}

impl HostMatch {
    /// Parses a route's `host` field.
    pub fn parse(host: Option<&str>) -> Self {
        match host {
            None => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
                None => HostMatch::Exact(h.to_ascii_lowercase()),
            },
        }
    }

    /// Whether `host` (already stripped of its port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// A weighted split over pools: arms are `(pool index, cumulative weight)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    arms: Vec<(usize, u64)>,
    total: u64,
}

impl Split {
    /// Builds a split from `(pool index, weight)` arms; zero-weight arms never win.
    pub fn new(arms: impl IntoIterator<Item = (usize, u32)>) -> Self {
        let mut total = 0u64;
        let arms = arms
            .into_iter()
            .filter(|&(_, w)| w > 0)
            .map(|(pool, w)| {
                total += u64::from(w);
                (pool, total)
            })
            .collect();
        Split { arms, total }
    }

    /// The pool for random bits `rand`, or None when every weight is zero.
    pub fn pick(&self, rand: u64) -> Option<usize> {
        match self.arms.as_slice() {
            [] => None,
            [(only, _)] => Some(*only),
            arms => {
                let x = rand % self.total;
                arms.iter().find(|&&(_, cum)| x < cum).map(|&(pool, _)| pool)
            }
        }
    }
}

/// Where an override looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideOn {
    /// A request header.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
}

/// A split override: the header or cookie having `value` forces pool `pool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// What to look at.
    pub on: OverrideOn,
    /// The value that triggers it.
    pub value: String,
    /// Pool index in the snapshot.
    pub pool: usize,
}

impl Override {
    fn applies(&self, headers: &HeaderMap) -> bool {
        match &self.on {
            OverrideOn::Header(name) => headers.get_all(name).iter().any(|v| v.as_bytes() == self.value.as_bytes()),
            OverrideOn::Cookie(name) => crate::forward::cookie(headers, name) == Some(self.value.as_str()),
        }
    }
}

/// The failover pool of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Pool index in the snapshot.
    pub pool: usize,
    /// Healthy instances the chosen pool needs to keep the traffic.
    pub min_healthy: usize,
}

/// One compiled route of a listener.
#[derive(Debug, Clone)]
pub struct Route {
    /// Host match.
    pub host: HostMatch,
    /// Path prefix (`/` matches everything).
    pub path_prefix: String,
    /// Headers that must be present with exactly these values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Traffic split over the snapshot's pools.
    pub split: Split,
    /// Overrides, tried in order before the split.
    pub overrides: Vec<Override>,
    /// Failover pool.
    pub backup: Option<Backup>,
    /// The route's own rate limit.
    pub rate_limit: Option<Arc<RateLimiter>>,
}

impl Route {
    /// Whether a request with this host (no port), path and headers matches.
    pub fn matches(&self, host: &str, path: &str, headers: &HeaderMap) -> bool {
        self.host.matches(host)
            && path.starts_with(self.path_prefix.as_str())
            && self.headers.iter().all(|(name, want)| headers.get_all(name).iter().any(|v| v == want))
    }

    /// The pool for this request: the first override that applies, else the split with
    /// random bits `rand`; None when every split weight is zero.
    pub fn choose(&self, headers: &HeaderMap, rand: u64) -> Option<usize> {
        match self.overrides.iter().find(|o| o.applies(headers)) {
            Some(o) => Some(o.pool),
            None => self.split.pick(rand),
        }
    }
}

/// The request's host without its port: the `Host` header, else the URI authority
/// (HTTP/2 `:authority`); empty when neither is present.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> &'a str {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|h| ascii_str(h.as_bytes()))
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    strip_port(raw)
}

/// A header value as text when it is ASCII. A `HeaderValue` never holds a control
/// character besides tab (nor DEL), so this accepts exactly what `HeaderValue::to_str`
/// does, with word-at-a-time scans instead of its byte loop (it runs per request).
fn ascii_str(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        std::str::from_utf8(b).ok()
    } else {
        None
    }
}

/// `host` without a trailing `:digits` port (`[v6]:port` → `v6`), in one backwards scan.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port → v6
        return rest.split(']').next().unwrap_or(rest);
    }
    let b = host.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    // The byte before the trailing digits is the last ':' exactly when the text after
    // the last ':' is all digits (or empty).
    match b.len().checked_sub(digits + 1) {
        Some(colon) if b[colon] == b':' => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching_table() {
        let cases: &[(&str, Option<&str>, &str, bool)] = &[
            ("any host", None, "whatever.test", true),
            ("exact", Some("api.test"), "api.test", true),
            ("exact is case-insensitive", Some("API.test"), "api.TEST", true),
            ("exact rejects other", Some("api.test"), "web.test", false),
            ("exact rejects subdomain", Some("api.test"), "x.api.test", false),
            ("wildcard subdomain", Some("*.example.com"), "a.example.com", true),
            ("wildcard deep subdomain", Some("*.example.com"), "a.b.example.com", true),
            ("wildcard not bare", Some("*.example.com"), "example.com", false),
            ("wildcard not lookalike", Some("*.example.com"), "badexample.com", false),
            ("wildcard case", Some("*.Example.com"), "A.EXAMPLE.COM", true),
            ("wildcard with multibyte host", Some("*.example.com"), "é.example.com", true),
        ];
        for (name, pattern, host, want) in cases {
            assert_eq!(HostMatch::parse(*pattern).matches(host), *want, "{name}");
        }
    }

    #[test]
    fn port_is_stripped_from_host() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::HOST, HeaderValue::from_str(v).expect("valid"));
            m
        };
        let uri: http::Uri = "/x".parse().expect("uri");
        assert_eq!(request_host(&uri, &h("api.test:8080")), "api.test");
        assert_eq!(request_host(&uri, &h("api.test")), "api.test");
        assert_eq!(request_host(&uri, &h("[::1]:8080")), "::1");
        let h2: http::Uri = "http://h2.test:443/x".parse().expect("uri");
        assert_eq!(request_host(&h2, &HeaderMap::new()), "h2.test");
        assert_eq!(request_host(&uri, &HeaderMap::new()), "");
        // Only an all-digit text after the last ':' is a port; obs-text is no host.
        for (host, want) in [
            ("a:", "a"),
            (":80", ""),
            ("a:b:80", "a:b"),
            ("a:8x", "a:8x"),
            ("a:80:x", "a:80:x"),
            ("8080", "8080"),
            ("", ""),
        ] {
            assert_eq!(strip_port(host), want, "{host}");
        }
        let mut m = HeaderMap::new();
        m.insert(http::header::HOST, HeaderValue::from_bytes(b"h\xe9.test").expect("obs-text"));
        assert_eq!(request_host(&h2, &m), "h2.test", "a non-ASCII Host falls back to the authority");
    }

    #[test]
    fn split_honours_weights_and_skips_zero() {
        let s = Split::new([(0, 90), (1, 0), (2, 10)]);
        let mut counts = [0u32; 3];
        for r in 0..1000u64 {
            counts[s.pick(r).expect("pool")] += 1;
        }
        assert_eq!(counts, [900, 0, 100]);
        assert_eq!(Split::new([(3, 0)]).pick(7), None);
        assert_eq!(Split::new([(4, 5)]).pick(u64::MAX), Some(4));
    }

    #[test]
    fn overrides_win_over_the_split_in_order() {
        let route = Route {
            host: HostMatch::Any,
            path_prefix: "/".into(),
            headers: Vec::new(),
            split: Split::new([(0, 100)]),
            overrides: vec![
                Override { on: OverrideOn::Header(HeaderName::from_static("x-canary")), value: "1".into(), pool: 1 },
                Override { on: OverrideOn::Cookie("variant".into()), value: "b".into(), pool: 2 },
            ],
            backup: None,
            rate_limit: None,
        };
        let mut h = HeaderMap::new();
        assert_eq!(route.choose(&h, 7), Some(0));
        h.insert("cookie", HeaderValue::from_static("a=1; variant=b"));
        assert_eq!(route.choose(&h, 7), Some(2), "cookie override");
        h.insert("x-canary", HeaderValue::from_static("0"));
        assert_eq!(route.choose(&h, 7), Some(2), "header value differs");
        h.insert("x-canary", HeaderValue::from_static("1"));
        assert_eq!(route.choose(&h, 7), Some(1), "first override wins");
        h.insert("cookie", HeaderValue::from_static("variant=bb"));
        h.remove("x-canary");
        assert_eq!(route.choose(&h, 7), Some(0), "cookie value must match exactly");
    }

    #[test]
    fn route_matches_path_prefix_and_headers() {
        let route = Route {
            host: HostMatch::Any,
            path_prefix: "/api".into(),
            headers: vec![(HeaderName::from_static("x-canary"), HeaderValue::from_static("1"))],
            split: Split::new([(0, 1)]),
            overrides: Vec::new(),
            backup: None,
            rate_limit: None,
        };
        let mut headers = HeaderMap::new();
        assert!(!route.matches("h", "/api/x", &headers), "header missing");
        headers.append("x-canary", HeaderValue::from_static("0"));
        assert!(!route.matches("h", "/api/x", &headers), "header value differs");
        headers.append("x-canary", HeaderValue::from_static("1"));
        assert!(route.matches("h", "/api/x", &headers), "one of the values matches");
        assert!(!route.matches("h", "/web", &headers), "path prefix differs");
    }
}
