//! Checks of `[[pool]]`: balancing options, health and resilience sections, provider and
//! static instances.

use super::Report;
use crate::balance::{Algorithm, HashOn};
use crate::config::net::{check_dns_name, check_host_port, check_name, check_token};
use crate::config::{
    ExecProvider, HealthCheckConfig, PoolConfig, ProcessProvider, ProviderConfig, StatusRange, PLACEHOLDERS,
};
use std::collections::HashMap;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn check(r: &mut Report, path: &str, p: &PoolConfig) {
    r.check(format!("{path}.name"), check_name("name", &p.name));
    check_balance(r, path, p);
    if let Some(h) = &p.health {
        check_health(r, &format!("{path}.health"), h);
    }

    let o = &p.outlier;
    r.range(format!("{path}.outlier.consecutive_failures"), u64::from(o.consecutive_failures), 1, 1000);
    r.duration(format!("{path}.outlier.base_ejection"), o.base_ejection, DAY);
    r.duration(format!("{path}.outlier.max_ejection"), o.max_ejection, DAY);
    if o.max_ejection < o.base_ejection {
        r.at(
            format!("{path}.outlier.max_ejection"),
            format!("{} is shorter than outlier.base_ejection ({})", o.max_ejection, o.base_ejection),
        );
    }
    r.range(format!("{path}.outlier.max_ejected_percent"), u64::from(o.max_ejected_percent), 0, 100);

    let cb = &p.circuit_breaker;
    r.range(format!("{path}.circuit_breaker.failure_threshold"), u64::from(cb.failure_threshold), 1, 1000);
    r.duration(format!("{path}.circuit_breaker.recovery_timeout"), cb.recovery_timeout, DAY);
    r.range(format!("{path}.circuit_breaker.half_open_requests"), u64::from(cb.half_open_requests), 1, 1000);
    r.range(format!("{path}.circuit_breaker.min_requests"), u64::from(cb.min_requests), 1, 1_000_000);
    let rate = cb.failure_rate_threshold;
    if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
        r.at(
            format!("{path}.circuit_breaker.failure_rate_threshold"),
            format!("{rate} is out of range; use a fraction above 0 and at most 1, or 0 to turn the rate rule off"),
        );
    }

    let l = &p.limits;
    if let Some(n) = l.max_in_flight_per_instance {
        r.range(format!("{path}.limits.max_in_flight_per_instance"), u64::from(n), 1, 1_000_000);
    }
    r.range(format!("{path}.limits.max_pending"), u64::from(l.max_pending), 0, 1_000_000);
    r.duration(format!("{path}.limits.queue_timeout"), l.queue_timeout, HOUR);

    let rt = &p.retry;
    r.range(format!("{path}.retry.attempts"), u64::from(rt.attempts), 0, 10);
    if !(rt.budget_percent.is_finite() && rt.budget_percent > 0.0 && rt.budget_percent <= 100.0) {
        r.at(
            format!("{path}.retry.budget_percent"),
            format!("{} is out of range; use a percentage above 0 and at most 100", rt.budget_percent),
        );
    }
    r.range(format!("{path}.retry.min_per_second"), u64::from(rt.min_per_second), 0, 1_000_000);

    match &p.provider {
        ProviderConfig::Static => {}
        ProviderConfig::Process(pp) => check_process(r, &format!("{path}.provider"), pp),
        ProviderConfig::Exec(e) => check_exec(r, &format!("{path}.provider"), e),
    }
    if p.provider != ProviderConfig::Static && !p.instances.is_empty() {
        r.at(
            format!("{path}.instance"),
            format!(
                "static instances are only used with provider kind = \"static\", and this pool's is {:?}; \
                 remove the [[pool.instance]] entries",
                p.provider.kind().name()
            ),
        );
    }
    check_instances(r, path, p);
    if let Some(scaling) = &p.scaling {
        scaling.validate(&format!("{path}.scaling"), &mut r.errors);
    }
    if let Some(cost) = &p.cost {
        cost.validate(&format!("{path}.cost"), &mut r.errors);
    }
}

