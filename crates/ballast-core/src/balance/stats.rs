//! Live per-backend statistics: atomics written by the proxy and health checks, read by
//! the balancer on every pick. They outlive balancer rebuilds (the proxy keeps them by id).

use super::estimate::RifLatency;
use super::histogram::LatencyHistogram;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Live state of one backend. All fields are atomics: no lock is ever taken.
#[derive(Debug)]
pub struct BackendStats {
    /// Requests currently in flight to this backend.
    pub in_flight: AtomicU32,
    /// Total requests sent.
    pub requests: AtomicU64,
    /// Total failed requests (connect errors, timeouts, 5xx).
    pub failures: AtomicU64,
    /// False when health checking or outlier detection took it out of rotation.
    pub healthy: AtomicBool,
    /// True while the controller drains it: no new requests.
    pub draining: AtomicBool,
    /// When it became ready (nanoseconds on the caller's monotonic origin); slow start
    /// ramps from here.
    pub ready_at_ns: AtomicU64,
    /// Peak-EWMA latency estimate in nanoseconds.
    pub ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated (nanoseconds on the caller's origin).
    pub ewma_at_ns: AtomicU64,
    /// Latency by RIF level and probe bookkeeping, for the adaptive algorithm.
    pub(super) rif_latency: RifLatency,
    /// Every finished request's latency (successes and failures alike), for p50/p95/p99
    /// over a sampling interval: snapshot it and take deltas.
    pub latency: LatencyHistogram,
}

impl Default for BackendStats {
    fn default() -> Self {
        BackendStats {
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            ready_at_ns: AtomicU64::new(0),
            ewma_ns: AtomicU64::new(0),
            ewma_at_ns: AtomicU64::new(0),
            rif_latency: RifLatency::default(),
            latency: LatencyHistogram::default(),
        }
    }
}

impl BackendStats {
    /// A backend that became ready at `now` (slow start ramps from there).
    pub fn ready_at(now: Duration) -> Self {
        let s = BackendStats::default();
        s.ready_at_ns.store(duration_ns(now), Ordering::Relaxed);
        s
    }

    /// Whether the balancer may send it new requests (outside panic mode).
    pub fn is_eligible(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }
}

impl BackendStats {
    /// Records that a request was sent: `in_flight += 1`, `requests += 1`.
    pub fn on_request_start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that a request finished at `now` after `latency`: `in_flight -= 1`
    /// (saturating at 0), `failures += 1` when `!success`, counts `latency` in the
    /// [`latency`](Self::latency) histogram, and feeds the peak-EWMA and the adaptive
    /// algorithm's estimate for the RIF level the request saw (itself included).
    ///
    /// A failure is observed as at least [`PEAK_EWMA_FAILURE_PENALTY`] times the current
    /// estimate ([`PEAK_EWMA_DEFAULT_RTT`] before the first sample): a backend that fails fast would
    /// otherwise look like the fastest one and attract traffic (a "black hole").
    pub fn on_request_end(&self, now: Duration, latency: Duration, success: bool) {
        // Err means it was already 0: an unmatched end is ignored rather than wrapping.
        let rif = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
            .unwrap_or(0)
            .max(1);
        self.rif_latency.observe(now, rif, latency, success, true);
        self.latency.record(latency);
        // Through u64 (584 years of ns): no 128-bit float conversion per request.
        let mut sample = duration_ns(latency) as f64;
        if !success {
            self.failures.fetch_add(1, Ordering::Relaxed);
            let current = self.peak_ewma(now).unwrap_or(PEAK_EWMA_DEFAULT_RTT);
            sample = sample.max(current.as_nanos() as f64 * PEAK_EWMA_FAILURE_PENALTY);
        }
        self.observe_rtt(now, sample);
    }

    /// Records that a probe is being sent at `now` (starts the rate-limit window of
    /// [`probe_due`](super::probe_due)).
    pub fn on_probe_sent(&self, now: Duration) {
        self.rif_latency.probe_sent(now);
    }

    /// Records a probe's answer at `now` after `latency`; `success` is false for errors,
    /// timeouts and 5xx. It updates the adaptive estimate at the current RIF (+1 for the
    /// probe) like a real response would, but it is not traffic: no counter moves.
    pub fn on_probe_result(&self, now: Duration, latency: Duration, success: bool) {
        let rif = self.in_flight.load(Ordering::Relaxed).saturating_add(1);
        self.rif_latency.observe(now, rif, latency, success, false);
    }

