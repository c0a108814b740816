//! Latency estimates by requests-in-flight level, for the `adaptive` algorithm, and the
//! pure schedule of the probes that keep them fresh.
//!
//! Prequal's observation is that a replica's latency depends on how many requests it is
//! already working on: the same replica answers in 1 ms at 2 in flight and in 15 ms at 40.
//! One number per replica mixes those regimes and lags behind every change of load, so
//! each backend keeps one estimate per RIF level (0, 1, 2–3, 4–7, ... 64+) and a pick
//! asks "how fast will it answer at the RIF it will have with this request?". A level
//! that has no recent sample borrows from the nearest level that has one.
//!
//! Each level is an exponentially weighted average that adapts fast: a new sample weighs
//! at least [`ESTIMATE_SAMPLE_WEIGHT`], more when the level has not been updated for a
//! while (`1 - exp(-gap / ESTIMATE_MAX_AGE)`), and replaces a stale estimate (older than
//! [`ESTIMATE_MAX_AGE`]) outright: a level last seen while the backend was slow must not
//! hold a recovered backend back. A failure counts as twice the current estimate (at least the
//! latency it took): a backend that fails fast must not look like the fastest one.
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

/// Smallest weight of a new sample in a level's average (0.25: four fresh samples replace
/// about 70% of an old estimate).
pub const ESTIMATE_SAMPLE_WEIGHT: f64 = 0.25;

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

/// Per-backend latency estimates by RIF level and probe bookkeeping (all atomics).
#[derive(Debug, Default)]
pub struct RifLatency {
    /// Estimate per level in nanoseconds; 0 means no sample yet.
    ns: [AtomicU64; RIF_LEVELS],
    /// When each level was last updated (ns on the caller's origin).
    at_ns: [AtomicU64; RIF_LEVELS],
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
        let level = rif_level(rif);
        let prev = self.ns[level].load(Ordering::Relaxed);
        let mut sample = duration_ns(latency).max(1) as f64;
        if !success {
            let current = self.estimate(now, rif).unwrap_or(PEAK_EWMA_DEFAULT_RTT);
            sample = sample.max(2.0 * current.as_nanos() as f64);
            sample = sample.min(FAILURE_LATENCY_CAP.as_nanos() as f64);
        }
        let next = if prev == 0 {
            sample
        } else {
            let gap = now_ns.saturating_sub(self.at_ns[level].load(Ordering::Relaxed));
            let w = if gap >= duration_ns(ESTIMATE_MAX_AGE) {
                1.0
            } else {
                let aged = 1.0 - (-(gap as f64) / ESTIMATE_MAX_AGE.as_nanos() as f64).exp();
                aged.max(ESTIMATE_SAMPLE_WEIGHT)
            };
            prev as f64 + w * (sample - prev as f64)
        };
        self.ns[level].store((next.round() as u64).max(1), Ordering::Relaxed);
        self.at_ns[level].store(now_ns, Ordering::Relaxed);
        if real {
            self.last_response_ns.store(now_ns, Ordering::Relaxed);
        }
    }

    /// The estimated latency of a request that would make `rif` in flight, or None when
    /// no level has a sample. Search order: the level of `rif`, then lower levels (nearest
    /// first), then higher ones; the first fresh level wins (younger than
    /// [`ESTIMATE_MAX_AGE`] at `now`), else the first level with any sample.
    pub fn estimate(&self, now: Duration, rif: u32) -> Option<Duration> {
        let now_ns = duration_ns(now);
        let target = rif_level(rif);
        let order = (0..=target).rev().chain(target + 1..RIF_LEVELS);
        let max_age = duration_ns(ESTIMATE_MAX_AGE);
        let mut fallback = None;
        for level in order {
            let ns = self.ns[level].load(Ordering::Relaxed);
            if ns == 0 {
                continue;
            }
            let age = now_ns.saturating_sub(self.at_ns[level].load(Ordering::Relaxed));
            if age < max_age {
                return Some(Duration::from_nanos(ns));
            }
            fallback = fallback.or(Some(Duration::from_nanos(ns)));
        }
        fallback
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

    #[test]
    fn estimate_per_level_with_nearest_lower_then_higher_fallback() {
        let l = RifLatency::default();
        let now = Duration::from_secs(5);
        assert_eq!(l.estimate(now, 3), None);
        l.observe(now, 1, MS, true, true);
        l.observe(now, 20, 9 * MS, true, true);
        assert_eq!(l.estimate(now, 1), Some(MS));
        assert_eq!(l.estimate(now, 3), Some(MS), "level 2 empty: nearest lower");
        assert_eq!(l.estimate(now, 25), Some(9 * MS));
        assert_eq!(
            l.estimate(now, 500),
            Some(9 * MS),
            "higher levels borrow from below"
        );
        assert_eq!(
            l.estimate(now, 0),
            Some(MS),
            "nothing at or below 0: nearest higher"
        );
    }

    #[test]
    fn a_fresh_level_beats_a_stale_nearer_one() {
        let l = RifLatency::default();
        l.observe(Duration::from_secs(1), 4, 30 * MS, true, true);
        l.observe(Duration::from_secs(10), 1, 2 * MS, true, true);
        let now = Duration::from_secs(10);
        assert_eq!(l.estimate(now, 4), Some(2 * MS), "level 3 is 9 s old");
        assert_eq!(l.estimate(Duration::from_millis(10_999), 4), Some(2 * MS));
        assert_eq!(
            l.estimate(Duration::from_secs(11), 4),
            Some(30 * MS),
            "both stale: nearest"
        );
        let l = RifLatency::default();
        l.observe(Duration::from_secs(1), 4, 30 * MS, true, true);
        assert_eq!(
            l.estimate(now, 4),
            Some(30 * MS),
            "stale is better than nothing"
        );
    }

    #[test]
    fn samples_move_the_average_fast_and_faster_after_a_gap() {
        let l = RifLatency::default();
        let t = Duration::from_secs(1);
        l.observe(t, 1, 20 * MS, true, true);
        l.observe(t, 1, 4 * MS, true, true);
        assert_eq!(l.estimate(t, 1), Some(16 * MS), "weight 0.25");
        let later = t + ESTIMATE_MAX_AGE / 2;
        l.observe(later, 1, 4 * MS, true, true);
        let est = l.estimate(later, 1).expect("sampled").as_secs_f64() * 1e3;
        let w = 1.0 - (-0.5f64).exp();
        assert!((est - (16.0 - 12.0 * w)).abs() < 1e-3, "{est}");
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
