//! The circuit breaker's failure-rate rule: a backend failing often but never
//! `failure_threshold` times in a row still opens its breaker once the 10 s window holds
//! `min_requests` requests and `failure_rate_threshold` of them failed.

use super::{ms, secs};
use crate::config::{CircuitBreakerConfig, ConfigDuration};
use crate::resilience::{CircuitBreaker, CircuitState, Outcome};
use proptest::prelude::*;
use std::time::Duration;

fn cfg(threshold: u32, min_requests: u32, rate: f64) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        enabled: true,
        failure_threshold: threshold,
        recovery_timeout: ConfigDuration::from_secs(1),
        half_open_requests: 1,
        min_requests,
        failure_rate_threshold: rate,
    }
}

/// Sends one request at `at`; returns whether it opened the breaker.
fn send(b: &CircuitBreaker, failed: bool, at: Duration) -> bool {
    let t = b.allow(at).expect("closed breaker admits");
    let outcome = if failed { Outcome::ServerError } else { Outcome::Success };
    match b.record(t, outcome, at) {
        Some(tr) => {
            assert_eq!((tr.from, tr.to), (CircuitState::Closed, CircuitState::Open));
            true
        }
        None => false,
    }
}

/// Sends `n` requests 10 ms apart following `pattern` (true: fails), from `start`;
/// returns the 1-based request that opened the breaker.
fn run(b: &CircuitBreaker, pattern: &[bool], n: usize, start: Duration) -> Option<usize> {
    (0..n).find(|&i| send(b, pattern[i % pattern.len()], start + ms(10 * i as u64))).map(|i| i + 1)
}

struct Case {
    name: &'static str,
    min_requests: u32,
    rate: f64,
    pattern: &'static [bool],
    expect: Option<usize>,
}

const ALT_OK_FIRST: &[bool] = &[false, true];
const ALT_ERR_FIRST: &[bool] = &[true, false];
const FORTY_PERCENT: &[bool] = &[false, true, false, true, false];

const CASES: &[Case] = &[
    Case { name: "alternating opens at min_requests", min_requests: 20, rate: 0.5, pattern: ALT_OK_FIRST, expect: Some(20) },
    Case { name: "alternating, failure first: the 21st (a failure) opens", min_requests: 20, rate: 0.5, pattern: ALT_ERR_FIRST, expect: Some(21) },
    Case { name: "alternating waits for a larger min_requests", min_requests: 100, rate: 0.5, pattern: ALT_OK_FIRST, expect: Some(100) },
    Case { name: "40% failures stay under 0.5", min_requests: 20, rate: 0.5, pattern: FORTY_PERCENT, expect: None },
    Case { name: "40% failures reach 0.4 at the first failure after min_requests", min_requests: 20, rate: 0.4, pattern: FORTY_PERCENT, expect: Some(22) },
    Case { name: "rate 0 turns the rule off", min_requests: 1, rate: 0.0, pattern: ALT_OK_FIRST, expect: None },
    Case { name: "rate 1 needs every request failed", min_requests: 20, rate: 1.0, pattern: ALT_OK_FIRST, expect: None },
];

#[test]
fn the_failure_rate_opens_the_breaker_without_failures_in_a_row() {
    for c in CASES {
        let b = CircuitBreaker::new(&cfg(5, c.min_requests, c.rate));
        assert_eq!(run(&b, c.pattern, 190, secs(0)), c.expect, "{}", c.name);
        let want = if c.expect.is_some() { CircuitState::Open } else { CircuitState::Closed };
        assert_eq!(b.state(), want, "{}", c.name);
    }
}

#[test]
fn old_failures_age_out_of_the_window() {
    // 18 requests, 9 failed, during second 0; then 3 more (2 failed) at `later`. Counted
    // together they are 21 requests with 11 failed: over 50%.
    for (later, opens, counted) in [(secs(9), true, (21, 11)), (secs(10), false, (3, 2))] {
        let b = CircuitBreaker::new(&cfg(5, 20, 0.5));
        assert_eq!(run(&b, ALT_ERR_FIRST, 18, secs(0)), None);
        assert_eq!(b.window_counts(secs(0)), (18, 9));
        let opened = [true, false, true].iter().enumerate().any(|(i, &f)| send(&b, f, later + ms(i as u64)));
        assert_eq!(opened, opens, "third batch at {later:?}");
        assert_eq!(b.window_counts(later), counted, "window at {later:?}");
    }
}

