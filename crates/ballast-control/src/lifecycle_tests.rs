//! Table tests of the instance state machine and start-up statistics.

use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Drives an instance through `events` (each at the given second) and checks the phase.
struct Case {
    name: &'static str,
    events: Vec<(u64, Event)>,
    phase: Phase,
    reason: Option<&'static str>,
}

#[test]
fn transitions() {
    let started = || (1, Event::Started("127.0.0.1:1".into()));
    let cases = vec![
        Case { name: "created", events: vec![started()], phase: Phase::Starting, reason: None },
        Case { name: "create fails", events: vec![(1, Event::CreateFailed("quota".into()))], phase: Phase::Failed, reason: Some("create failed: quota") },
        Case { name: "first pass makes ready", events: vec![started(), (2, Event::HealthFailed), (3, Event::HealthPassed)], phase: Phase::Ready, reason: None },
        Case { name: "drain then stop", events: vec![started(), (3, Event::HealthPassed), (9, Event::Drain), (10, Event::HealthFailed), (11, Event::Stopped)], phase: Phase::Stopped, reason: None },
        Case { name: "exit while draining is a stop", events: vec![started(), (3, Event::HealthPassed), (9, Event::Drain), (10, Event::Exited("signal: 15".into()))], phase: Phase::Stopped, reason: None },
        Case { name: "crash", events: vec![started(), (3, Event::HealthPassed), (5, Event::Exited("signal: 9".into()))], phase: Phase::Failed, reason: Some("exited (signal: 9)") },
        Case { name: "start timeout", events: vec![started(), (61, Event::StartTimedOut)], phase: Phase::Failed, reason: Some("not ready 61s after start") },
        Case { name: "drain while starting", events: vec![started(), (2, Event::Drain)], phase: Phase::Draining, reason: None },
    ];
    for c in cases {
        let mut i = Instance::pending("w-1", s(0));
        for (at, e) in c.events {
            i.apply(e, s(at)).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        }
        assert_eq!(i.phase, c.phase, "{}", c.name);
        assert_eq!(i.reason.as_deref(), c.reason, "{}", c.name);
    }
}

#[test]
fn impossible_events_are_refused_and_change_nothing() {
    let mut i = Instance::pending("w-1", s(0));
    for bad in [Event::HealthPassed, Event::Drain, Event::Stopped, Event::Exited("x".into())] {
        let err = i.apply(bad.clone(), s(1)).expect_err("pending");
        assert_eq!(err, BadTransition { id: "w-1".into(), phase: Phase::Pending, event: bad });
    }
    i.apply(Event::CreateFailed("no".into()), s(1)).expect("fails");
    for bad in [Event::Started("a:1".into()), Event::HealthPassed, Event::Drain, Event::Stopped] {
        assert!(i.apply(bad, s(2)).is_err(), "failed is terminal");
    }
    assert_eq!(i.phase, Phase::Failed);
    assert!(i.apply(Event::Stopped, s(3)).expect_err("x").to_string().contains("while failed"));
}

#[test]
fn startup_time_and_replacement_reasons() {
    let (grace, timeout) = (s(30), s(60));
    let mut i = Instance::pending("w-1", s(100));
    i.apply(Event::Started("a:1".into()), s(101)).expect("start");
    assert_eq!(i.replacement_reason(s(159), grace, timeout), None);
    assert_eq!(i.replacement_reason(s(160), grace, timeout).as_deref(), Some("not ready 60s after start"));
    i.apply(Event::HealthPassed, s(104)).expect("ready");
    assert_eq!(i.startup_time(), Some(s(4)));
    i.apply(Event::HealthFailed, s(200)).expect("fail");
    i.apply(Event::HealthFailed, s(210)).expect("fail again keeps the first time");
    assert_eq!(i.replacement_reason(s(229), grace, timeout), None);
    assert_eq!(
        i.replacement_reason(s(230), grace, timeout).as_deref(),
        Some("failing health checks for 30s (grace 30s)")
    );
    i.apply(Event::HealthPassed, s(231)).expect("recovers");
    assert_eq!(i.replacement_reason(s(400), grace, timeout), None, "a pass resets the grace");
}

#[test]
fn startup_history_is_bounded_and_summarised() {
    let mut h = StartupHistory::new(20);
    assert_eq!(h.summary(), None);
    for secs in 1..=40 {
        h.record(s(secs));
    }
    let sum = h.summary().expect("times");
    assert_eq!(sum, StartupSummary { count: 20, mean: Duration::from_millis(30_500), p50: s(30), p95: s(39), max: s(40) });
    let mut one = StartupHistory::new(0);
    one.record(s(3));
    assert_eq!(one.summary().map(|x| (x.count, x.p95)), Some((1, s(3))));
}
