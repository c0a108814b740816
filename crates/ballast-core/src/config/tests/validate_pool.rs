//! Validation of `[[pool]]`: names, balancing options, health and resilience sections,
//! providers and static instances.

use super::*;
use crate::balance::{Algorithm, HashOn};

fn pool(c: &mut Config) -> &mut PoolConfig {
    &mut c.pools[0]
}

fn health(c: &mut Config) -> &mut HealthCheckConfig {
    c.pools[0].health.get_or_insert_with(HealthCheckConfig::default)
}

fn tcp_health(c: &mut Config) -> &mut HealthCheckConfig {
    let h = health(c);
    h.kind = HealthCheckKind::Tcp;
    h
}

/// Turns pool "api" into a process pool (dropping its static instances).
fn proc(c: &mut Config) -> &mut ProcessProvider {
    let p = pool(c);
    p.instances.clear();
    p.provider = ProviderConfig::Process(process());
    match &mut p.provider {
        ProviderConfig::Process(pp) => pp,
        _ => unreachable!("just set"),
    }
}

fn exec(c: &mut Config, create: &str, list: Option<&str>, timeout: u64) {
    pool(c).instances.clear();
    pool(c).provider = ProviderConfig::Exec(ExecProvider {
        create: create.to_string(),
        destroy: "./destroy".to_string(),
        list: list.map(str::to_string),
        timeout: ConfigDuration::from_secs(timeout),
    });
}

fn address(c: &mut Config, a: &str) {
    pool(c).instances[0].address = a.to_string();
}

fn second_process_pool(c: &mut Config, start: u16, end: u16) {
    proc(c).port_range = PortRange { start: 20_000, end: 20_999 };
    let mut p = c.pools[0].clone();
    p.name = "api2".to_string();
    if let ProviderConfig::Process(pp) = &mut p.provider {
        pp.port_range = PortRange { start, end };
    }
    c.pools.push(p);
}

const NAMES_AND_BALANCING: &[Case] = &[
    Case { name: "empty name", edit: |c| pool(c).name.clear(), expect: &[("pool[0].name", "empty name"), ("balancer \"web\".route[0].split[0].pool", "no pool named \"api\"")] },
    Case { name: "duplicate name", edit: |c| { let p = c.pools[0].clone(); c.pools.push(p) }, expect: &[("pool[1].name", "\"api\" is already the name of pool[0]")] },
    Case { name: "consistent-hash without hash_on", edit: |c| pool(c).balance = Algorithm::ConsistentHash, expect: &[("pool \"api\".hash_on", "balance = \"consistent-hash\" needs hash_on")] },
    Case { name: "hash_on without consistent-hash", edit: |c| pool(c).hash_on = Some(HashOn::Path), expect: &[("pool \"api\".hash_on", "is only used by balance = \"consistent-hash\", and this pool uses \"least-request\"")] },
    Case { name: "bad hash header", edit: |c| { pool(c).balance = Algorithm::ConsistentHash; pool(c).hash_on = Some(HashOn::Header("X User".into())) }, expect: &[("pool \"api\".hash_on.header", "\"X User\" contains ' '")] },
    Case { name: "empty hash cookie", edit: |c| { pool(c).balance = Algorithm::ConsistentHash; pool(c).hash_on = Some(HashOn::Cookie(String::new())) }, expect: &[("pool \"api\".hash_on.cookie", "empty name")] },
    Case { name: "sticky cookie with ';'", edit: |c| pool(c).sticky = Some(StickyConfig { cookie: "a;b".into(), ttl: None }), expect: &[("pool \"api\".sticky.cookie", "contains ';'")] },
    Case { name: "sticky unicode cookie", edit: |c| pool(c).sticky = Some(StickyConfig { cookie: "sitzung_ü".into(), ttl: None }), expect: &[("pool \"api\".sticky.cookie", "contains")] },
    Case { name: "zero sticky ttl", edit: |c| pool(c).sticky = Some(StickyConfig { cookie: "sid".into(), ttl: Some(ConfigDuration::from_secs(0)) }), expect: &[("pool \"api\".sticky.ttl", "0s is not allowed")] },
    Case { name: "zero slow start", edit: |c| pool(c).slow_start = Some(ConfigDuration::from_secs(0)), expect: &[("pool \"api\".slow_start", "0s is not allowed")] },
    Case { name: "long slow start", edit: |c| pool(c).slow_start = Some(ConfigDuration::from_secs(7200)), expect: &[("pool \"api\".slow_start", "2h is too long; the maximum is 1h")] },
    Case { name: "panic threshold above 1", edit: |c| pool(c).panic_threshold = 1.5, expect: &[("pool \"api\".panic_threshold", "1.5 is out of range; use a fraction from 0.0 to 1.0")] },
    Case { name: "negative panic threshold", edit: |c| pool(c).panic_threshold = -0.1, expect: &[("pool \"api\".panic_threshold", "-0.1 is out of range")] },
    Case { name: "NaN panic threshold", edit: |c| pool(c).panic_threshold = f64::NAN, expect: &[("pool \"api\".panic_threshold", "NaN is out of range")] },
    Case { name: "panic threshold bounds", edit: |c| { pool(c).panic_threshold = 0.0; c.pools.push(PoolConfig { name: "b".into(), panic_threshold: 1.0, ..c.pools[0].clone() }) }, expect: &[] },
];