    /// Probes sent to this backend so far.
    pub fn probes_sent(&self) -> u64 {
        self.rif_latency.probes()
    }

    /// The adaptive algorithm's latency estimate for one more request at `now` (at the RIF
    /// level of `in_flight + 1`), or None before any response or probe result.
    pub fn latency_estimate(&self, now: Duration) -> Option<Duration> {
        let rif = self.in_flight.load(Ordering::Relaxed).saturating_add(1);
        self.rif_latency.estimate(now, rif)
    }

    /// Folds one latency sample (nanoseconds) into the peak-EWMA (finagle/linkerd style).
    ///
    /// A sample above the current (decayed) estimate replaces it at once, so a backend
    /// that slows down is avoided immediately; a lower sample only pulls the estimate down
    /// with weight `1 - exp(-elapsed / PEAK_EWMA_WINDOW)`, so recovery takes a few windows
    /// of answers. The two atomics are not updated as one: concurrent completions may lose
    /// a sample, which a load heuristic tolerates, and no lock is taken.
    fn observe_rtt(&self, now: Duration, rtt_ns: f64) {
        let now_ns = duration_ns(now);
        let rtt_ns = rtt_ns.max(1.0);
        let prev = self.ewma_ns.load(Ordering::Relaxed);
        let next = if prev == 0 {
            rtt_ns
        } else {
            let elapsed = now_ns.saturating_sub(self.ewma_at_ns.load(Ordering::Relaxed));
            let decayed = prev as f64 * decay_weight(elapsed, PEAK_EWMA_DECAY);
            if rtt_ns > decayed {
                rtt_ns
            } else {
                let keep = decay_weight(elapsed, PEAK_EWMA_WINDOW);
                decayed * keep + rtt_ns * (1.0 - keep)
            }
        };
        // 0 means "no sample yet", so a stored estimate is at least 1 ns.
        self.ewma_ns.store((next.round() as u64).max(1), Ordering::Relaxed);
        self.ewma_at_ns.store(now_ns, Ordering::Relaxed);
    }

    /// The peak-EWMA latency estimate decayed to `now`, or None before the first sample.
    ///
    /// Without new samples the estimate decays towards zero with time constant
    /// [`PEAK_EWMA_DECAY`], so a backend that was slow long ago is tried again.
    pub fn peak_ewma(&self, now: Duration) -> Option<Duration> {
        let prev = self.ewma_ns.load(Ordering::Relaxed);
        if prev == 0 {
            return None;
        }
        let elapsed = duration_ns(now).saturating_sub(self.ewma_at_ns.load(Ordering::Relaxed));
        Some(Duration::from_nanos((prev as f64 * decay_weight(elapsed, PEAK_EWMA_DECAY)) as u64))
    }

    /// The peak-EWMA load cost at `now`: estimated latency in nanoseconds times
    /// `(in_flight + 1)`. A backend without samples is costed at [`PEAK_EWMA_DEFAULT_RTT`]
    /// so new backends get tried; the latency is floored at 1 ns so that fully decayed
    /// backends still compare by their in-flight count.
    pub fn peak_ewma_cost(&self, now: Duration) -> f64 {
        let rtt = duration_ns(self.peak_ewma(now).unwrap_or(PEAK_EWMA_DEFAULT_RTT)) as f64;
        rtt.max(1.0) * (f64::from(self.in_flight.load(Ordering::Relaxed)) + 1.0)
    }

    /// Slow-start factor in `[MIN_SLOW_START_FACTOR, 1.0]`: how much of its weight this
    /// backend gets at `now`, ramping linearly over `window` from `ready_at_ns`.
    /// A zero window, or a backend ready for at least `window`, gives 1.0.
    pub fn slow_start_factor(&self, now: Duration, window: Duration) -> f64 {
        let window_ns = duration_ns(window);
        let age = duration_ns(now).saturating_sub(self.ready_at_ns.load(Ordering::Relaxed));
        if age >= window_ns {
            return 1.0;
        }
        (age as f64 / window_ns as f64).max(MIN_SLOW_START_FACTOR)
    }
}

/// Latency assumed for a backend with no sample yet (linkerd's default): optimistic
/// enough that a new backend is tried soon, pessimistic enough not to flood it.
pub const PEAK_EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);

