//! Pure helpers of the exposition: the backend latency histogram re-bucketed into fixed
//! Prometheus `le` bounds, and label values made safe for the text format.
//!
//! # Re-bucketing
//!
//! [`LatencyHistogram`](ballast_core::balance::LatencyHistogram) keeps 736
//! fine log-linear buckets (about 1.6% wide). Prometheus wants a small fixed set of
//! upper bounds, the same for every backend so that they aggregate:
//! [`LATENCY_BOUNDS_SECONDS`], 1 ms to 30 s. A fine bucket counts under the smallest
//! bound that is at least its largest value, so a count under `le` never includes a
//! value above `le` (a value just below a bound may count under the next bound: the
//! error is at most one fine bucket, ~3%). `_sum` is the sum of the fine buckets'
//! midpoints, within the same relative error, since the live histogram keeps no exact
//! sum.

use ballast_core::balance::{histogram_bucket_bounds, HistogramSnapshot};
use std::borrow::Cow;

/// Upper bounds (`le`) of the exported latency histogram, in seconds; `+Inf` follows.
pub const LATENCY_BOUNDS_SECONDS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A histogram in Prometheus' shape.
#[derive(Debug, Clone, PartialEq)]
pub struct PromHistogram {
    /// Sum of the observations, seconds (from bucket midpoints).
    pub sum_seconds: f64,
    /// Observations.
    pub count: u64,
    /// `(upper bound in seconds, count in this bucket only)`, one per
    /// [`LATENCY_BOUNDS_SECONDS`] and a last one with bound `f64::MAX` for `+Inf`
    /// (prometheus-client's convention; its encoder makes the counts cumulative).
    pub buckets: Vec<(f64, u64)>,
}

impl PromHistogram {
    /// The cumulative count at each bound, `+Inf` last (what the exposition shows).
    pub fn cumulative(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .scan(0u64, |acc, (_, c)| {
                *acc = acc.saturating_add(*c);
                Some(*acc)
            })
            .collect()
    }
}

/// `snapshot` re-bucketed into [`LATENCY_BOUNDS_SECONDS`] (see the module documentation).
pub fn fold_latency(snapshot: &HistogramSnapshot) -> PromHistogram {
    let bounds_ns: Vec<u64> = LATENCY_BOUNDS_SECONDS.iter().map(|s| (s * 1e9).round() as u64).collect();
    let mut counts = vec![0u64; LATENCY_BOUNDS_SECONDS.len() + 1];
    let mut sum_ns = 0f64;
    let last = snapshot.counts().len().saturating_sub(1);
    for (i, &c) in snapshot.counts().iter().enumerate() {
        if c == 0 {
            continue;
        }
        let (lo, hi) = histogram_bucket_bounds(i);
        // The last fine bucket also holds everything longer than its range: +Inf only.
        let slot = if i == last { bounds_ns.len() } else { bounds_ns.partition_point(|&b| b < hi - 1) };
        if let Some(n) = counts.get_mut(slot) {
            *n = n.saturating_add(c);
        }
        let mid = if i == last { lo as f64 } else { (lo as f64 + hi as f64) / 2.0 };
        sum_ns += mid * c as f64;
    }
    let buckets = LATENCY_BOUNDS_SECONDS.iter().copied().chain([f64::MAX]).zip(counts).collect();
    PromHistogram { sum_seconds: sum_ns / 1e9, count: snapshot.count(), buckets }
}