const HEALTH: &[Case] = &[
    Case { name: "defaults are valid", edit: |c| { health(c); }, expect: &[] },
    Case { name: "zero rise", edit: |c| health(c).rise = 0, expect: &[("pool \"api\".health.rise", "0 is out of range; use 1 to 100")] },
    Case { name: "zero fall", edit: |c| health(c).fall = 0, expect: &[("pool \"api\".health.fall", "0 is out of range")] },
    Case { name: "huge fall", edit: |c| health(c).fall = u32::MAX, expect: &[("pool \"api\".health.fall", "4294967295 is out of range")] },
    Case { name: "timeout equal to interval", edit: |c| health(c).timeout = ConfigDuration::from_secs(5), expect: &[("pool \"api\".health.timeout", "5s is not shorter than health.interval (5s)")] },
    Case { name: "zero interval", edit: |c| health(c).interval = ConfigDuration::from_secs(0), expect: &[("pool \"api\".health.interval", "0s is not allowed"), ("pool \"api\".health.timeout", "not shorter than health.interval")] },
    Case { name: "zero timeout", edit: |c| health(c).timeout = ConfigDuration::from_secs(0), expect: &[("pool \"api\".health.timeout", "0s is not allowed")] },
    Case { name: "relative path", edit: |c| health(c).path = "healthz".into(), expect: &[("pool \"api\".health.path", "\"healthz\" must start with '/'")] },
    Case { name: "path with newline", edit: |c| health(c).path = "/h\nX: y".into(), expect: &[("pool \"api\".health.path", "no spaces or control characters")] },
    Case { name: "empty body match", edit: |c| health(c).body_contains = Some(String::new()), expect: &[("pool \"api\".health.body_contains", "empty text matches every body")] },
    Case { name: "bad host header", edit: |c| health(c).host = Some("bad host".into()), expect: &[("pool \"api\".health.host", "not a valid host name")] },
    Case { name: "host header with port", edit: |c| health(c).host = Some("api.example.com:8443".into()), expect: &[] },
    Case { name: "tcp check with a path", edit: |c| tcp_health(c).path = "/x".into(), expect: &[("pool \"api\".health.path", "is only used by http and https checks, and kind = \"tcp\"")] },
    Case { name: "icmp check with a status", edit: |c| { let h = tcp_health(c); h.kind = HealthCheckKind::Icmp; h.expected_status = StatusRange { min: 200, max: 200 } }, expect: &[("pool \"api\".health.expected_status", "kind = \"icmp\"")] },
    Case { name: "tcp check with body and host", edit: |c| { let h = tcp_health(c); h.body_contains = Some("ok".into()); h.host = Some("a".into()) }, expect: &[("pool \"api\".health.body_contains", "only used by http"), ("pool \"api\".health.host", "only used by http")] },
];

