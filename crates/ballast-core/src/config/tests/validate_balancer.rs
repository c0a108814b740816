//! Validation of `[[balancer]]`: names, listen addresses, TLS, timeouts, limits, rate
//! limits, zones and routes.

use super::*;

fn second_balancer(c: &mut Config, name: &str, listen: &str) {
    let mut b = c.balancers[0].clone();
    b.name = name.to_string();
    b.listen = listen.to_string();
    c.balancers.push(b);
}

fn tls(cert: &str, names: &[&str]) -> TlsCertConfig {
    TlsCertConfig {
        cert: cert.to_string(),
        key: "k.pem".to_string(),
        server_names: names.iter().map(|s| s.to_string()).collect(),
    }
}

fn route(c: &mut Config) -> &mut RouteConfig {
    &mut c.balancers[0].routes[0]
}

fn rate(c: &mut Config, rate: f64, burst: Option<u32>, key: RateLimitKey) {
    c.balancers[0].rate_limit = Some(RateLimitConfig { key, rate, burst });
}

fn zone(cidr: &str, zone: &str) -> ClientZoneConfig {
    ClientZoneConfig { cidr: cidr.parse().unwrap_or_else(|e: String| panic!("{e}")), zone: zone.into() }
}

fn over(header: Option<&str>, cookie: Option<&str>, pool: &str) -> OverrideConfig {
    OverrideConfig { header: header.map(Into::into), cookie: cookie.map(Into::into), value: "1".into(), pool: pool.into() }
}

fn add_pool(c: &mut Config, name: &str) {
    let mut p = c.pools[0].clone();
    p.name = name.into();
    p.instances[0].address = format!("127.0.0.1:{}", 9100 + c.pools.len());
    c.pools.push(p);
}

const NAMES: &[Case] = &[
    Case { name: "empty name", edit: |c| c.balancers[0].name.clear(), expect: &[("balancer[0].name", "empty name")] },
    Case { name: "space in name", edit: |c| c.balancers[0].name = "my web".into(), expect: &[("balancer \"my web\".name", "characters outside A-Z a-z 0-9 - _ .")] },
    Case { name: "unicode name", edit: |c| c.balancers[0].name = "wéb".into(), expect: &[("balancer \"wéb\".name", "characters outside")] },
    Case { name: "quote in name is escaped in the path", edit: |c| c.balancers[0].name = "a\"b".into(), expect: &[("balancer \"a\\\"b\".name", "characters outside")] },
    Case { name: "long name", edit: |c| c.balancers[0].name = "w".repeat(65), expect: &[("balancer \"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww\".name", "the limit is 64")] },
    Case { name: "64 characters is fine", edit: |c| c.balancers[0].name = "w".repeat(64), expect: &[] },
    Case { name: "duplicate name", edit: |c| second_balancer(c, "web", "127.0.0.1:8081"), expect: &[("balancer[1].name", "\"web\" is already the name of balancer[0]; names must be unique")] },
];

const LISTEN: &[Case] = &[
    Case { name: "host name", edit: |c| c.balancers[0].listen = "localhost:8080".into(), expect: &[("balancer \"web\".listen", "\"localhost:8080\" is not an IP:port listen address")] },
    Case { name: "port too big", edit: |c| c.balancers[0].listen = "127.0.0.1:65536".into(), expect: &[("balancer \"web\".listen", "is not an IP:port")] },
    Case { name: "no port", edit: |c| c.balancers[0].listen = "127.0.0.1".into(), expect: &[("balancer \"web\".listen", "is not an IP:port")] },
    Case { name: "empty", edit: |c| c.balancers[0].listen = String::new(), expect: &[("balancer \"web\".listen", "\"\" is not an IP:port")] },
    Case { name: "unbracketed IPv6", edit: |c| c.balancers[0].listen = "::1:8080".into(), expect: &[("balancer \"web\".listen", "is not an IP:port")] },
    Case { name: "IPv6", edit: |c| c.balancers[0].listen = "[::1]:8080".into(), expect: &[] },
    Case { name: "same address twice", edit: |c| second_balancer(c, "web2", "127.0.0.1:8080"), expect: &[("balancer \"web2\".listen", "127.0.0.1:8080 clashes with balancer \"web\" listening on 127.0.0.1:8080")] },
    Case { name: "wildcard clashes with a specific address", edit: |c| second_balancer(c, "web2", "0.0.0.0:8080"), expect: &[("balancer \"web2\".listen", "clashes with balancer \"web\"")] },
    Case { name: "other family does not clash", edit: |c| second_balancer(c, "web2", "[::1]:8080"), expect: &[] },
    Case { name: "dual-stack wildcard clashes with IPv4", edit: |c| second_balancer(c, "web2", "[::]:8080"), expect: &[("balancer \"web2\".listen", "[::]:8080 clashes with balancer \"web\" listening on 127.0.0.1:8080")] },
    Case { name: "other port does not clash", edit: |c| second_balancer(c, "web2", "0.0.0.0:8081"), expect: &[] },
    Case { name: "port 0 twice is fine", edit: |c| { c.balancers[0].listen = "127.0.0.1:0".into(); second_balancer(c, "web2", "127.0.0.1:0") }, expect: &[] },
];

