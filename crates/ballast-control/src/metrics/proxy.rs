//! Samples the proxy's live [`BackendStats`] of a pool's instances into pool figures:
//! requests per second, in-flight requests, error rate, latency quantiles and the
//! requests the proxy holds while the pool is at zero.
//!
//! Latency: every backend keeps a latency histogram (counts only grow); the sampler keeps
//! each instance's previous snapshot, so a sample's p50/p95/p99 are those of the requests
//! that ended between two samples, per instance and over the pool (the instances' deltas
//! merged, so busy instances weigh more). They are recorded as `latency-p50`,
//! `latency-p95` and `latency-p99` (milliseconds) when at least one request ended in the
//! interval. The mean of the instances' peak-EWMA estimates is still recorded as
//! `custom:latency-ewma`.
//!
//! Held requests: when the lookup knows how many requests the proxy holds for the pool
//! ([`StatsLookup::pending`], e.g. `ProxyServer::pending_requests`), that count is
//! recorded as `queue-depth`: work waiting in front of the pool, which is what the metric
//! means and nothing else feeds it.

use super::PoolWindows;
use ballast_core::autoscale::MetricKind;
use ballast_core::balance::{BackendStats, HistogramSnapshot, SparseSnapshot};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The metric name under which the mean EWMA latency (milliseconds) is recorded.
pub const LATENCY_EWMA: &str = "latency-ewma";

/// Where live stats come from: the proxy (`ProxyServer::backend_stats`) or a test's own map.
pub trait StatsLookup: Send + Sync {
    /// Live stats of instance `address` of `pool`, if the proxy knows it.
    fn stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>>;

    /// Requests the proxy holds for `pool` while it has no instance
    /// (`ProxyServer::pending_requests`), or None when not known (the default): then no
    /// `queue-depth` is recorded.
    fn pending(&self, _pool: &str) -> Option<u32> {
        None
    }
}

/// Latency quantiles over a sampling interval, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Quantiles {
    /// The quantiles of `h`, or None when it counted nothing.
    pub fn of(h: &HistogramSnapshot) -> Option<Quantiles> {
        let ms = |q| h.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        Some(Quantiles { p50: ms(0.5)?, p95: ms(0.95)?, p99: ms(0.99)? })
    }
}

/// One instance's figures over the last sampling period.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSample {
    /// The instance's address.
    pub address: String,
    /// Requests started per second since the previous sample.
    pub rps: f64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Failed / started since the previous sample, percent; 0 without requests.
    pub error_rate: f64,
    /// The EWMA latency estimate, milliseconds, if any request completed yet.
    pub latency_ms: Option<f64>,
    /// Latency quantiles of the requests that ended since the previous sample.
    pub quantiles: Option<Quantiles>,
}

/// A pool's figures over the last sampling period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolSample {
    /// Total requests per second.
    pub rps: f64,
    /// Total in-flight requests.
    pub concurrency: f64,
    /// Failed / started over the pool, percent.
    pub error_rate: f64,
    /// Mean EWMA latency over instances that have one, milliseconds.
    pub latency_ms: Option<f64>,
    /// Latency quantiles over every instance's requests that ended since the previous
    /// sample; None when none did.
    pub quantiles: Option<Quantiles>,
    /// Requests the proxy holds for the pool, when the lookup knows.
    pub pending: Option<u32>,
    /// Each instance found in the proxy.
    pub instances: Vec<InstanceSample>,
}

impl PoolSample {
    /// Pushes the pool figures into `windows` at `at`: rps, concurrency, error rate and,
    /// when known, `latency-p50/p95/p99`, `custom:latency-ewma` and `queue-depth`.
    pub fn record(&self, windows: &mut PoolWindows, at: DateTime<Utc>) {
        self.record_only(windows, at, |_| true);
    }

