//! What the adaptive algorithm promises: the hot-cold rule's edge cases, least-request
//! behaviour without estimates, slow start, exclusion, spreading over equal backends,
//! and avoiding a slow backend while keeping it probed. The end-to-end dynamics are in
//! `adaptive_sim.rs`.

use super::adaptive::{choose, quantile, Candidate};
use super::tests::{nth_rand, pool};
use super::*;
use proptest::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const MS: Duration = Duration::from_millis(1);
const NOW: Duration = Duration::from_secs(100);

fn adaptive(weights: &[u32], options: BalanceOptions) -> Balancer {
    let (backends, stats) = pool(weights);
    Balancer::new(Algorithm::Adaptive, backends, stats, options)
}

fn at(rand: u64) -> PickContext<'static> {
    PickContext {
        now: NOW,
        rand,
        ..PickContext::default()
    }
}

/// Gives backend `i` a latency estimate of `latency` at every level it will be asked at.
fn measure(b: &Balancer, i: usize, latency: Duration) {
    let s = b.stats(i);
    for rif in [1u32, 2, 4, 8, 16, 32, 64, 128] {
        s.in_flight.store(rif, Ordering::Relaxed);
        s.on_request_end(NOW, latency, true);
    }
    s.in_flight.store(0, Ordering::Relaxed);
}

fn histogram(b: &Balancer, picks: u64, seed: u64) -> Vec<u64> {
    let mut counts = vec![0; b.backends().len()];
    for k in 0..picks {
        if let Some(i) = b.pick(&at(nth_rand(seed, k))) {
            counts[i] += 1;
        }
    }
    counts
}

fn c(index: usize, load: f64, estimate_ms: Option<f64>, hot: bool) -> Candidate {
    Candidate {
        index,
        load,
        estimate: estimate_ms.map(|ms| ms * 1e6),
        hot,
    }
}

/// The hot-cold rule, one named case per edge.
#[test]
fn hot_cold_rule_cases() {
    struct Case {
        name: &'static str,
        entries: Vec<Candidate>,
        expect: Option<usize>,
    }
    let cases = [
        Case {
            name: "no candidates",
            entries: vec![],
            expect: None,
        },
        Case {
            name: "cold beats hot even when the hot one is faster",
            entries: vec![c(0, 9.0, Some(1.0), true), c(1, 2.0, Some(1.5), false)],
            expect: Some(1),
        },
        Case {
            name: "lowest latency among the cold",
            entries: vec![c(0, 1.0, Some(5.0), false), c(1, 4.0, Some(1.0), false)],
            expect: Some(1),
        },
        Case {
            name: "all hot: lowest load, latency ignored",
            entries: vec![
                c(0, 9.0, Some(1.0), true),
                c(1, 5.0, Some(8.0), true),
                c(2, 7.0, None, true),
            ],
            expect: Some(1),
        },
        Case {
            name: "latencies within the margin: lowest load",
            entries: vec![c(0, 5.0, Some(1.0), false), c(1, 2.0, Some(1.2), false)],
            expect: Some(1),
        },
        Case {
            name: "sub-slack differences are noise",
            entries: vec![c(0, 5.0, Some(0.02), false), c(1, 2.0, Some(0.1), false)],
            expect: Some(1),
        },
        Case {
            name: "no estimates at all: least-request",
            entries: vec![
                c(0, 3.0, None, false),
                c(1, 2.0, None, false),
                c(2, 4.0, None, false),
            ],
            expect: Some(1),
        },
        Case {
            name: "a backend without an estimate competes on load with the best",
            entries: vec![c(0, 3.0, Some(1.0), false), c(1, 1.0, None, false)],
            expect: Some(1),
        },
        Case {
            name: "ties go to the first (random) candidate",
            entries: vec![c(2, 2.0, Some(1.0), false), c(0, 2.0, Some(1.0), false)],
            expect: Some(2),
        },
        Case {
            name: "guard: a cold backend far slower than a hot one loses",
            entries: vec![c(0, 9.0, Some(1.0), true), c(1, 1.0, Some(20.0), false)],
            expect: Some(0),
        },
        Case {
            name: "guard: hot ones then compete on latency too",
            entries: vec![
                c(0, 9.0, Some(1.0), true),
                c(1, 8.0, Some(1.1), true),
                c(2, 1.0, Some(20.0), false),
            ],
            expect: Some(1),
        },
        Case {
            name: "guard not reached: cold within 2x of hot wins",
            entries: vec![c(0, 9.0, Some(1.0), true), c(1, 1.0, Some(1.9), false)],
            expect: Some(1),
        },
    ];
    for case in cases {
        assert_eq!(choose(&case.entries), case.expect, "{}", case.name);
    }
}