/// How long an estimate without new samples is remembered: it keeps
/// `exp(-elapsed / PEAK_EWMA_DECAY)` of its value, so a backend that was slow (or failed)
/// a while ago is tried again. 1 s, where linkerd and finagle use 10 s for everything;
/// here it governs only backends that get no answers (see [`PEAK_EWMA_WINDOW`]).
pub const PEAK_EWMA_DECAY: Duration = Duration::from_secs(1);

/// Averaging window of a backend that keeps answering: a sample below the estimate pulls
/// it down with weight `1 - exp(-elapsed / PEAK_EWMA_WINDOW)`, `elapsed` being the time
/// since the previous sample.
///
/// Why apart from [`PEAK_EWMA_DECAY`], and why short: a peak is taken at once, so at tens
/// of thousands of answers a second the estimate is the worst latency of the last window,
/// and a proxy busy on one event loop has a hiccup of a few milliseconds every so often.
/// Every fast backend then carried that hiccup for the whole window, its cost (latency ×
/// in flight, with ~20 in flight each) rose above a slow backend's with nothing in flight,
/// and the slow backend got traffic. With one time constant (1 s) that was 0.47% of the
/// requests to a 20 ms backend in `adaptive_sim.rs`, 0.14% with this 20 ms window; the
/// benchmark's p99 (wrk's, corrected for coordinated omission) moves with that share.
/// A backend at 50 answers a second still averages over about its last two.
pub const PEAK_EWMA_WINDOW: Duration = Duration::from_millis(20);

/// A failed request is observed as at least this multiple of the current estimate.
pub const PEAK_EWMA_FAILURE_PENALTY: f64 = 2.0;

/// Smallest slow-start factor: a brand-new backend still gets 10% of its weight, so it
/// warms up instead of sitting idle.
pub const MIN_SLOW_START_FACTOR: f64 = 0.1;

/// The weight an estimate `elapsed_ns` old keeps under time constant `tau`:
/// `exp(-elapsed / tau)`.
fn decay_weight(elapsed_ns: u64, tau: Duration) -> f64 {
    (-(elapsed_ns as f64) / tau.as_nanos() as f64).exp()
}

