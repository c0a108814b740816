//! Latency estimates by requests-in-flight level, for the `adaptive` algorithm, and the
//! pure schedule of the probes that keep them fresh.
//!
//! Prequal's observation is that a replica's latency depends on how many requests it is
//! already working on: the same replica answers in 1 ms at 2 in flight and in 15 ms at 40.
//! One number per replica mixes those regimes and lags behind every change of load, so
//! each backend keeps one estimate per RIF level (0, 1, 2–3, 4–7, ... 64+) and a pick
//! asks "how fast will it answer at the RIF it will have with this request?".
//!
//! A level is trusted only while it is *steady*: its samples span at least
//! [`ESTIMATE_TRUST_SPAN`] and the last one is recent. Otherwise the backend's overall
//! average (every sample, whatever its RIF: its recent latency at the load it has been
//! running at) answers. Without that rule a level visited rarely (a backend whose RIF
//! crossed into it once, during a hiccup) holds one unlucky sample, the backend looks
//! slow whenever its RIF is at that level, is avoided, and never gets the traffic that
//! would correct the number: a lock-out that lasted until the level went stale.
//!
//! Each average is over *time*, not over a number of samples: a new sample
//! weighs `1 - exp(-gap / ESTIMATE_WINDOW)`, `gap` being the time since the level's last
//! update (at least [`ESTIMATE_MIN_WEIGHT`]), so an average keeps roughly the last
//! [`ESTIMATE_WINDOW`] (50 ms) of its history however many samples that is. Why time:
//! a busy backend answers tens of thousands of requests a second, and a per-sample weight
//! (say 1/4) would make its estimate the mean of its last handful of answers; one hiccup
//! of the proxy itself (a few milliseconds in which every answer waits) then makes every
//! busy backend look as slow as a backend that really is slow, and traffic flows to the
//! slow one exactly when it hurts most. Over 50 ms such a hiccup is a small bump. A
//! sparse level (a backend that gets few requests, or only probes every 100 ms) still
//! follows its samples quickly, because each of them comes after a long gap. An estimate
//! older than [`ESTIMATE_MAX_AGE`] is replaced outright: an average last updated while the
//! backend was slow must not hold a recovered backend back. A failure counts as twice the
//! current estimate (at least the latency it took): a backend that fails fast must not
//! look like the fastest one.
//!
//! Probes: a backend that gets no real traffic (because it is slow, or new) would keep a
//! stale estimate forever, so the proxy sends it a lightweight request from a background
//! task. [`probe_due`] decides when, with a hard rate limit per backend
//! ([`ProbePolicy::interval`]) and only for backends without a real response for
//! [`ProbePolicy::idle`]; busy backends are never probed. Probe results count like real
//! responses.

use super::stats::duration_ns;
use super::{BackendStats, PEAK_EWMA_DEFAULT_RTT};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of RIF levels: 0, 1, 2–3, 4–7, 8–15, 16–31, 32–63 and 64 or more.
pub const RIF_LEVELS: usize = 8;

/// Time constant of a level's average: a sample `gap` after the previous one weighs
/// `1 - exp(-gap / ESTIMATE_WINDOW)`. 50 ms: long enough to smooth over a hiccup of a few
/// milliseconds, short against the 100 ms probe interval (a probe result after 100 ms
/// of silence weighs 86%).
pub const ESTIMATE_WINDOW: Duration = Duration::from_millis(50);

/// Smallest weight of a sample (1/500), so that a burst of answers in the same instant
/// still counts a little.
pub const ESTIMATE_MIN_WEIGHT: f64 = 0.002;

/// A RIF level's own average is used only when its samples span at least this long
/// (and the last is at most [`ESTIMATE_WINDOW`] old); otherwise the backend's overall
/// average stands in. 25 ms: a burst of answers released together by one hiccup spans
/// nothing, so it cannot make a level that is rarely visited look slow for a second.
pub const ESTIMATE_TRUST_SPAN: Duration = Duration::from_millis(25);

