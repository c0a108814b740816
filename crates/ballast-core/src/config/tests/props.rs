//! Properties over arbitrary configs: validation never panics, and writing a config as
//! TOML and reading it back is a fixed point.

use super::*;
use crate::balance::{Algorithm, HashOn};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use std::time::Duration;

/// Strings an operator (or an attacker) might write: valid-looking, empty, printable,
/// arbitrary unicode, placeholders and NUL.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("api".to_string()),
        "[a-z][a-z0-9-]{0,10}",
        "[a-z0-9.:\\[\\]*-]{0,24}",
        "[ -~]{0,20}",
        "\\{(port|instance|prot)\\}",
        "[\\x00-\\x1f\"\\\\]{1,4}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
    ]
    .boxed()
}

/// Durations up to the parseable maximum, or anything at all (configs from the API).
fn duration(unbounded: bool) -> BoxedStrategy<ConfigDuration> {
    let max_ns = ConfigDuration::MAX.as_nanos() as u64;
    let small = (0u64..120_000).prop_map(ConfigDuration::from_millis);
    let bounded = (0u64..=max_ns).prop_map(|n| ConfigDuration(Duration::from_nanos(n)));
    if unbounded {
        prop_oneof![small, bounded, any::<u64>().prop_map(|s| ConfigDuration(Duration::from_secs(s)))].boxed()
    } else {
        prop_oneof![small, bounded].boxed()
    }
}

/// Numbers near the edges as well as anywhere.
fn num() -> BoxedStrategy<u32> {
    prop_oneof![0u32..4, 0u32..20_000, any::<u32>()].boxed()
}

fn float() -> BoxedStrategy<f64> {
    prop_oneof![-1.0f64..2.0, 0.0f64..200.0, any::<f64>()].boxed()
}

fn rate_limit() -> BoxedStrategy<Option<RateLimitConfig>> {
    let key = prop_oneof![Just(RateLimitKey::ClientIp), Just(RateLimitKey::Global), text().prop_map(RateLimitKey::Header)];
    proptest::option::of((key, float(), proptest::option::of(num())).prop_map(|(key, rate, burst)| RateLimitConfig { key, rate, burst }))
        .boxed()
}

fn route() -> impl Strategy<Value = RouteConfig> {
    let split = vec((text(), num()).prop_map(|(pool, weight)| SplitConfig { pool, weight }), 0..3);
    (proptest::option::of(text()), text(), btree_map(text(), text(), 0..2), rate_limit(), split).prop_map(
        |(host, path_prefix, headers, rate_limit, split)| RouteConfig { host, path_prefix, headers, rate_limit, split, overrides: Vec::new(), backup: None },
    )
}

fn balancer(u: bool) -> impl Strategy<Value = BalancerConfig> {
    let tls = vec((text(), text(), vec(text(), 0..3)).prop_map(|(cert, key, server_names)| TlsCertConfig { cert, key, server_names }), 0..3);
    let timeouts = (duration(u), duration(u), duration(u), duration(u))
        .prop_map(|(connect, header_read, upstream_response, idle)| TimeoutsConfig { connect, header_read, upstream_response, idle });
    let big = || prop_oneof![0u64..100_000, 0u64..=i64::MAX as u64];
    let limits = (big(), big(), big())
        .prop_map(|(max_header_bytes, max_body_bytes, max_connections)| LimitsConfig { max_header_bytes, max_body_bytes, max_connections });
    let cidr = prop_oneof![Just("10.0.0.0/8"), Just("::1"), Just("192.168.1.0/24")].prop_map(|s| s.parse::<Cidr>().unwrap_or_else(|e| panic!("{e}")));
    let zones = vec((cidr.clone(), text()).prop_map(|(cidr, zone)| ClientZoneConfig { cidr, zone }), 0..2);
    let log = prop_oneof![Just(AccessLogFormat::Off), Just(AccessLogFormat::Json), Just(AccessLogFormat::Combined)];
    let head = (text(), prop_oneof![text(), Just("127.0.0.1:8080".to_string()), Just("0.0.0.0:8080".to_string())], tls, timeouts, limits);
    let tail = (log, vec(cidr, 0..2), zones, rate_limit(), vec(route(), 0..4));
    (head, tail).prop_map(|((name, listen, tls, timeouts, limits), (access_log, trusted_proxies, client_zones, rate_limit, routes))| {
        // Field by field over the parsed defaults, so fields added later keep their defaults.
        let mut b = parsed("[[balancer]]\nname = \"\"\nlisten = \"\"\n").balancers.remove(0);
        (b.name, b.listen, b.tls, b.timeouts, b.limits) = (name, listen, tls, timeouts, limits);
        (b.access_log, b.trusted_proxies, b.client_zones, b.rate_limit, b.routes) = (access_log, trusted_proxies, client_zones, rate_limit, routes);
        b
    })
}

