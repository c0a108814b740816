//! Parse errors: syntax, unknown fields, wrong types and bad values name the field path
//! and the line; oversized and deeply nested input is refused; durations; round trips.

use super::*;
use std::time::Duration;

/// One parse-error case: input, expected path, expected line, and a part of the message.
struct Case {
    name: &'static str,
    text: &'static str,
    path: &'static str,
    line: usize,
    message: &'static str,
}

const POOL: &str = "[[pool]]\nname = \"api\"\n";

fn field_cases() -> Vec<Case> {
    vec![
        Case { name: "unknown algorithm", text: "[[pool]]\nname = \"api\"\nbalance = \"fastest\"\n", path: "pool \"api\".balance", line: 3, message: "unknown variant `fastest`, expected one of `round-robin`" },
        Case { name: "unknown pool field", text: "[[pool]]\nname = \"api\"\nbalanse = \"random\"\n", path: "pool \"api\".balanse", line: 3, message: "unknown field `balanse`" },
        Case { name: "unknown top-level field", text: "pools = []\n", path: "pools", line: 1, message: "expected one of `balancer`, `pool`, `admin`" },
        Case { name: "unknown admin field", text: "[admin]\nlisten = \"127.0.0.1:9900\"\nport = 9900\n", path: "admin.port", line: 3, message: "unknown field `port`, expected `listen`" },
        Case { name: "admin listen not a string", text: "[admin]\nlisten = 9900\n", path: "admin.listen", line: 2, message: "invalid type: integer `9900`, expected a string" },
        Case { name: "admin without listen", text: "[admin]\n", path: "admin", line: 1, message: "missing field `listen`" },
        Case { name: "unknown instance field", text: "[[pool]]\nname = \"api\"\n[[pool.instance]]\nadress = \"a:1\"\n", path: "pool \"api\".instance[0].adress", line: 4, message: "expected one of `address`, `weight`, `zone`" },
        Case { name: "missing required field", text: "[[pool]]\nbalance = \"random\"\n", path: "pool[0]", line: 1, message: "missing field `name`" },
        Case { name: "integer duration", text: "[[pool]]\nname = \"api\"\n[pool.health]\ninterval = 30\n", path: "pool \"api\".health.interval", line: 4, message: "expected a duration string such as \"250ms\"" },
        Case { name: "duration unit", text: "[[pool]]\nname = \"api\"\nslow_start = \"3 parsecs\"\n", path: "pool \"api\".slow_start", line: 3, message: "unknown time unit \"parsecs\"" },
        Case { name: "negative weight", text: "[[pool]]\nname = \"api\"\n[[pool.instance]]\naddress = \"a:1\"\nweight = -1\n", path: "pool \"api\".instance[0].weight", line: 5, message: "integer `-1`, expected u32" },
        Case { name: "negative breaker threshold", text: "[[pool]]\nname = \"api\"\n[pool.circuit_breaker]\nfailure_threshold = -5\n", path: "pool \"api\".circuit_breaker.failure_threshold", line: 4, message: "integer `-5`, expected u32" },
        Case { name: "negative health fall", text: "[[pool]]\nname = \"api\"\n[pool.health]\nfall = -1\n", path: "pool \"api\".health.fall", line: 4, message: "integer `-1`, expected u32" },
        Case { name: "negative outlier failures", text: "[[pool]]\nname = \"api\"\n[pool.outlier]\nconsecutive_failures = -3\n", path: "pool \"api\".outlier.consecutive_failures", line: 4, message: "integer `-3`, expected u32" },
        Case { name: "override without pool", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[[balancer.route]]\nsplit = []\noverride = [{ header = \"x-canary\", value = \"1\" }]\n", path: "balancer \"web\".route[0].override[0]", line: 6, message: "missing field `pool`" },
        Case { name: "backup min_healthy negative", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[[balancer.route]]\nsplit = []\nbackup = { pool = \"dr\", min_healthy = -1 }\n", path: "balancer \"web\".route[0].backup.min_healthy", line: 6, message: "integer `-1`, expected u32" },
        Case { name: "huge weight", text: "[[pool]]\nname = \"api\"\n[[pool.instance]]\naddress = \"a:1\"\nweight = 99999999999\n", path: "pool \"api\".instance[0].weight", line: 5, message: "integer `99999999999`, expected u32" },
        Case { name: "string weight", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[[balancer.route]]\nsplit = [{ pool = \"a\", weight = \"x\" }]\n", path: "balancer \"web\".route[0].split[0].weight", line: 5, message: "invalid type: string \"x\", expected u32" },
        Case { name: "bad CIDR", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\ntrusted_proxies = [\"10.0.0.0/33\"]\n", path: "balancer \"web\".trusted_proxies[0]", line: 4, message: "\"10.0.0.0/33\" is not a CIDR block" },
        Case { name: "bad client zone CIDR", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[[balancer.client_zone]]\ncidr = \"eu\"\nzone = \"a\"\n", path: "balancer \"web\".client_zone[0].cidr", line: 5, message: "\"eu\" is not a CIDR block" },
        Case { name: "rate limit key", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\nrate_limit = { key = \"cookie:x\", rate = 1.0 }\n", path: "balancer \"web\".rate_limit.key", line: 4, message: "expected \"client-ip\", \"global\" or \"header:NAME\"" },
        Case { name: "access log format", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\naccess_log = \"xml\"\n", path: "balancer \"web\".access_log", line: 4, message: "expected one of `off`, `combined`, `json`" },
        Case { name: "trace context mode", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[balancer.forwarding]\ntrace_context = \"sometimes\"\n", path: "balancer \"web\".forwarding.trace_context", line: 5, message: "unknown variant `sometimes`, expected one of `generate`, `propagate`, `off`" },
        Case { name: "forwarding switch type", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[balancer.forwarding]\nrequest_id = \"yes\"\n", path: "balancer \"web\".forwarding.request_id", line: 5, message: "invalid type: string \"yes\", expected a boolean" },
        Case { name: "forwarding unknown field", text: "[[balancer]]\nname = \"web\"\nlisten = \"x\"\n[balancer.forwarding]\nx_forwarded_for = false\n", path: "balancer \"web\".forwarding.x_forwarded_for", line: 5, message: "unknown field `x_forwarded_for`, expected one of `x_forwarded`, `request_id`, `trace_context`" },
        Case { name: "hash_on kind", text: "[[pool]]\nname = \"api\"\nhash_on = \"ip\"\n", path: "pool \"api\".hash_on", line: 3, message: "expected one of `header`, `cookie`, `path`" },
        Case { name: "hash_on header type", text: "[[pool]]\nname = \"api\"\nhash_on = { header = 5 }\n", path: "pool \"api\".hash_on.header", line: 3, message: "expected a string" },
        Case { name: "health kind", text: "[[pool]]\nname = \"api\"\n[pool.health]\nkind = \"udp\"\n", path: "pool \"api\".health.kind", line: 4, message: "expected one of `http`, `https`, `tcp`, `icmp`" },
        Case { name: "status out of range", text: "[[pool]]\nname = \"api\"\n[pool.health]\nexpected_status = \"600\"\n", path: "pool \"api\".health.expected_status", line: 4, message: "must lie within 100-599" },
        Case { name: "status reversed", text: "[[pool]]\nname = \"api\"\n[pool.health]\nexpected_status = \"399-200\"\n", path: "pool \"api\".health.expected_status", line: 4, message: "starts above where it ends" },
        Case { name: "status garbage", text: "[[pool]]\nname = \"api\"\n[pool.health]\nexpected_status = \"2xx\"\n", path: "pool \"api\".health.expected_status", line: 4, message: "\"2xx\" is not a status range" },
        Case { name: "provider kind", text: "[[pool]]\nname = \"api\"\n[pool.provider]\nkind = \"docker\"\n", path: "pool \"api\".provider.kind", line: 4, message: "expected one of `static`, `process`, `exec`" },
        Case { name: "provider field of another kind", text: "[[pool]]\nname = \"api\"\n[pool.provider]\nkind = \"process\"\ncommand = \"x\"\ncreate = \"y\"\n", path: "pool \"api\".provider", line: 3, message: "kind = \"process\" does not use `create` (used by kind = \"exec\")" },
        Case { name: "provider missing command", text: "[[pool]]\nname = \"api\"\n[pool.provider]\nkind = \"process\"\n", path: "pool \"api\".provider", line: 3, message: "kind = \"process\" needs `command`" },
        Case { name: "exec missing destroy", text: "[[pool]]\nname = \"api\"\n[pool.provider]\nkind = \"exec\"\ncreate = \"c\"\n", path: "pool \"api\".provider", line: 3, message: "kind = \"exec\" needs `destroy`" },
        Case { name: "provider arg type", text: "[[pool]]\nname = \"api\"\n[pool.provider]\nkind = \"process\"\ncommand = \"x\"\nargs = [1]\n", path: "pool \"api\".provider.args[0]", line: 6, message: "expected a string" },
        Case { name: "provider unknown field", text: "[[pool]]\nname = \"api\"\n[pool.provider]\ncomand = \"x\"\n", path: "pool \"api\".provider.comand", line: 4, message: "unknown field `comand`" },
        Case { name: "port above u16", text: "[[pool]]\nname = \"api\"\n[pool.provider]\nkind = \"process\"\ncommand = \"x\"\nport_range = { start = 1, end = 70000 }\n", path: "pool \"api\".provider.port_range.end", line: 6, message: "integer `70000`, expected u16" },
        Case { name: "retry percent type", text: "[[pool]]\nname = \"api\"\n[pool.retry]\nbudget_percent = \"lots\"\n", path: "pool \"api\".retry.budget_percent", line: 4, message: "expected f64" },
        Case { name: "unicode field name", text: "[[pool]]\nname = \"api\"\n[pool.outlier]\n\"ejecção\" = 1\n", path: "pool \"api\".outlier.ejecção", line: 4, message: "unknown field `ejecção`" },
        Case { name: "duplicate names use the index", text: "[[pool]]\nname = \"a\"\n[[pool]]\nname = \"a\"\nbalance = 1\n", path: "pool[1].balance", line: 5, message: "wanted string or table" },
        Case { name: "name that is not a string", text: "[[pool]]\nname = 7\n", path: "pool[0].name", line: 2, message: "invalid type: integer `7`, expected a string" },
        Case { name: "pool is a table", text: "[pool]\nname = \"a\"\n", path: "pool", line: 1, message: "expected a sequence" },
    ]
}

#[test]
fn field_errors_name_path_line_and_problem() {
    for c in field_cases() {
        match parse(c.text) {
            Err(ConfigError::Field { path, line, message }) => {
                assert_eq!(path, c.path, "{}: path", c.name);
                assert_eq!(line, Some(c.line), "{}: line", c.name);
                assert!(message.contains(c.message), "{}: message {message:?} lacks {:?}", c.name, c.message);
            }
            other => panic!("{}: expected a field error, got {other:?}", c.name),
        }
    }
}

#[test]
fn syntax_errors_name_line_and_column() {
    let cases = [
        ("[[pool]\nname = 1\n", 1, 8, "unclosed array table"),
        ("[[pool]]\nname = \"api\"\nname = \"b\"\n", 3, 1, "duplicate key"),
        ("[[pool]]\nname = \"api\n", 2, 12, "invalid basic string"),
        ("[[pool]]\nname = \"ä\"\nweight = 1x\n", 3, 10, "string values must be quoted"),
    ];
    for (text, line, column, message) in cases {
        match parse(text) {
            Err(ConfigError::Syntax { line: l, column: c, message: m }) => {
                assert_eq!((l, c), (Some(line), Some(column)), "{text:?}: {m}");
                assert!(m.contains(message), "{text:?}: {m:?} lacks {message:?}");
            }
            other => panic!("{text:?}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn parse_errors_become_field_errors_for_check() {
    let errors = parse_and_validate("[[pool]]\nname = \"api\"\nbalance = \"fastest\"\n").err();
    let errors = errors.unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "pool \"api\".balance");
    assert!(errors[0].message.ends_with("(line 3)"), "{}", errors[0].message);
    let syntax = parse("[[pool]\n").err().map(|e| e.to_field_error());
    assert_eq!(syntax.map(|e| e.path), Some("line 1, column 8".to_string()));
    let big = parse(&" ".repeat(MAX_CONFIG_BYTES + 1)).err().map(|e| e.to_field_error());
    assert_eq!(big.map(|e| e.path), Some("config".to_string()));
}

#[test]
fn oversized_text_is_refused_before_parsing() {
    let text = format!("{POOL}# {}\n", "x".repeat(MAX_CONFIG_BYTES));
    assert_eq!(
        parse(&text),
        Err(ConfigError::TooLarge { size: text.len(), limit: MAX_CONFIG_BYTES })
    );
    let msg = parse(&text).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("the limit is 4194304 bytes (4 MiB)"), "{msg}");
    // Just under the limit is fine.
    let text = format!("{POOL}# {}\n", "x".repeat(MAX_CONFIG_BYTES - POOL.len() - 3));
    assert_eq!(text.len(), MAX_CONFIG_BYTES);
    assert!(parse(&text).is_ok());
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for text in [
        format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("a = {}1{}", "{b=".repeat(100_000), "}".repeat(100_000)),
    ] {
        match parse(&text) {
            Err(ConfigError::Syntax { message, line: Some(1), .. }) => {
                assert!(message.contains("max recursion depth"), "{message}")
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn ten_thousand_routes_parse_and_validate() {
    let mut text = String::from("[[pool]]\nname = \"api\"\n[[pool.instance]]\naddress = \"127.0.0.1:9000\"\n");
    text.push_str("[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n");
    for i in 0..10_000 {
        text.push_str(&format!("[[balancer.route]]\npath_prefix = \"/r{i}/\"\nsplit = [{{ pool = \"api\" }}]\n"));
    }
    let config = valid(&text);
    assert_eq!(config.balancers[0].routes.len(), 10_000);
}

#[test]
fn durations() {
    let ok = [("30s", 30_000), ("3m", 180_000), ("1h", 3_600_000), ("250ms", 250), ("1h 30m", 5_400_000), (" 2s ", 2000), ("365d", 365 * 86_400_000)];
    for (text, millis) in ok {
        assert_eq!(text.parse::<ConfigDuration>(), Ok(ConfigDuration(Duration::from_millis(millis))), "{text:?}");
    }
    let bad = [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-1s", "invalid duration \"-1s\""),
        ("3 parsecs", "unknown time unit \"parsecs\""),
        ("30", "invalid duration \"30\""),
        ("99999999999999h", "longer than the maximum of 365 days"),
        ("366d", "longer than the maximum of 365 days"),
        ("99999999999999999999999h", "too large"),
        ("1.5.3s", "invalid duration"),
        ("∞s", "invalid duration"),
    ];
    for (text, message) in bad {
        match text.parse::<ConfigDuration>() {
            Err(e) => {
                assert!(e.contains(message), "{text:?}: {e:?} lacks {message:?}");
                assert!(e.contains("write e.g.") || e.contains("maximum"), "{text:?}: {e:?} gives no hint");
            }
            Ok(d) => panic!("{text:?} parsed as {d:?}"),
        }
    }
    assert_eq!(ConfigDuration::from_secs(0).to_string(), "0s");
    assert_eq!(ConfigDuration::from_millis(90_500).to_string(), "1m 30s 500ms");
}

#[test]
fn example_round_trips_through_toml() {
    let config = parsed(EXAMPLE);
    let text = to_toml(&config).unwrap_or_else(|e| panic!("{e}"));
    let again = parsed(&text);
    assert_eq!(again, config, "round trip changed the config; written:\n{text}");
    // Writing again is stable.
    assert_eq!(to_toml(&again).ok(), Some(text));
}

#[test]
fn defaults_round_trip_and_are_explicit_when_written() {
    let config = parsed("[[pool]]\nname = \"api\"\n[[pool.instance]]\naddress = \"[::1]:80\"\n");
    let pool = &config.pools[0];
    assert_eq!(pool.balance, crate::balance::Algorithm::LeastRequest);
    assert_eq!(pool.provider, ProviderConfig::Static);
    assert_eq!(pool.circuit_breaker.failure_threshold, 5);
    assert_eq!(pool.circuit_breaker.recovery_timeout, ConfigDuration::from_secs(30));
    assert!(pool.health.is_none());
    let text = to_toml(&config).unwrap_or_default();
    assert!(text.contains("failure_threshold = 5"), "{text}");
    let forwarding = parsed("[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n").balancers[0].forwarding;
    assert_eq!(forwarding, ForwardingConfig { x_forwarded: true, request_id: true, trace_context: TraceContext::Generate });
    assert_eq!(parsed(&text), config);
}

#[test]
fn cidrs_normalise_and_accept_bare_addresses() {
    let cases = [("10.1.2.3/8", "10.0.0.0/8"), ("192.168.1.7", "192.168.1.7/32"), ("fd00::1/8", "fd00::/8"), ("::1", "::1/128")];
    for (text, shown) in cases {
        assert_eq!(text.parse::<Cidr>().map(|c| c.to_string()), Ok(shown.to_string()));
    }
    let net: Cidr = "10.0.0.0/8".parse().unwrap_or_else(|e: String| panic!("{e}"));
    assert!(net.contains("10.200.0.1".parse().unwrap_or_else(|_| panic!())));
    assert!(!net.contains("11.0.0.1".parse().unwrap_or_else(|_| panic!())));
    for bad in ["", "10.0.0.0/", "10/8", "300.0.0.0/8", "::/129", "10.0.0.0/8/8", "localhost"] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
    }
}

#[test]
fn rate_limit_keys_and_status_ranges_read_and_write() {
    for key in ["client-ip", "global", "header:X-Api-Key"] {
        assert_eq!(key.parse::<RateLimitKey>().map(|k| k.to_string()), Ok(key.to_string()));
    }
    assert_eq!("204".parse::<StatusRange>(), Ok(StatusRange { min: 204, max: 204 }));
    assert_eq!("200-299".parse::<StatusRange>().map(|r| r.to_string()), Ok("200-299".to_string()));
    let c = parsed("[[pool]]\nname = \"a\"\n[pool.health]\nexpected_status = 204\n");
    assert_eq!(c.pools[0].health.as_ref().map(|h| h.expected_status), Some(StatusRange { min: 204, max: 204 }));
    let rl = RateLimitConfig { key: RateLimitKey::Global, rate: 2.5, burst: None };
    assert_eq!(rl.effective_burst(), 3);
    let rl = RateLimitConfig { key: RateLimitKey::Global, rate: 0.1, burst: None };
    assert_eq!(rl.effective_burst(), 1);
}
