use super::{ms, secs};
use crate::config::{CircuitBreakerConfig, ConfigDuration};
use crate::resilience::{CircuitBreaker, CircuitState, Outcome, Ticket};
use proptest::prelude::*;
use std::sync::Arc;

fn cfg(threshold: u32, recovery_s: u64, trials: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        enabled: true,
        failure_threshold: threshold,
        recovery_timeout: ConfigDuration::from_secs(recovery_s),
        half_open_requests: trials,
        // The rate rule is off here; breaker_rate.rs covers it.
        min_requests: 20,
        failure_rate_threshold: 0.0,
    }
}

const OK: Outcome = Outcome::Success;
const ERR: Outcome = Outcome::ServerError;

fn fail_n(b: &CircuitBreaker, n: u32, at: std::time::Duration) {
    for _ in 0..n {
        let t = b.allow(at).expect("closed admits");
        b.record(t, Outcome::ConnectFailure, at);
    }
}

#[test]
fn closed_opens_after_threshold_failures_in_a_row() {
    let b = CircuitBreaker::new(&CircuitBreakerConfig::default());
    fail_n(&b, 4, secs(1));
    assert_eq!((b.state(), b.consecutive_failures()), (CircuitState::Closed, 4));
    // A success resets the count.
    let t = b.allow(secs(1)).expect("closed");
    assert_eq!(b.record(t, OK, secs(1)), None);
    assert_eq!(b.consecutive_failures(), 0);
    fail_n(&b, 4, secs(2));
    let t = b.allow(secs(2)).expect("closed");
    let tr = b.record(t, Outcome::Timeout, secs(2)).expect("fifth failure opens");
    assert_eq!((tr.from, tr.to), (CircuitState::Closed, CircuitState::Open));
    assert_eq!(tr.reason(&cfg(5, 30, 1)), "5 failures in a row (failure_threshold 5)");
}

#[test]
fn open_rejects_with_retry_after_until_recovery_timeout() {
    let b = CircuitBreaker::new(&cfg(2, 30, 1));
    fail_n(&b, 2, secs(10));
    let r = b.allow(secs(10)).expect_err("open");
    assert_eq!(r.retry_after, secs(30));
    let r = b.allow(ms(39_500)).expect_err("still open");
    assert_eq!((r.retry_after, r.retry_after_secs()), (ms(500), 1));
    let t = b.allow(secs(40)).expect("half-open trial");
    assert!(t.is_probe());
    let tr = t.transition().expect("open → half-open");
    assert_eq!((tr.from, tr.to), (CircuitState::Open, CircuitState::HalfOpen));
    assert_eq!(b.state(), CircuitState::HalfOpen);
}

#[test]
fn half_open_admits_only_the_allowance_then_closes_on_success() {
    let b = CircuitBreaker::new(&cfg(1, 5, 2));
    fail_n(&b, 1, secs(0));
    let t1 = b.allow(secs(5)).expect("trial 1");
    let t2 = b.allow(secs(5)).expect("trial 2");
    assert!(b.allow(secs(6)).is_err(), "a third request is refused while trials run");
    assert_eq!(b.record(t1, OK, secs(6)), None, "one of two trials is not enough");
    let tr = b.record(t2, OK, secs(6)).expect("both trials passed");
    assert_eq!((tr.from, tr.to), (CircuitState::HalfOpen, CircuitState::Closed));
    assert!(!b.allow(secs(6)).expect("closed").is_probe());
}

#[test]
fn a_failed_trial_reopens_for_a_full_timeout() {
    let b = CircuitBreaker::new(&cfg(1, 5, 1));
    fail_n(&b, 1, secs(0));
    let t = b.allow(secs(5)).expect("trial");
    let tr = b.record(t, ERR, secs(7)).expect("reopens");
    assert_eq!((tr.from, tr.to), (CircuitState::HalfOpen, CircuitState::Open));
    assert_eq!(b.allow(secs(8)).expect_err("open").retry_after, secs(4));
    assert!(b.allow(secs(12)).is_ok());
}

