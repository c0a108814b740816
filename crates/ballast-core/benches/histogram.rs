//! One `LatencyHistogram::record` (what every request end pays for p50/p95/p99), and a
//! whole `BackendStats::on_request_end` for comparison, plus the sampler's side: a
//! snapshot, a delta and a p99 of one backend's histogram.
//!
//! Run: `cargo bench -p ballast-core --bench histogram -- --warm-up-time 1 --measurement-time 2`

use ballast_core::balance::{BackendStats, LatencyHistogram};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;

/// Latencies spread over the range (50 µs to 5 s), cycled through so the branch
/// predictor and the cache see a realistic mix of buckets.
fn latencies() -> Vec<Duration> {
    let mut rng = fastrand_like(0x9E37_79B9_7F4A_7C15);
    (0..1024).map(|_| Duration::from_nanos(50_000 + rng() % 5_000_000_000)).collect()
}

/// A tiny xorshift, so the bench needs no extra dependency.
fn fastrand_like(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn record(c: &mut Criterion) {
    let lat = latencies();
    let h = LatencyHistogram::default();
    let mut i = 0;
    c.bench_function("histogram/record", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            h.record(black_box(lat[i]));
        })
    });
    let stats = BackendStats::default();
    let mut i = 0;
    c.bench_function("backend-stats/start+end", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            stats.on_request_start();
            stats.on_request_end(Duration::from_secs(100), black_box(lat[i]), true);
        })
    });
    for d in &lat {
        h.record(*d);
    }
    let earlier = h.snapshot();
    c.bench_function("histogram/snapshot+delta+p99", |b| {
        b.iter(|| {
            let now = h.snapshot();
            black_box(now.delta_since(&earlier).quantile(0.99))
        })
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
