use super::secs;
use crate::config::HealthCheckConfig;
use crate::resilience::{Health, HealthState};
use proptest::prelude::*;

/// One table case: `results` is a string of `S` (success) and `F` (failure); `flips`
/// lists the indices whose result changes the state, with the new state.
struct Case {
    name: &'static str,
    initial: Health,
    rise: u32,
    fall: u32,
    results: &'static str,
    flips: &'static [(usize, Health)],
}

const H: Health = Health::Healthy;
const U: Health = Health::Unhealthy;

const CASES: &[Case] = &[
    Case { name: "healthy stays with fewer than fall failures", initial: H, rise: 2, fall: 3, results: "FFSFFS", flips: &[] },
    Case { name: "healthy falls on the fall-th failure", initial: H, rise: 2, fall: 3, results: "FFF", flips: &[(2, U)] },
    Case { name: "more failures after falling change nothing", initial: H, rise: 2, fall: 3, results: "FFFFFF", flips: &[(2, U)] },
    Case { name: "unhealthy rises on the rise-th success", initial: U, rise: 2, fall: 3, results: "SS", flips: &[(1, H)] },
    Case { name: "an interrupted rise starts over", initial: U, rise: 2, fall: 3, results: "SFSFSS", flips: &[(5, H)] },
    Case { name: "round trip", initial: H, rise: 2, fall: 3, results: "FFFSSFFF", flips: &[(2, U), (4, H), (7, U)] },
    Case { name: "rise 1 fall 1 flips on every change", initial: H, rise: 1, fall: 1, results: "FSSF", flips: &[(0, U), (1, H), (3, U)] },
    Case { name: "zero thresholds count as one", initial: H, rise: 0, fall: 0, results: "FS", flips: &[(0, U), (1, H)] },
    Case { name: "failures while unhealthy do not pre-charge a fall", initial: U, rise: 1, fall: 2, results: "FFFSF", flips: &[(3, H)] },
];

#[test]
fn table_of_transitions() {
    for case in CASES {
        let mut st = HealthState::new(case.initial, case.rise, case.fall, secs(0));
        let mut flips = Vec::new();
        for (i, c) in case.results.chars().enumerate() {
            if let Some(t) = st.record(c == 'S', secs(i as u64 + 1)) {
                assert_eq!(t.from, if t.to == H { U } else { H }, "{}", case.name);
                flips.push((i, t.to));
            }
        }
        assert_eq!(flips, case.flips, "{}", case.name);
    }
}

#[test]
fn transition_carries_counts_and_a_reason() {
    let mut st = HealthState::new(H, 2, 3, secs(0));
    assert!(st.record(false, secs(1)).is_none());
    assert!(st.record(false, secs(2)).is_none());
    let t = st.record(false, secs(3)).expect("third failure flips");
    assert_eq!((t.counts.consecutive_failures, t.counts.consecutive_successes, t.counts.fall), (3, 0, 3));
    assert_eq!(t.reason("status 500"), "3 failed checks in a row (fall 3); last: status 500");
    st.record(true, secs(4));
    let t = st.record(true, secs(5)).expect("second success flips back");
    assert_eq!(t.reason(""), "2 passed checks in a row (rise 2)");
    assert_eq!(st.changed_at(), secs(5));
}

#[test]
fn uptime_counts_from_the_last_time_it_became_healthy() {
    let cfg = HealthCheckConfig::default();
    let mut st = HealthState::from_config(&cfg, H, secs(10));
    assert_eq!(st.uptime(secs(25)), Some(secs(15)));
    for t in 26..29 {
        st.record(false, secs(t));
    }
    assert_eq!(st.health(), U);
    assert_eq!(st.uptime(secs(30)), None);
    st.record(true, secs(40));
    st.record(true, secs(41));
    assert_eq!(st.uptime(secs(50)), Some(secs(9)));
    // A clock that reads earlier than the flip (caller bug) saturates instead of panicking.
    assert_eq!(st.uptime(secs(1)), Some(secs(0)));
    let st = HealthState::new(U, 2, 3, secs(0));
    assert_eq!(st.uptime(secs(5)), None);
}

#[test]
fn lowered_thresholds_apply_on_the_next_result() {
    let mut st = HealthState::new(H, 5, 5, secs(0));
    st.record(false, secs(1));
    st.record(false, secs(2));
    st.set_thresholds(5, 2);
    assert_eq!(st.counts().fall, 2);
    assert!(st.record(false, secs(3)).is_some(), "3 failures in a row reach the new fall of 2");
}

/// Trailing run of identical results ending at `i`.
fn run_at(results: &[bool], i: usize) -> usize {
    results[..=i].iter().rev().take_while(|&&r| r == results[i]).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The state after each result is what the definition says, computed from the history
    /// alone: a run of `fall` failures makes it unhealthy, a run of `rise` successes makes
    /// it healthy, anything else leaves it; transitions are reported exactly then.
    #[test]
    fn flips_only_after_exactly_rise_or_fall_in_a_row(
        healthy in any::<bool>(), rise in 1u32..6, fall in 1u32..6,
        results in proptest::collection::vec(any::<bool>(), 0..80),
    ) {
        let initial = if healthy { H } else { U };
        let mut st = HealthState::new(initial, rise, fall, secs(0));
        let mut expect = initial;
        for i in 0..results.len() {
            let run = run_at(&results, i);
            let before = expect;
            if results[i] && run >= rise as usize { expect = H; }
            if !results[i] && run >= fall as usize { expect = U; }
            let t = st.record(results[i], secs(i as u64 + 1));
            prop_assert_eq!(st.health(), expect);
            prop_assert_eq!(t.is_some(), before != expect);
            if t.is_some() {
                let needed = if expect == H { rise } else { fall };
                prop_assert_eq!(run, needed as usize, "a flip happens at exactly the threshold");
            }
        }
    }
}
