//! Properties every algorithm shares: exclusion of unhealthy, draining and avoided
//! backends, panic mode, sticky affinity, and the edge cases of tiny pools. Per-algorithm
//! behaviour is tested in `algorithm_tests.rs`; the schedule and the EWMA beside their code.

use super::*;
use proptest::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A pool with these weights, ids `b0, b1, ...`, all healthy and warm.
pub(super) fn pool(weights: &[u32]) -> (Vec<Backend>, Vec<Arc<BackendStats>>) {
    let backends = weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| Backend {
            id: format!("b{i}"),
            addr: format!("10.0.0.{i}:80"),
            weight,
            zone: None,
        })
        .collect();
    let stats = weights.iter().map(|_| Arc::new(BackendStats::default())).collect();
    (backends, stats)
}

/// A balancer over `pool(weights)` with default options.
pub(super) fn balancer(algorithm: Algorithm, weights: &[u32]) -> Balancer {
    let (backends, stats) = pool(weights);
    Balancer::new(algorithm, backends, stats, BalanceOptions::default())
}

/// A context with only the random bits set.
pub(super) fn ctx(rand: u64) -> PickContext<'static> {
    PickContext { rand, ..PickContext::default() }
}

/// The k-th pseudo-random value of a test seeded with `seed` (splitmix64 of seed + k).
pub(super) fn nth_rand(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The state a test gives one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Healthy,
    Unhealthy,
    Draining,
}

fn set_state(s: &BackendStats, state: State) {
    s.healthy.store(state == State::Healthy, Ordering::Relaxed);
    s.draining.store(state == State::Draining, Ordering::Relaxed);
}

fn any_state() -> impl Strategy<Value = State> {
    prop_oneof![3 => Just(State::Healthy), 1 => Just(State::Unhealthy), 1 => Just(State::Draining)]
}

fn all_algorithms() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

#[test]
fn empty_pool_picks_nothing() {
    for algorithm in Algorithm::ALL {
        assert_eq!(balancer(algorithm, &[]).pick(&ctx(1)), None, "{algorithm}");
    }
}

#[test]
fn single_backend_is_always_picked() {
    for algorithm in Algorithm::ALL {
        let b = balancer(algorithm, &[3]);
        for k in 0..50 {
            assert_eq!(b.pick(&ctx(k)), Some(0), "{algorithm}");
        }
    }
}

#[test]
fn all_unhealthy_without_panic_mode_picks_nothing() {
    for algorithm in Algorithm::ALL {
        let (backends, stats) = pool(&[1, 2, 3]);
        stats.iter().for_each(|s| set_state(s, State::Unhealthy));
        let options = BalanceOptions { panic_threshold: 0.0, ..BalanceOptions::default() };
        let b = Balancer::new(algorithm, backends, stats, options);
        for k in 0..50 {
            assert_eq!(b.pick(&ctx(k)), None, "{algorithm}");
        }
    }
}

#[test]
fn all_unhealthy_with_panic_mode_still_serves_but_never_a_draining_one() {
    for algorithm in Algorithm::ALL {
        let (backends, stats) = pool(&[1, 1, 1]);
        set_state(&stats[0], State::Unhealthy);
        set_state(&stats[1], State::Draining);
        set_state(&stats[2], State::Unhealthy);
        let b = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
        for k in 0..50 {
            let picked = b.pick(&ctx(k));
            assert!(matches!(picked, Some(0 | 2)), "{algorithm}: {picked:?}");
        }
    }
}

#[test]
fn panic_mode_kicks_in_only_below_the_threshold() {
    for algorithm in Algorithm::ALL {
        for (healthy, expect_panic) in [(6usize, false), (5, false), (4, true), (1, true)] {
            let (backends, stats) = pool(&[1; 10]);
            stats.iter().skip(healthy).for_each(|s| set_state(s, State::Unhealthy));
            let b = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
            let unhealthy_picks = (0..2000u64)
                .filter_map(|k| {
                    let key = k.to_le_bytes();
                    let ip = std::net::IpAddr::from((k as u32).to_be_bytes());
                    b.pick(&PickContext {
                        rand: nth_rand(7, k),
                        hash_key: Some(&key),
                        client_ip: Some(ip),
                        ..PickContext::default()
                    })
                })
                .filter(|&i| i >= healthy)
                .count();
            assert_eq!(
                unhealthy_picks > 0,
                expect_panic,
                "{algorithm} with {healthy}/10 healthy: {unhealthy_picks}"
            );
        }
    }
}

#[test]
fn panic_mode_still_honours_avoid_when_it_can() {
    for algorithm in Algorithm::ALL {
        let (backends, stats) = pool(&[1, 1, 1]);
        stats.iter().for_each(|s| set_state(s, State::Unhealthy));
        let b = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
        for k in 0..50 {
            let c = PickContext { rand: k, avoid: &[0, 2], ..PickContext::default() };
            assert_eq!(b.pick(&c), Some(1), "{algorithm}");
            let c = PickContext { rand: k, avoid: &[0, 1, 2], ..PickContext::default() };
            assert!(
                b.pick(&c).is_some(),
                "{algorithm}: every backend avoided, panic mode retries one"
            );
        }
    }
}

