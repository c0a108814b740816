//! Checks of `[[balancer]]`: listen address, TLS, timeouts, limits, rate limits, client
//! zones and routes.

use super::{PoolIndex, Report};
use crate::config::net::{check_host_pattern, check_listen_addr, check_name, check_token};
use crate::config::{BalancerConfig, RateLimitConfig, RateLimitKey, RouteConfig};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Most requests per second a rate limit may name.
const MAX_RATE: f64 = 1e9;

/// What a route matches on: host, path prefix and headers.
type RouteMatch<'a> = (Option<&'a str>, &'a str, &'a BTreeMap<String, String>);

pub(super) fn check(r: &mut Report, path: &str, b: &BalancerConfig, pools: &PoolIndex) {
    r.check(format!("{path}.name"), check_name("name", &b.name));
    if let Err(e) = check_listen_addr(&b.listen) {
        r.at(format!("{path}.listen"), e);
    }
    check_tls(r, path, b);

    let t = &b.timeouts;
    r.duration(format!("{path}.timeouts.connect"), t.connect, 5 * MINUTE);
    r.duration(format!("{path}.timeouts.header_read"), t.header_read, 5 * MINUTE);
    r.duration(format!("{path}.timeouts.upstream_response"), t.upstream_response, DAY);
    r.duration(format!("{path}.timeouts.idle"), t.idle, DAY);

    let l = &b.limits;
    r.range(format!("{path}.limits.max_header_bytes"), l.max_header_bytes, 1024, 1024 * 1024);
    r.range(format!("{path}.limits.max_body_bytes"), l.max_body_bytes, 0, 1 << 40);
    r.range(format!("{path}.limits.max_connections"), l.max_connections, 1, 1_000_000);

    for (i, z) in b.client_zones.iter().enumerate() {
        r.check(format!("{path}.client_zone[{i}].zone"), check_name("zone", &z.zone));
    }
    if let Some(rl) = &b.rate_limit {
        check_rate_limit(r, &format!("{path}.rate_limit"), rl);
    }
    if let Some(h) = &b.zone_header {
        r.check(format!("{path}.zone_header"), check_token(h));
    }

    if b.routes.is_empty() {
        r.at(format!("{path}.route"), "the balancer has no routes; add at least one [[balancer.route]]");
    }
    let mut seen: HashMap<RouteMatch, usize> = HashMap::new();
    for (i, route) in b.routes.iter().enumerate() {
        let rpath = format!("{path}.route[{i}]");
        check_route(r, &rpath, route, pools);
        let key = (route.host.as_deref(), route.path_prefix.as_str(), &route.headers);
        if let Some(j) = seen.get(&key) {
            r.at(rpath, format!("is unreachable: route[{j}] has the same host, path_prefix and headers and comes first"));
        } else {
            seen.insert(key, i);
        }
    }
}

fn check_tls(r: &mut Report, path: &str, b: &BalancerConfig) {
    let mut default_cert: Option<usize> = None;
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, cert) in b.tls.iter().enumerate() {
        let cpath = format!("{path}.tls[{i}]");
        for (field, value) in [("cert", &cert.cert), ("key", &cert.key)] {
            if value.trim().is_empty() {
                r.at(format!("{cpath}.{field}"), "empty path; give the PEM file's path");
            } else if value.contains('\0') {
                r.at(format!("{cpath}.{field}"), "path contains a NUL byte");
            }
        }
        if cert.server_names.is_empty() {
            match default_cert {
                Some(j) => r.at(
                    format!("{cpath}.server_names"),
                    format!("tls[{j}] is already the default certificate (no server_names); give this one server_names"),
                ),
                None => default_cert = Some(i),
            }
        }
        for (k, name) in cert.server_names.iter().enumerate() {
            let npath = format!("{cpath}.server_names[{k}]");
            if let Err(e) = check_host_pattern(name) {
                r.at(npath, e);
                continue;
            }
            match names.get(&name.to_ascii_lowercase()) {
                Some(&j) => r.at(npath, format!("{name:?} is already served by tls[{j}]")),
                None => {
                    names.insert(name.to_ascii_lowercase(), i);
                }
            }
        }
    }
}

