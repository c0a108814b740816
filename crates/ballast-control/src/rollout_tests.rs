//! Rollout planner tests: named cases and a simulation of whole rollouts checking the
//! surge and availability bounds at every step.

use super::*;

fn m(id: &str, version: u64, phase: Phase) -> Member {
    Member { id: id.into(), version, phase }
}

fn limits(max_surge: u32, max_unavailable: u32) -> RolloutLimits {
    RolloutLimits { max_surge, max_unavailable }
}

#[test]
fn zero_limits_are_refused_with_a_fix() {
    let err = limits(0, 0).validate().expect_err("stuck");
    assert!(err.to_string().contains("set max_surge = 1"), "{err}");
    limits(1, 0).validate().expect("surge");
    limits(0, 1).validate().expect("unavailable");
}

#[test]
fn named_cases() {
    let old4: Vec<Member> = (1..=4).map(|i| m(&format!("o{i}"), 1, Phase::Ready)).collect();
    let step = |create, drain: &[&str]| Plan::Step { create, drain: drain.iter().map(|s| s.to_string()).collect() };
    assert_eq!(plan(&old4, 4, 2, limits(1, 0)), step(1, &[]), "surge first, drain nothing");
    assert_eq!(plan(&old4, 4, 2, limits(0, 1)), step(0, &["o1"]), "no surge: drain one first");
    assert_eq!(plan(&old4, 4, 2, limits(2, 1)), step(2, &["o1"]));
    let mut mid = old4.clone();
    mid.push(m("n1", 2, Phase::Starting));
    assert_eq!(plan(&mid, 4, 2, limits(1, 0)), step(0, &[]), "wait for the new one");
    mid[4].phase = Phase::Ready;
    assert_eq!(plan(&mid, 4, 2, limits(1, 0)), step(0, &["o1"]));
    mid[4].phase = Phase::Failed;
    assert_eq!(plan(&mid, 4, 2, limits(1, 0)), Plan::Abort { reason: "new version 2: instance n1 failed".into() });
    let done: Vec<Member> = (1..=4).map(|i| m(&format!("n{i}"), 2, Phase::Ready)).collect();
    assert_eq!(plan(&done, 4, 2, limits(1, 0)), Plan::Done);
    let mut leaving = done.clone();
    leaving.push(m("o4", 1, Phase::Draining));
    assert_eq!(plan(&leaving, 4, 2, limits(1, 0)), step(0, &[]), "wait for the last drain");
}

/// Rolls 4 instances with several limits, instances becoming ready and drains finishing
/// one tick after they start; checks the bounds at every tick and that it finishes.
#[test]
fn whole_rollouts_stay_within_bounds() {
    for (surge, unavailable) in [(1, 0), (0, 1), (2, 0), (1, 1), (4, 2)] {
        let l = limits(surge, unavailable);
        let desired = 4;
        let mut members: Vec<Member> = (1..=4).map(|i| m(&format!("o{i}"), 1, Phase::Ready)).collect();
        let mut next = 0;
        let mut ticks = 0;
        loop {
            ticks += 1;
            assert!(ticks < 50, "no progress with {l:?}: {members:?}");
            // the world moves: starting → ready, draining → gone
            members.retain(|x| x.phase != Phase::Draining);
            for x in &mut members {
                if x.phase == Phase::Starting {
                    x.phase = Phase::Ready;
                }
            }
            let ready = members.iter().filter(|x| x.phase == Phase::Ready).count() as u32;
            assert!(ready >= desired - unavailable, "{l:?}: only {ready} ready");
            match plan(&members, desired, 2, l) {
                Plan::Done => break,
                Plan::Abort { reason } => panic!("{reason}"),
                Plan::Step { create, drain } => {
                    for id in drain {
                        let x = members.iter_mut().find(|x| x.id == id).expect("known id");
                        assert_eq!(x.version, 1, "only old instances drain");
                        x.phase = Phase::Draining;
                    }
                    for _ in 0..create {
                        next += 1;
                        members.push(m(&format!("n{next}"), 2, Phase::Starting));
                    }
                }
            }
            let total = members.len() as u32;
            assert!(total <= desired + surge, "{l:?}: {total} instances");
            let serving = members.iter().filter(|x| x.phase == Phase::Ready).count() as u32;
            assert!(serving >= desired - unavailable, "{l:?}: {serving} serving after the step");
        }
        assert_eq!(next, 4, "{l:?}: exactly one new instance per old one");
    }
}