#[test]
fn avoiding_every_healthy_backend_outside_panic_mode_picks_nothing() {
    for algorithm in Algorithm::ALL {
        let b = balancer(algorithm, &[1, 1]);
        let c = PickContext { rand: 3, avoid: &[0, 1], ..PickContext::default() };
        assert_eq!(b.pick(&c), None, "{algorithm}");
    }
}

#[test]
fn sticky_wins_while_eligible_and_falls_back_when_gone() {
    for algorithm in Algorithm::ALL {
        let (backends, stats) = pool(&[1, 1, 1, 1]);
        let b = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
        fn sticky(rand: u64, avoid: &[usize]) -> PickContext<'_> {
            PickContext { rand, sticky: Some("b2"), avoid, ..PickContext::default() }
        }
        for k in 0..30 {
            assert_eq!(b.pick(&sticky(k, &[])), Some(2), "{algorithm}: pinned");
        }
        let fallback =
            |avoid: &[usize]| (0..30).filter_map(|k| b.pick(&sticky(k, avoid))).collect::<Vec<_>>();
        let retried = fallback(&[2]);
        assert!(
            retried.len() == 30 && !retried.contains(&2),
            "{algorithm}: avoided pin {retried:?}"
        );
        for state in [State::Unhealthy, State::Draining] {
            set_state(b.stats(2), state);
            let picks = fallback(&[]);
            assert!(
                picks.len() == 30 && !picks.contains(&2),
                "{algorithm}: {state:?} pin {picks:?}"
            );
        }
        let unknown = PickContext { rand: 1, sticky: Some("gone"), ..PickContext::default() };
        assert!(b.pick(&unknown).is_some(), "{algorithm}: unknown pin falls back");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Outside panic mode an unhealthy, draining or avoided backend is never picked, and a
    /// pick fails only when no backend may take the request. In panic mode a draining
    /// backend is still never picked.
    #[test]
    fn excluded_backends_are_never_picked(
        algorithm in all_algorithms(),
        members in prop::collection::vec((1u32..8, any_state(), any::<bool>()), 1..24),
        threshold in prop_oneof![Just(0.0), 0.0f64..1.0],
        seed in any::<u64>(),
        slow in any::<bool>(),
    ) {
        let weights: Vec<u32> = members.iter().map(|m| m.0).collect();
        let (backends, stats) = pool(&weights);
        for (s, m) in stats.iter().zip(&members) {
            set_state(s, m.1);
            s.ready_at_ns.store(seed % 20_000_000_000, Ordering::Relaxed);
            s.in_flight.store((seed % 7) as u32, Ordering::Relaxed);
        }
        let avoid: Vec<usize> = members.iter().enumerate().filter(|(_, m)| m.2).map(|(i, _)| i).collect();
        let present = members.iter().filter(|m| m.1 != State::Draining).count();
        let healthy = members.iter().filter(|m| m.1 == State::Healthy).count();
        let panic = present > 0 && (healthy as f64) < threshold * present as f64;
        let options = BalanceOptions {
            panic_threshold: threshold,
            slow_start: slow.then_some(Duration::from_secs(10)),
            ..BalanceOptions::default()
        };
        let b = Balancer::new(algorithm, backends, stats, options);
        let allowed = |i: usize| !avoid.contains(&i) && match members[i].1 {
            State::Healthy => true,
            State::Unhealthy => panic,
            State::Draining => false,
        };
        let any_allowed = (0..members.len()).any(allowed);
        for k in 0..40u64 {
            let key = nth_rand(seed, k).to_le_bytes();
            let ip = std::net::IpAddr::from([key[0], key[1], key[2], key[3]]);
            let c = PickContext {
                now: Duration::from_secs(k),
                rand: nth_rand(seed, k),
                hash_key: (k % 3 != 0).then_some(&key[..]),
                client_ip: (k % 3 != 1).then_some(ip),
                sticky: Some("b0"),
                avoid: &avoid,
                client_zone: None,
            };
            match b.pick(&c) {
                Some(i) if allowed(i) => {}
                Some(i) => {
                    prop_assert!(panic && !any_allowed && members[i].1 != State::Draining,
                        "picked excluded {} ({:?}, avoided {})", i, members[i].1, avoid.contains(&i));
                }
                None => prop_assert!(!any_allowed && !panic, "no pick though one was allowed"),
            }
        }
    }
}

#[test]
fn algorithm_names_round_trip() {
    for algorithm in Algorithm::ALL {
        assert_eq!(algorithm.to_string().parse::<Algorithm>(), Ok(algorithm));
        let json = serde_json::to_string(&algorithm).expect("serialises");
        assert_eq!(json, format!("\"{algorithm}\""));
        assert_eq!(serde_json::from_str::<Algorithm>(&json).expect("parses"), algorithm);
    }
    let err = "fastest".parse::<Algorithm>().expect_err("unknown name");
    assert_eq!(err.given, "fastest");
    assert!(
        err.to_string().contains("expected one of: round-robin, weighted-round-robin"),
        "{err}"
    );
}
