//! Samples the proxy's live [`BackendStats`] of a pool's instances into pool figures:
//! requests per second, in-flight requests, error rate and latency.
//!
//! The proxy keeps only counters and a peak-EWMA latency per backend (no histograms), so
//! the latency figure here is the mean of the instances' EWMA estimates, recorded as
//! `custom:latency-ewma`; `latency-p50/p95/p99` need histograms in the proxy.

use super::PoolWindows;
use ballast_core::autoscale::MetricKind;
use ballast_core::balance::BackendStats;
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
    /// Each instance found in the proxy.
    pub instances: Vec<InstanceSample>,
}

impl PoolSample {
    /// Pushes the pool figures into `windows` at `at`: rps, concurrency, error rate and
    /// (when known) `custom:latency-ewma`.
    pub fn record(&self, windows: &mut PoolWindows, at: DateTime<Utc>) {
        self.record_only(windows, at, |_| true);
    }

    /// Like [`record`](Self::record), keeping only the metrics `keep` accepts (a pool
    /// needs windows only for what its policies read: memory stays small).
    pub fn record_only(&self, windows: &mut PoolWindows, at: DateTime<Utc>, keep: impl Fn(&MetricKind) -> bool) {
        let latency = self.latency_ms.map(|l| (MetricKind::Custom(LATENCY_EWMA.into()), l));
        let all = [(MetricKind::Rps, self.rps), (MetricKind::Concurrency, self.concurrency), (MetricKind::ErrorRate, self.error_rate)];
        for (metric, v) in all.into_iter().chain(latency) {
            if keep(&metric) {
                windows.push(metric, at, v);
            }
        }
    }
}

/// Counter deltas need the previous reading; one sampler per pool keeps them.
#[derive(Debug, Default)]
pub struct ProxySampler {
    last: HashMap<String, (u64, u64, Duration)>,
}

impl ProxySampler {
    /// A sampler with no previous readings (the first sample has rps 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the stats of `addresses` of `pool` at `now` (the proxy clock's time, which
    /// the EWMA is kept on). Addresses the proxy does not know are skipped; readings of
    /// addresses no longer listed are forgotten.
    pub fn sample(&mut self, lookup: &dyn StatsLookup, pool: &str, addresses: &[String], now: Duration) -> PoolSample {
        use std::sync::atomic::Ordering::Relaxed;
        self.last.retain(|a, _| addresses.contains(a));
        let mut out = PoolSample::default();
        let (mut started, mut failed, mut lat_sum, mut lat_n) = (0u64, 0u64, 0.0, 0u32);
        for address in addresses {
            let Some(stats) = lookup.stats(pool, address) else { continue };
            let (req, fail) = (stats.requests.load(Relaxed), stats.failures.load(Relaxed));
            let in_flight = stats.in_flight.load(Relaxed);
            let (d_req, d_fail, rps) = match self.last.insert(address.clone(), (req, fail, now)) {
                Some((r0, f0, t0)) => {
                    let (dr, df) = (req.saturating_sub(r0), fail.saturating_sub(f0));
                    let secs = now.saturating_sub(t0).as_secs_f64();
                    (dr, df, if secs > 0.0 { dr as f64 / secs } else { 0.0 })
                }
                None => (0, 0, 0.0),
            };
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
            });
        }
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
