//! The per-instance circuit breaker: closed → open after `failure_threshold` failures in
//! a row, or once the last 10 s hold at least `min_requests` requests of which at least
//! `failure_rate_threshold` failed → half-open after `recovery_timeout`, when up to
//! `half_open_requests` trial requests are let through; all of them succeeding closes it
//! (with a fresh rate window), any failing reopens it.
//!
//! The whole state is one `AtomicU64` changed by compare-and-swap, so [`CircuitBreaker::allow`]
//! and [`CircuitBreaker::record`] take no lock and can never disagree about the state. The
//! rate window is the shared ten-slot atomic `Window`, also lock-free.

use super::events::{EventCounts, EventKind, HealthEvent};
use super::window::Window;
use super::{as_ms, Outcome};
use crate::config::CircuitBreakerConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// State of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitState {
    /// Requests flow; failures in a row are counted.
    Closed,
    /// Requests are refused until `recovery_timeout` has passed.
    Open,
    /// A limited number of trial requests decide between closed and open.
    HalfOpen,
}

impl CircuitState {
    /// The kebab-case name used in events and the API.
    pub fn name(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A change of [`CircuitState`]; the caller turns it into a `HealthEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitTransition {
    /// State before.
    pub from: CircuitState,
    /// State after.
    pub to: CircuitState,
}

impl CircuitTransition {
    /// The log entry for this transition of `instance` in `pool` at `now`.
    pub fn event(&self, now: Duration, pool: &str, instance: &str, cfg: &CircuitBreakerConfig) -> HealthEvent {
        let failures = if self.to == CircuitState::Open && self.from == CircuitState::Closed {
            cfg.failure_threshold
        } else {
            0
        };
        let counts = EventCounts { consecutive_successes: 0, consecutive_failures: failures };
        let kind = EventKind::Circuit { from: self.from, to: self.to };
        HealthEvent::new(now, pool, instance, kind, self.reason(cfg), counts)
    }

    /// A human reason for the change, given the breaker's thresholds.
    pub fn reason(&self, cfg: &CircuitBreakerConfig) -> String {
        match (self.from, self.to) {
            (CircuitState::Closed, CircuitState::Open) if cfg.failure_rate_threshold > 0.0 => format!(
                "{0} failures in a row (failure_threshold {0}), or at least {1}% of at least {2} requests in {3}s \
                 failed (failure_rate_threshold {4}, min_requests {2})",
                cfg.failure_threshold,
                (cfg.failure_rate_threshold * 100.0).round(),
                cfg.min_requests,
                Window::SPAN.as_secs(),
                cfg.failure_rate_threshold,
            ),
            (CircuitState::Closed, CircuitState::Open) => {
                format!("{0} failures in a row (failure_threshold {0})", cfg.failure_threshold)
            }
            (CircuitState::Open, CircuitState::HalfOpen) => {
                format!("recovery_timeout {} passed; letting trial requests through", cfg.recovery_timeout)
            }
            (CircuitState::HalfOpen, CircuitState::Open) => "a trial request failed".to_string(),
            (CircuitState::HalfOpen, CircuitState::Closed) => {
                format!("{} trial requests succeeded", cfg.half_open_requests)
            }
            (from, to) => format!("{from} → {to}"),
        }
    }
}

/// Permission to send one request, from [`CircuitBreaker::allow`]; hand it back to
/// [`CircuitBreaker::record`] with the outcome. Dropping it unrecorded is safe: a lost
/// trial is replaced once `recovery_timeout` passes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the outcome with CircuitBreaker::record"]
pub struct Ticket {
    probe: bool,
    epoch: u64,
    transition: Option<CircuitTransition>,
}

impl Ticket {
    /// Whether this request is a half-open trial.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// For a trial: when its trial period began (trials of one period share it).
    pub fn trial_period(&self) -> Option<Duration> {
        self.probe.then(|| Duration::from_millis(self.epoch))
    }

    /// The transition this admission caused (open → half-open), if any.
    pub fn transition(&self) -> Option<CircuitTransition> {
        self.transition
    }
}

/// The breaker refused a request: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Time until the breaker lets a trial through (rounded up to a second for the header).
    pub retry_after: Duration,
}

impl Rejected {
    /// `retry_after` in whole seconds, rounded up, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

// State word layout: bits 0-1 state; 2-11 field A (closed: failures in a row, half-open:
// trials admitted); 12-21 field B (half-open: trials succeeded); 22-63 a time in ms
// (open: opened at; half-open: trial period start, also the trial epoch).
const STATE_MASK: u64 = 0b11;
const FIELD_BITS: u32 = 10;
const FIELD_MAX: u64 = (1 << FIELD_BITS) - 1;
const A_SHIFT: u32 = 2;
const B_SHIFT: u32 = A_SHIFT + FIELD_BITS;
const T_SHIFT: u32 = B_SHIFT + FIELD_BITS;
const T_MAX: u64 = (1 << (64 - T_SHIFT)) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word {
    state: CircuitState,
    a: u64,
    b: u64,
    t: u64,
}

impl Word {
    fn unpack(w: u64) -> Word {
        let state = match w & STATE_MASK {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        };
        Word { state, a: (w >> A_SHIFT) & FIELD_MAX, b: (w >> B_SHIFT) & FIELD_MAX, t: w >> T_SHIFT }
    }

    fn pack(self) -> u64 {
        let s = match self.state {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        };
        s | (self.a.min(FIELD_MAX) << A_SHIFT) | (self.b.min(FIELD_MAX) << B_SHIFT) | (self.t.min(T_MAX) << T_SHIFT)
    }

    fn closed(failures: u64) -> Word {
        Word { state: CircuitState::Closed, a: failures, b: 0, t: 0 }
    }

    fn open(at_ms: u64) -> Word {
        Word { state: CircuitState::Open, a: 0, b: 0, t: at_ms }
    }

    fn half_open(admitted: u64, succeeded: u64, since_ms: u64) -> Word {
        Word { state: CircuitState::HalfOpen, a: admitted, b: succeeded, t: since_ms }
    }
}

/// A circuit breaker for one instance. Cheap to share (`Arc`); keep it next to the
/// instance's `BackendStats` so it survives snapshot swaps.
#[derive(Debug)]
pub struct CircuitBreaker {
    enabled: bool,
    threshold: u64,
    trials: u64,
    recovery_ms: u64,
    /// Requests in the window that let the rate rule open the circuit.
    min_requests: u64,
    /// `failure_rate_threshold` in millionths; 0: the rate rule is off.
    rate_ppm: u64,
    word: AtomicU64,
    /// Requests (`a`) and failures (`b`) recorded while closed, over [`Window::SPAN`].
    window: Window,
}

impl CircuitBreaker {
    /// A closed breaker with the given settings. Thresholds are clamped to 1..=1023, the
    /// recovery timeout to at least 1 ms (validation allows 1..=1000), `min_requests` to at
    /// least 1 and `failure_rate_threshold` to 0..=1 (NaN: rule off).
    pub fn new(cfg: &CircuitBreakerConfig) -> Self {
        let rate = if cfg.failure_rate_threshold.is_finite() { cfg.failure_rate_threshold.clamp(0.0, 1.0) } else { 0.0 };
        CircuitBreaker {
            enabled: cfg.enabled,
            threshold: u64::from(cfg.failure_threshold).clamp(1, FIELD_MAX),
            trials: u64::from(cfg.half_open_requests).clamp(1, FIELD_MAX),
            recovery_ms: as_ms(cfg.recovery_timeout.0).max(1),
            min_requests: u64::from(cfg.min_requests).max(1),
            rate_ppm: (rate * 1_000_000.0).round() as u64,
            word: AtomicU64::new(Word::closed(0).pack()),
            window: Window::default(),
        }
    }

    /// Asks to send a request at `now`. Closed: always yes. Open: no until
    /// `recovery_timeout` has passed, then the first caller turns it half-open and gets a
    /// trial. Half-open: yes for the first `half_open_requests` callers of the trial
    /// period, no for the others. A disabled breaker always says yes.
    pub fn allow(&self, now: Duration) -> Result<Ticket, Rejected> {
        let normal = Ticket { probe: false, epoch: 0, transition: None };
        if !self.enabled {
            return Ok(normal);
        }
        let now_ms = as_ms(now).min(T_MAX);
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let w = Word::unpack(cur);
            let due = w.t.saturating_add(self.recovery_ms);
            let (next, ticket) = match w.state {
                CircuitState::Closed => return Ok(normal),
                CircuitState::Open if now_ms < due => return Err(self.rejected(due, now_ms)),
                CircuitState::Open => {
                    let transition = CircuitTransition { from: CircuitState::Open, to: CircuitState::HalfOpen };
                    (Word::half_open(1, 0, now_ms), Ticket { probe: true, epoch: now_ms, transition: Some(transition) })
                }
                CircuitState::HalfOpen if w.a < self.trials => {
                    (Word::half_open(w.a + 1, w.b, w.t), Ticket { probe: true, epoch: w.t, transition: None })
                }
                // Every trial admitted and the period is over without a verdict: the
                // trials were lost (cancelled requests); start a new period.
                CircuitState::HalfOpen if now_ms >= due && now_ms > w.t => {
                    (Word::half_open(1, 0, now_ms), Ticket { probe: true, epoch: now_ms, transition: None })
                }
                CircuitState::HalfOpen => return Err(self.rejected(due, now_ms)),
            };
            match self.word.compare_exchange_weak(cur, next.pack(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(ticket),
                Err(actual) => cur = actual,
            }
        }
    }

    fn rejected(&self, due_ms: u64, now_ms: u64) -> Rejected {
        Rejected { retry_after: Duration::from_millis(due_ms.saturating_sub(now_ms).max(1)) }
    }

    /// Records the outcome of a request admitted with `ticket`. Results that belong to an
    /// earlier state (a request admitted while closed finishing after the circuit opened,
    /// a trial of an earlier period) are ignored. Returns the transition, if any.
    pub fn record(&self, ticket: Ticket, outcome: Outcome, now: Duration) -> Option<CircuitTransition> {
        if !self.enabled {
            return None;
        }
        let now_ms = as_ms(now).min(T_MAX);
        let failed = outcome.is_failure();
        let mut cur = self.word.load(Ordering::Acquire);
        let rate_tripped = !ticket.probe
            && Word::unpack(cur).state == CircuitState::Closed
            && self.count(now, failed);
        loop {
            let w = Word::unpack(cur);
            let next = match (w.state, ticket.probe) {
                (CircuitState::Closed, false) if !failed && w.a == 0 => return None,
                (CircuitState::Closed, false) if !failed => Word::closed(0),
                (CircuitState::Closed, false) if rate_tripped || w.a + 1 >= self.threshold => Word::open(now_ms),
                (CircuitState::Closed, false) => Word::closed(w.a + 1),
                (CircuitState::HalfOpen, true) if ticket.epoch == w.t => {
                    if failed {
                        Word::open(now_ms)
                    } else if w.b + 1 >= self.trials {
                        Word::closed(0)
                    } else {
                        Word::half_open(w.a, w.b + 1, w.t)
                    }
                }
                _ => return None,
            };
            if self.word.compare_exchange_weak(cur, next.pack(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
                if w.state == CircuitState::HalfOpen && next.state == CircuitState::Closed {
                    // Recovered: failures from before the outage no longer count.
                    self.window.clear();
                }
                return (next.state != w.state).then_some(CircuitTransition { from: w.state, to: next.state });
            }
            cur = self.word.load(Ordering::Acquire);
        }
    }

    /// Counts one closed-state request at `now` in the rate window; true when it was a
    /// failure and the window now trips the rate rule.
    fn count(&self, now: Duration, failed: bool) -> bool {
        self.window.add(now, 1, u64::from(failed));
        if !failed || self.rate_ppm == 0 {
            return false;
        }
        let (requests, failures) = self.window.totals(now);
        requests >= self.min_requests
            && u128::from(failures) * 1_000_000 >= u128::from(requests) * u128::from(self.rate_ppm)
    }

    /// Requests and failures counted in the rate window ending at `now` (for metrics and
    /// the API).
    pub fn window_counts(&self, now: Duration) -> (u64, u64) {
        self.window.totals(now)
    }

    /// The stored state (an open breaker whose timeout has passed reads `Open` until the
    /// next [`CircuitBreaker::allow`] turns it half-open).
    pub fn state(&self) -> CircuitState {
        Word::unpack(self.word.load(Ordering::Acquire)).state
    }

    /// Whether [`CircuitBreaker::allow`] would refuse at `now`, without changing state:
    /// open and within its recovery timeout, or half-open with every trial taken and the
    /// trial period not over. Failover asks this so a recovered breaker gets its trial.
    pub fn is_refusing(&self, now: Duration) -> bool {
        if !self.enabled {
            return false;
        }
        let w = Word::unpack(self.word.load(Ordering::Acquire));
        let now_ms = as_ms(now).min(T_MAX);
        let due = w.t.saturating_add(self.recovery_ms);
        match w.state {
            CircuitState::Closed => false,
            CircuitState::Open => now_ms < due,
            CircuitState::HalfOpen => w.a >= self.trials && !(now_ms >= due && now_ms > w.t),
        }
    }

    /// Failures in a row counted while closed (0 in the other states).
    pub fn consecutive_failures(&self) -> u32 {
        let w = Word::unpack(self.word.load(Ordering::Acquire));
        match w.state {
            CircuitState::Closed => u32::try_from(w.a).unwrap_or(u32::MAX),
            _ => 0,
        }
    }
}