/// Age past which a level's estimate is stale: a pick prefers any fresh level, and the
/// next sample at that level replaces it. 1 s.
pub const ESTIMATE_MAX_AGE: Duration = Duration::from_secs(1);

/// Highest latency a failure penalty can reach (10 s), so repeated failures do not
/// overflow the estimate.
pub const FAILURE_LATENCY_CAP: Duration = Duration::from_secs(10);

/// The RIF level of `rif` requests in flight: 0, then one level per power of two, capped.
pub fn rif_level(rif: u32) -> usize {
    if rif == 0 {
        0
    } else {
        (1 + rif.ilog2() as usize).min(RIF_LEVELS - 1)
    }
}

/// One time-weighted average (see the module doc), all atomics.
#[derive(Debug, Default)]
struct Average {
    /// The average in nanoseconds; 0 means no sample yet.
    ns: AtomicU64,
    /// When it was last updated (ns on the caller's origin).
    at_ns: AtomicU64,
    /// When its current run of samples began: the first sample, or the first after it
    /// went stale.
    since_ns: AtomicU64,
}

impl Average {
    /// Folds `sample_ns` observed at `now_ns` (> 0).
    fn fold(&self, now_ns: u64, sample_ns: f64) {
        let prev = self.ns.load(Ordering::Relaxed);
        let gap = now_ns.saturating_sub(self.at_ns.load(Ordering::Relaxed));
        let next = if prev == 0 || gap >= duration_ns(ESTIMATE_MAX_AGE) {
            self.since_ns.store(now_ns, Ordering::Relaxed);
            sample_ns
        } else {
            let w = 1.0 - (-(gap as f64) / ESTIMATE_WINDOW.as_nanos() as f64).exp();
            prev as f64 + w.max(ESTIMATE_MIN_WEIGHT) * (sample_ns - prev as f64)
        };
        self.ns
            .store((next.round() as u64).max(1), Ordering::Relaxed);
        self.at_ns.store(now_ns, Ordering::Relaxed);
    }

    /// The average, if any.
    fn get(&self) -> Option<Duration> {
        match self.ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Whether it rests on a steady run of samples at `now_ns`: updated within the last
    /// [`ESTIMATE_WINDOW`], from samples spread over at least [`ESTIMATE_TRUST_SPAN`].
    fn steady(&self, now_ns: u64) -> bool {
        let at = self.at_ns.load(Ordering::Relaxed);
        let span = at.saturating_sub(self.since_ns.load(Ordering::Relaxed));
        self.ns.load(Ordering::Relaxed) != 0
            && now_ns.saturating_sub(at) <= duration_ns(ESTIMATE_WINDOW)
            && span >= duration_ns(ESTIMATE_TRUST_SPAN)
    }
}

/// Per-backend latency estimates (by RIF level and overall) and probe bookkeeping.
#[derive(Debug, Default)]
pub struct RifLatency {
    /// One average per RIF level.
    levels: [Average; RIF_LEVELS],
    /// Every sample, whatever its RIF.
    overall: Average,
    /// When the last real (non-probe) response arrived; 0 means never.
    last_response_ns: AtomicU64,
    /// When the last probe was sent; 0 means never.
    last_probe_ns: AtomicU64,
    /// Probes sent so far.
    probes: AtomicU64,
}

impl RifLatency {
    /// Folds one observation made at `rif` in flight (the observed request included).
    /// `real` is false for probes: they do not count as traffic for [`probe_due`].
    pub(super) fn observe(
        &self,
        now: Duration,
        rif: u32,
        latency: Duration,
        success: bool,
        real: bool,
    ) {
        let now_ns = duration_ns(now).max(1);
        let mut sample = duration_ns(latency).max(1) as f64;
        if !success {
            let current = self.estimate(now, rif).unwrap_or(PEAK_EWMA_DEFAULT_RTT);
            sample = sample.max(2.0 * current.as_nanos() as f64);
            sample = sample.min(FAILURE_LATENCY_CAP.as_nanos() as f64);
        }
        self.levels[rif_level(rif)].fold(now_ns, sample);
        self.overall.fold(now_ns, sample);
        if real {
            self.last_response_ns.store(now_ns, Ordering::Relaxed);
        }
    }

