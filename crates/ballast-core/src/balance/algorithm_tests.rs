//! What each algorithm promises: weights honoured, load and latency followed, keys kept
//! in place by the hashing algorithms, and slow start ramping new backends in.

use super::tests::{balancer, ctx, nth_rand, pool};
use super::*;
use proptest::prelude::*;
use std::sync::atomic::Ordering;

/// How many of `picks` picks went to each backend.
fn histogram(b: &Balancer, picks: u64, mut c: impl FnMut(u64) -> PickContext<'static>) -> Vec<u64> {
    let mut counts = vec![0; b.backends().len()];
    for k in 0..picks {
        if let Some(i) = b.pick(&c(k)) {
            counts[i] += 1;
        }
    }
    counts
}

#[test]
fn round_robin_visits_each_backend_once_per_cycle_ignoring_weights() {
    let b = balancer(Algorithm::RoundRobin, &[5, 1, 1, 2]);
    let picks: Vec<_> = (0..8).filter_map(|k| b.pick(&ctx(k))).collect();
    assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3]);
}

#[test]
fn round_robin_skips_an_unhealthy_backend_without_doubling_its_successor() {
    let b = balancer(Algorithm::RoundRobin, &[1, 1, 1, 1]);
    b.stats(1).healthy.store(false, Ordering::Relaxed);
    assert_eq!(histogram(&b, 300, ctx), [100, 0, 100, 100]);
}