const TLS: &[Case] = &[
    Case { name: "valid certificates", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &["example.com", "*.example.com"]), tls("d.pem", &[])], expect: &[] },
    Case { name: "empty cert path", edit: |c| c.balancers[0].tls = vec![tls(" ", &[])], expect: &[("balancer \"web\".tls[0].cert", "empty path")] },
    Case { name: "empty key path", edit: |c| { let mut t = tls("a.pem", &[]); t.key.clear(); c.balancers[0].tls = vec![t] }, expect: &[("balancer \"web\".tls[0].key", "empty path")] },
    Case { name: "NUL in path", edit: |c| c.balancers[0].tls = vec![tls("a\0.pem", &[])], expect: &[("balancer \"web\".tls[0].cert", "NUL")] },
    Case { name: "two default certificates", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &[]), tls("b.pem", &[])], expect: &[("balancer \"web\".tls[1].server_names", "tls[0] is already the default certificate")] },
    Case { name: "bad server name", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &["bad_name.com"])], expect: &[("balancer \"web\".tls[0].server_names[0]", "\"bad_name.com\" is not a valid host name")] },
    Case { name: "bare wildcard", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &["*."])], expect: &[("balancer \"web\".tls[0].server_names[0]", "after \"*.\": empty host name")] },
    Case { name: "wildcard in the middle", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &["a.*.com"])], expect: &[("balancer \"web\".tls[0].server_names[0]", "not a valid host name")] },
    Case { name: "server name served twice", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &["example.com"]), tls("b.pem", &["EXAMPLE.com"])], expect: &[("balancer \"web\".tls[1].server_names[0]", "\"EXAMPLE.com\" is already served by tls[0]")] },
    Case { name: "overlong server name", edit: |c| c.balancers[0].tls = vec![tls("a.pem", &[LONG_HOST])], expect: &[("balancer \"web\".tls[0].server_names[0]", "the limit is 253")] },
];

/// 255 characters of valid labels.
const LONG_HOST: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const TIMEOUTS_AND_LIMITS: &[Case] = &[
    Case { name: "zero connect timeout", edit: |c| c.balancers[0].timeouts.connect = ConfigDuration::from_secs(0), expect: &[("balancer \"web\".timeouts.connect", "0s is not allowed; use a duration greater than 0")] },
    Case { name: "zero idle timeout", edit: |c| c.balancers[0].timeouts.idle = ConfigDuration::from_secs(0), expect: &[("balancer \"web\".timeouts.idle", "0s is not allowed")] },
    Case { name: "slowloris-friendly header_read", edit: |c| c.balancers[0].timeouts.header_read = ConfigDuration::from_secs(600), expect: &[("balancer \"web\".timeouts.header_read", "10m is too long; the maximum is 5m")] },
    Case { name: "upstream_response over a day", edit: |c| c.balancers[0].timeouts.upstream_response = ConfigDuration::from_secs(90_000), expect: &[("balancer \"web\".timeouts.upstream_response", "the maximum is 1day")] },
    Case { name: "tiny header limit", edit: |c| c.balancers[0].limits.max_header_bytes = 0, expect: &[("balancer \"web\".limits.max_header_bytes", "0 is out of range; use 1024 to 1048576")] },
    Case { name: "huge header limit", edit: |c| c.balancers[0].limits.max_header_bytes = u64::MAX, expect: &[("balancer \"web\".limits.max_header_bytes", "18446744073709551615 is out of range")] },
    Case { name: "zero connections", edit: |c| c.balancers[0].limits.max_connections = 0, expect: &[("balancer \"web\".limits.max_connections", "0 is out of range; use 1 to 1000000")] },
    Case { name: "1 TiB body is fine", edit: |c| c.balancers[0].limits.max_body_bytes = 1 << 40, expect: &[] },
    Case { name: "body limit beyond 1 TiB", edit: |c| c.balancers[0].limits.max_body_bytes = u64::MAX, expect: &[("balancer \"web\".limits.max_body_bytes", "18446744073709551615 is out of range; use 0 to 1099511627776")] },
];