fn health(u: bool) -> impl Strategy<Value = HealthCheckConfig> {
    let kind = prop_oneof![Just(HealthCheckKind::Http), Just(HealthCheckKind::Https), Just(HealthCheckKind::Tcp), Just(HealthCheckKind::Icmp)];
    let status = (100u16..600, 100u16..600).prop_map(|(a, b)| StatusRange { min: a.min(b), max: a.max(b) });
    (kind, text(), status, proptest::option::of(text()), proptest::option::of(text()), duration(u), duration(u), num(), num()).prop_map(
        |(kind, path, expected_status, body_contains, host, interval, timeout, rise, fall)| HealthCheckConfig {
            kind, path, expected_status, body_contains, host, interval, timeout, rise, fall,
        },
    )
}

fn provider(u: bool) -> impl Strategy<Value = ProviderConfig> {
    let ports = (any::<u16>(), any::<u16>()).prop_map(|(start, end)| PortRange { start, end });
    let process = (text(), vec(text(), 0..3), btree_map(text(), text(), 0..2), proptest::option::of(text()), duration(u), ports)
        .prop_map(|(command, args, env, working_dir, grace_period, port_range)| {
            ProviderConfig::Process(ProcessProvider { command, args, env, working_dir, grace_period, port_range })
        });
    let exec = (text(), text(), proptest::option::of(text()), duration(u))
        .prop_map(|(create, destroy, list, timeout)| ProviderConfig::Exec(ExecProvider { create, destroy, list, timeout }));
    prop_oneof![Just(ProviderConfig::Static), process, exec]
}

fn pool(u: bool) -> impl Strategy<Value = PoolConfig> {
    let balance = proptest::sample::select(Algorithm::ALL.to_vec());
    let hash_on = proptest::option::of(prop_oneof![Just(HashOn::Path), text().prop_map(HashOn::Header), text().prop_map(HashOn::Cookie)]);
    let sticky = proptest::option::of((text(), proptest::option::of(duration(u))).prop_map(|(cookie, ttl)| StickyConfig { cookie, ttl }));
    let outlier = (any::<bool>(), num(), duration(u), duration(u), num()).prop_map(|(enabled, consecutive_failures, base_ejection, max_ejection, max_ejected_percent)| {
        OutlierConfig { enabled, consecutive_failures, base_ejection, max_ejection, max_ejected_percent }
    });
    let breaker = (any::<bool>(), num(), duration(u), num(), num(), float()).prop_map(
        |(enabled, failure_threshold, recovery_timeout, half_open_requests, min_requests, failure_rate_threshold)| {
            CircuitBreakerConfig { enabled, failure_threshold, recovery_timeout, half_open_requests, min_requests, failure_rate_threshold }
        },
    );
    let limits = (proptest::option::of(num()), num(), duration(u)).prop_map(|(max_in_flight_per_instance, max_pending, queue_timeout)| {
        PoolLimitsConfig { max_in_flight_per_instance, max_pending, queue_timeout }
    });
    let retry = (num(), float(), num()).prop_map(|(attempts, budget_percent, min_per_second)| RetryConfig { attempts, budget_percent, min_per_second });
    let instances = vec((text(), num(), proptest::option::of(text())).prop_map(|(address, weight, zone)| InstanceConfig { address, weight, zone }), 0..3);
    let head = (text(), balance, hash_on, sticky, proptest::option::of(duration(u)), float(), proptest::option::of(health(u)));
    let tail = (outlier, breaker, limits, retry, provider(u), instances);
    (head, tail).prop_map(
        |((name, balance, hash_on, sticky, slow_start, panic_threshold, health), (outlier, circuit_breaker, limits, retry, provider, instances))| {
            // Field by field over the parsed defaults, so fields added later (scaling, cost)
            // keep their defaults.
            let mut p = parsed("[[pool]]\nname = \"\"\n").pools.remove(0);
            (p.name, p.balance, p.hash_on, p.sticky, p.slow_start, p.panic_threshold, p.health) =
                (name, balance, hash_on, sticky, slow_start, panic_threshold, health);
            (p.outlier, p.circuit_breaker, p.limits, p.retry, p.provider, p.instances) =
                (outlier, circuit_breaker, limits, retry, provider, instances);
            p
        },
    )
}

fn config(unbounded: bool) -> impl Strategy<Value = Config> {
    (vec(balancer(unbounded), 0..3), vec(pool(unbounded), 0..4)).prop_map(|(balancers, pools)| Config { balancers, pools, admin: None })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Validation never panics and every error names a path and says something.
    #[test]
    fn validate_never_panics(c in config(true)) {
        for e in validate(&c) {
            prop_assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
        }
    }

    /// Writing then reading then writing again gives the same text, and reading it back
    /// gives the same validation verdict: nothing is lost or changed on the way.
    #[test]
    fn toml_round_trip_is_a_fixed_point(c in config(false)) {
        let written = to_toml(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let read = parse(&written).map_err(|e| TestCaseError::fail(format!("{e}\n{written}")))?;
        prop_assert_eq!(to_toml(&read).ok(), Some(written));
        prop_assert_eq!(validate(&read), validate(&c));
    }
}