const RESILIENCE: &[Case] = &[
    Case { name: "zero consecutive failures", edit: |c| pool(c).outlier.consecutive_failures = 0, expect: &[("pool \"api\".outlier.consecutive_failures", "0 is out of range; use 1 to 1000")] },
    Case { name: "zero base ejection", edit: |c| pool(c).outlier.base_ejection = ConfigDuration::from_secs(0), expect: &[("pool \"api\".outlier.base_ejection", "0s is not allowed")] },
    Case { name: "max ejection below base", edit: |c| pool(c).outlier.max_ejection = ConfigDuration::from_secs(10), expect: &[("pool \"api\".outlier.max_ejection", "10s is shorter than outlier.base_ejection (30s)")] },
    Case { name: "ejected percent above 100", edit: |c| pool(c).outlier.max_ejected_percent = 101, expect: &[("pool \"api\".outlier.max_ejected_percent", "101 is out of range; use 0 to 100")] },
    Case { name: "zero failure threshold", edit: |c| pool(c).circuit_breaker.failure_threshold = 0, expect: &[("pool \"api\".circuit_breaker.failure_threshold", "0 is out of range; use 1 to 1000")] },
    Case { name: "zero recovery timeout", edit: |c| pool(c).circuit_breaker.recovery_timeout = ConfigDuration::from_secs(0), expect: &[("pool \"api\".circuit_breaker.recovery_timeout", "0s is not allowed")] },
    Case { name: "zero half-open requests", edit: |c| pool(c).circuit_breaker.half_open_requests = 0, expect: &[("pool \"api\".circuit_breaker.half_open_requests", "0 is out of range")] },
    Case { name: "zero breaker min requests", edit: |c| pool(c).circuit_breaker.min_requests = 0, expect: &[("pool \"api\".circuit_breaker.min_requests", "0 is out of range; use 1 to 1000000")] },
    Case { name: "huge breaker min requests", edit: |c| pool(c).circuit_breaker.min_requests = 1_000_001, expect: &[("pool \"api\".circuit_breaker.min_requests", "1000001 is out of range; use 1 to 1000000")] },
    Case { name: "failure rate above 1", edit: |c| pool(c).circuit_breaker.failure_rate_threshold = 1.5, expect: &[("pool \"api\".circuit_breaker.failure_rate_threshold", "1.5 is out of range; use a fraction above 0 and at most 1, or 0")] },
    Case { name: "negative failure rate", edit: |c| pool(c).circuit_breaker.failure_rate_threshold = -0.1, expect: &[("pool \"api\".circuit_breaker.failure_rate_threshold", "-0.1 is out of range")] },
    Case { name: "NaN failure rate", edit: |c| pool(c).circuit_breaker.failure_rate_threshold = f64::NAN, expect: &[("pool \"api\".circuit_breaker.failure_rate_threshold", "NaN is out of range")] },
    Case { name: "infinite failure rate", edit: |c| pool(c).circuit_breaker.failure_rate_threshold = f64::INFINITY, expect: &[("pool \"api\".circuit_breaker.failure_rate_threshold", "inf is out of range")] },
    Case { name: "zero in-flight limit", edit: |c| pool(c).limits.max_in_flight_per_instance = Some(0), expect: &[("pool \"api\".limits.max_in_flight_per_instance", "0 is out of range; use 1 to 1000000")] },
    Case { name: "zero queue timeout", edit: |c| pool(c).limits.queue_timeout = ConfigDuration::from_secs(0), expect: &[("pool \"api\".limits.queue_timeout", "0s is not allowed")] },
    Case { name: "no queue is fine", edit: |c| pool(c).limits.max_pending = 0, expect: &[] },
    Case { name: "too many retries", edit: |c| pool(c).retry.attempts = 11, expect: &[("pool \"api\".retry.attempts", "11 is out of range; use 0 to 10")] },
    Case { name: "zero retry budget", edit: |c| pool(c).retry.budget_percent = 0.0, expect: &[("pool \"api\".retry.budget_percent", "0 is out of range; use a percentage above 0 and at most 100")] },
    Case { name: "retry budget above 100", edit: |c| pool(c).retry.budget_percent = 150.0, expect: &[("pool \"api\".retry.budget_percent", "150 is out of range")] },
    Case { name: "NaN retry budget", edit: |c| pool(c).retry.budget_percent = f64::NAN, expect: &[("pool \"api\".retry.budget_percent", "NaN is out of range")] },
];