    /// Like [`record`](Self::record), keeping only the metrics `keep` accepts (a pool
    /// needs windows only for what its policies read: memory stays small).
    pub fn record_only(&self, windows: &mut PoolWindows, at: DateTime<Utc>, keep: impl Fn(&MetricKind) -> bool) {
        let latency = self.latency_ms.map(|l| (MetricKind::Custom(LATENCY_EWMA.into()), l));
        let quantiles = self.quantiles.into_iter().flat_map(|q| {
            [(MetricKind::LatencyP50, q.p50), (MetricKind::LatencyP95, q.p95), (MetricKind::LatencyP99, q.p99)]
        });
        let pending = self.pending.map(|n| (MetricKind::QueueDepth, f64::from(n)));
        let all = [(MetricKind::Rps, self.rps), (MetricKind::Concurrency, self.concurrency), (MetricKind::ErrorRate, self.error_rate)];
        for (metric, v) in all.into_iter().chain(latency).chain(quantiles).chain(pending) {
            if keep(&metric) {
                windows.push(metric, at, v);
            }
        }
    }
}

/// Counter deltas need the previous reading; one sampler per pool keeps them.
#[derive(Debug, Default)]
pub struct ProxySampler {
    last: HashMap<String, Reading>,
}

/// One instance's counters and histogram at the previous sample.
#[derive(Debug)]
struct Reading {
    requests: u64,
    failures: u64,
    at: Duration,
    latency: SparseSnapshot,
}

impl ProxySampler {
    /// A sampler with no previous readings (the first sample has rps 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held between samples (the previous reading of every instance), roughly.
    pub fn bytes_held(&self) -> usize {
        self.last.iter().map(|(a, r)| a.capacity() + std::mem::size_of::<(String, Reading)>() + r.latency.heap_bytes()).sum()
    }