#[test]
fn weighted_round_robin_is_smooth_and_exact() {
    let b = balancer(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
    let picks: Vec<_> = (0..14).filter_map(|k| b.pick(&ctx(k))).collect();
    assert_eq!(picks, [0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 1, 2, 0, 0]);
}

#[test]
fn least_connections_follows_in_flight_relative_to_weight() {
    let b = balancer(Algorithm::LeastConnections, &[1, 2, 1]);
    b.stats(0).in_flight.store(1, Ordering::Relaxed); // cost 2/1
    b.stats(1).in_flight.store(2, Ordering::Relaxed); // cost 3/2
    b.stats(2).in_flight.store(3, Ordering::Relaxed); // cost 4/1
    assert!((0..50).all(|k| b.pick(&ctx(k)) == Some(1)));
    // Idle: the heavier backend first; ties are shared at random.
    let b = balancer(Algorithm::LeastConnections, &[1, 1, 1]);
    assert!(histogram(&b, 300, ctx).iter().all(|&c| c > 50));
}

#[test]
fn least_request_never_picks_the_busiest_of_a_pool() {
    let b = balancer(Algorithm::LeastRequest, &[1; 8]);
    b.stats(3).in_flight.store(40, Ordering::Relaxed);
    let counts = histogram(&b, 4000, ctx);
    assert_eq!(counts[3], 0, "two distinct samples: the busy one always loses");
    assert!(counts.iter().enumerate().all(|(i, &c)| i == 3 || c > 300), "{counts:?}");
}

#[test]
fn peak_ewma_prefers_the_fast_backend_and_reacts_to_a_peak_at_once() {
    let b = balancer(Algorithm::PeakEwma, &[1, 1]);
    let now = Duration::from_secs(100);
    for _ in 0..5 {
        b.stats(0).on_request_end(now, Duration::from_millis(5), true);
        b.stats(1).on_request_end(now, Duration::from_millis(80), true);
    }
    let at = |rand| PickContext { now, rand, ..PickContext::default() };
    assert!((0..100).all(|k| b.pick(&at(k)) == Some(0)));
    // One slow response from the fast backend flips the choice immediately.
    b.stats(0).on_request_end(now, Duration::from_millis(200), true);
    assert!((0..100).all(|k| b.pick(&at(k)) == Some(1)));
}

#[test]
fn peak_ewma_tries_a_new_backend_once_others_are_loaded() {
    let b = balancer(Algorithm::PeakEwma, &[1, 1]);
    let now = Duration::from_secs(5);
    b.stats(0).on_request_end(now, Duration::from_millis(10), true);
    let at = PickContext { now, rand: 9, ..PickContext::default() };
    assert_eq!(b.pick(&at), Some(0), "10 ms beats the 30 ms default");
    b.stats(0).in_flight.store(3, Ordering::Relaxed);
    assert_eq!(b.pick(&at), Some(1), "40 ms of load beats the untried 30 ms");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Weighted random gives each backend its weight share (±2 points over 20,000 picks).
    #[test]
    fn random_honours_weights(weights in prop::collection::vec(1u32..10, 2..8), seed in any::<u64>()) {
        let b = balancer(Algorithm::Random, &weights);
        let counts = histogram(&b, 20_000, |k| ctx(nth_rand(seed, k)));
        let total: u32 = weights.iter().sum();
        for (i, &c) in counts.iter().enumerate() {
            let (share, expected) = (c as f64 / 20_000.0, f64::from(weights[i]) / f64::from(total));
            prop_assert!((share - expected).abs() < 0.02, "backend {}: {:.3} vs {:.3}", i, share, expected);
        }
    }

    /// Smooth weighted round-robin gives each backend exactly its weight every period.
    #[test]
    fn weighted_round_robin_is_exact_per_period(weights in prop::collection::vec(1u32..20, 1..12)) {
        let b = balancer(Algorithm::WeightedRoundRobin, &weights);
        let period: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let counts = histogram(&b, 3 * period, ctx);
        for (i, &c) in counts.iter().enumerate() {
            prop_assert_eq!(c, 3 * u64::from(weights[i]));
        }
    }

    /// Power of two choices never picks the strictly most loaded backend (by in-flight
    /// for least-request, by latency × load for peak-EWMA), and the least loaded one gets
    /// more than its 1/n share.
    #[test]
    fn two_choices_shun_the_worst_and_favour_the_best(
        latencies_ms in prop::collection::vec(1u64..500, 2..12),
        in_flight in prop::collection::vec(0u32..20, 12),
        ewma in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let n = latencies_ms.len();
        let algorithm = if ewma { Algorithm::PeakEwma } else { Algorithm::LeastRequest };
        let b = balancer(algorithm, &vec![1; n]);
        let now = Duration::from_secs(50);
        for i in 0..n {
            b.stats(i).on_request_end(now, Duration::from_millis(latencies_ms[i]), true);
            b.stats(i).in_flight.store(in_flight[i], Ordering::Relaxed);
        }
        let cost = |i: usize| {
            let load = u64::from(in_flight[i]) + 1;
            if ewma { latencies_ms[i] * load } else { load }
        };
        let (worst, best) = ((0..n).max_by_key(|&i| cost(i)), (0..n).min_by_key(|&i| cost(i)));
        let (worst, best) = (worst.unwrap_or(0), best.unwrap_or(0));
        let unique = |i: usize| (0..n).all(|j| j == i || cost(j) != cost(i));
        let counts = histogram(&b, 2000, |k| PickContext { now, rand: nth_rand(seed, k), ..PickContext::default() });
        if unique(worst) {
            prop_assert_eq!(counts[worst], 0, "costs {:?}", (0..n).map(cost).collect::<Vec<_>>());
        }
        if unique(best) && n > 2 {
            prop_assert!(counts[best] as f64 > 1.3 * 2000.0 / n as f64, "best got {:?}", counts);
        }
    }

    /// When one of n backends joins or leaves, about its weight share of 10,000 keys move
    /// (1/n for equal weights; checked within 0.5x..2x), and only to the newcomer or off
    /// the leaver; hiding a backend (unhealthy) moves only its own keys. The leaver's
    /// weight is at most the others' largest (see `hash`: the largest weight scales the
    /// ring).
    #[test]
    fn consistent_hash_remaps_about_one_in_n(
        mut weights in prop::collection::vec(1u32..4, 3..16),
        leaver in any::<prop::sample::Index>(),
        on_ip in any::<bool>(),
    ) {
        let algorithm = if on_ip { Algorithm::IpHash } else { Algorithm::ConsistentHash };
        let owners = |w: &[u32], hidden: Option<usize>| {
            let (mut backends, stats) = pool(w);
            backends.iter_mut().enumerate().for_each(|(i, b)| b.id = format!("node-{}", i * 7919 % 10007));
            let b = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
            if let Some(h) = hidden { b.stats(h).healthy.store(false, Ordering::Relaxed); }
            (0..10_000u32).map(|k| {
                let key = k.to_le_bytes();
                let ip = std::net::IpAddr::from(k.to_be_bytes());
                let c = PickContext { hash_key: Some(&key), client_ip: Some(ip), ..PickContext::default() };
                b.pick(&c).map(|i| b.backends()[i].id.clone()).unwrap_or_default()
            }).collect::<Vec<_>>()
        };
        let n = weights.len();
        let others_max = weights[..n - 1].iter().copied().max().unwrap_or(1);
        weights[n - 1] = weights[n - 1].min(others_max);
        let expected = f64::from(weights[n - 1]) / f64::from(weights.iter().sum::<u32>());
        let full = owners(&weights, None);
        let fewer = owners(&weights[..n - 1], None);
        let moved = full.iter().zip(&fewer).filter(|(a, b)| a != b).count() as f64 / 10_000.0;
        let last = format!("node-{}", (n - 1) * 7919 % 10007);
        prop_assert!(full.iter().zip(&fewer).all(|(a, b)| a == b || *a == last), "a staying key moved");
        prop_assert!(moved > 0.5 * expected && moved < 2.0 * expected, "moved {} of keys, expected {}", moved, expected);

        let hidden = leaver.index(n);
        let hidden_id = format!("node-{}", hidden * 7919 % 10007);
        let degraded = owners(&weights, Some(hidden));
        let kept = |(a, b): (&String, &String)| if *a == hidden_id { b != a } else { a == b };
        prop_assert!(full.iter().zip(&degraded).all(kept), "only the hidden backend's keys move");
    }
}

#[test]
fn hashing_is_stable_per_key_and_spreads_keys() {
    for algorithm in [Algorithm::IpHash, Algorithm::ConsistentHash] {
        let b = balancer(algorithm, &[1; 5]);
        let key = b"user-42".as_slice();
        let ip: std::net::IpAddr = "192.0.2.7".parse().expect("valid ip");
        let c = |rand| PickContext {
            rand,
            hash_key: Some(key),
            client_ip: Some(ip),
            ..PickContext::default()
        };
        let first = b.pick(&c(0));
        assert!((1..100).all(|k| b.pick(&c(k)) == first), "{algorithm}: same key, same backend");
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().expect("valid ip");
        let c6 =
            PickContext { hash_key: Some(key), client_ip: Some(mapped), ..PickContext::default() };
        assert_eq!(b.pick(&c6), first, "{algorithm}: IPv4-mapped IPv6 hashes as IPv4");
    }
}

#[test]
fn ip_hash_spreads_a_block_of_neighbouring_addresses() {
    let b = balancer(Algorithm::IpHash, &[1; 10]);
    let counts = histogram(&b, 65_536, |k| PickContext {
        client_ip: Some(std::net::IpAddr::from((0x0A00_0000 + k as u32).to_be_bytes())),
        ..PickContext::default()
    });
    let mean = 6553.6;
    assert!(counts.iter().all(|&c| (c as f64 - mean).abs() < 0.35 * mean), "{counts:?}");
}

#[test]
fn missing_hash_input_falls_back_to_weighted_random() {
    for algorithm in [Algorithm::IpHash, Algorithm::ConsistentHash] {
        let b = balancer(algorithm, &[1, 3]);
        let counts = histogram(&b, 8000, |k| ctx(nth_rand(11, k)));
        let share = counts[1] as f64 / 8000.0;
        assert!((0.6..0.9).contains(&share), "{algorithm}: weight-3 share {share}");
    }
}

#[test]
fn ring_points_follow_weights() {
    let (backends, _) = pool(&[1, 2, 4]);
    assert_eq!(hash::Ring::new(&backends).len() as u64, VNODES / 4 + VNODES / 2 + VNODES);
}

/// A pool of `n` warm backends whose backend 0 became ready at 0 s, with a 10 s window.
fn warming(algorithm: Algorithm, n: usize) -> Balancer {
    let (backends, stats) = pool(&vec![1; n]);
    let options =
        BalanceOptions { slow_start: Some(Duration::from_secs(10)), ..BalanceOptions::default() };
    let b = Balancer::new(algorithm, backends, stats, options);
    (1..n).for_each(|i| b.stats(i).ready_at_ns.store(0, Ordering::Relaxed));
    b.stats(0).ready_at_ns.store(100_000_000_000, Ordering::Relaxed);
    b
}

#[test]
fn slow_start_ramps_a_new_backend_in() {
    for algorithm in [Algorithm::RoundRobin, Algorithm::WeightedRoundRobin, Algorithm::Random] {
        let b = warming(algorithm, 4);
        let share_at = |secs: u64| {
            let now = Duration::from_secs(100 + secs);
            histogram(&b, 8000, |k| PickContext {
                now,
                rand: nth_rand(3, k),
                ..PickContext::default()
            })[0] as f64
                / 8000.0
        };
        let (cold, half, warm) = (share_at(0), share_at(5), share_at(10));
        assert!(cold > 0.01 && cold < 0.06, "{algorithm}: cold share {cold}");
        assert!(half > cold + 0.05 && half < warm - 0.03, "{algorithm}: half-warm share {half}");
        assert!((warm - 0.25).abs() < 0.03, "{algorithm}: warm share {warm}");
    }
}

#[test]
fn slow_start_biases_load_aware_algorithms() {
    for algorithm in [Algorithm::LeastConnections, Algorithm::LeastRequest, Algorithm::PeakEwma] {
        let b = warming(algorithm, 2);
        let now = Duration::from_secs(101); // ramp 0.1: backend 0 looks 10x busier
        let at = |rand| PickContext { now, rand, ..PickContext::default() };
        b.stats(1).in_flight.store(5, Ordering::Relaxed);
        assert!((0..50).all(|k| b.pick(&at(k)) == Some(1)), "{algorithm}: 6 < 10");
        b.stats(1).in_flight.store(12, Ordering::Relaxed);
        assert!((0..50).all(|k| b.pick(&at(k)) == Some(0)), "{algorithm}: 13 > 10");
    }
}
