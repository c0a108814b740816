//! A lock-free latency histogram with log-linear buckets and fixed memory, recorded at
//! the end of every request ([`BackendStats::on_request_end`](super::BackendStats)) and
//! read by samplers as snapshots: the difference of two snapshots is the histogram of
//! the interval between them, snapshots of several backends merge into a pool's, and
//! quantiles (p50/p95/p99) come from either.
//!
//! # Buckets
//!
//! Latencies are kept in units of 1,024 ns (~1 µs). Below 64 units (~65 µs) every unit
//! has its bucket; above, each power of two is split into 32 equal buckets (as in
//! HdrHistogram with 5 significant bits), up to 2^27 units (~137 s); longer latencies
//! count in the last bucket. That is [`HISTOGRAM_BUCKETS`] = 736 counters (5.9 KiB) per
//! backend. A quantile is reported as the middle of the bucket that holds it, so from
//! 50 µs to ~137 s it is within [`HISTOGRAM_RELATIVE_ERROR`] (1/64, about 1.6%) of the
//! exact quantile of the recorded values.
//!
//! Recording is one shift, a `leading_zeros` and one relaxed `fetch_add`: no lock, no
//! allocation. A snapshot reads every counter in turn (not one atomic cut across all of
//! them), which only matters to a request that ends mid-snapshot: it is counted in this
//! interval or the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bits dropped from nanoseconds: the unit is 1,024 ns.
const UNIT_SHIFT: u32 = 10;
/// Below this many units every unit has its bucket.
const LINEAR: u64 = 64;
/// log2 of the buckets per power of two above the linear range.
const SUB_BITS: u32 = 5;
/// Buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// The first power of two above the linear range (64 = 2^6).
const FIRST_OCTAVE: u32 = 6;
/// The last power of two with its own buckets: values up to 2^27 units (~137 s).
const LAST_OCTAVE: u32 = 26;

/// Counters per histogram.
pub const HISTOGRAM_BUCKETS: usize = LINEAR as usize + ((LAST_OCTAVE - FIRST_OCTAVE + 1) as usize) * SUB as usize;

/// Largest relative error of a reported quantile for values from 50 µs to ~137 s.
pub const HISTOGRAM_RELATIVE_ERROR: f64 = 1.0 / 64.0;

/// The bucket of a latency of `ns` nanoseconds.
fn bucket(ns: u64) -> usize {
    let u = ns >> UNIT_SHIFT;
    if u < LINEAR {
        return u as usize;
    }
    let octave = 63 - u.leading_zeros();
    if octave > LAST_OCTAVE {
        return HISTOGRAM_BUCKETS - 1;
    }
    let sub = (u >> (octave - SUB_BITS)) & (SUB - 1);
    LINEAR as usize + ((octave - FIRST_OCTAVE) as usize) * SUB as usize + sub as usize
}

/// The latencies bucket `i` holds, in nanoseconds: `[low, high)`.
pub fn histogram_bucket_bounds(i: usize) -> (u64, u64) {
    let i = i.min(HISTOGRAM_BUCKETS - 1) as u64;
    let (lo, width) = if i < LINEAR {
        (i, 1)
    } else {
        let j = i - LINEAR;
        let octave = (j / SUB) as u32 + FIRST_OCTAVE;
        let shift = octave - SUB_BITS;
        ((SUB + j % SUB) << shift, 1u64 << shift)
    };
    (lo << UNIT_SHIFT, (lo + width) << UNIT_SHIFT)
}

/// The live histogram of one backend: atomics only.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: (0..HISTOGRAM_BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl LatencyHistogram {
    /// Counts one request that took `latency`.
    #[inline]
    pub fn record(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        // `bucket` never returns an index past the end; `get` keeps that a non-panic.
        if let Some(c) = self.counts.get(bucket(ns)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far (they only grow: take the [`delta`](HistogramSnapshot::delta_since)
    /// of two snapshots for an interval).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot { counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect() }
    }
}

/// A copy of a histogram's counts: of one backend since it started, of an interval, or
/// of several backends merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot { counts: vec![0; HISTOGRAM_BUCKETS] }
    }
}

impl HistogramSnapshot {
    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// The count of every bucket, in order: index `i` holds the latencies of
    /// [`histogram_bucket_bounds`]`(i)` (e.g. to re-bucket into Prometheus `le` bounds).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// What was recorded after `earlier` (a snapshot of the same histogram). When some
    /// counter went down, the histogram was replaced by a fresh one in between (e.g. an
    /// address that left and came back), and everything in `self` is new: `self` is
    /// returned.
    pub fn delta_since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        if self.counts.iter().zip(&earlier.counts).any(|(now, then)| now < then) {
            return self.clone();
        }
        HistogramSnapshot { counts: self.counts.iter().zip(&earlier.counts).map(|(now, then)| now - then).collect() }
    }

    /// Like [`delta_since`](HistogramSnapshot::delta_since), from the sparse form of the
    /// earlier snapshot.
    pub fn delta_since_sparse(&self, earlier: &SparseSnapshot) -> HistogramSnapshot {
        let mut delta = self.clone();
        for &(i, then) in earlier.buckets.iter() {
            match delta.counts.get_mut(usize::from(i)) {
                Some(now) if *now >= then => *now -= then,
                _ => return self.clone(),
            }
        }
        delta
    }

    /// The non-empty buckets only (see [`SparseSnapshot`]).
    pub fn sparse(&self) -> SparseSnapshot {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .filter_map(|(i, c)| Some((u16::try_from(i).ok()?, *c)))
            .collect();
        SparseSnapshot { buckets }
    }

    /// Adds `other`'s counts (e.g. every instance of a pool).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The `q` quantile (0.0–1.0, clamped; NaN reads as 0.5) by nearest rank: the middle
    /// of the bucket holding the `ceil(q × count)`-th smallest value. None when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*c);
            if seen >= rank {
                let (lo, hi) = histogram_bucket_bounds(i);
                return Some(Duration::from_nanos(lo + (hi - lo) / 2));
            }
        }
        None
    }
}

