use super::{ms, secs};
use crate::config::{ConfigDuration, OutlierConfig};
use crate::resilience::{EventKind, OutlierDetector, OutlierSlot, OutlierTransition, Outcome};
use proptest::prelude::*;
use std::sync::Arc;

fn cfg(failures: u32, percent: u32) -> OutlierConfig {
    OutlierConfig {
        enabled: true,
        consecutive_failures: failures,
        base_ejection: ConfigDuration::from_secs(30),
        max_ejection: ConfigDuration::from_secs(75),
        max_ejected_percent: percent,
    }
}

fn detector(n: usize, c: &OutlierConfig) -> OutlierDetector {
    OutlierDetector::new(c, (0..n).map(|_| Arc::new(OutlierSlot::default())).collect())
}

fn fail(d: &OutlierDetector, i: usize, n: u32, at: std::time::Duration) -> Option<OutlierTransition> {
    (0..n).filter_map(|_| d.record(i, Outcome::ServerError, at)).last()
}

#[test]
fn consecutive_failures_eject_and_a_success_resets_the_count() {
    let d = detector(10, &cfg(3, 50));
    assert_eq!(fail(&d, 0, 2, secs(1)), None);
    assert_eq!(d.record(0, Outcome::Success, secs(1)), None);
    assert_eq!(d.slots()[0].consecutive_failures(), 0);
    assert_eq!(fail(&d, 0, 2, secs(1)), None);
    let t = d.record(0, Outcome::ConnectFailure, secs(2)).expect("third failure in a row ejects");
    assert_eq!(t, OutlierTransition::Ejected { duration: secs(30), ejections: 1, consecutive_failures: 3 });
    assert_eq!(t.event_kind(), EventKind::Ejected { for_ms: 30_000, ejections: 1 });
    assert!(t.reason().contains("3 failed requests in a row"), "{}", t.reason());
    assert!(d.is_ejected(0, secs(31)) && !d.is_ejected(1, secs(31)));
}

#[test]
fn ejection_time_grows_with_repeats_up_to_the_cap() {
    let d = detector(10, &cfg(1, 50));
    let mut now = secs(0);
    let mut durations = Vec::new();
    for _ in 0..4 {
        match fail(&d, 3, 1, now) {
            Some(OutlierTransition::Ejected { duration, .. }) => durations.push(duration),
            other => panic!("expected an ejection, got {other:?}"),
        }
        now += durations[durations.len() - 1];
        assert!(!d.is_ejected(3, now), "back when the time passes");
    }
    assert_eq!(durations, vec![secs(30), secs(60), secs(75), secs(75)]);
}

#[test]
fn the_multiplier_resets_after_a_clean_max_ejection() {
    let d = detector(4, &cfg(1, 50));
    fail(&d, 0, 1, secs(0));
    fail(&d, 0, 1, secs(30));
    assert_eq!(d.slots()[0].ejections(), 2);
    d.record(0, Outcome::Success, secs(100)); // returned at 90, only 10s clean
    assert_eq!(d.slots()[0].ejections(), 2);
    d.record(0, Outcome::Success, secs(165)); // 75s clean
    assert_eq!(d.slots()[0].ejections(), 0);
    assert_eq!(fail(&d, 0, 1, secs(166)), Some(OutlierTransition::Ejected { duration: secs(30), ejections: 1, consecutive_failures: 1 }));
}

#[test]
fn failures_while_ejected_do_not_count() {
    let d = detector(4, &cfg(2, 50));
    fail(&d, 1, 2, secs(0));
    assert_eq!(fail(&d, 1, 5, secs(1)), None);
    assert_eq!(d.slots()[1].consecutive_failures(), 0);
}