/// `value` escaped for a label value of the text format (`\` `"` and newline). Pool
/// names and addresses are validated to need none; this keeps a surprise from breaking
/// the whole scrape.
pub fn label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// The OpenMetrics text of prometheus-client turned into the Prometheus text format
/// 0.0.4, for clients that do not ask for OpenMetrics (curl, `promtool check metrics`,
/// older scrapers). The samples are the same; only the descriptors differ: a counter
/// family `x` is described as `x_total` (its samples' name), and the `# UNIT` and
/// `# EOF` lines, which 0.0.4 does not have, are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(name) = line.strip_prefix("# TYPE ").and_then(|l| l.strip_suffix(" counter")) {
            counters.push(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "].into_iter().find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(&name) { "_total" } else { "" };
                out.push_str(&format!("{prefix}{name}{total} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::balance::LatencyHistogram;
    use proptest::prelude::*;
    use std::time::Duration;

    fn of(ns: &[u64]) -> HistogramSnapshot {
        let h = LatencyHistogram::default();
        for v in ns {
            h.record(Duration::from_nanos(*v));
        }
        h.snapshot()
    }

    fn le(h: &PromHistogram, bound: f64) -> u64 {
        let i = LATENCY_BOUNDS_SECONDS.iter().position(|b| *b == bound).expect("a bound");
        h.cumulative()[i]
    }

    #[test]
    fn known_latencies_land_under_their_bounds() {
        // 0.5 ms ×3, 3 ms ×2, 40 ms, 20 s, 200 s (past the fine range).
        let ms = 1_000_000;
        let h = fold_latency(&of(&[ms / 2, ms / 2, ms / 2, 3 * ms, 3 * ms, 40 * ms, 20_000 * ms, 200_000 * ms]));
        assert_eq!(h.count, 8);
        assert_eq!(h.buckets.len(), LATENCY_BOUNDS_SECONDS.len() + 1);
        assert_eq!(le(&h, 0.001), 3);
        assert_eq!(le(&h, 0.0025), 3);
        assert_eq!(le(&h, 0.005), 5);
        assert_eq!(le(&h, 0.025), 5);
        assert_eq!(le(&h, 0.05), 6);
        assert_eq!(le(&h, 10.0), 6);
        assert_eq!(le(&h, 30.0), 7);
        assert_eq!(*h.cumulative().last().expect("+Inf"), 8, "+Inf counts everything");
        assert_eq!(h.buckets.last().map(|b| b.0), Some(f64::MAX));
        let exact = (1.5 + 6.0 + 40.0 + 20_000.0) / 1e3;
        // The 200 s value is summed as the start of the last fine bucket (~134 s).
        assert!(h.sum_seconds > exact + 130.0 && h.sum_seconds < exact + 140.0, "{}", h.sum_seconds);
    }

    #[test]
    fn an_empty_histogram_is_all_zero() {
        let h = fold_latency(&HistogramSnapshot::default());
        assert_eq!(h.count, 0);
        assert_eq!(h.sum_seconds, 0.0);
        assert!(h.cumulative().iter().all(|c| *c == 0));
    }

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let om = "# HELP c Requests.\n# TYPE c counter\nc_total{a=\"b\"} 3\n\
                  # HELP h Latency.\n# TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                  h_seconds_count 1\n# HELP g A gauge with a counter word.\n# TYPE g gauge\ng 1\n# EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP c_total Requests.\n# TYPE c_total counter\nc_total{a=\"b\"} 3\n\
             # HELP h Latency.\n# TYPE h_seconds histogram\nh_seconds_count 1\n\
             # HELP g A gauge with a counter word.\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert!(matches!(label_value("web-1.a_b:80"), Cow::Borrowed(_)));
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Counts under `le` never include a larger value and miss at most the values
        /// within one fine bucket (3.2%) below the bound; cumulative counts are monotone
        /// and end at the count.
        #[test]
        fn buckets_bound_the_exact_counts(values in prop::collection::vec(
            (100_000f64.ln()..60e9f64.ln()).prop_map(|l| l.exp() as u64), 0..300)) {
            let h = fold_latency(&of(&values));
            let cum = h.cumulative();
            prop_assert!(cum.windows(2).all(|w| w[0] <= w[1]), "monotone: {:?}", cum);
            prop_assert_eq!(*cum.last().expect("+Inf"), values.len() as u64);
            prop_assert_eq!(h.count, values.len() as u64);
            for (i, b) in LATENCY_BOUNDS_SECONDS.iter().enumerate() {
                let b_ns = b * 1e9;
                let at_most = values.iter().filter(|v| **v as f64 <= b_ns).count() as u64;
                let well_below = values.iter().filter(|v| (**v as f64) < b_ns * (1.0 - 1.0 / 32.0)).count() as u64;
                prop_assert!(cum[i] <= at_most, "le {} counts {} > {}", b, cum[i], at_most);
                prop_assert!(cum[i] >= well_below, "le {} counts {} < {}", b, cum[i], well_below);
            }
            let exact: f64 = values.iter().map(|v| *v as f64 / 1e9).sum();
            prop_assert!((h.sum_seconds - exact).abs() <= exact / 32.0 + 1e-6, "sum {} exact {}", h.sum_seconds, exact);
        }
    }
}
