//! Predictive scaling: forecast demand from its own history and scale ahead of it.
//!
//! **Method: seasonal-naive with level correction, daily and weekly.** Demand (the pool
//! total of the metric: for per-instance metrics, value × ready instances) is averaged
//! into buckets of `interval` (default 5m) and kept for a week. To forecast `h` ahead:
//! - for each season `P` (1 day, 1 week) that the history covers, take the value one
//!   season before the target time (mean of the three buckets around it) and add how much
//!   the last hour differs from the same hour one season ago (the level correction, which
//!   carries growth or a quiet week forward); when the history holds the target time one
//!   season ago but not the hour before now one season ago (the first hour of history
//!   is exactly one season old), the season's value is taken without the correction;
//! - with both seasons available the forecast is the higher of the two estimates: they
//!   agree on ordinary days and disagree where the week turns (yesterday was Sunday,
//!   last week's Monday was busy), where meeting the busier one is what keeps the SLO;
//! - with less than a day of history, take the slope of a least-squares line through the
//!   buckets of the last 15 minutes (at least two) and add slope × horizon to the newest
//!   bucket (trend, anchored at the newest value so that at the top of a ramp it
//!   over-provisions by at most slope × lead); with one bucket, repeat it (naive).
//!
//! Forecasts are never negative. We picked this over Holt-Winters because it needs no
//! fitted smoothing constants, behaves predictably on short or gappy history, and its
//! reason is easy to read ("value a week ago + level change").
//!
//! The lead (how far ahead to look) is the policy's `lead`, or the pool's measured
//! start-up time plus the sync interval, so instances are ready when the load arrives.
//!
//! **The vote.** `ceil(need ÷ target)`, where `need` is
//! - the peak forecast over the whole look-ahead `[now, now + lead]`
//!   ([`Forecaster::forecast_peak`]: every bucket in between, not only its end), so a
//!   peak inside the start-up time is met too;
//! - scaled up by the margin (`margin`, default on): a running estimate of the 95th
//!   percentile of how far demand came in above the point forecasts made one lead
//!   earlier ([`Forecaster::margin`]), so the headroom is what this load's forecast
//!   actually misses by rather than a fixed guess, and a target near the SLO is safe;
//! - and at least the demand now (`cover_current`, default on), so a jump that history
//!   did not predict is still met as target tracking would.
//!
//! A vote below the current count is counted at 95% of the target (a 5% band), so the
//! noise of a forecast that sits near a count boundary does not flip the count up and
//! down every few minutes.

use super::config::yes;
use super::decision::Recommendation;
use super::metrics::{MetricKind, Num};
use super::target::{ceil_count, default_window, per_note};
use super::Ctx;
use crate::config::ConfigDuration;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// `kind = "predictive"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictivePolicy {
    /// The metric whose demand is forecast.
    pub metric: MetricKind,
    /// Target value per instance (as in target tracking).
    pub target: f64,
    /// History bucket size; default 5m.
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
    /// How far ahead to look; default the pool's start-up time plus the sync interval.
    #[serde(default)]
    pub lead: Option<ConfigDuration>,
    /// Record the recommendation without acting on it.
    #[serde(default)]
    pub forecast_only: bool,
    /// Samples averaged for the current demand: those of the last `window`; default 1m.
    #[serde(default = "default_window")]
    pub window: ConfigDuration,
    /// Scale the forecast up by the recent 95th percentile of how far demand came in
    /// above the forecasts made for it (the forecast's own uncertainty); default true.
    #[serde(default = "yes")]
    pub margin: bool,
    /// Never ask for fewer instances than the current demand needs at the target, so a
    /// jump the seasons did not predict is still covered; default true.
    #[serde(default = "yes")]
    pub cover_current: bool,
    /// Default true.
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_interval() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}