#[test]
fn the_cap_holds_and_small_pools_may_still_eject_one() {
    let d = detector(10, &cfg(1, 20));
    assert_eq!(d.max_ejected(), 2);
    assert!(fail(&d, 0, 1, secs(0)).is_some());
    assert!(fail(&d, 1, 1, secs(0)).is_some());
    assert_eq!(fail(&d, 2, 1, secs(0)), None, "a third would pass 20% of 10");
    // The refused instance keeps its count and is ejected once there is room.
    assert_eq!(d.slots()[2].consecutive_failures(), 1);
    assert!(fail(&d, 2, 1, secs(30)).is_some());
    assert_eq!(d.ejected_count(secs(30)), 1);

    assert_eq!(detector(3, &cfg(1, 10)).max_ejected(), 1);
    assert_eq!(detector(3, &cfg(1, 0)).max_ejected(), 0);
    assert_eq!(fail(&detector(3, &cfg(1, 0)), 0, 5, secs(0)), None, "0% never ejects");
    assert_eq!(detector(0, &cfg(1, 100)).max_ejected(), 0);
}

#[test]
fn returns_are_reported_once() {
    let d = detector(4, &cfg(1, 100));
    fail(&d, 0, 1, secs(0));
    fail(&d, 2, 1, secs(10));
    assert!(d.returned(secs(29)).is_empty());
    assert_eq!(d.returned(secs(30)), vec![0]);
    assert!(d.returned(secs(31)).is_empty());
    assert_eq!(d.returned(secs(45)), vec![2]);
}

#[test]
fn disabled_or_unknown_instances_do_nothing() {
    let mut c = cfg(1, 100);
    let d = detector(2, &c);
    assert_eq!(d.record(7, Outcome::ServerError, secs(0)), None);
    assert!(!d.is_ejected(7, secs(0)));
    c.enabled = false;
    let d = detector(2, &c);
    assert_eq!(fail(&d, 0, 10, secs(0)), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the traffic, the number ejected at any moment stays within the cap, and an
    /// ejection only follows `consecutive_failures` failures in a row.
    #[test]
    fn never_ejects_more_than_the_cap(
        n in 1usize..25, percent in 0u32..=100, threshold in 1u32..4,
        steps in proptest::collection::vec((any::<usize>(), 0u8..4, 0u64..20_000), 0..400),
    ) {
        let d = detector(n, &cfg(threshold, percent));
        let cap = if percent == 0 { 0 } else { (n * percent as usize / 100).max(1) };
        prop_assert_eq!(d.max_ejected(), cap);
        let mut now = ms(0);
        for (i, o, dt) in steps {
            now += ms(dt);
            let outcome = [Outcome::Success, Outcome::ServerError, Outcome::ConnectFailure, Outcome::Timeout][o as usize];
            if let Some(OutlierTransition::Ejected { consecutive_failures, .. }) = d.record(i % n, outcome, now) {
                prop_assert!(consecutive_failures >= threshold);
            }
            prop_assert!(d.ejected_count(now) <= cap, "{} ejected, cap {}", d.ejected_count(now), cap);
        }
    }
}

#[test]
fn racing_threads_respect_the_cap() {
    let d = Arc::new(detector(20, &cfg(1, 10)));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let d = Arc::clone(&d);
            std::thread::spawn(move || {
                for round in 0..500 {
                    d.record((t * 5 + round) % 20, Outcome::ServerError, secs(1));
                    assert!(d.ejected_count(secs(1)) <= 2);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(d.ejected_count(secs(1)), 2);
}

#[test]
fn reinstate_ends_an_ejection_early_and_keeps_the_count() {
    let d = detector(2, &cfg(1, 100));
    assert!(d.record(0, Outcome::ConnectFailure, secs(1)).is_some(), "ejected");
    let slot = &d.slots()[0];
    assert!(slot.is_ejected(secs(2)));
    assert!(slot.reinstate(secs(2)));
    assert!(!slot.is_ejected(secs(2)));
    assert!(!slot.reinstate(secs(2)), "not ejected any more");
    assert_eq!(slot.ejections(), 1, "a relapse is ejected for longer");
    assert_eq!(d.returned(secs(2)), vec![0], "the return is reported once");
}