#[test]
fn the_hot_quantile_is_interpolated_so_small_pools_have_a_hot_backend() {
    assert_eq!(quantile(&mut [7.0], 0.75), 7.0);
    assert_eq!(quantile(&mut [33.0, 2.0, 31.0], 0.75), 32.0);
    assert_eq!(quantile(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 0.75), 4.0);
    assert_eq!(quantile(&mut [1.0, 2.0, 3.0, 4.0], 0.75), 3.25);
    // Three equal-latency backends, one piled on: it is hot and the other two share.
    let b = adaptive(&[1; 3], BalanceOptions::default());
    (0..3).for_each(|i| measure(&b, i, MS));
    for (i, rif) in [(0, 40), (1, 10), (2, 11)] {
        b.stats(i).in_flight.store(rif, Ordering::Relaxed);
    }
    let counts = histogram(&b, 300, 9);
    assert_eq!(counts[0], 0, "{counts:?}");
    assert_eq!(
        counts[1], 300,
        "cold ones equal in latency: the less loaded {counts:?}"
    );
}

#[test]
fn without_estimates_it_is_least_request() {
    let b = adaptive(&[1; 3], BalanceOptions::default());
    b.stats(0).in_flight.store(5, Ordering::Relaxed);
    b.stats(1).in_flight.store(1, Ordering::Relaxed);
    b.stats(2).in_flight.store(3, Ordering::Relaxed);
    assert_eq!(
        histogram(&b, 200, 1),
        [0, 200, 0],
        "three of three sampled: the least loaded"
    );
    let b = adaptive(&[1, 3], BalanceOptions::default());
    b.stats(0).in_flight.store(1, Ordering::Relaxed); // load 2
    b.stats(1).in_flight.store(2, Ordering::Relaxed); // load 1
    assert_eq!(histogram(&b, 100, 2), [0, 100], "relative to weight");
}

#[test]
fn the_fastest_backend_wins_until_it_becomes_hot() {
    let pool_with = |others: Duration| {
        let b = adaptive(&[1; 8], BalanceOptions::default());
        (0..8).for_each(|i| measure(&b, i, if i == 0 { MS } else { others }));
        b
    };
    let b = pool_with(3 * MS / 2);
    let counts = histogram(&b, 2000, 3);
    // Sampled three of eight: backend 0 is a candidate in 3/8 of picks and wins them all.
    assert!((650..850).contains(&counts[0]), "{counts:?}");
    b.stats(0).in_flight.store(30, Ordering::Relaxed);
    assert_eq!(
        histogram(&b, 2000, 4)[0],
        0,
        "hot: skipped for cold ones within 2x"
    );
    let b = pool_with(3 * MS);
    b.stats(0).in_flight.store(30, Ordering::Relaxed);
    let counts = histogram(&b, 2000, 4);
    assert!(
        (650..850).contains(&counts[0]),
        "cold ones over 2x slower: hot competes {counts:?}"
    );
}

#[test]
fn slow_start_bounds_a_fast_new_backends_share() {
    let options = BalanceOptions {
        slow_start: Some(Duration::from_secs(10)),
        ..BalanceOptions::default()
    };
    let (backends, mut stats) = pool(&[1; 3]);
    // Backend 2 became ready 1 s ago (ramp 10%), the others long ago.
    stats[2] = Arc::new(BackendStats::ready_at(NOW - Duration::from_secs(1)));
    let b = Balancer::new(Algorithm::Adaptive, backends, stats, options);
    measure(&b, 0, 5 * MS);
    measure(&b, 1, 5 * MS);
    measure(&b, 2, MS);
    let counts = histogram(&b, 3000, 5);
    let share = counts[2] as f64 / 3000.0;
    assert!(
        (0.05..0.15).contains(&share),
        "fastest but warming: about its 10% ramp, {counts:?}"
    );
}

#[test]
fn a_failing_backend_is_avoided_even_when_it_fails_fast() {
    let b = adaptive(&[1; 3], BalanceOptions::default());
    measure(&b, 0, 2 * MS);
    measure(&b, 1, 2 * MS);
    for _ in 0..3 {
        b.stats(2).on_request_start();
        b.stats(2)
            .on_request_end(NOW, Duration::from_micros(50), false);
    }
    assert_eq!(histogram(&b, 500, 6)[2], 0);
}