#[test]
fn closing_from_half_open_starts_a_fresh_window() {
    let b = CircuitBreaker::new(&cfg(5, 20, 0.5));
    assert_eq!(run(&b, ALT_OK_FIRST, 40, secs(0)), Some(20));
    assert!(b.allow(ms(500)).is_err(), "open within recovery_timeout");
    let trial = b.allow(secs(2)).expect("half-open trial");
    assert!(trial.is_probe());
    let tr = b.record(trial, Outcome::Success, secs(2)).expect("trial closes");
    assert_eq!((tr.from, tr.to), (CircuitState::HalfOpen, CircuitState::Closed));
    assert_eq!(b.window_counts(secs(2)), (0, 0), "the window restarts on close");
    // With the old window (20 requests, 10 failed) one failure would reopen it.
    assert!(!send(&b, true, secs(2)));
    assert_eq!((b.state(), b.window_counts(secs(2))), (CircuitState::Closed, (1, 1)));
    // And the rule works again on the fresh window: with that failure, the 20th request
    // of the new run (a failure) makes 21 requests, 11 failed.
    assert_eq!(run(&b, ALT_OK_FIRST, 40, secs(3)), Some(20));
}

#[test]
fn trial_outcomes_and_requests_while_open_are_not_counted() {
    let b = CircuitBreaker::new(&cfg(5, 20, 0.5));
    let stale = b.allow(secs(0)).expect("closed");
    assert_eq!(run(&b, ALT_OK_FIRST, 20, secs(0)), Some(20));
    assert_eq!(b.record(stale, Outcome::ServerError, secs(0)), None);
    assert_eq!(b.window_counts(secs(0)), (20, 10), "the stale result is not counted");
    let trial = b.allow(secs(2)).expect("half-open trial");
    let tr = b.record(trial, Outcome::Timeout, secs(2)).expect("trial fails");
    assert_eq!(tr.to, CircuitState::Open);
    assert_eq!(b.window_counts(secs(2)), (20, 10), "the trial is not counted");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The breaker opens exactly when a model says so: `threshold` failures in a row, or a
    /// failure leaving the last ten seconds with at least `min_requests` requests and a
    /// failed fraction of at least `rate`. So below the rate, without a run of
    /// failures, it never opens.
    #[test]
    fn opens_exactly_when_the_rate_or_the_run_says_so(
        threshold in 2u32..8,
        min_requests in 1u32..30,
        rate in proptest::sample::select(vec![0.0, 0.25, 0.3, 0.5, 0.75, 1.0]),
        steps in proptest::collection::vec((any::<bool>(), 0u64..900), 0..300),
    ) {
        let b = CircuitBreaker::new(&cfg(threshold, min_requests, rate));
        let (mut now_ms, mut run_len, mut seen) = (0u64, 0u32, Vec::<(u64, bool)>::new());
        for (i, (failed, dt)) in steps.into_iter().enumerate() {
            now_ms += dt;
            let second = now_ms / 1000;
            seen.push((second, failed));
            run_len = if failed { run_len + 1 } else { 0 };
            let window: Vec<bool> = seen.iter().filter(|(s, _)| s + 10 > second).map(|&(_, f)| f).collect();
            let failures = window.iter().filter(|&&f| f).count();
            let by_rate = rate > 0.0 && window.len() >= min_requests as usize
                && failures as f64 / window.len() as f64 >= rate;
            let expect = failed && (run_len >= threshold || by_rate);
            let opened = send(&b, failed, ms(now_ms));
            prop_assert_eq!(opened, expect, "step {} at {} ms: {} of {} failed, {} in a row", i, now_ms, failures, window.len(), run_len);
            if opened {
                break;
            }
        }
    }
}