impl PredictivePolicy {
    /// A predictive policy with the default interval, lead and window.
    pub fn new(metric: MetricKind, target: f64) -> Self {
        PredictivePolicy {
            metric,
            target,
            interval: default_interval(),
            lead: None,
            forecast_only: false,
            window: default_window(),
            margin: true,
            cover_current: true,
            active: true,
        }
    }
}

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
const LEVEL_SPAN: i64 = 3_600;
const TREND_SPAN: i64 = 900;
/// A scale-down counts against a target this much lower (relative), so forecast noise
/// around a count boundary does not flip the count up and down.
const DOWN_BAND: f64 = 0.05;
/// Most forecasts kept waiting for their actual (bounds memory at tiny sync intervals).
const MAX_PENDING: usize = 1_024;
/// The margin's unit: its state is a whole number of these (exact through JSON).
const MARGIN_UNIT: f64 = 1e-4;
/// Units an error above the tracked quantile raises it by, and one below lowers it by:
/// 19 : 1 settles where 5% of errors lie above (the 95th percentile).
const MARGIN_UP: i32 = 19;
const MARGIN_DOWN: i32 = 1;
/// The tracked quantile stays within ±this many units (±100%).
const MAX_MARGIN_UNITS: i32 = 10_000;

/// Bucketed demand history of one predictive policy; lives in
/// [`EngineMemory`](super::EngineMemory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    interval: i64,
    first: i64,
    buckets: VecDeque<Option<f64>>,
    open: Option<(i64, f64, u32)>,
    /// Forecasts awaiting their actual demand: `(due, forecast)`, oldest first.
    #[serde(default)]
    pending: VecDeque<(i64, f64)>,
    /// Running estimate of the 95th percentile of `actual ÷ forecast − 1`, in units of
    /// 0.0001.
    #[serde(default)]
    error_p95: i32,
}

impl Forecaster {
    /// An empty history with buckets of `interval_secs` (at least 1).
    pub fn new(interval_secs: i64) -> Self {
        Forecaster {
            interval: interval_secs.max(1),
            first: 0,
            buckets: VecDeque::new(),
            open: None,
            pending: VecDeque::new(),
            error_p95: 0,
        }
    }

    /// Bucket size in seconds.
    pub fn interval_secs(&self) -> i64 {
        self.interval
    }

    fn bucket(&self, t: DateTime<Utc>) -> i64 {
        t.timestamp().div_euclid(self.interval)
    }

    fn capacity(&self) -> usize {
        ((WEEK + 2 * LEVEL_SPAN) / self.interval + 2) as usize
    }

    /// Adds one observation of demand at `at`. Observations older than the newest bucket
    /// and non-finite values are ignored. The observation is the actual demand of every
    /// forecast [`expect`](Self::expect)ed for `at` or earlier: their errors are recorded.
    pub fn observe(&mut self, at: DateTime<Utc>, value: f64) {
        if !value.is_finite() {
            return;
        }
        let now = at.timestamp();
        while let Some(&(_, forecast)) = self.pending.front().filter(|p| p.0 <= now) {
            self.pending.pop_front();
            if forecast > 0.0 {
                // In units, rounded up; errors within float rounding of a unit count as it.
                let units = ((value / forecast - 1.0) / MARGIN_UNIT - 1e-6).ceil();
                let units = units.clamp(f64::from(-MAX_MARGIN_UNITS), f64::from(MAX_MARGIN_UNITS)) as i32;
                // An error above the estimate raises it, but never past that error.
                let q = if units > self.error_p95 {
                    (self.error_p95 + MARGIN_UP).min(units)
                } else {
                    self.error_p95 - MARGIN_DOWN
                };
                self.error_p95 = q.clamp(-MAX_MARGIN_UNITS, MAX_MARGIN_UNITS);
            }
        }
        let b = self.bucket(at);
        match self.open {
            Some((ob, ref mut sum, ref mut n)) if ob == b => {
                *sum += value;
                *n += 1;
            }
            Some((ob, _, _)) if b < ob => {}
            Some((ob, sum, n)) => {
                self.close(ob, sum / f64::from(n));
                self.open = Some((b, value, 1));
            }
            None => self.open = Some((b, value, 1)),
        }
    }