const PROVIDERS: &[Case] = &[
    Case { name: "valid process pool", edit: |c| { proc(c); }, expect: &[] },
    Case { name: "{port} in env", edit: |c| { let p = proc(c); p.args.clear(); p.env.insert("PORT".into(), "{port}".into()); }, expect: &[] },
    Case { name: "no {port} anywhere", edit: |c| proc(c).args = vec!["--instance".into(), "{instance}".into()], expect: &[("pool \"api\".provider.command", "no {port} in command, args or env")] },
    Case { name: "unknown placeholder", edit: |c| proc(c).args.push("{prot}".into()), expect: &[("pool \"api\".provider.args[2]", "unknown placeholder {prot}; use {port} or {instance}")] },
    Case { name: "JSON and globs are not placeholders", edit: |c| proc(c).args.extend(["{\"a\": 1}".to_string(), "*.{js,css}".to_string(), "{}".to_string()]), expect: &[] },
    Case { name: "unknown placeholder in env", edit: |c| { proc(c).env.insert("X".into(), "{host}".into()); }, expect: &[("pool \"api\".provider.env.\"X\"", "unknown placeholder {host}")] },
    Case { name: "empty command", edit: |c| proc(c).command = "  ".into(), expect: &[("pool \"api\".provider.command", "empty command")] },
    Case { name: "NUL in argument", edit: |c| proc(c).args.push("a\0b".into()), expect: &[("pool \"api\".provider.args[2]", "NUL")] },
    Case { name: "'=' in env name", edit: |c| { proc(c).env.insert("A=B".into(), "1".into()); }, expect: &[("pool \"api\".provider.env.\"A=B\"", "without '='")] },
    Case { name: "empty working dir", edit: |c| proc(c).working_dir = Some(String::new()), expect: &[("pool \"api\".provider.working_dir", "empty")] },
    Case { name: "zero grace period", edit: |c| proc(c).grace_period = ConfigDuration::from_secs(0), expect: &[("pool \"api\".provider.grace_period", "0s is not allowed")] },
    Case { name: "port range from 0", edit: |c| proc(c).port_range.start = 0, expect: &[("pool \"api\".provider.port_range.start", "0 is out of range; use 1 to 65535")] },
    Case { name: "reversed port range", edit: |c| proc(c).port_range = PortRange { start: 3000, end: 2000 }, expect: &[("pool \"api\".provider.port_range", "start (3000) is greater than end (2000)")] },
    Case { name: "overlapping port ranges", edit: |c| second_process_pool(c, 20_500, 21_000), expect: &[("pool \"api2\".provider.port_range", "20500-21000 overlaps 20000-20999 of pool \"api\"")] },
    Case { name: "adjacent port ranges", edit: |c| second_process_pool(c, 21_000, 21_999), expect: &[] },
    Case { name: "nested port range", edit: |c| second_process_pool(c, 20_000, 20_000), expect: &[("pool \"api2\".provider.port_range", "20000-20000 overlaps 20000-20999 of pool \"api\"")] },
    Case { name: "process pool with static instances", edit: |c| { let i = c.pools[0].instances.clone(); proc(c); pool(c).instances = i }, expect: &[("pool \"api\".instance", "static instances are only used with provider kind = \"static\", and this pool's is \"process\"")] },
    Case { name: "valid exec pool", edit: |c| exec(c, "./create", Some("./list"), 60), expect: &[] },
    Case { name: "empty create script", edit: |c| exec(c, "", None, 60), expect: &[("pool \"api\".provider.create", "empty")] },
    Case { name: "empty list script", edit: |c| exec(c, "./c", Some(""), 60), expect: &[("pool \"api\".provider.list", "empty")] },
    Case { name: "zero exec timeout", edit: |c| exec(c, "./c", None, 0), expect: &[("pool \"api\".provider.timeout", "0s is not allowed")] },
    Case { name: "routed static pool without instances", edit: |c| pool(c).instances.clear(), expect: &[("pool \"api\".instance", "no instances and provider kind = \"static\" cannot start any, but balancer \"web\".route[0] sends traffic to it")] },
    Case { name: "unrouted static pool without instances", edit: |c| c.pools.push(PoolConfig { name: "spare".into(), instances: vec![], ..c.pools[0].clone() }), expect: &[] },
];