/// A snapshot's non-empty buckets only: what a sampler keeps of every backend between
/// two samples: 16 bytes per non-empty bucket instead of 8 bytes for each of the
/// histogram's buckets (a backend's latencies usually fill a few dozen of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseSnapshot {
    buckets: Box<[(u16, u64)]>,
}

impl SparseSnapshot {
    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(values: &[u64]) -> LatencyHistogram {
        let h = LatencyHistogram::default();
        for v in values {
            h.record(Duration::from_nanos(*v));
        }
        h
    }

    #[test]
    fn buckets_tile_the_range_in_order() {
        assert_eq!(HISTOGRAM_BUCKETS, 736);
        let mut expect_lo = 0;
        for i in 0..HISTOGRAM_BUCKETS {
            let (lo, hi) = histogram_bucket_bounds(i);
            assert_eq!(lo, expect_lo, "bucket {i} starts where {} ends", i.saturating_sub(1));
            assert!(hi > lo);
            assert_eq!(bucket(lo), i);
            assert_eq!(bucket(hi - 1), i.min(HISTOGRAM_BUCKETS - 1));
            expect_lo = hi;
        }
        let top = histogram_bucket_bounds(HISTOGRAM_BUCKETS - 1).1;
        assert!(top > 137_000_000_000 && top < 138_000_000_000, "{top}");
        assert_eq!(bucket(u64::MAX), HISTOGRAM_BUCKETS - 1, "longer latencies clamp");
    }

    #[test]
    fn quantiles_of_known_values() {
        let h = of(&[1_000_000; 90].iter().chain(&[100_000_000; 10]).copied().collect::<Vec<_>>());
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        let ms = |q: f64| s.quantile(q).expect("counted").as_secs_f64() * 1e3;
        assert!((ms(0.5) - 1.0).abs() < 0.016, "{}", ms(0.5));
        assert!((ms(0.9) - 1.0).abs() < 0.016, "rank 90 is still 1 ms");
        assert!((ms(0.91) - 100.0).abs() < 1.6, "{}", ms(0.91));
        assert!((ms(1.0) - 100.0).abs() < 1.6);
        assert_eq!(s.quantile(f64::NAN), s.quantile(0.5));
        assert_eq!(s.quantile(-3.0), s.quantile(0.0));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }

    #[test]
    fn a_fresh_histogram_after_a_snapshot_counts_as_all_new() {
        let old = of(&[5_000_000; 10]).snapshot();
        let fresh = of(&[2_000_000; 3]).snapshot();
        assert_eq!(fresh.delta_since(&old), fresh);
        assert_eq!(old.delta_since(&old).count(), 0);
    }

    fn latencies() -> impl Strategy<Value = Vec<u64>> {
        // Log-uniform from 50 µs to 137 s, plus exact powers of two and bucket edges.
        let one = prop_oneof![
            (50_000f64.ln()..137e9f64.ln()).prop_map(|l| l.exp() as u64),
            (16u32..37).prop_map(|b| 1u64 << b),
        ];
        prop::collection::vec(one, 1..400)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn quantiles_are_within_the_bucket_error(values in latencies(), q in 0.0f64..=1.0) {
            let s = of(&values).snapshot();
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1] as f64;
            let got = s.quantile(q).expect("counted").as_nanos() as f64;
            prop_assert!((got - exact).abs() <= exact * HISTOGRAM_RELATIVE_ERROR + 1.0,
                "q {} exact {} got {}", q, exact, got);
            for p in [0.5, 0.95, 0.99] {
                let r = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                let e = sorted[r - 1] as f64;
                let g = s.quantile(p).expect("counted").as_nanos() as f64;
                prop_assert!((g - e).abs() <= e * HISTOGRAM_RELATIVE_ERROR + 1.0, "p{} exact {} got {}", p, e, g);
            }
        }

        #[test]
        fn merge_and_delta_agree_with_recording(a in latencies(), b in latencies()) {
            let live = of(&a);
            let before = live.snapshot();
            for v in &b {
                live.record(Duration::from_nanos(*v));
            }
            let after = live.snapshot();
            let only_b = of(&b).snapshot();
            prop_assert_eq!(after.delta_since(&before), only_b.clone());
            prop_assert_eq!(after.delta_since_sparse(&before.sparse()), only_b.clone());
            if !b.is_empty() {
                prop_assert_eq!(before.delta_since_sparse(&after.sparse()), before.clone(), "a reset: all new");
            }
            let mut merged = of(&a).snapshot();
            merged.merge(&only_b);
            prop_assert_eq!(&merged, &after);
            prop_assert_eq!(merged.count(), (a.len() + b.len()) as u64);
        }
    }
}
