//! The one place the proxy writes live per-backend stats.
//!
//! `ballast-core` will grow `BackendStats::on_request_start` / `on_request_end`; until
//! then these two functions do the same atomics, and swapping them for the core methods
//! is a change to this file only.

use ballast_core::balance::BackendStats;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The proxy's monotonic time base: `now()` is the time since the proxy started, the
/// origin every `BackendStats` timestamp and `PickContext::now` share. It reads tokio's
/// clock, so tests with a paused clock control it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock whose origin is this instant.
    pub fn start() -> Self {
        Clock { origin: tokio::time::Instant::now() }
    }

    /// Time since the origin.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Decay time constant of the latency EWMA: an observation weighs `1 - e^(-dt/TAU)`.
const EWMA_TAU: Duration = Duration::from_secs(10);

/// A request to this backend starts: one more in flight, one more sent.
pub fn record_start(stats: &BackendStats) {
    stats.in_flight.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(1, Ordering::Relaxed);
}

/// A request to this backend ended at `now` (the proxy's monotonic origin) after
/// `latency`; `success` is false for connect errors, timeouts and 5xx.
///
/// The latency estimate is a peak EWMA: a slower observation replaces the estimate at
/// once, a faster one decays it with time constant [`EWMA_TAU`].
pub fn record_end(stats: &BackendStats, now: Duration, latency: Duration, success: bool) {
    // Saturating: a stray extra end must not wrap the gauge to u32::MAX.
    let _ = stats.in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    if !success {
        stats.failures.fetch_add(1, Ordering::Relaxed);
    }
    let now_ns = as_ns(now);
    let rtt = as_ns(latency);
    let prev = stats.ewma_ns.load(Ordering::Relaxed);
    let prev_at = stats.ewma_at_ns.swap(now_ns, Ordering::Relaxed);
    let next = if prev == 0 || rtt > prev {
        rtt
    } else {
        let dt = now_ns.saturating_sub(prev_at) as f64;
        let w = (-dt / EWMA_TAU.as_nanos() as f64).exp();
        (prev as f64 * w + rtt as f64 * (1.0 - w)) as u64
    };
    stats.ewma_ns.store(next, Ordering::Relaxed);
}

fn as_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_end_balance_the_in_flight_gauge() {
        let s = BackendStats::default();
        record_start(&s);
        record_start(&s);
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 2);
        record_end(&s, Duration::from_secs(1), Duration::from_millis(5), true);
        record_end(&s, Duration::from_secs(1), Duration::from_millis(5), false);
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(s.requests.load(Ordering::Relaxed), 2);
        assert_eq!(s.failures.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn extra_end_does_not_wrap_in_flight() {
        let s = BackendStats::default();
        record_end(&s, Duration::ZERO, Duration::ZERO, true);
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ewma_jumps_to_peaks_and_decays_towards_faster_samples() {
        let s = BackendStats::default();
        record_end(&s, Duration::from_secs(1), Duration::from_millis(10), true);
        assert_eq!(s.ewma_ns.load(Ordering::Relaxed), 10_000_000);
        record_end(&s, Duration::from_secs(2), Duration::from_millis(100), true);
        assert_eq!(s.ewma_ns.load(Ordering::Relaxed), 100_000_000, "a peak is taken at once");
        // 10 s later (one time constant) a 0-latency sample pulls it to ~e^-1 of the peak.
        record_end(&s, Duration::from_secs(12), Duration::ZERO, true);
        let v = s.ewma_ns.load(Ordering::Relaxed) as f64;
        assert!((v - 100e6 * (-1.0f64).exp()).abs() < 1e3, "got {v}");
    }
}