fn check_balance(r: &mut Report, path: &str, p: &PoolConfig) {
    match (&p.hash_on, p.balance) {
        (None, Algorithm::ConsistentHash) => r.at(
            format!("{path}.hash_on"),
            "balance = \"consistent-hash\" needs hash_on: { header = \"NAME\" }, { cookie = \"NAME\" } or \"path\"",
        ),
        (Some(_), a) if a != Algorithm::ConsistentHash => r.at(
            format!("{path}.hash_on"),
            format!("is only used by balance = \"consistent-hash\", and this pool uses {:?}; remove it", a.name()),
        ),
        _ => {}
    }
    match &p.hash_on {
        Some(HashOn::Header(name)) => r.check(format!("{path}.hash_on.header"), check_token(name)),
        Some(HashOn::Cookie(name)) => r.check(format!("{path}.hash_on.cookie"), check_token(name)),
        Some(HashOn::Path) | None => {}
    }
    if let Some(s) = &p.sticky {
        r.check(format!("{path}.sticky.cookie"), check_token(&s.cookie));
        if let Some(ttl) = s.ttl {
            r.duration(format!("{path}.sticky.ttl"), ttl, crate::config::ConfigDuration::MAX);
        }
    }
    if let Some(ss) = p.slow_start {
        r.duration(format!("{path}.slow_start"), ss, HOUR);
    }
    let t = p.panic_threshold;
    if !(0.0..=1.0).contains(&t) {
        r.at(format!("{path}.panic_threshold"), format!("{t} is out of range; use a fraction from 0.0 to 1.0"));
    }
}

fn check_health(r: &mut Report, path: &str, h: &HealthCheckConfig) {
    r.range(format!("{path}.rise"), u64::from(h.rise), 1, 100);
    r.range(format!("{path}.fall"), u64::from(h.fall), 1, 100);
    r.duration(format!("{path}.interval"), h.interval, HOUR);
    r.duration(format!("{path}.timeout"), h.timeout, HOUR);
    if !h.timeout.is_zero() && h.timeout >= h.interval {
        r.at(
            format!("{path}.timeout"),
            format!("{} is not shorter than health.interval ({}); probes would overlap", h.timeout, h.interval),
        );
    }
    if h.kind.is_http() {
        if !h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            r.at(format!("{path}.path"), format!("{:?} must start with '/' and contain no spaces or control characters", h.path));
        }
        if let Some(body) = &h.body_contains {
            if body.is_empty() {
                r.at(format!("{path}.body_contains"), "empty text matches every body; remove it or give the text to expect");
            }
        }
        if let Some(host) = &h.host {
            let result = if host.contains(':') { check_host_port(host) } else { check_dns_name(host) };
            r.check(format!("{path}.host"), result);
        }
        return;
    }
    let kind = h.kind.name();
    let http_only = [
        ("path", h.path != "/"),
        ("expected_status", h.expected_status != StatusRange::default()),
        ("body_contains", h.body_contains.is_some()),
        ("host", h.host.is_some()),
    ];
    for (field, set) in http_only {
        if set {
            r.at(format!("{path}.{field}"), format!("is only used by http and https checks, and kind = {kind:?}; remove it"));
        }
    }
}