    /// Reads the stats of `addresses` of `pool` at `now` (the proxy clock's time, which
    /// the EWMA is kept on). Addresses the proxy does not know are skipped; readings of
    /// addresses no longer listed are forgotten.
    pub fn sample(&mut self, lookup: &dyn StatsLookup, pool: &str, addresses: &[String], now: Duration) -> PoolSample {
        use std::sync::atomic::Ordering::Relaxed;
        self.last.retain(|a, _| addresses.contains(a));
        let mut out = PoolSample { pending: lookup.pending(pool), ..PoolSample::default() };
        let (mut started, mut failed, mut lat_sum, mut lat_n) = (0u64, 0u64, 0.0, 0u32);
        let mut pool_latency = HistogramSnapshot::default();
        for address in addresses {
            let Some(stats) = lookup.stats(pool, address) else { continue };
            let (req, fail) = (stats.requests.load(Relaxed), stats.failures.load(Relaxed));
            let in_flight = stats.in_flight.load(Relaxed);
            let latency = stats.latency.snapshot();
            let reading = Reading { requests: req, failures: fail, at: now, latency: latency.sparse() };
            let (d_req, d_fail, rps, interval) = match self.last.get(address) {
                Some(prev) => {
                    let (dr, df) = (req.saturating_sub(prev.requests), fail.saturating_sub(prev.failures));
                    let secs = now.saturating_sub(prev.at).as_secs_f64();
                    (dr, df, if secs > 0.0 { dr as f64 / secs } else { 0.0 }, latency.delta_since_sparse(&prev.latency))
                }
                None => (0, 0, 0.0, HistogramSnapshot::default()),
            };
            self.last.insert(address.clone(), reading);
            pool_latency.merge(&interval);
            let latency_ms = stats.peak_ewma(now).map(|d| d.as_secs_f64() * 1000.0);
            if let Some(l) = latency_ms {
                lat_sum += l;
                lat_n += 1;
            }
            started += d_req;
            failed += d_fail.min(d_req);
            out.rps += rps;
            out.concurrency += f64::from(in_flight);
            out.instances.push(InstanceSample {
                address: address.clone(),
                rps,
                in_flight,
                error_rate: percent(d_fail.min(d_req), d_req),
                latency_ms,
                quantiles: Quantiles::of(&interval),
            });
        }
        out.quantiles = Quantiles::of(&pool_latency);
        out.error_rate = percent(failed, started);
        out.latency_ms = (lat_n > 0).then(|| lat_sum / f64::from(lat_n));
        out
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    struct Map(HashMap<String, Arc<BackendStats>>);
    impl StatsLookup for Map {
        fn stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>> {
            (pool == "web").then(|| self.0.get(address).cloned()).flatten()
        }
    }

    fn two() -> (Map, Vec<String>) {
        let addrs = vec!["a:1".to_string(), "b:2".to_string()];
        let map = addrs.iter().map(|a| (a.clone(), Arc::new(BackendStats::default()))).collect();
        (Map(map), addrs)
    }

    #[test]
    fn rates_come_from_counter_deltas() {
        let (map, addrs) = two();
        let mut s = ProxySampler::new();
        let first = s.sample(&map, "web", &addrs, Duration::from_secs(10));
        assert_eq!((first.rps, first.instances.len()), (0.0, 2));
        let a = &map.0["a:1"];
        a.requests.store(100, Relaxed);
        a.failures.store(5, Relaxed);
        a.in_flight.store(3, Relaxed);
        map.0["b:2"].requests.store(50, Relaxed);
        map.0["b:2"].in_flight.store(1, Relaxed);
        let next = s.sample(&map, "web", &addrs, Duration::from_secs(20));
        assert_eq!(next.rps, 15.0);
        assert_eq!(next.concurrency, 4.0);
        assert!((next.error_rate - 100.0 * 5.0 / 150.0).abs() < 1e-9);
        assert_eq!(next.instances[0].error_rate, 5.0);
        assert!(next.latency_ms.is_none(), "no request completed");
    }

    #[test]
    fn latency_is_the_mean_ewma_and_unknown_addresses_are_skipped() {
        let (map, mut addrs) = two();
        map.0["a:1"].on_request_start();
        map.0["a:1"].on_request_end(Duration::from_secs(1), Duration::from_millis(40), true);
        addrs.push("gone:3".into());
        let mut s = ProxySampler::new();
        let sample = s.sample(&map, "web", &addrs, Duration::from_secs(1));
        assert_eq!(sample.instances.len(), 2);
        let l = sample.latency_ms.expect("one sample");
        assert!((l - 40.0).abs() < 1.0, "{l}");
        let mut w = PoolWindows::new(Default::default());
        sample.record(&mut w, ballast_core::autoscale::at_epoch_millis(0));
        assert_eq!(w.raw_len(&MetricKind::Custom(LATENCY_EWMA.into())), 1);
        let mut only = PoolWindows::new(Default::default());
        sample.record_only(&mut only, ballast_core::autoscale::at_epoch_millis(0), |m| *m == MetricKind::Concurrency);
        assert_eq!((only.raw_len(&MetricKind::Concurrency), only.raw_len(&MetricKind::Rps)), (1, 0));
        assert!(s.sample(&map, "other", &addrs, Duration::from_secs(2)).instances.is_empty());
    }

    fn requests(s: &BackendStats, n: usize, latency: Duration) {
        for _ in 0..n {
            s.on_request_start();
            s.on_request_end(Duration::from_secs(1), latency, true);
        }
    }

    fn near(got: f64, want: f64) -> bool {
        (got - want).abs() <= want / 64.0
    }

    #[test]
    fn latency_quantiles_cover_the_interval_and_merge_over_the_pool() {
        let (map, addrs) = two();
        let (a, b) = (&map.0["a:1"], &map.0["b:2"]);
        requests(a, 50, Duration::from_secs(2));
        let mut s = ProxySampler::new();
        let first = s.sample(&map, "web", &addrs, Duration::from_secs(10));
        assert_eq!(first.quantiles, None, "the first sample has no interval");
        requests(a, 90, Duration::from_millis(10));
        requests(b, 10, Duration::from_millis(200));
        let next = s.sample(&map, "web", &addrs, Duration::from_secs(20));
        let q = next.quantiles.expect("requests ended");
        assert!(near(q.p50, 10.0) && near(q.p95, 200.0) && near(q.p99, 200.0), "{q:?}: the 2 s ones are older");
        let qa = next.instances[0].quantiles.expect("a served");
        assert!(near(qa.p99, 10.0), "{qa:?}");
        let qb = next.instances[1].quantiles.expect("b served");
        assert!(near(qb.p50, 200.0), "{qb:?}");
        let mut w = PoolWindows::new(Default::default());
        next.record(&mut w, ballast_core::autoscale::at_epoch_millis(0));
        let (from, at) = (ballast_core::autoscale::at_epoch_millis(-1000), ballast_core::autoscale::at_epoch_millis(0));
        for (m, want) in [(MetricKind::LatencyP50, 10.0), (MetricKind::LatencyP95, 200.0), (MetricKind::LatencyP99, 200.0)] {
            let got = ballast_core::autoscale::MetricSource::summary(&w, &m, from, at).map(|s| s.latest);
            assert!(got.is_some_and(|v| near(v, want)), "{m}: {got:?}");
        }
        assert_eq!(w.raw_len(&MetricKind::QueueDepth), 0, "the lookup does not know held requests");
        let idle = s.sample(&map, "web", &addrs, Duration::from_secs(30));
        assert_eq!(idle.quantiles, None, "nothing ended in this interval");
        let mut w = PoolWindows::new(Default::default());
        idle.record(&mut w, ballast_core::autoscale::at_epoch_millis(0));
        assert_eq!(w.raw_len(&MetricKind::LatencyP99), 0, "no figure rather than a stale one");
    }

    #[test]
    fn an_address_that_came_back_with_fresh_stats_counts_from_zero() {
        let (mut map, addrs) = two();
        requests(&map.0["a:1"], 100, Duration::from_secs(1));
        let mut s = ProxySampler::new();
        s.sample(&map, "web", &addrs, Duration::from_secs(10));
        let fresh = Arc::new(BackendStats::default());
        requests(&fresh, 3, Duration::from_millis(5));
        map.0.insert("a:1".into(), fresh);
        let q = s.sample(&map, "web", &addrs, Duration::from_secs(20)).quantiles.expect("3 requests");
        assert!(near(q.p99, 5.0), "only the new process's requests: {q:?}");
    }

    struct Holding(Map, u32);
    impl StatsLookup for Holding {
        fn stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>> {
            self.0.stats(pool, address)
        }
        fn pending(&self, _pool: &str) -> Option<u32> {
            Some(self.1)
        }
    }

    #[test]
    fn held_requests_are_recorded_as_queue_depth() {
        let (map, _) = two();
        let lookup = Holding(map, 7);
        let sample = ProxySampler::new().sample(&lookup, "web", &[], Duration::from_secs(1));
        assert_eq!((sample.pending, sample.instances.len()), (Some(7), 0), "a pool at zero");
        let mut w = PoolWindows::new(Default::default());
        let at = ballast_core::autoscale::at_epoch_millis(1000);
        sample.record(&mut w, at);
        let from = ballast_core::autoscale::at_epoch_millis(0);
        let got = ballast_core::autoscale::MetricSource::summary(&w, &MetricKind::QueueDepth, from, at);
        assert_eq!(got.map(|s| s.latest), Some(7.0));
    }

    #[test]
    fn a_counter_reset_does_not_go_negative() {
        let (map, addrs) = two();
        let mut s = ProxySampler::new();
        map.0["a:1"].requests.store(10, Relaxed);
        s.sample(&map, "web", &addrs, Duration::from_secs(1));
        map.0["a:1"].requests.store(0, Relaxed);
        let next = s.sample(&map, "web", &addrs, Duration::from_secs(2));
        assert_eq!(next.rps, 0.0);
    }
}