#[test]
fn a_slow_backend_is_avoided_but_probed_and_recovers() {
    let policy = ProbePolicy::default();
    let b = adaptive(&[1; 3], BalanceOptions::default());
    measure(&b, 0, MS);
    measure(&b, 1, MS);
    b.stats(2).on_probe_sent(NOW);
    b.stats(2).on_probe_result(NOW, 20 * MS, true);
    assert_eq!(histogram(&b, 1000, 7)[2], 0);
    let later = NOW + policy.interval;
    assert!(
        probe_due(b.stats(2), later, &policy),
        "no traffic: probed again"
    );
    assert!(!probe_due(b.stats(0), NOW, &policy), "traffic: not probed");
    // Recovered: 1.6 s of fast probes (each moves the estimate 25%) and it is back.
    for k in 1..=16u32 {
        let t = NOW + policy.interval * k;
        b.stats(2).on_probe_sent(t);
        b.stats(2).on_probe_result(t, MS, true);
    }
    let now = NOW + policy.interval * 16;
    let counts: Vec<u64> = (0..900u64).fold(vec![0; 3], |mut acc, k| {
        let c = PickContext {
            now,
            rand: nth_rand(8, k),
            ..PickContext::default()
        };
        acc[b.pick(&c).expect("healthy pool")] += 1;
        acc
    });
    assert!(counts[2] > 200, "{counts:?}");
}

/// Completes the oldest in-flight request after each pick once `depth` are in flight, so
/// the pool sees load that follows its own picks.
fn closed_loop(b: &Balancer, picks: u64, depth: usize, seed: u64) -> Vec<u64> {
    let mut counts = vec![0; b.backends().len()];
    let mut queue = std::collections::VecDeque::new();
    for k in 0..picks {
        let now = NOW + MS * k as u32;
        let c = PickContext {
            now,
            rand: nth_rand(seed, k),
            ..PickContext::default()
        };
        let i = b.pick(&c).expect("healthy pool");
        b.stats(i).on_request_start();
        counts[i] += 1;
        queue.push_back((i, now));
        if queue.len() > depth {
            let (j, sent) = queue.pop_front().expect("non-empty");
            // Latency grows with the backend's load, the same curve for every backend.
            let rif = b.stats(j).in_flight.load(Ordering::Relaxed);
            let latency = MS * rif + (now - sent) / 100;
            b.stats(j).on_request_end(now, latency, true);
        }
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the estimates, loads and exclusions, adaptive never picks an excluded
    /// backend and fails only when none may take the request.
    #[test]
    fn never_picks_an_excluded_backend(
        members in prop::collection::vec((0u8..4, 0u32..40, prop::option::of(1u64..50_000)), 1..24),
        seed in any::<u64>(),
    ) {
        let (backends, stats) = pool(&vec![1; members.len()]);
        let options = BalanceOptions { panic_threshold: 0.0, ..BalanceOptions::default() };
        let b = Balancer::new(Algorithm::Adaptive, backends, stats, options);
        let mut avoid = Vec::new();
        for (i, &(state, rif, micros)) in members.iter().enumerate() {
            if let Some(us) = micros {
                b.stats(i).on_request_end(NOW, Duration::from_micros(us), true);
            }
            b.stats(i).in_flight.store(rif, Ordering::Relaxed);
            match state {
                1 => b.stats(i).healthy.store(false, Ordering::Relaxed),
                2 => b.stats(i).draining.store(true, Ordering::Relaxed),
                3 => avoid.push(i),
                _ => {}
            }
        }
        let allowed = |i: usize| members[i].0 == 0;
        for k in 0..40 {
            let c = PickContext { now: NOW, rand: nth_rand(seed, k), avoid: &avoid, ..PickContext::default() };
            match b.pick(&c) {
                Some(i) => prop_assert!(allowed(i), "picked excluded {}", i),
                None => prop_assert!(!(0..members.len()).any(allowed)),
            }
        }
    }

    /// Equal backends under load that follows the picks share it evenly.
    #[test]
    fn equal_backends_share_the_load(n in 2usize..12, seed in any::<u64>()) {
        let b = adaptive(&vec![1; n], BalanceOptions::default());
        let picks = 400 * n as u64;
        let counts = closed_loop(&b, picks, 4 * n, seed);
        let mean = picks as f64 / n as f64;
        for &count in &counts {
            prop_assert!((count as f64 - mean).abs() < 0.2 * mean, "{:?}", counts);
        }
    }

    /// With one backend much slower, it gets under 1% of the picks once estimates exist,
    /// however loads are spread, and it stays due for probes so it can come back.
    #[test]
    fn a_much_slower_backend_gets_under_one_percent(
        n in 3usize..16,
        slow in 0usize..16,
        rifs in prop::collection::vec(0u32..20, 16),
        seed in any::<u64>(),
    ) {
        let slow = slow % n;
        let b = adaptive(&vec![1; n], BalanceOptions::default());
        for (i, &rif) in rifs.iter().enumerate().take(n) {
            measure(&b, i, if i == slow { 20 * MS } else { MS + MS * rif / 10 });
            b.stats(i).in_flight.store(if i == slow { 0 } else { rif }, Ordering::Relaxed);
        }
        let counts = histogram(&b, 1000, seed);
        prop_assert!(counts[slow] < 10, "{:?}", counts);
        let policy = ProbePolicy::default();
        prop_assert!(probe_due(b.stats(slow), NOW + policy.idle, &policy));
    }
}
