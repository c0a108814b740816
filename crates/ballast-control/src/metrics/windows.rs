//! Bounded in-memory metric windows for one pool: raw samples for the last hour and
//! 1-minute rollups (means) for the last 24 hours, readable by the decision engine
//! through [`MetricSource`].
//!
//! Memory is bounded by construction: every series is a ring with a fixed capacity
//! ([`WindowConfig`]), allocated exactly on first use. A raw sample costs 8 bytes (`u32`
//! seconds since the store's base, `f32` value); a rollup 2 bytes, a `bf16` mean (8
//! significant bits, about 0.4% relative error, f32's range: enough for day-old
//! history read by forecasts) whose minute is implied by its place in the ring. The
//! newest minute's running mean is kept in full precision until the minute closes.
//! [`PoolWindows::bytes_bound`] computes the ceiling: 4,800 bytes per metric with the
//! defaults, so 1,000 pools scaling on one metric hold < 5 MB.

use ballast_core::autoscale::{summarise, MetricKind, MetricSource, Summary};
use half::bf16;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Retention and capacity of the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// How long raw samples are kept; default 1 h.
    pub raw_retention: Duration,
    /// Most raw samples kept per metric; default 240 (1 h at the 15 s interval). When
    /// samples come faster than that, the oldest go first: memory, not retention, wins.
    pub raw_capacity: usize,
    /// How many 1-minute rollups are kept per metric; default 1,440 (24 h).
    pub rollup_minutes: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig { raw_retention: Duration::from_secs(3600), raw_capacity: 240, rollup_minutes: 1440 }
    }
}

/// One metric's raw ring and rollup ring.
#[derive(Debug, Clone, Default)]
struct Series {
    /// `(seconds since base, value)`, oldest first.
    raw: VecDeque<(u32, f32)>,
    /// Per-minute means, oldest first; the newest is `newest_minute`. Gaps are NaN.
    rollups: VecDeque<bf16>,
    /// Full-precision running mean of the newest minute.
    newest_mean: f32,
    /// Minute number (since base) of the back of `rollups`.
    newest_minute: u32,
    /// Samples folded into the newest rollup so far.
    newest_count: u32,
}

/// Metric windows of one pool. Times more than a day before the first sample, or ~136
/// years after it, are clamped.
#[derive(Debug, Clone)]
pub struct PoolWindows {
    config: WindowConfig,
    base: Option<i64>,
    series: BTreeMap<MetricKind, Series>,
}

impl PoolWindows {
    /// Empty windows with `config`.
    pub fn new(config: WindowConfig) -> Self {
        PoolWindows { config, base: None, series: BTreeMap::new() }
    }

    fn offset(&self, at: DateTime<Utc>) -> u32 {
        let base = self.base.unwrap_or(at.timestamp());
        u32::try_from((at.timestamp() - base).max(0)).unwrap_or(u32::MAX)
    }