    /// Remembers that demand at `due` was forecast as `forecast`; the first observation at
    /// or after `due` measures the error. Forecasts due before an earlier pending one are
    /// ignored (time runs forward).
    pub fn expect(&mut self, due: DateTime<Utc>, forecast: f64) {
        let due = due.timestamp();
        if !forecast.is_finite() || self.pending.back().is_some_and(|p| p.0 > due) {
            return;
        }
        self.pending.push_back((due, forecast));
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
    }

    /// How much to scale a forecast up by: a running estimate of the 95th percentile of
    /// `actual ÷ forecast − 1` over the forecasts that fell due so far, at least 0 and at
    /// most 1. Each error moves the estimate (up by 0.0019 when the error is above it, but
    /// not past the error; down by 0.0001 when not), so it settles where 5% of errors lie
    /// above it, rises to a lasting change within a few hundred forecasts, and a short
    /// burst moves it little.
    pub fn margin(&self) -> f64 {
        f64::from(self.error_p95.max(0)) * MARGIN_UNIT
    }

    /// The highest forecast over the whole look-ahead `[now, now + horizon]`: the
    /// [`forecast`](Self::forecast) at `now`, every `interval` after it (so every bucket
    /// in between) and at `now + horizon`, with the method of the highest.
    pub fn forecast_peak(&self, now: DateTime<Utc>, horizon: std::time::Duration) -> Option<(f64, &'static str)> {
        let step = std::time::Duration::from_secs(self.interval.unsigned_abs());
        let mut best = self.forecast(now, horizon)?;
        let mut h = std::time::Duration::ZERO;
        while h < horizon {
            if let Some(f) = self.forecast(now, h).filter(|f| f.0 > best.0) {
                best = f;
            }
            h += step;
        }
        Some(best)
    }

    fn close(&mut self, bucket: i64, mean: f64) {
        let cap = self.capacity();
        let next = self.first + self.buckets.len() as i64;
        let gap = bucket - next;
        if self.buckets.is_empty() || gap < 0 || gap as usize >= cap {
            self.buckets.clear();
            self.first = bucket;
        } else {
            self.buckets.extend(std::iter::repeat_n(None, gap as usize));
        }
        self.buckets.push_back(Some(mean));
        while self.buckets.len() > cap {
            self.buckets.pop_front();
            self.first += 1;
        }
    }

    fn get(&self, b: i64) -> Option<f64> {
        if let Some((ob, sum, n)) = self.open {
            if ob == b {
                return Some(sum / f64::from(n));
            }
        }
        let i = usize::try_from(b - self.first).ok()?;
        self.buckets.get(i).copied().flatten()
    }