const RATE_LIMITS_AND_ZONES: &[Case] = &[
    Case { name: "valid rate limit", edit: |c| rate(c, 0.5, Some(1), RateLimitKey::Header("X-Api-Key".into())), expect: &[] },
    Case { name: "zero rate", edit: |c| rate(c, 0.0, None, RateLimitKey::ClientIp), expect: &[("balancer \"web\".rate_limit.rate", "0 is out of range; use a number of requests per second above 0")] },
    Case { name: "negative rate", edit: |c| rate(c, -5.0, None, RateLimitKey::ClientIp), expect: &[("balancer \"web\".rate_limit.rate", "-5 is out of range")] },
    Case { name: "NaN rate", edit: |c| rate(c, f64::NAN, None, RateLimitKey::ClientIp), expect: &[("balancer \"web\".rate_limit.rate", "NaN is out of range")] },
    Case { name: "infinite rate", edit: |c| rate(c, f64::INFINITY, None, RateLimitKey::Global), expect: &[("balancer \"web\".rate_limit.rate", "inf is out of range")] },
    Case { name: "absurd rate", edit: |c| rate(c, 1e12, None, RateLimitKey::Global), expect: &[("balancer \"web\".rate_limit.rate", "at most 1e9")] },
    Case { name: "zero burst", edit: |c| rate(c, 1.0, Some(0), RateLimitKey::Global), expect: &[("balancer \"web\".rate_limit.burst", "0 is out of range; use 1 to 1000000000")] },
    Case { name: "empty header key", edit: |c| rate(c, 1.0, None, RateLimitKey::Header(String::new())), expect: &[("balancer \"web\".rate_limit.key", "in \"header:\": empty name")] },
    Case { name: "bad header key", edit: |c| rate(c, 1.0, None, RateLimitKey::Header("X Key".into())), expect: &[("balancer \"web\".rate_limit.key", "contains ' '")] },
    Case { name: "route rate limit", edit: |c| route(c).rate_limit = Some(RateLimitConfig { key: RateLimitKey::Global, rate: 0.0, burst: None }), expect: &[("balancer \"web\".route[0].rate_limit.rate", "out of range")] },
    Case { name: "unknown zone", edit: |c| { c.pools[0].instances[0].zone = Some("eu-1a".into()); c.balancers[0].client_zones = vec![zone("10.0.0.0/8", "eu-1b")] }, expect: &[("balancer \"web\".client_zone[0].zone", "unknown zone \"eu-1b\": no instance is in it (instance zones: [\"eu-1a\"])")] },
    Case { name: "known zone", edit: |c| { c.pools[0].instances[0].zone = Some("eu-1a".into()); c.balancers[0].client_zones = vec![zone("10.0.0.0/8", "eu-1a")]; c.balancers[0].zone_header = Some("x-zone".into()) }, expect: &[] },
    Case { name: "bad zone header", edit: |c| c.balancers[0].zone_header = Some("x zone".into()), expect: &[("balancer \"web\".zone_header", "contains ' '")] },
    Case { name: "empty zone", edit: |c| c.balancers[0].client_zones = vec![ClientZoneConfig { cidr: "10.0.0.0/8".parse().unwrap_or_else(|e: String| panic!("{e}")), zone: String::new() }], expect: &[("balancer \"web\".client_zone[0].zone", "empty zone; use 1-64 characters")] },
];