    fn time_of(&self, offset: u32) -> DateTime<Utc> {
        let secs = self.base.unwrap_or(0) + i64::from(offset);
        DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Records `value` for `metric` at `at`. Non-finite values are dropped (a broken
    /// exporter must not scale a pool); a sample older than the newest one of its metric
    /// is inserted in order into the raw ring but does not change closed rollups.
    pub fn push(&mut self, metric: MetricKind, at: DateTime<Utc>, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.base.is_none() {
            // a day of slack so late samples still land in order
            self.base = Some(at.timestamp() - 86_400);
        }
        let t = self.offset(at);
        let cfg = self.config;
        let retention = u32::try_from(cfg.raw_retention.as_secs()).unwrap_or(u32::MAX);
        let s = self.series.entry(metric).or_insert_with(|| Series {
            raw: VecDeque::with_capacity(cfg.raw_capacity),
            rollups: VecDeque::with_capacity(cfg.rollup_minutes),
            ..Series::default()
        });
        let v = value as f32;
        // make room before inserting, so the ring never grows past its capacity
        if s.raw.len() >= cfg.raw_capacity.max(1) {
            if s.raw.front().is_some_and(|f| f.0 > t) {
                return; // older than everything kept in a full ring
            }
            s.raw.pop_front();
        }
        match s.raw.back() {
            Some((last, _)) if *last > t => {
                let i = s.raw.partition_point(|(x, _)| *x <= t);
                s.raw.insert(i, (t, v));
            }
            _ => s.raw.push_back((t, v)),
        }
        let newest = s.raw.back().map_or(t, |b| b.0);
        while s.raw.front().is_some_and(|f| newest - f.0 > retention) {
            s.raw.pop_front();
        }
        fold_rollup(s, t / 60, v, cfg.rollup_minutes);
    }

    /// Raw samples held for `metric`.
    pub fn raw_len(&self, metric: &MetricKind) -> usize {
        self.series.get(metric).map_or(0, |s| s.raw.len())
    }

    /// Rollup minutes held for `metric` (gaps included).
    pub fn rollup_len(&self, metric: &MetricKind) -> usize {
        self.series.get(metric).map_or(0, |s| s.rollups.len())
    }

    /// The 1-minute means of `metric` in `(from, to]`, as `(minute start, mean)`.
    pub fn rollups(&self, metric: &MetricKind, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, f64)> {
        let Some(s) = self.series.get(metric) else { return Vec::new() };
        let first = s.newest_minute + 1 - s.rollups.len() as u32;
        s.rollups
            .iter()
            .enumerate()
            .map(|(i, v)| (self.time_of((first + i as u32) * 60), f64::from(v.to_f32())))
            .filter(|(t, v)| *t > from && *t <= to && v.is_finite())
            .collect()
    }

    /// Steady-state ceiling in bytes of the sample storage for `metrics` series with the
    /// given config (ring contents only; per-series headers add ~100 bytes each).
    pub fn bytes_bound(config: &WindowConfig, metrics: usize) -> usize {
        metrics * (config.raw_capacity * 8 + config.rollup_minutes * 2)
    }

    /// Bytes held right now by the rings (allocated capacity, not length).
    pub fn bytes_held(&self) -> usize {
        self.series
            .values()
            .map(|s| s.raw.capacity() * 8 + s.rollups.capacity() * 2 + std::mem::size_of::<Series>())
            .sum()
    }
}

/// Folds one sample into the rollup of `minute`: a running mean for the newest minute,
/// NaN gaps for skipped minutes, nothing for minutes already closed.
fn fold_rollup(s: &mut Series, minute: u32, v: f32, cap: usize) {
    if !s.rollups.is_empty() && minute < s.newest_minute {
        return;
    }
    if !s.rollups.is_empty() && minute == s.newest_minute {
        s.newest_count += 1;
        s.newest_mean += (v - s.newest_mean) / s.newest_count as f32;
        if let Some(back) = s.rollups.back_mut() {
            *back = bf16::from_f32(s.newest_mean);
        }
        return;
    }
    if !s.rollups.is_empty() {
        let gap = (minute - s.newest_minute - 1) as usize;
        if gap >= cap {
            s.rollups.clear();
        } else {
            let excess = (s.rollups.len() + gap + 1).saturating_sub(cap);
            s.rollups.drain(..excess.min(s.rollups.len()));
            s.rollups.extend(std::iter::repeat_n(bf16::NAN, gap));
        }
    }
    s.rollups.push_back(bf16::from_f32(v));
    s.newest_minute = minute;
    s.newest_mean = v;
    s.newest_count = 1;
    while s.rollups.len() > cap {
        s.rollups.pop_front();
    }
}

impl MetricSource for PoolWindows {
    /// Raw samples answer the part of `(from, to]` they cover; older parts come from the
    /// rollups (each minute counts as one sample of its mean).
    fn summary(&self, metric: &MetricKind, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Summary> {
        let s = self.series.get(metric)?;
        let raw_from = s.raw.front().map(|f| self.time_of(f.0));
        let older: Vec<f64> = match raw_from {
            Some(rf) if rf > from => self
                .rollups(metric, from, to.min(rf - chrono::Duration::seconds(60)))
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
            None => self.rollups(metric, from, to).into_iter().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        };
        let raw = s
            .raw
            .iter()
            .map(|(t, v)| (self.time_of(*t), f64::from(*v)))
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, v)| v);
        summarise(older.into_iter().chain(raw))
    }
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod tests;
