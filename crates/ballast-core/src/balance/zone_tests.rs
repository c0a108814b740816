//! Zone-aware balancing for every algorithm: local picks while the client's zone can take
//! the request, proportional spill-over when it is short, full spill-over when it has no
//! eligible backend, and exclusions honoured throughout.

use super::tests::{nth_rand, pool};
use super::*;
use proptest::prelude::*;
use std::sync::atomic::Ordering;

const ZONES: [&str; 3] = ["eu-1a", "eu-1b", "eu-1c"];

/// A zone-aware balancer whose backend `i` is in `zones[i]` (None: unlabelled).
fn zoned(algorithm: Algorithm, zones: &[Option<&str>], options: BalanceOptions) -> Balancer {
    let (mut backends, stats) = pool(&vec![1; zones.len()]);
    for (b, z) in backends.iter_mut().zip(zones) {
        b.zone = z.map(str::to_string);
    }
    Balancer::new(
        algorithm,
        backends,
        stats,
        BalanceOptions {
            zone_aware: true,
            ..options
        },
    )
}

fn from<'a>(zone: &'a str, rand: u64, avoid: &'a [usize]) -> PickContext<'a> {
    PickContext {
        rand,
        client_zone: Some(zone),
        avoid,
        ..PickContext::default()
    }
}

/// Share of `picks` picks from `zone` that landed in backends `local`.
fn local_share(b: &Balancer, zone: &str, local: &[usize], picks: u64) -> f64 {
    let hits = (0..picks)
        .filter_map(|k| b.pick(&from(zone, nth_rand(11, k), &[])))
        .filter(|i| local.contains(i))
        .count();
    hits as f64 / picks as f64
}

const LAYOUT: [Option<&str>; 7] = [
    Some("eu-1a"),
    Some("eu-1a"),
    Some("eu-1a"),
    Some("eu-1b"),
    Some("eu-1b"),
    None,
    Some("eu-1c"),
];

#[test]
fn picks_stay_local_for_every_algorithm() {
    for algorithm in Algorithm::ALL {
        let b = zoned(algorithm, &LAYOUT, BalanceOptions::default());
        assert_eq!(
            local_share(&b, "eu-1a", &[0, 1, 2], 300),
            1.0,
            "{algorithm}"
        );
        assert_eq!(local_share(&b, "eu-1b", &[3, 4], 300), 1.0, "{algorithm}");
    }
}

#[test]
fn unknown_zone_or_zone_awareness_off_uses_every_backend() {
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::LeastRequest,
        Algorithm::Adaptive,
    ] {
        let b = zoned(algorithm, &LAYOUT, BalanceOptions::default());
        assert!(
            local_share(&b, "us-2", &[5], 700) > 0.05,
            "{algorithm}: unknown zone"
        );
        let c = PickContext {
            rand: 1,
            ..PickContext::default()
        };
        assert!(b.pick(&c).is_some(), "{algorithm}: no client zone");
        let (mut backends, stats) = pool(&[1; 7]);
        for (b, z) in backends.iter_mut().zip(LAYOUT) {
            b.zone = z.map(str::to_string);
        }
        let off = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
        assert!(
            local_share(&off, "eu-1a", &[0, 1, 2], 700) < 0.7,
            "{algorithm}: off"
        );
    }
}

#[test]
fn a_short_zone_keeps_a_proportional_share() {
    let b = zoned(Algorithm::Random, &LAYOUT, BalanceOptions::default());
    b.stats(0).healthy.store(false, Ordering::Relaxed);
    // 2 of 3 eligible: local with probability (2/3) / (1/1.4) = 0.933, and the spilled
    // picks land in eu-1a with probability 2/6.
    let expected = 0.9333 + (1.0 - 0.9333) * 2.0 / 6.0;
    let share = local_share(&b, "eu-1a", &[1, 2], 20_000);
    assert!((share - expected).abs() < 0.01, "{share} vs {expected}");
    let strict = BalanceOptions {
        zone_local_threshold: 0.0,
        ..BalanceOptions::default()
    };
    let b = zoned(Algorithm::Random, &LAYOUT, strict);
    b.stats(0).healthy.store(false, Ordering::Relaxed);
    b.stats(1).healthy.store(false, Ordering::Relaxed);
    assert_eq!(
        local_share(&b, "eu-1a", &[2], 500),
        1.0,
        "threshold 0: one local is enough"
    );
}

#[test]
fn an_empty_or_avoided_zone_spills_over() {
    for algorithm in Algorithm::ALL {
        let b = zoned(algorithm, &LAYOUT, BalanceOptions::default());
        b.stats(6).draining.store(true, Ordering::Relaxed);
        let picks: Vec<_> = (0..50)
            .filter_map(|k| b.pick(&from("eu-1c", k, &[])))
            .collect();
        assert!(
            picks.len() == 50 && !picks.contains(&6),
            "{algorithm}: {picks:?}"
        );
        let retry: Vec<_> = (0..50)
            .filter_map(|k| b.pick(&from("eu-1b", k, &[3, 4])))
            .collect();
        assert!(
            retry.len() == 50 && retry.iter().all(|i| ![3, 4].contains(i)),
            "{algorithm}: a retry that avoided the whole zone goes elsewhere {retry:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// For every algorithm: never an excluded backend; local only while the local zone's
    /// eligible fraction reaches the threshold; spill-over when it has none eligible.
    #[test]
    fn zone_rules_hold(
        algorithm in prop::sample::select(Algorithm::ALL.to_vec()),
        members in prop::collection::vec((prop::option::of(0usize..3), 0u8..4), 1..20),
        client in 0usize..3,
        threshold in prop_oneof![Just(ZONE_LOCAL_THRESHOLD), Just(0.0), 0.0f64..1.0],
        seed in any::<u64>(),
    ) {
        let zones: Vec<Option<&str>> = members.iter().map(|m| m.0.map(|z| ZONES[z])).collect();
        let options = BalanceOptions {
            panic_threshold: 0.0,
            zone_local_threshold: threshold,
            ..BalanceOptions::default()
        };
        let b = zoned(algorithm, &zones, options);
        let mut avoid = Vec::new();
        for (i, m) in members.iter().enumerate() {
            match m.1 {
                1 => b.stats(i).healthy.store(false, Ordering::Relaxed),
                2 => b.stats(i).draining.store(true, Ordering::Relaxed),
                3 => avoid.push(i),
                _ => {}
            }
        }
        let eligible = |i: usize| members[i].1 == 0;
        let is_local = |i: usize| members[i].0 == Some(client);
        let present = (0..members.len()).filter(|&i| is_local(i) && members[i].1 != 2).count();
        let local_eligible = (0..members.len()).filter(|&i| is_local(i) && eligible(i)).count();
        let stays_local = local_eligible > 0 && local_eligible as f64 >= threshold * present as f64;
        for k in 0..30 {
            let key = nth_rand(seed, k).to_le_bytes();
            let c = PickContext {
                rand: nth_rand(seed, k),
                client_zone: Some(ZONES[client]),
                avoid: &avoid,
                hash_key: Some(&key),
                ..PickContext::default()
            };
            match b.pick(&c) {
                Some(i) => {
                    prop_assert!(eligible(i), "picked excluded {}", i);
                    prop_assert!(!stays_local || is_local(i), "left a zone that can serve: {}", i);
                    prop_assert!(local_eligible > 0 || !is_local(i));
                }
                None => prop_assert!(!(0..members.len()).any(eligible), "no pick though one was eligible"),
            }
        }
    }
}
