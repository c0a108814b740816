//! One `Balancer::pick` per algorithm at 3, 100 and 1,000 backends.
//!
//! The pools look like a live one: weights 1–4, a few requests in flight, a latency
//! sample per backend, everyone healthy. Each pick gets fresh random bits and, for the
//! hashing algorithms, a different key/client address, as requests would. The
//! `zone-aware/*` groups run least-request and adaptive on the same pools spread over
//! three zones, picking for a client in one of them.
//!
//! Run: `cargo bench -p ballast-core --bench balance -- --warm-up-time 1 --measurement-time 2`

use ballast_core::balance::{
    Algorithm, Backend, BackendStats, BalanceOptions, Balancer, PickContext,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const NOW: Duration = Duration::from_secs(3600);

/// The bench pool; with `zones`, backend `i` is in zone `z{i % 3}` and zone-aware is on.
fn zoned_pool(algorithm: Algorithm, n: usize, zones: bool) -> Balancer {
    let backends = (0..n)
        .map(|i| Backend {
            id: format!("instance-{i}"),
            addr: format!("10.0.{}.{}:8080", i / 256, i % 256),
            weight: (i % 4) as u32 + 1,
            zone: zones.then(|| format!("z{}", i % 3)),
        })
        .collect();
    let stats: Vec<_> = (0..n)
        .map(|i| {
            let s = Arc::new(BackendStats::default());
            s.in_flight.store((i % 5) as u32, Ordering::Relaxed);
            s.on_request_end(NOW, Duration::from_micros(500 + 37 * i as u64 % 2000), true);
            s
        })
        .collect();
    let options = BalanceOptions {
        slow_start: Some(Duration::from_secs(30)),
        zone_aware: zones,
        ..BalanceOptions::default()
    };
    Balancer::new(algorithm, backends, stats, options)
}

fn picks(c: &mut Criterion) {
    let plain = Algorithm::ALL.map(|a| (a.name().to_string(), a, false));
    let zoned = [Algorithm::LeastRequest, Algorithm::Adaptive]
        .map(|a| (format!("zone-aware/{}", a.name()), a, true));
    for (name, algorithm, zones) in plain.into_iter().chain(zoned) {
        let mut group = c.benchmark_group(name);
        for n in [3usize, 100, 1000] {
            let balancer = zoned_pool(algorithm, n, zones);
            group.bench_with_input(BenchmarkId::from_parameter(n), &balancer, |b, balancer| {
                let mut k = 0u64;
                b.iter(|| {
                    k = k.wrapping_add(1);
                    // A new key each time, like the client IPs: no warm ring path.
                    let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
                    let ctx = PickContext {
                        now: NOW,
                        rand: k.wrapping_mul(0xD6E8_FEB8_6659_FD93),
                        client_ip: Some(IpAddr::V4(Ipv4Addr::from(k as u32))),
                        hash_key: Some(&key),
                        sticky: None,
                        avoid: &[],
                        client_zone: Some("z1"),
                    };
                    black_box(balancer.pick(black_box(&ctx)))
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, picks);
criterion_main!(benches);
