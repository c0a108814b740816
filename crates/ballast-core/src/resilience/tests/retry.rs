use super::ms;
use crate::config::RetryConfig;
use crate::resilience::RetryBudget;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn budget(percent: f64, floor: u32) -> RetryBudget {
    RetryBudget::new(&RetryConfig { attempts: 1, budget_percent: percent, min_per_second: floor })
}

#[test]
fn the_floor_allows_retries_without_traffic() {
    let b = budget(20.0, 2);
    let granted = (0..100).filter(|_| b.try_withdraw(ms(0))).count();
    assert_eq!(granted, 20, "2/s over a 10 s window");
    assert_eq!(b.remaining(ms(0)), 0);
    assert!(!b.try_withdraw(ms(9_999)));
    // The first second's withdrawals leave the window after ten seconds.
    assert!(b.try_withdraw(ms(10_000)));
}

#[test]
fn deposits_earn_the_budget_percent() {
    let b = budget(20.0, 0);
    assert!(!b.try_withdraw(ms(0)), "no floor, no traffic: no retry");
    for _ in 0..4 {
        b.deposit(ms(0));
    }
    assert!(!b.try_withdraw(ms(0)), "4 requests earn 0.8 of a retry");
    b.deposit(ms(0));
    assert!(b.try_withdraw(ms(500)));
    assert!(!b.try_withdraw(ms(500)));
    assert_eq!(b.remaining(ms(500)), 0);
}

#[test]
fn out_of_range_percentages_are_clamped() {
    let b = budget(f64::NAN, 0);
    (0..10).for_each(|_| b.deposit(ms(0)));
    assert_eq!(b.remaining(ms(0)), 2, "NaN falls back to 20%");
    let b = budget(500.0, 0);
    (0..10).for_each(|_| b.deposit(ms(0)));
    assert_eq!(b.remaining(ms(0)), 10, "capped at 100%");
}

#[test]
fn a_long_steady_run_adds_at_most_the_budget_plus_the_floor() {
    // 100 requests per second for 10 minutes, every one of them wanting a retry.
    let b = budget(20.0, 10);
    let (mut requests, mut retries) = (0u64, 0u64);
    for tick in 0..60_000u64 {
        let now = ms(tick * 10);
        b.deposit(now);
        requests += 1;
        if b.try_withdraw(now) {
            retries += 1;
        }
    }
    let bound = requests / 5 + 10 * 600 + 100;
    assert!(retries <= bound, "{retries} retries for {requests} requests, bound {bound}");
    assert!(retries >= requests / 5, "the budget is actually granted: {retries}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// At every second in which a retry was granted, the retries of the ten-second window
    /// ending there never exceed `floor × 10 + percent × first attempts` of that window.
    /// (A window ending elsewhere may hold retries that were paid for by requests just
    /// before it: that is what a sliding window means; the long run above bounds those.)
    #[test]
    fn no_window_exceeds_the_budget(
        percent in 1u32..=100, floor in 0u32..5,
        steps in proptest::collection::vec((0u64..1500, 0u8..4, 0u8..4), 0..300),
    ) {
        let b = budget(f64::from(percent), floor);
        let mut now = 0u64;
        let mut per_second: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (dt, deposits, retries) in steps {
            now += dt;
            let e = per_second.entry(now / 1000).or_default();
            for _ in 0..deposits { b.deposit(ms(now)); e.0 += 1; }
            for _ in 0..retries { if b.try_withdraw(ms(now)) { e.1 += 1; } }
        }
        for (&end, _) in per_second.iter().filter(|(_, v)| v.1 > 0) {
            let (d, w) = per_second.range(end.saturating_sub(9)..=end).fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1));
            prop_assert!(w * 100 <= u64::from(floor) * 10 * 100 + u64::from(percent) * d,
                "window ending {}: {} retries, {} requests", end, w, d);
        }
    }
}