#[test]
fn stale_results_are_ignored() {
    let b = CircuitBreaker::new(&cfg(1, 5, 1));
    let early = b.allow(secs(0)).expect("closed");
    fail_n(&b, 1, secs(0));
    // A request admitted while closed fails after the circuit opened: no effect.
    assert_eq!(b.record(early, ERR, secs(1)), None);
    let trial = b.allow(secs(5)).expect("trial");
    // A closed-era success during half-open does not close the circuit.
    assert_eq!(b.record(early, OK, secs(5)), None);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    // The trial is lost; once the timeout passes again a new trial period starts, and the
    // old trial's late result no longer counts.
    assert!(b.allow(secs(9)).is_err());
    let again = b.allow(secs(10)).expect("new trial period");
    assert!(again.is_probe() && again.transition().is_none());
    assert_eq!(b.record(trial, OK, secs(10)), None);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    assert!(b.record(again, OK, secs(10)).is_some());
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn a_disabled_breaker_always_admits() {
    let mut c = cfg(1, 5, 1);
    c.enabled = false;
    let b = CircuitBreaker::new(&c);
    fail_n(&b, 100, secs(0));
    assert_eq!(b.state(), CircuitState::Closed);
    assert!(b.allow(secs(0)).is_ok());
}

#[test]
fn racing_threads_get_at_most_the_allowance_of_trials() {
    let b = Arc::new(CircuitBreaker::new(&cfg(1, 1, 3)));
    fail_n(&b, 1, secs(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || (0..1000).filter(|_| b.allow(secs(1)).is_ok()).count())
        })
        .collect();
    let admitted: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(admitted, 3);
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Allow,
    Finish(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..4000).prop_map(Op::Advance),
        Just(Op::Allow),
        (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Finish(i, ok)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the interleaving, one trial period (identified by when it began) never
    /// admits more than `half_open_requests` requests, nothing is admitted while open
    /// before the timeout, and everything is admitted while closed.
    #[test]
    fn half_open_never_admits_more_than_the_allowance(
        threshold in 1u32..4, trials in 1u32..4, ops in proptest::collection::vec(op(), 0..200),
    ) {
        let b = CircuitBreaker::new(&cfg(threshold, 2, trials));
        let mut now = ms(0);
        let mut open: Vec<Ticket> = Vec::new();
        let mut trials_per_period: std::collections::HashMap<std::time::Duration, u32> = Default::default();
        let mut opened_at = None;
        for op in ops {
            match op {
                Op::Advance(d) => now += ms(d),
                Op::Allow => {
                    let before = b.state();
                    match b.allow(now) {
                        Ok(t) => {
                            if let Some(p) = t.trial_period() {
                                let n = trials_per_period.entry(p).or_default();
                                *n += 1;
                                prop_assert!(*n <= trials, "{} trials in one period", n);
                            } else {
                                prop_assert_eq!(before, CircuitState::Closed);
                            }
                            if let Some(at) = opened_at {
                                if before == CircuitState::Open {
                                    prop_assert!(now >= at + secs(2), "admitted before the recovery timeout");
                                }
                            }
                            open.push(t);
                        }
                        Err(r) => prop_assert!(before != CircuitState::Closed && r.retry_after > ms(0)),
                    }
                }
                Op::Finish(i, ok) if !open.is_empty() => {
                    let t = open.swap_remove(i % open.len());
                    let outcome = if ok { Outcome::Success } else { Outcome::ServerError };
                    if let Some(tr) = b.record(t, outcome, now) {
                        if tr.to == CircuitState::Open { opened_at = Some(now); }
                    }
                }
                Op::Finish(..) => {}
            }
        }
    }
}

#[test]
fn is_refusing_mirrors_allow_without_changing_state() {
    let b = CircuitBreaker::new(&cfg(2, 10, 1));
    assert!(!b.is_refusing(secs(1)), "closed");
    fail_n(&b, 2, secs(1));
    assert!(b.is_refusing(secs(5)), "open within the recovery timeout");
    assert!(!b.is_refusing(secs(11)), "timeout passed: a trial would go");
    assert_eq!(b.state(), CircuitState::Open, "asking changed nothing");
    let _trial = b.allow(secs(11)).expect("trial");
    assert!(b.is_refusing(secs(12)), "half-open, its one trial taken");
    assert!(!b.is_refusing(secs(22)), "trial period over: a new trial would go");
}