fn check_route(r: &mut Report, path: &str, route: &RouteConfig, pools: &PoolIndex) {
    if let Some(host) = &route.host {
        r.check(format!("{path}.host"), check_host_pattern(host));
    }
    let p = &route.path_prefix;
    if !p.starts_with('/') {
        r.at(format!("{path}.path_prefix"), format!("{p:?} must start with '/'"));
    } else if p.len() > 2048 {
        r.at(format!("{path}.path_prefix"), format!("is {} bytes long; the limit is 2048", p.len()));
    } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        r.at(format!("{path}.path_prefix"), format!("{p:?} contains whitespace or control characters"));
    }
    for (name, value) in &route.headers {
        let hpath = format!("{path}.headers.{name:?}");
        r.check(hpath.clone(), check_token(name));
        if value.len() > 8192 {
            r.at(hpath, format!("value is {} bytes long; the limit is 8192", value.len()));
        } else if !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            r.at(hpath, format!("value {value:?} has characters not allowed in a header (visible ASCII, space and tab only)"));
        }
    }
    if let Some(rl) = &route.rate_limit {
        check_rate_limit(r, &format!("{path}.rate_limit"), rl);
    }
    check_failover(r, path, route, pools);
    if route.split.is_empty() {
        r.at(format!("{path}.split"), "no pools to send traffic to; add split = [{ pool = \"NAME\" }]");
        return;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in route.split.iter().enumerate() {
        let spath = format!("{path}.split[{i}]");
        if !pools.contains(&s.pool) {
            r.at(format!("{spath}.pool"), format!("no pool named {:?}; {}", s.pool, pools.hint()));
        } else if let Some(j) = seen.insert(s.pool.as_str(), i) {
            r.at(format!("{spath}.pool"), format!("{:?} already appears in split[{j}]; merge the weights", s.pool));
        }
        r.range(format!("{spath}.weight"), u64::from(s.weight), 0, 10_000);
    }
    if route.split.iter().all(|s| s.weight == 0) {
        r.at(format!("{path}.split"), "every weight is 0, so no request could be sent; give at least one arm a weight above 0");
    }
}

/// Overrides (one of header/cookie, known pool) and the backup pool.
fn check_failover(r: &mut Report, path: &str, route: &RouteConfig, pools: &PoolIndex) {
    for (i, o) in route.overrides.iter().enumerate() {
        let opath = format!("{path}.override[{i}]");
        match (&o.header, &o.cookie) {
            (Some(h), None) => r.check(format!("{opath}.header"), check_token(h)),
            (None, Some(c)) => r.check(format!("{opath}.cookie"), check_token(c)),
            _ => r.at(opath.clone(), "give exactly one of header = \"NAME\" or cookie = \"NAME\""),
        }
        if o.value.is_empty() || !o.value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            r.at(format!("{opath}.value"), format!("{:?} must be non-empty visible ASCII", o.value));
        }
        if !pools.contains(&o.pool) {
            r.at(format!("{opath}.pool"), format!("no pool named {:?}; {}", o.pool, pools.hint()));
        }
    }
    if let Some(b) = &route.backup {
        if !pools.contains(&b.pool) {
            r.at(format!("{path}.backup.pool"), format!("no pool named {:?}; {}", b.pool, pools.hint()));
        } else if route.split.iter().any(|s| s.pool == b.pool) {
            r.at(format!("{path}.backup.pool"), format!("{:?} is already in the split; a backup must be another pool", b.pool));
        }
        r.range(format!("{path}.backup.min_healthy"), u64::from(b.min_healthy), 1, 10_000);
    }
}

fn check_rate_limit(r: &mut Report, path: &str, rl: &RateLimitConfig) {
    if !(rl.rate.is_finite() && rl.rate > 0.0 && rl.rate <= MAX_RATE) {
        r.at(format!("{path}.rate"), format!("{} is out of range; use a number of requests per second above 0 and at most 1e9", rl.rate));
    }
    if let Some(burst) = rl.burst {
        r.range(format!("{path}.burst"), u64::from(burst), 1, 1_000_000_000);
    }
    if let RateLimitKey::Header(name) = &rl.key {
        r.check(format!("{path}.key"), check_token(name).map_err(|e| format!("in {:?}: {e}", format!("header:{name}"))));
    }
}

/// Two listeners (balancers, then the admin listener), given as `(listen, path)`, cannot
/// bind the same address; `0.0.0.0:80` conflicts with any other IPv4 address on port 80,
/// and `[::]:80` with any address on port 80 (on Linux and most systems it is
/// dual-stack and also takes IPv4). The later listener is reported.
pub(super) fn check_listen_conflicts(r: &mut Report, listeners: &[(&str, &str)]) {
    let mut by_port: HashMap<u16, Vec<(SocketAddr, usize)>> = HashMap::new();
    let paths: Vec<&str> = listeners.iter().map(|(_, p)| *p).collect();
    for (i, (listen, _)) in listeners.iter().enumerate() {
        let Ok(addr) = listen.parse::<SocketAddr>() else { continue };
        if addr.port() == 0 {
            continue;
        }
        let others = by_port.entry(addr.port()).or_default();
        let dual_stack = |a: &SocketAddr| a.is_ipv6() && a.ip().is_unspecified();
        let clash = others.iter().find(|(o, _)| {
            let same_family = o.is_ipv4() == addr.is_ipv4();
            (same_family && (o.ip() == addr.ip() || o.ip().is_unspecified() || addr.ip().is_unspecified()))
                || dual_stack(o)
                || dual_stack(&addr)
        });
        if let Some(&(o, j)) = clash {
            r.at(format!("{}.listen", paths[i]), format!("{addr} clashes with {} listening on {o}", paths[j]));
        }
        others.push((addr, i));
    }
}
