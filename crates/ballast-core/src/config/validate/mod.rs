//! Semantic validation of a parsed [`Config`]: every problem is reported, each with the
//! field path (`balancer "web".route[0].split[1].weight`), the bad value and what is
//! allowed.
//!
//! Elements are named by their `name` when it is non-empty and unique, and by index
//! otherwise, so a path always points at exactly one place in the file.

mod balancer;
mod pool;

use super::{Config, ConfigDuration, FieldError, ProviderConfig};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Checks the meaning of a parsed config and returns every problem found (empty: valid).
///
/// Things that need the outside world (certificate files exist, ports are free) are
/// checked by the binary when it starts, not here. A static pool without instances is
/// an error only when a route sends traffic to it (it may be filled later through the
/// API); a process or exec pool starts empty and gets instances from its provider.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut r = Report::default();
    let balancer_paths = element_paths("balancer", config.balancers.iter().map(|b| b.name.as_str()));
    let pool_paths = element_paths("pool", config.pools.iter().map(|p| p.name.as_str()));
    let pools = PoolIndex::new(config);

    duplicate_names(&mut r, "balancer", config.balancers.iter().map(|b| b.name.as_str()));
    duplicate_names(&mut r, "pool", config.pools.iter().map(|p| p.name.as_str()));
    for (b, path) in config.balancers.iter().zip(&balancer_paths) {
        balancer::check(&mut r, path, b, &pools);
    }
    let mut listeners: Vec<(&str, &str)> =
        config.balancers.iter().zip(&balancer_paths).map(|(b, p)| (b.listen.as_str(), p.as_str())).collect();
    if let Some(admin) = &config.admin {
        if let Err(e) = crate::config::net::check_listen_addr(&admin.listen) {
            r.at("admin.listen", e);
        }
        listeners.push((admin.listen.as_str(), "admin"));
    }
    balancer::check_listen_conflicts(&mut r, &listeners);
    for (p, path) in config.pools.iter().zip(&pool_paths) {
        pool::check(&mut r, path, p);
    }
    pool::check_port_range_overlaps(&mut r, &config.pools, &pool_paths);
    check_unservable_pools(&mut r, config, &balancer_paths, &pool_paths);
    check_zones(&mut r, config, &balancer_paths);
    r.errors
}

/// Collects problems.
#[derive(Default)]
struct Report {
    errors: Vec<FieldError>,
}

impl Report {
    fn at(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// `value` must lie in `lo..=hi`.
    fn range(&mut self, path: String, value: u64, lo: u64, hi: u64) {
        if value < lo || value > hi {
            self.at(path, format!("{value} is out of range; use {lo} to {hi}"));
        }
    }

    /// A duration that must be greater than zero and at most `max`.
    fn duration(&mut self, path: String, d: ConfigDuration, max: Duration) {
        if d.is_zero() {
            self.at(path, format!("{d} is not allowed; use a duration greater than 0, e.g. \"1s\""));
        } else if d.0 > max {
            self.at(path, format!("{d} is too long; the maximum is {}", ConfigDuration(max)));
        }
    }

    /// Runs a string check and records its message at `path`.
    fn check(&mut self, path: String, result: Result<(), String>) {
        if let Err(message) = result {
            self.at(path, message);
        }
    }
}

/// The pools by name (first of each name), for route references.
struct PoolIndex<'a> {
    names: HashSet<&'a str>,
    /// Up to ten names, for "known pools" hints.
    sample: Vec<&'a str>,
    total: usize,
}

impl<'a> PoolIndex<'a> {
    fn new(config: &'a Config) -> Self {
        let names: HashSet<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
        let sample = config.pools.iter().take(10).map(|p| p.name.as_str()).collect();
        PoolIndex { names, sample, total: config.pools.len() }
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn hint(&self) -> String {
        if self.total == 0 {
            return "no pools are defined; add a [[pool]]".to_string();
        }
        let more = if self.total > self.sample.len() { ", ..." } else { "" };
        let list: Vec<String> = self.sample.iter().map(|n| format!("{n:?}")).collect();
        format!("known pools: {}{more}", list.join(", "))
    }
}

/// A client zone must be a zone some instance is in (else zone-aware balancing could
/// never keep its clients local: most likely a typo).
fn check_zones(r: &mut Report, config: &Config, balancer_paths: &[String]) {
    let known: HashSet<&str> =
        config.pools.iter().flat_map(|p| p.instances.iter().filter_map(|i| i.zone.as_deref())).collect();
    for (b, path) in config.balancers.iter().zip(balancer_paths) {
        for (i, z) in b.client_zones.iter().enumerate() {
            if !z.zone.is_empty() && !known.contains(z.zone.as_str()) {
                let mut list: Vec<&str> = known.iter().copied().collect();
                list.sort_unstable();
                r.at(format!("{path}.client_zone[{i}].zone"), format!("unknown zone {:?}: no instance is in it (instance zones: {list:?})", z.zone));
            }
        }
    }
}

/// `kind "name"` for elements with a unique non-empty name, `kind[i]` otherwise.
fn element_paths<'a>(kind: &str, names: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for n in names.clone() {
        *counts.entry(n).or_default() += 1;
    }
    names
        .enumerate()
        .map(|(i, n)| {
            if !n.is_empty() && counts.get(n) == Some(&1) {
                format!("{kind} {n:?}")
            } else {
                format!("{kind}[{i}]")
            }
        })
        .collect()
}

fn duplicate_names<'a>(r: &mut Report, kind: &str, names: impl Iterator<Item = &'a str>) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.enumerate() {
        match first.get(n) {
            Some(&j) if !n.is_empty() => r.at(
                format!("{kind}[{i}].name"),
                format!("{n:?} is already the name of {kind}[{j}]; names must be unique"),
            ),
            Some(_) => {}
            None => {
                first.insert(n, i);
            }
        }
    }
}

/// A static pool with no instances that a route sends traffic to can never serve it.
fn check_unservable_pools(r: &mut Report, config: &Config, balancer_paths: &[String], pool_paths: &[String]) {
    let mut referenced: HashMap<&str, String> = HashMap::new();
    for (b, bpath) in config.balancers.iter().zip(balancer_paths) {
        for (i, route) in b.routes.iter().enumerate() {
            for s in &route.split {
                referenced.entry(s.pool.as_str()).or_insert_with(|| format!("{bpath}.route[{i}]"));
            }
        }
    }
    for (p, path) in config.pools.iter().zip(pool_paths) {
        if p.provider == ProviderConfig::Static && p.instances.is_empty() {
            if let Some(route) = referenced.get(p.name.as_str()) {
                r.at(
                    format!("{path}.instance"),
                    format!(
                        "the pool has no instances and provider kind = \"static\" cannot start any, \
                         but {route} sends traffic to it; add [[pool.instance]] entries or use a \
                         \"process\" or \"exec\" provider"
                    ),
                );
            }
        }
    }
}