/// A duration as whole nanoseconds, saturating at `u64::MAX` (~584 years).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn request_counters_and_saturating_in_flight() {
        let s = BackendStats::default();
        s.on_request_start();
        s.on_request_start();
        s.on_request_end(at(1), MS, true);
        s.on_request_end(at(1), MS, false);
        s.on_request_end(at(1), MS, true); // unmatched: stays at 0
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(s.requests.load(Ordering::Relaxed), 2);
        assert_eq!(s.failures.load(Ordering::Relaxed), 1);
        let h = s.latency.snapshot();
        assert_eq!(h.count(), 3, "every end is in the histogram, failures too");
        let p50 = h.quantile(0.5).expect("recorded");
        assert!(p50.abs_diff(MS) <= MS / 64, "{p50:?}");
        s.on_probe_result(at(2), 50 * MS, true);
        assert_eq!(s.latency.snapshot().count(), 3, "probes are not traffic");
    }

    #[test]
    fn ewma_takes_peaks_at_once_and_lower_samples_gradually() {
        let s = BackendStats::default();
        assert_eq!(s.peak_ewma(at(0)), None);
        s.on_request_end(at(10), 20 * MS, true);
        assert_eq!(s.peak_ewma(at(10)), Some(20 * MS), "first sample is the estimate");
        s.on_request_end(at(10), 100 * MS, true);
        assert_eq!(s.peak_ewma(at(10)), Some(100 * MS), "a peak replaces it");
        // Half a window later a 10 ms sample: the 100 ms peak decayed over that time
        // (e^(-t/DECAY)) keeps e^-0.5 ≈ 0.607 of its weight, the sample gets the rest.
        let later = at(10) + PEAK_EWMA_WINDOW / 2;
        s.on_request_end(later, 10 * MS, true);
        let decayed = 100.0 * (-(PEAK_EWMA_WINDOW / 2).as_secs_f64() / PEAK_EWMA_DECAY.as_secs_f64()).exp();
        let keep = (-0.5f64).exp();
        let expected = decayed * keep + 10.0 * (1.0 - keep);
        let est = s.peak_ewma(later).expect("sampled").as_secs_f64() * 1000.0;
        assert!((est - expected).abs() < 0.01, "estimate {est} ms, expected {expected} ms");
    }

    /// A backend answering all the time forgets a peak within a few windows; one that
    /// gets no answers keeps its last estimate, fading only with `PEAK_EWMA_DECAY`.
    #[test]
    fn a_busy_backend_forgets_a_peak_in_windows_an_idle_one_keeps_it() {
        let (busy, idle) = (BackendStats::default(), BackendStats::default());
        busy.on_request_end(Duration::ZERO, 10 * MS, true);
        idle.on_request_end(Duration::ZERO, 10 * MS, true);
        let step = Duration::from_micros(100);
        let mut now = Duration::ZERO;
        while now < 5 * PEAK_EWMA_WINDOW {
            now += step;
            busy.on_request_end(now, MS, true);
        }
        let busy_ms = busy.peak_ewma(now).expect("sampled").as_secs_f64() * 1000.0;
        assert!(busy_ms < 1.1, "busy backend still at {busy_ms} ms");
        let idle_ms = idle.peak_ewma(now).expect("sampled").as_secs_f64() * 1000.0;
        let expected = 10.0 * (-now.as_secs_f64() / PEAK_EWMA_DECAY.as_secs_f64()).exp();
        assert!((idle_ms - expected).abs() < 0.01, "idle backend at {idle_ms} ms, expected {expected}");
        assert!(idle_ms > 9.0, "idle backend forgot too soon: {idle_ms} ms");
    }

    #[test]
    fn ewma_decays_towards_zero_without_samples() {
        let s = BackendStats::default();
        s.on_request_end(at(0), 100 * MS, true);
        let later = s.peak_ewma(PEAK_EWMA_DECAY).expect("sampled");
        assert!((later.as_secs_f64() - 0.1 / std::f64::consts::E).abs() < 1e-6, "{later:?}");
        assert!(s.peak_ewma(at(600)).expect("sampled") < Duration::from_micros(1));
    }

    #[test]
    fn ewma_cost_scales_with_in_flight_and_defaults_for_new_backends() {
        let s = BackendStats::default();
        let default = PEAK_EWMA_DEFAULT_RTT.as_nanos() as f64;
        assert_eq!(s.peak_ewma_cost(at(1)), default);
        s.in_flight.store(3, Ordering::Relaxed);
        assert_eq!(s.peak_ewma_cost(at(1)), 4.0 * default);
        s.on_request_end(at(1), 5 * MS, true);
        assert_eq!(s.peak_ewma_cost(at(1)), 3.0 * 5e6);
        assert_eq!(s.peak_ewma_cost(at(100_000)), 3.0, "fully decayed: floor of 1 ns");
    }

    #[test]
    fn a_fast_failure_is_penalised() {
        let s = BackendStats::default();
        s.on_request_end(at(1), 5 * MS, false);
        assert_eq!(s.peak_ewma(at(1)), Some(2 * PEAK_EWMA_DEFAULT_RTT), "twice the default");
        s.on_request_end(at(1), MS, false);
        assert_eq!(s.peak_ewma(at(1)), Some(4 * PEAK_EWMA_DEFAULT_RTT), "doubles per failure");
        s.on_request_end(at(1), Duration::from_secs(5), false);
        assert_eq!(s.peak_ewma(at(1)), Some(Duration::from_secs(5)), "a slow failure counts as is");
    }

    #[test]
    fn slow_start_ramps_linearly_with_a_floor() {
        let s = BackendStats::ready_at(at(100));
        let w = at(10);
        assert_eq!(s.slow_start_factor(at(100), w), MIN_SLOW_START_FACTOR);
        assert_eq!(s.slow_start_factor(at(50), w), MIN_SLOW_START_FACTOR, "clock before ready");
        assert!((s.slow_start_factor(at(105), w) - 0.5).abs() < 1e-12);
        assert_eq!(s.slow_start_factor(at(110), w), 1.0);
        assert_eq!(s.slow_start_factor(at(100), Duration::ZERO), 1.0, "zero window: no ramp");
    }

    #[test]
    fn eligibility_needs_healthy_and_not_draining() {
        let s = BackendStats::default();
        assert!(s.is_eligible());
        s.draining.store(true, Ordering::Relaxed);
        assert!(!s.is_eligible());
        s.draining.store(false, Ordering::Relaxed);
        s.healthy.store(false, Ordering::Relaxed);
        assert!(!s.is_eligible());
    }
}
