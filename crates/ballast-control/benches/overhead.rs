//! Controller overhead: one evaluation round over 1,000 pools with live metrics, i.e. per
//! pool a proxy-stats sample of 4 instances into full 1 h / 24 h windows and one engine
//! decision. Prints the round time and the share of one core it costs at the default
//! 15 s interval (acceptance: < 5%), and the windows' memory per 1,000 pools.
//!
//! Run: `cargo bench -p ballast-control --bench overhead` (add `--profile dev` for a
//! quick, pessimistic figure).

use ballast_control::metrics::proxy::{ProxySampler, StatsLookup};
use ballast_control::metrics::{PoolWindows, WindowConfig};
use ballast_core::autoscale::{at_epoch_millis, decide, EngineMemory, MetricKind, PolicyConfig, PoolState, ScalingConfig, TargetPolicy};
use ballast_core::balance::BackendStats;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POOLS: usize = 1000;
const INSTANCES: usize = 4;
const INTERVAL_S: i64 = 15;

struct Map(HashMap<String, Arc<BackendStats>>);
impl StatsLookup for Map {
    fn stats(&self, _pool: &str, address: &str) -> Option<Arc<BackendStats>> {
        self.0.get(address).cloned()
    }
}

fn main() {
    let scaling = ScalingConfig {
        min: 1,
        max: 8,
        policies: vec![PolicyConfig::Target(TargetPolicy::new(MetricKind::Concurrency, 10.0))],
        ..ScalingConfig::default()
    };
    let addrs: Vec<String> = (0..INSTANCES).map(|i| format!("127.0.0.1:{}", 20_000 + i)).collect();
    let lookup = Map(addrs.iter().map(|a| (a.clone(), Arc::new(BackendStats::default()))).collect());
    let mut pools: Vec<(PoolWindows, ProxySampler, EngineMemory)> =
        (0..POOLS).map(|_| (PoolWindows::new(WindowConfig::default()), ProxySampler::new(), EngineMemory::default())).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once without it,
    // as a smoke test: then a short fill and few rounds (the figures mean little)
    let full = std::env::args().any(|a| a == "--bench");
    // fill: 25 h of samples at the interval, so both rings are full
    let rounds_to_fill = if full { 25 * 3600 / INTERVAL_S } else { 20 };
    let mut t = 0i64;
    let round = |t: i64, pools: &mut Vec<(PoolWindows, ProxySampler, EngineMemory)>, decide_too: bool| {
        for s in lookup.0.values() {
            s.requests.fetch_add(150, Relaxed);
            s.in_flight.store((t % 17) as u32, Relaxed);
            // latencies spread over 0.2–20 ms: a couple of hundred non-empty buckets
            for k in 0..50u64 {
                s.latency.record(Duration::from_micros(200 + (k * 397 + t as u64 * 13) % 19_800));
            }
        }
        let wall = at_epoch_millis(1_700_000_000_000 + t * 1000);
        for (w, sampler, memory) in pools.iter_mut() {
            let sample = sampler.sample(&lookup, "web", &addrs, Duration::from_secs(t as u64));
            sample.record_only(w, wall, |m| *m == MetricKind::Concurrency);
            if decide_too {
                let d = decide(&PoolState::new(INSTANCES as u32, INSTANCES as u32), &scaling, None, w, memory, wall);
                std::hint::black_box(d);
            }
        }
    };
    for _ in 0..rounds_to_fill {
        round(t, &mut pools, false);
        t += INTERVAL_S;
    }
    let measured = if full { 20 } else { 2 };
    let start = Instant::now();
    for _ in 0..measured {
        round(t, &mut pools, true);
        t += INTERVAL_S;
    }
    let per_round = start.elapsed() / measured;
    let share = per_round.as_secs_f64() / INTERVAL_S as f64 * 100.0;
    let held: usize = pools.iter().map(|p| p.0.bytes_held()).sum();
    println!("{POOLS} pools x {INSTANCES} instances: {per_round:?} per evaluation round = {share:.3}% of one core at {INTERVAL_S}s");
    println!("windows held: {:.2} MB for {POOLS} pools (the policy's metric, concurrency)", held as f64 / 1e6);
    println!("bound per metric: {} B", PoolWindows::bytes_bound(&WindowConfig::default(), 1));
    let sampler: usize = pools.iter().map(|p| p.1.bytes_held()).sum();
    println!("proxy samplers hold: {:.2} MB for {POOLS} pools (previous readings incl. latency histograms)", sampler as f64 / 1e6);
}