const INSTANCES: &[Case] = &[
    Case { name: "IPv6", edit: |c| address(c, "[fd00::5]:8080"), expect: &[] },
    Case { name: "host name", edit: |c| address(c, "api.internal:8080"), expect: &[] },
    Case { name: "no port", edit: |c| address(c, "10.0.0.1"), expect: &[("pool \"api\".instance[0].address", "\"10.0.0.1\" has no port")] },
    Case { name: "port 0", edit: |c| address(c, "10.0.0.1:0"), expect: &[("pool \"api\".instance[0].address", "port \"0\" in \"10.0.0.1:0\" is not a number from 1 to 65535")] },
    Case { name: "port too big", edit: |c| address(c, "10.0.0.1:65536"), expect: &[("pool \"api\".instance[0].address", "port \"65536\"")] },
    Case { name: "signed port", edit: |c| address(c, "10.0.0.1:+80"), expect: &[("pool \"api\".instance[0].address", "port \"+80\"")] },
    Case { name: "empty host", edit: |c| address(c, ":80"), expect: &[("pool \"api\".instance[0].address", "empty host name")] },
    Case { name: "unbracketed IPv6", edit: |c| address(c, "::1:80"), expect: &[("pool \"api\".instance[0].address", "is not a valid host name")] },
    Case { name: "bad IPv6", edit: |c| address(c, "[fd00::zz]:80"), expect: &[("pool \"api\".instance[0].address", "is not an IPv6 address")] },
    Case { name: "underscore host", edit: |c| address(c, "my_host:80"), expect: &[("pool \"api\".instance[0].address", "\"my_host\" is not a valid host name")] },
    Case { name: "leading hyphen", edit: |c| address(c, "-a.com:80"), expect: &[("pool \"api\".instance[0].address", "not a valid host name")] },
    Case { name: "empty label", edit: |c| address(c, "a..b:80"), expect: &[("pool \"api\".instance[0].address", "not a valid host name")] },
    Case { name: "unicode host", edit: |c| address(c, "bücher.de:80"), expect: &[("pool \"api\".instance[0].address", "not a valid host name")] },
    Case { name: "empty address", edit: |c| address(c, ""), expect: &[("pool \"api\".instance[0].address", "has no port")] },
    Case { name: "duplicate address", edit: |c| { let i = c.pools[0].instances[0].clone(); pool(c).instances.push(i) }, expect: &[("pool \"api\".instance[1].address", "\"127.0.0.1:9000\" is already instance[0]")] },
    Case { name: "zero weight", edit: |c| pool(c).instances[0].weight = 0, expect: &[("pool \"api\".instance[0].weight", "0 is out of range; use 1 to 10000")] },
    Case { name: "weight too big", edit: |c| pool(c).instances[0].weight = 10_001, expect: &[("pool \"api\".instance[0].weight", "10001 is out of range")] },
    Case { name: "empty zone", edit: |c| pool(c).instances[0].zone = Some(String::new()), expect: &[("pool \"api\".instance[0].zone", "empty zone")] },
    Case { name: "zone with space", edit: |c| pool(c).instances[0].zone = Some("eu west".into()), expect: &[("pool \"api\".instance[0].zone", "zone \"eu west\" has characters outside")] },
];

#[test]
fn pool_names_and_balancing() {
    run(NAMES_AND_BALANCING);
}

#[test]
fn health_checks() {
    run(HEALTH);
}

#[test]
fn outlier_breaker_limits_and_retries() {
    run(RESILIENCE);
}

#[test]
fn providers() {
    run(PROVIDERS);
}

#[test]
fn instances() {
    run(INSTANCES);
}

#[test]
fn templates_expand_port_and_instance() {
    assert_eq!(expand_template("--listen=127.0.0.1:{port}", 20_001, "api-3"), "--listen=127.0.0.1:20001");
    assert_eq!(expand_template("{instance}/{port}/{port}", 7, "i-1"), "i-1/7/7");
    assert_eq!(expand_template("{\"x\": {prot}}", 7, "i"), "{\"x\": {prot}}");
}

#[test]
fn scaling_and_cost_sections_are_validated_with_the_pool_path() {
    let text = r#"
[[pool]]
name = "api"
[pool.provider]
kind = "process"
command = "ballast"
args = ["demo-backend", "--port", "{port}"]
[pool.scaling]
min = 5
max = 3
"#;
    let errors = parse_and_validate(text).expect_err("min > max");
    assert!(
        errors.iter().any(|e| e.path == "pool \"api\".scaling.min" && e.message.contains("greater than max")),
        "{errors:?}"
    );
}