fn check_process(r: &mut Report, path: &str, p: &ProcessProvider) {
    if p.command.trim().is_empty() {
        r.at(format!("{path}.command"), "empty command; give the program to run, e.g. \"./server\"");
    }
    let mut templates: Vec<(String, &str)> = vec![(format!("{path}.command"), p.command.as_str())];
    templates.extend(p.args.iter().enumerate().map(|(i, a)| (format!("{path}.args[{i}]"), a.as_str())));
    templates.extend(p.env.iter().map(|(k, v)| (format!("{path}.env.{k:?}"), v.as_str())));
    for (tpath, t) in &templates {
        if t.contains('\0') {
            r.at(tpath.clone(), "contains a NUL byte");
        }
        for placeholder in placeholders(t) {
            if !PLACEHOLDERS.contains(&placeholder) {
                r.at(tpath.clone(), format!("unknown placeholder {placeholder}; use {}", PLACEHOLDERS.join(" or ")));
            }
        }
    }
    if !templates.iter().any(|(_, t)| t.contains("{port}")) {
        r.at(
            format!("{path}.command"),
            "no {port} in command, args or env, so instances cannot be told where to listen; \
             add it, e.g. args = [\"--port\", \"{port}\"] or env = { PORT = \"{port}\" }",
        );
    }
    for name in p.env.keys() {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            r.at(format!("{path}.env.{name:?}"), "environment variable names must be non-empty, without '=' or NUL");
        }
    }
    if let Some(dir) = &p.working_dir {
        if dir.trim().is_empty() || dir.contains('\0') {
            r.at(format!("{path}.working_dir"), "empty or NUL-containing path; give a directory or remove it");
        }
    }
    r.duration(format!("{path}.grace_period"), p.grace_period, HOUR);
    let pr = p.port_range;
    if pr.start == 0 {
        r.at(format!("{path}.port_range.start"), "0 is out of range; use 1 to 65535");
    }
    if pr.start > pr.end {
        r.at(format!("{path}.port_range"), format!("start ({}) is greater than end ({})", pr.start, pr.end));
    }
}

/// The `{identifier}` groups in a template, braces included. Other braces (JSON, shell
/// globs) are left alone.
fn placeholders(t: &str) -> impl Iterator<Item = &str> {
    t.match_indices('{').filter_map(move |(i, _)| {
        let j = t[i..].find('}')?;
        let inner = &t[i + 1..i + j];
        let ident = inner.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        ident.then(|| &t[i..=i + j])
    })
}

fn check_exec(r: &mut Report, path: &str, e: &ExecProvider) {
    for (field, value) in [("create", Some(&e.create)), ("destroy", Some(&e.destroy)), ("list", e.list.as_ref())] {
        if let Some(v) = value {
            if v.trim().is_empty() || v.contains('\0') {
                r.at(format!("{path}.{field}"), "empty or NUL-containing script path; give the script to run");
            }
        }
    }
    r.duration(format!("{path}.timeout"), e.timeout, HOUR);
}

fn check_instances(r: &mut Report, path: &str, p: &PoolConfig) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, inst) in p.instances.iter().enumerate() {
        let ipath = format!("{path}.instance[{i}]");
        match check_host_port(&inst.address) {
            Err(e) => r.at(format!("{ipath}.address"), e),
            Ok(()) => {
                if let Some(j) = seen.insert(inst.address.as_str(), i) {
                    r.at(format!("{ipath}.address"), format!("{:?} is already instance[{j}]", inst.address));
                }
            }
        }
        r.range(format!("{ipath}.weight"), u64::from(inst.weight), 1, 10_000);
        if let Some(zone) = &inst.zone {
            r.check(format!("{ipath}.zone"), check_name("zone", zone));
        }
    }
}

/// Two process pools handing out the same ports would start instances that fail to bind.
pub(super) fn check_port_range_overlaps(r: &mut Report, pools: &[PoolConfig], paths: &[String]) {
    let mut ranges: Vec<(crate::config::PortRange, usize)> = pools
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.provider {
            ProviderConfig::Process(pp) if pp.port_range.start <= pp.port_range.end => Some((pp.port_range, i)),
            _ => None,
        })
        .collect();
    ranges.sort_by_key(|(pr, i)| (pr.start, *i));
    // After sorting by start, a range overlaps an earlier one iff it starts at or before
    // the furthest end seen so far.
    let mut furthest: Option<(crate::config::PortRange, usize)> = None;
    for (pr, i) in ranges {
        if let Some((f, j)) = furthest {
            if pr.overlaps(&f) {
                r.at(
                    format!("{}.provider.port_range", paths[i]),
                    format!(
                        "{}-{} overlaps {}-{} of {}; process pools need separate port ranges",
                        pr.start, pr.end, f.start, f.end, paths[j]
                    ),
                );
            }
        }
        if furthest.is_none_or(|(f, _)| pr.end > f.end) {
            furthest = Some((pr, i));
        }
    }
}
