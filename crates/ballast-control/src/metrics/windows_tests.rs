//! Tests of the bounded metric windows.

use super::*;
use ballast_core::autoscale::at_epoch_millis;

fn at(secs: i64) -> DateTime<Utc> {
    at_epoch_millis(1_700_000_000_000 + secs * 1000)
}

#[test]
fn raw_samples_summarise_the_asked_range() {
    let mut w = PoolWindows::new(WindowConfig::default());
    for (i, v) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        w.push(MetricKind::Concurrency, at(i as i64 * 15), v);
    }
    let s = w.summary(&MetricKind::Concurrency, at(0), at(30)).expect("samples");
    assert_eq!((s.count, s.mean, s.max, s.latest), (2, 25.0, 30.0, 30.0));
    assert!(w.summary(&MetricKind::Cpu, at(0), at(30)).is_none());
}

#[test]
fn non_finite_values_are_dropped() {
    let mut w = PoolWindows::new(WindowConfig::default());
    w.push(MetricKind::Cpu, at(0), f64::NAN);
    w.push(MetricKind::Cpu, at(1), f64::INFINITY);
    assert_eq!(w.raw_len(&MetricKind::Cpu), 0);
}

#[test]
fn out_of_order_samples_are_kept_in_order() {
    let mut w = PoolWindows::new(WindowConfig::default());
    w.push(MetricKind::Rps, at(30), 3.0);
    w.push(MetricKind::Rps, at(10), 1.0);
    let s = w.summary(&MetricKind::Rps, at(0), at(60)).expect("samples");
    assert_eq!((s.count, s.latest), (2, 3.0));
}

#[test]
fn raw_ring_never_exceeds_capacity_or_retention() {
    let cfg = WindowConfig::default();
    let mut w = PoolWindows::new(cfg);
    for i in 0..2_000 {
        w.push(MetricKind::Rps, at(i), i as f64);
    }
    assert_eq!(w.raw_len(&MetricKind::Rps), cfg.raw_capacity);
    let mut slow = PoolWindows::new(cfg);
    for i in 0..200 {
        slow.push(MetricKind::Rps, at(i * 60), 1.0);
    }
    // one sample a minute: only the last hour (61 samples, both ends) survives
    assert_eq!(slow.raw_len(&MetricKind::Rps), 61);
}

#[test]
fn rollups_hold_minute_means_for_a_day_and_answer_old_ranges() {
    let cfg = WindowConfig::default();
    let mut w = PoolWindows::new(cfg);
    // 30 hours of one sample every 15 s: value = the hour number
    for i in 0..(30 * 240) {
        w.push(MetricKind::Cpu, at(i * 15), (i / 240) as f64);
    }
    assert_eq!(w.rollup_len(&MetricKind::Cpu), 1440);
    let old = w.rollups(&MetricKind::Cpu, at(10 * 3600 - 1), at(11 * 3600 - 1));
    assert_eq!(old.len(), 60);
    assert!(old.iter().all(|(_, v)| *v == 10.0), "{old:?}");
    // a range older than the raw hour is answered from rollups
    let s = w.summary(&MetricKind::Cpu, at(20 * 3600 - 1), at(21 * 3600 - 1)).expect("rollups");
    assert_eq!((s.count, s.mean), (60, 20.0));
    // the last 24 h: rollups before the raw hour plus raw samples
    let s = w.summary(&MetricKind::Cpu, at(6 * 3600 - 1), at(30 * 3600)).expect("day");
    assert!(s.count > 1380 && s.count < 1440 + 240, "{}", s.count);
    assert_eq!(s.max, 29.0);
}

#[test]
fn a_long_gap_restarts_the_rollups() {
    let mut w = PoolWindows::new(WindowConfig::default());
    w.push(MetricKind::Cpu, at(0), 1.0);
    w.push(MetricKind::Cpu, at(120), 3.0);
    assert_eq!(w.rollup_len(&MetricKind::Cpu), 3, "minute 0, a NaN gap, minute 2");
    w.push(MetricKind::Cpu, at(3 * 24 * 3600), 5.0);
    assert_eq!(w.rollup_len(&MetricKind::Cpu), 1);
}

/// The acceptance bound: windows of 1,000 pools stay under 5 MB (one metric each, the
/// metric the pool scales on). Computed from the ring capacities and checked against
/// what a filled store actually holds.
#[test]
fn memory_bound_per_thousand_pools() {
    let cfg = WindowConfig::default();
    let per_metric = PoolWindows::bytes_bound(&cfg, 1);
    assert_eq!(per_metric, 240 * 8 + 1440 * 2);
    assert!(1000 * per_metric < 5_000_000, "{}", 1000 * per_metric);
    let mut w = PoolWindows::new(cfg);
    for i in 0..(25 * 240) {
        w.push(MetricKind::Concurrency, at(i * 15), i as f64);
    }
    let held = w.bytes_held();
    // exact rings plus one series header
    assert!(held <= per_metric + 128, "held {held} for one metric, bound {per_metric}");
}

#[test]
fn rollups_keep_three_significant_digits() {
    let mut w = PoolWindows::new(WindowConfig::default());
    for (i, v) in [1234.5, 1235.5, 99_999.0].into_iter().enumerate() {
        w.push(MetricKind::Rps, at(i as i64 * 60), v);
    }
    let r = w.rollups(&MetricKind::Rps, at(-1), at(200));
    for ((_, got), want) in r.iter().zip([1234.5, 1235.5, 99_999.0]) {
        assert!((got - want).abs() / want < 0.004, "{got} vs {want}");
    }
}