    fn mean(&self, from: i64, to: i64) -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0u32);
        for v in (from..=to).filter_map(|b| self.get(b)) {
            sum += v;
            n += 1;
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    /// Demand forecast `horizon` after `now`, with the method used; `None` without history.
    pub fn forecast(&self, now: DateTime<Utc>, horizon: std::time::Duration) -> Option<(f64, &'static str)> {
        let nb = self.bucket(now);
        let ahead = TimeDelta::from_std(horizon).ok().and_then(|h| now.checked_add_signed(h))?;
        let tb = self.bucket(ahead);
        let k = (LEVEL_SPAN / self.interval).max(1);
        let recent = self.mean(nb - k + 1, nb)?;
        let seasonal = |p: i64| {
            let p = p / self.interval;
            let then = self.mean(tb - p - 1, tb - p + 1)?;
            let level = self.mean(nb - p - k + 1, nb - p).map_or(0.0, |past| recent - past);
            Some(then + level)
        };
        let (estimate, method) = match (seasonal(DAY), seasonal(WEEK)) {
            (Some(d), Some(w)) => (d.max(w), "seasonal daily+weekly"),
            (Some(d), None) => (d, "seasonal daily"),
            (None, Some(w)) => (w, "seasonal weekly"),
            (None, None) => {
                let span = (TREND_SPAN / self.interval).max(2);
                let trend = self.trend(now.timestamp(), horizon.as_secs_f64(), span);
                trend.map_or((recent, "naive"), |v| (v, "trend"))
            }
        };
        Some((estimate.max(0.0), method))
    }

    /// The newest of the last `k` buckets plus `horizon` seconds of the slope of their
    /// least-squares line (each bucket placed at the middle of the time it covers, the
    /// open one up to `now`); `None` with fewer than two buckets.
    fn trend(&self, now: i64, horizon: f64, k: i64) -> Option<f64> {
        let nb = now.div_euclid(self.interval);
        let middle = |b: i64| {
            let start = b * self.interval;
            let end = if b == nb { now.clamp(start, start + self.interval) } else { start + self.interval };
            (start + end) as f64 / 2.0 - now as f64
        };
        let pts: Vec<(f64, f64)> = (nb - k + 1..=nb).filter_map(|b| self.get(b).map(|v| (middle(b), v))).collect();
        if pts.len() < 2 {
            return None;
        }
        let n = pts.len() as f64;
        let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let (newest_x, newest) = pts[pts.len() - 1];
        Some(newest + slope * (horizon - newest_x))
    }
}

/// The vote of a predictive policy; records the current demand into `forecaster`.
pub(crate) fn evaluate(
    p: &PredictivePolicy,
    idx: usize,
    ctx: &Ctx<'_>,
    sync: std::time::Duration,
    forecaster: &mut Forecaster,
) -> Recommendation {
    const KIND: &str = "predictive";
    let current = ctx.state.current;
    let demand = ctx.read(&p.metric, p.window.0).and_then(|s| match (p.metric.is_total(), ctx.state.ready) {
        (true, _) => Some(s.mean),
        (false, 0) => None,
        (false, r) => Some(s.mean * f64::from(r)),
    });
    if let Some(d) = demand {
        forecaster.observe(ctx.now, d);
    }
    let lead = p.lead.map_or(ctx.state.startup_time + sync, |l| l.0);
    let margin = if p.margin { forecaster.margin() } else { 0.0 };
    if let (Some((point, _)), Some(due)) =
        (forecaster.forecast(ctx.now, lead), TimeDelta::from_std(lead).ok().and_then(|l| ctx.now.checked_add_signed(l)))
    {
        forecaster.expect(due, point);
    }
    let rec = match forecaster.forecast_peak(ctx.now, lead) {
        None => Recommendation::no_data(idx, KIND, format!("no {} history to forecast from", p.metric)),
        Some((f, method)) => {
            let covered = f * (1.0 + margin);
            let (need, why) = match demand.filter(|d| p.cover_current && *d > covered) {
                Some(d) => (d, format!(", below the demand now ({}), which is covered", Num(d))),
                None => (covered, String::new()),
            };
            let want = match ceil_count(need / p.target) {
                up_or_hold if up_or_hold >= current => up_or_hold,
                _ => ceil_count(need / (p.target * (1.0 - DOWN_BAND))).min(current),
            };
            let reason = format!(
                "forecast peak {} {} within {} ({method}) + {:.1}% margin{why} at target {}{} → {current} → {want}",
                p.metric,
                Num(f),
                humantime::format_duration(lead),
                margin * 100.0,
                p.metric.show(p.target),
                per_note(&p.metric)
            );
            Recommendation::wants(idx, KIND, want, reason)
        }
    };
    if p.forecast_only {
        let reason = format!("forecast only: {}", rec.reason);
        Recommendation { reason, ..rec }.passive()
    } else {
        rec
    }
}