const ROUTES: &[Case] = &[
    Case { name: "no routes", edit: |c| c.balancers[0].routes.clear(), expect: &[("balancer \"web\".route", "the balancer has no routes")] },
    Case { name: "bad host", edit: |c| route(c).host = Some("exa mple.com".into()), expect: &[("balancer \"web\".route[0].host", "\"exa mple.com\" is not a valid host name")] },
    Case { name: "wildcard host", edit: |c| route(c).host = Some("*.example.com".into()), expect: &[] },
    Case { name: "relative path prefix", edit: |c| route(c).path_prefix = "api".into(), expect: &[("balancer \"web\".route[0].path_prefix", "\"api\" must start with '/'")] },
    Case { name: "empty path prefix", edit: |c| route(c).path_prefix = String::new(), expect: &[("balancer \"web\".route[0].path_prefix", "must start with '/'")] },
    Case { name: "space in path prefix", edit: |c| route(c).path_prefix = "/a b".into(), expect: &[("balancer \"web\".route[0].path_prefix", "contains whitespace or control characters")] },
    Case { name: "huge path prefix", edit: |c| route(c).path_prefix = format!("/{}", "a".repeat(3000)), expect: &[("balancer \"web\".route[0].path_prefix", "is 3001 bytes long; the limit is 2048")] },
    Case { name: "unicode path prefix is fine", edit: |c| route(c).path_prefix = "/café/".into(), expect: &[] },
    Case { name: "bad header name", edit: |c| { route(c).headers.insert("X Bad".into(), "1".into()); }, expect: &[("balancer \"web\".route[0].headers.\"X Bad\"", "contains ' '")] },
    Case { name: "newline in header value", edit: |c| { route(c).headers.insert("X-Ok".into(), "a\r\nb".into()); }, expect: &[("balancer \"web\".route[0].headers.\"X-Ok\"", "has characters not allowed in a header")] },
    Case { name: "empty split", edit: |c| route(c).split.clear(), expect: &[("balancer \"web\".route[0].split", "no pools to send traffic to")] },
    Case { name: "unknown pool", edit: |c| route(c).split[0].pool = "apii".into(), expect: &[("balancer \"web\".route[0].split[0].pool", "no pool named \"apii\"; known pools: \"api\"")] },
    Case { name: "unknown pool with none defined", edit: |c| c.pools.clear(), expect: &[("balancer \"web\".route[0].split[0].pool", "no pools are defined")] },
    Case { name: "pool twice in a split", edit: |c| { let s = route(c).split[0].clone(); route(c).split.push(s) }, expect: &[("balancer \"web\".route[0].split[1].pool", "\"api\" already appears in split[0]")] },
    Case { name: "weight too big", edit: |c| route(c).split[0].weight = 10_001, expect: &[("balancer \"web\".route[0].split[0].weight", "10001 is out of range; use 0 to 10000")] },
    Case { name: "all weights zero", edit: |c| route(c).split[0].weight = 0, expect: &[("balancer \"web\".route[0].split", "every weight is 0")] },
    Case { name: "valid override and backup", edit: |c| { add_pool(c, "canary"); add_pool(c, "dr"); route(c).overrides = vec![over(Some("x-canary"), None, "canary")]; route(c).backup = Some(BackupConfig { pool: "dr".into(), min_healthy: 2 }) }, expect: &[] },
    Case { name: "override to an unknown pool", edit: |c| route(c).overrides = vec![over(Some("x-canary"), None, "canary")], expect: &[("balancer \"web\".route[0].override[0].pool", "no pool named \"canary\"")] },
    Case { name: "override with header and cookie", edit: |c| route(c).overrides = vec![over(Some("x-canary"), Some("c"), "api")], expect: &[("balancer \"web\".route[0].override[0]", "exactly one of header")] },
    Case { name: "override with neither", edit: |c| route(c).overrides = vec![over(None, None, "api")], expect: &[("balancer \"web\".route[0].override[0]", "exactly one of header")] },
    Case { name: "override bad cookie", edit: |c| route(c).overrides = vec![over(None, Some("a b"), "api")], expect: &[("balancer \"web\".route[0].override[0].cookie", "contains ' '")] },
    Case { name: "override empty value", edit: |c| { let mut o = over(Some("x-canary"), None, "api"); o.value.clear(); route(c).overrides = vec![o] }, expect: &[("balancer \"web\".route[0].override[0].value", "non-empty")] },
    Case { name: "backup unknown", edit: |c| route(c).backup = Some(BackupConfig { pool: "dr".into(), min_healthy: 1 }), expect: &[("balancer \"web\".route[0].backup.pool", "no pool named \"dr\"")] },
    Case { name: "backup in the split", edit: |c| route(c).backup = Some(BackupConfig { pool: "api".into(), min_healthy: 1 }), expect: &[("balancer \"web\".route[0].backup.pool", "already in the split")] },
    Case { name: "backup min_healthy 0", edit: |c| { add_pool(c, "dr"); route(c).backup = Some(BackupConfig { pool: "dr".into(), min_healthy: 0 }) }, expect: &[("balancer \"web\".route[0].backup.min_healthy", "0 is out of range; use 1 to 10000")] },
    Case { name: "shadowed route", edit: |c| { let r = route(c).clone(); c.balancers[0].routes.push(r) }, expect: &[("balancer \"web\".route[1]", "is unreachable: route[0] has the same host, path_prefix and headers")] },
    Case { name: "different host is not shadowed", edit: |c| { let mut r = route(c).clone(); r.host = Some("a.example".into()); c.balancers[0].routes.push(r) }, expect: &[] },
];

#[test]
fn balancer_names() {
    run(NAMES);
}

#[test]
fn listen_addresses() {
    run(LISTEN);
}

#[test]
fn tls_certificates() {
    run(TLS);
}

#[test]
fn timeouts_and_limits() {
    run(TIMEOUTS_AND_LIMITS);
}

#[test]
fn rate_limits_and_zones() {
    run(RATE_LIMITS_AND_ZONES);
}

#[test]
fn routes() {
    run(ROUTES);
}