    /// The estimated latency of a request that would make `rif` in flight, or None
    /// before any sample: the average of the level of `rif` when it is steady at `now`
    /// (see the module doc), else the overall average.
    pub fn estimate(&self, now: Duration, rif: u32) -> Option<Duration> {
        let level = &self.levels[rif_level(rif)];
        if level.steady(duration_ns(now)) {
            level.get()
        } else {
            self.overall.get()
        }
    }

    /// Records that a probe was sent at `now`.
    pub(super) fn probe_sent(&self, now: Duration) {
        self.last_probe_ns
            .store(duration_ns(now).max(1), Ordering::Relaxed);
        self.probes.fetch_add(1, Ordering::Relaxed);
    }

    /// Probes sent so far.
    pub(super) fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }
}

/// When the background prober may probe a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Rate limit: at most one probe per backend per `interval`. Default 100 ms (at most
    /// 10 probes a second per backend, a bounded and tiny load).
    pub interval: Duration,
    /// Probe only a backend that has had no real response for this long: a backend with
    /// traffic has fresh estimates already. Default 250 ms.
    pub idle: Duration,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            interval: Duration::from_millis(100),
            idle: Duration::from_millis(250),
        }
    }
}

/// Whether backend `stats` should be probed at `now`: not draining, no real response for
/// `policy.idle`, and no probe sent for `policy.interval`. A backend that never answered
/// and was never probed is due at once. The caller then calls
/// [`BackendStats::on_probe_sent`] before sending, which closes the window.
pub fn probe_due(stats: &BackendStats, now: Duration, policy: &ProbePolicy) -> bool {
    if stats.draining.load(Ordering::Relaxed) {
        return false;
    }
    let l = &stats.rif_latency;
    let now_ns = duration_ns(now);
    let since = |at: &AtomicU64| match at.load(Ordering::Relaxed) {
        0 => u64::MAX,
        t => now_ns.saturating_sub(t),
    };
    since(&l.last_response_ns) >= duration_ns(policy.idle)
        && since(&l.last_probe_ns) >= duration_ns(policy.interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn levels_are_powers_of_two_capped() {
        let levels: Vec<_> = [0, 1, 2, 3, 4, 7, 8, 16, 32, 63, 64, 10_000, u32::MAX]
            .into_iter()
            .map(rif_level)
            .collect();
        assert_eq!(levels, [0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7, 7, 7]);
    }

    /// Feeds `latency` at `rif` every millisecond over `span`, ending at `end`.
    fn steady_run(l: &RifLatency, end: Duration, span: Duration, rif: u32, latency: Duration) {
        let n = span.as_millis() as u32;
        for k in (0..=n).rev() {
            l.observe(end - MS * k, rif, latency, true, true);
        }
    }

    #[test]
    fn a_steady_level_answers_for_itself_else_the_overall_average() {
        let l = RifLatency::default();
        let now = Duration::from_secs(5);
        assert_eq!(l.estimate(now, 3), None);
        steady_run(&l, now, ESTIMATE_TRUST_SPAN, 20, 9 * MS);
        assert_eq!(l.estimate(now, 25), Some(9 * MS), "steady level 16-31");
        assert_eq!(
            l.estimate(now, 3),
            Some(9 * MS),
            "level 2-3 never seen: overall"
        );
        l.observe(now, 3, MS, true, true);
        let overall = l.estimate(now, 3).expect("sampled");
        assert!(
            overall > 8 * MS,
            "one sample is not steady: overall {overall:?}"
        );
        let later = now + ESTIMATE_TRUST_SPAN;
        steady_run(&l, later, ESTIMATE_TRUST_SPAN - MS, 3, MS);
        assert_eq!(l.estimate(later, 3), Some(MS), "now steady");
        let idle = later + ESTIMATE_WINDOW + MS;
        let overall = l.estimate(idle, 3).expect("sampled");
        assert!(
            overall > MS && overall < 9 * MS,
            "not updated lately: overall {overall:?}"
        );
    }

    #[test]
    fn a_burst_at_one_instant_does_not_make_a_level_steady() {
        let l = RifLatency::default();
        let now = Duration::from_secs(5);
        steady_run(&l, now, 4 * ESTIMATE_WINDOW, 20, MS);
        let hiccup = now + MS;
        for _ in 0..50 {
            l.observe(hiccup, 40, 6 * MS, true, true);
        }
        let est = l.estimate(hiccup, 40).expect("sampled");
        assert!(
            est < 2 * MS,
            "level 32-63 is one burst: overall, barely moved: {est:?}"
        );
    }

    #[test]
    fn samples_weigh_by_the_time_since_the_last_one() {
        let l = RifLatency::default();
        let t = Duration::from_secs(1);
        let ms = |d: Option<Duration>| d.expect("sampled").as_secs_f64() * 1e3;
        l.observe(t, 1, 20 * MS, true, true);
        l.observe(t, 1, 4 * MS, true, true);
        let same_instant = 20.0 - 16.0 * ESTIMATE_MIN_WEIGHT;
        assert!(
            (ms(l.estimate(t, 1)) - same_instant).abs() < 1e-3,
            "minimum weight"
        );
        let later = t + ESTIMATE_WINDOW;
        l.observe(later, 1, 4 * MS, true, true);
        let w = 1.0 - (-1.0f64).exp();
        let expect = same_instant - (same_instant - 4.0) * w;
        assert!(
            (ms(l.estimate(later, 1)) - expect).abs() < 1e-3,
            "one window: 63%"
        );
        let stale = later + ESTIMATE_MAX_AGE;
        l.observe(stale, 1, 3 * MS, true, true);
        assert_eq!(
            l.estimate(stale, 1),
            Some(3 * MS),
            "a stale estimate is replaced"
        );
    }

    #[test]
    fn failures_are_penalised_and_capped() {
        let l = RifLatency::default();
        let t = Duration::from_secs(1);
        l.observe(t, 1, MS, false, true);
        assert_eq!(
            l.estimate(t, 1),
            Some(2 * PEAK_EWMA_DEFAULT_RTT),
            "no estimate: default × 2"
        );
        for _ in 0..200 {
            l.observe(t, 1, MS, false, true);
        }
        assert!(l.estimate(t, 1).expect("sampled") <= FAILURE_LATENCY_CAP);
    }

    #[test]
    fn probes_are_rate_limited_and_skip_busy_or_draining_backends() {
        let policy = ProbePolicy::default();
        let s = BackendStats::default();
        let t = |ms: u64| Duration::from_millis(ms);
        assert!(probe_due(&s, t(0), &policy), "never answered, never probed");
        s.on_probe_sent(t(1000));
        assert!(!probe_due(&s, t(1099), &policy), "rate limit");
        assert!(probe_due(&s, t(1100), &policy));
        s.on_probe_result(t(1100), MS, true);
        assert!(
            probe_due(&s, t(1100), &policy),
            "a probe result is not traffic"
        );
        s.on_request_start();
        s.on_request_end(t(1150), MS, true);
        assert!(!probe_due(&s, t(1300), &policy), "real response 150 ms ago");
        assert!(probe_due(&s, t(1400), &policy), "idle for 250 ms");
        s.draining.store(true, Ordering::Relaxed);
        assert!(!probe_due(&s, t(5000), &policy), "draining");
        assert_eq!(s.probes_sent(), 1);
    }
}
