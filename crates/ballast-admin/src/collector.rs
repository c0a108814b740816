//! The Prometheus collector: every metric family is built at scrape time from the live
//! atomics of the proxy's [`BackendStats`] and the controller's pool views; nothing is
//! copied on a timer.
//!
//! Families (OpenMetrics text; counters get `_total`, the histogram `_seconds_…`):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `ballast_backend_requests_total` | counter | pool, backend | requests sent (each retry attempt counts) |
//! | `ballast_backend_failures_total` | counter | pool, backend | of which failed: connect error, timeout, 5xx |
//! | `ballast_backend_in_flight` | gauge | pool, backend | requests in flight now |
//! | `ballast_backend_response_latency_seconds` | histogram | pool, backend | time to the response, failures included ([`crate::exposition`]) |
//! | `ballast_backend_in_rotation` | gauge | pool, backend | 1 when healthy (checks and outlier detection) and not draining |
//! | `ballast_backend_health_up` | gauge | pool, backend | active health check: 1 healthy, 0 unhealthy (pools with `[pool.health]`) |
//! | `ballast_pool_held_requests` | gauge | pool | requests held while the pool has no instance |
//! | `ballast_pool_replicas` | gauge | pool, phase | live instances of an autoscaled pool by phase |
//! | `ballast_pool_replicas_desired` | gauge | pool | the count the controller converges on |
//! | `ballast_pool_provider_error` | gauge | pool | 1 while the provider keeps failing (pool in `error`) |
//! | `ballast_pool_rolling` | gauge | pool | 1 while a rollout or rollback runs |
//! | `ballast_pool_decisions_total` | counter | pool | decisions that changed the target or the settings |
//! | `ballast_pool_provider_errors_total` | counter | pool | provider calls that failed (create, destroy, list) |
//!
//! `backend` is the instance's `host:port`. The label is not called `instance` because
//! Prometheus sets `instance` on every scraped series (the admin listener itself) and
//! would rename ours to `exported_instance`.
//!
//! A backend's counters restart from 0 when its address leaves the pool and comes back
//! (the proxy gives it fresh stats); Prometheus' `rate()` treats that as a counter reset.

use crate::exposition::{fold_latency, label_value};
use crate::pools::LIVE_PHASES;
use crate::sources::AdminSources;
use ballast_control::controller::{PoolStatus, PoolView};
use ballast_core::balance::BackendStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// Reads the sources on every scrape.
#[derive(Debug)]
pub struct AdminCollector {
    sources: AdminSources,
}

impl AdminCollector {
    /// A collector over `sources`.
    pub fn new(sources: AdminSources) -> Self {
        AdminCollector { sources }
    }
}

/// A registry holding only the admin collector.
pub fn registry(sources: AdminSources) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AdminCollector::new(sources)));
    registry
}

/// The exposition of `registry`, `# EOF` included.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// What one scrape reads, gathered before anything is written.
struct Scrape {
    backends: Vec<(Labels, Arc<BackendStats>)>,
    health: Vec<(Labels, bool)>,
    held: Vec<(Labels, u32)>,
    pools: Vec<(String, PoolView)>,
}

impl Scrape {
    fn gather(sources: &AdminSources) -> Scrape {
        let proxy = &sources.proxy;
        let config = proxy.running_config();
        let pair = |pool: &str, addr: &str| vec![("pool", label_value(pool).into_owned()), ("backend", label_value(addr).into_owned())];
        let backends = config
            .pools
            .iter()
            .flat_map(|p| p.instances.iter().map(move |i| (p.name.as_str(), i.address.as_str())))
            .filter_map(|(pool, addr)| proxy.backend_stats(pool, addr).map(|s| (pair(pool, addr), s)))
            .collect();
        let health = proxy
            .health_status()
            .iter()
            .flat_map(|(pool, list)| list.iter().map(move |h| (pair(pool, &h.addr), h.health == ballast_core::resilience::Health::Healthy)))
            .collect();
        let held = config.pools.iter().map(|p| (pool_label(&p.name), proxy.pending_requests(&p.name))).collect();
        Scrape { backends, health, held, pools: sources.pools.pools() }
    }

    fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let load = |f: fn(&BackendStats) -> u64| self.backends.iter().map(move |(l, s)| (l, f(s)));
        family(enc, "ballast_backend_requests", "Requests sent to the backend (each retry attempt counts).", None, MetricType::Counter,
            load(|s| s.requests.load(Ordering::Relaxed)), counter)?;
        family(enc, "ballast_backend_failures", "Requests to the backend that failed: connect error, timeout or 5xx.", None, MetricType::Counter,
            load(|s| s.failures.load(Ordering::Relaxed)), counter)?;
        family(enc, "ballast_backend_in_flight", "Requests in flight to the backend now.", None, MetricType::Gauge,
            load(|s| u64::from(s.in_flight.load(Ordering::Relaxed))), gauge)?;
        family(enc, "ballast_backend_response_latency", "Time from sending the request to the backend's response, failures included.",
            Some(&Unit::Seconds), MetricType::Histogram, self.backends.iter().map(|(l, s)| (l, fold_latency(&s.latency.snapshot()))),
            |m, h| m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None))?;
        family(enc, "ballast_backend_in_rotation", "1 when the backend gets new requests: healthy and not draining.", None, MetricType::Gauge,
            load(|s| u64::from(s.is_eligible())), gauge)?;
        family(enc, "ballast_backend_health_up", "Active health check: 1 healthy, 0 unhealthy (pools with [pool.health]).", None, MetricType::Gauge,
            self.health.iter().map(|(l, up)| (l, u64::from(*up))), gauge)?;
        family(enc, "ballast_pool_held_requests", "Requests held while the pool has no instance.", None, MetricType::Gauge,
            self.held.iter().map(|(l, n)| (l, u64::from(*n))), gauge)?;
        let by_phase: Vec<(Labels, u64)> = self
            .pools
            .iter()
            .flat_map(|(name, v)| LIVE_PHASES.iter().map(move |p| {
                let mut l = pool_label(name);
                l.push(("phase", p.name().to_string()));
                (l, v.count(*p) as u64)
            }))
            .collect();
        family(enc, "ballast_pool_replicas", "Live instances of an autoscaled pool, by phase.", None, MetricType::Gauge,
            by_phase.iter().map(|(l, n)| (l, *n)), gauge)?;
        let per_pool = |f: fn(&PoolView) -> u64| {
            self.pools.iter().map(move |(name, v)| (pool_label(name), f(v))).collect::<Vec<_>>()
        };
        for (name, help, rows) in [
            ("ballast_pool_replicas_desired", "Instances the controller converges on.", per_pool(|v| u64::from(v.target))),
            ("ballast_pool_provider_error", "1 while the pool's provider keeps failing (pool in error).", per_pool(|v| u64::from(matches!(v.status, PoolStatus::Error { .. })))),
            ("ballast_pool_rolling", "1 while a rollout or its rollback runs.", per_pool(|v| u64::from(v.rolling))),
        ] {
            family(enc, name, help, None, MetricType::Gauge, rows.iter().map(|(l, n)| (l, *n)), gauge)?;
        }
        for (name, help, rows) in [
            ("ballast_pool_decisions", "Decisions that changed the target or the settings.", per_pool(|v| v.decisions)),
            ("ballast_pool_provider_errors", "Provider calls that failed (create, destroy, list).", per_pool(|v| v.provider_errors)),
        ] {
            family(enc, name, help, None, MetricType::Counter, rows.iter().map(|(l, n)| (l, *n)), counter)?;
        }
        Ok(())
    }
}

impl Collector for AdminCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        Scrape::gather(&self.sources).encode(&mut encoder)
    }
}

fn pool_label(pool: &str) -> Labels {
    vec![("pool", label_value(pool).into_owned())]
}

/// Writes one family: its descriptor, then one series per row.
fn family<'r, T>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl Iterator<Item = (&'r Labels, T)>,
    write: impl Fn(&mut MetricEncoder, &T) -> fmt::Result,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in rows {
        let mut series = metric.encode_family(labels)?;
        write(&mut series, &value)?;
    }
    Ok(())
}

fn counter(m: &mut MetricEncoder, v: &u64) -> fmt::Result {
    m.encode_counter::<NoLabelSet, u64, u64>(v, None)
}

fn gauge(m: &mut MetricEncoder, v: &u64) -> fmt::Result {
    m.encode_gauge(v)
}
