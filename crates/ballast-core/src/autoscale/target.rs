//! Target tracking: keep a metric near a target per instance, the Kubernetes HPA's way.
//!
//! `desired = ceil(ready × value / target)`, where the ratio `value / target` is computed
//! over the ready instances only (they are the ones reporting). Inside the tolerance band
//! (`|1 − ratio| ≤ tolerance`, default 10%) the count stays. When scaling up while some
//! instances are not ready yet, those are assumed to use 0 of the metric (they will take
//! load once ready) and the ratio is recomputed over all instances: if that flips the
//! direction or falls inside the band, the count stays. A result that goes against the
//! direction of the ratio is never returned.

use super::config::yes;
use super::decision::Recommendation;
use super::metrics::{MetricKind, Num, Over};
use super::Ctx;
use crate::config::ConfigDuration;
use serde::{Deserialize, Serialize};

/// `kind = "target"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPolicy {
    /// The metric to track.
    pub metric: MetricKind,
    /// Target value per instance, in the metric's unit (percent for cpu, requests per
    /// second per instance for rps, ...).
    pub target: f64,
    /// Relative band around the target inside which nothing changes; default 0.1.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Samples averaged: those of the last `window`; default 1m.
    #[serde(default = "default_window")]
    pub window: ConfigDuration,
    /// Default true.
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_tolerance() -> f64 {
    0.1
}

/// Default averaging window of metric-reading policies.
pub(crate) fn default_window() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}

impl TargetPolicy {
    /// Target tracking on `metric` at `target` with the default tolerance and window.
    pub fn new(metric: MetricKind, target: f64) -> Self {
        TargetPolicy { metric, target, tolerance: default_tolerance(), window: default_window(), active: true }
    }
}

/// `ceil` that ignores float noise just above an integer (`5.000000001` → 5).
pub(crate) fn ceil_count(x: f64) -> u32 {
    let c = (x - 1e-9).ceil();
    if c.is_nan() || c <= 0.0 {
        0
    } else if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        c as u32
    }
}

/// The vote of a target-tracking policy.
pub(crate) fn evaluate(p: &TargetPolicy, idx: usize, ctx: &Ctx<'_>) -> Recommendation {
    const KIND: &str = "target";
    let (current, ready) = (ctx.state.current, ctx.state.ready.min(ctx.state.current));
    let Some(s) = ctx.read(&p.metric, p.window.0) else {
        return Recommendation::no_data(idx, KIND, format!("no {} samples in the last {}", p.metric, p.window));
    };
    let tf = |v| p.metric.show(v);
    let over = Over(s.count);
    if ready == 0 {
        // From zero only a pool-wide total tells how much load there is.
        if !p.metric.is_total() {
            return Recommendation::no_data(idx, KIND, format!("no ready instance reports {}", p.metric));
        }
        let want = ceil_count(s.mean / p.target);
        let reason = format!(
            "{} {} with no ready instance, target {} per instance {over} → {current} → {want}",
            p.metric,
            tf(s.mean),
            tf(p.target)
        );
        return Recommendation::wants(idx, KIND, want, reason);
    }
    let per = if p.metric.is_total() { s.mean / f64::from(ready) } else { s.mean };
    let ratio = per / p.target;
    let cmp = if ratio > 1.0 {
        ">"
    } else if ratio < 1.0 {
        "<"
    } else {
        "="
    };
    let head = format!("{} {}{} {cmp} target {} {over}", p.metric, tf(per), per_note(&p.metric), tf(p.target));
    if (1.0 - ratio).abs() <= p.tolerance {
        let band = Num(p.tolerance * 100.0);
        return Recommendation::wants(idx, KIND, current, format!("{head}, within ±{band}% → {current}"));
    }
    let not_ready = current - ready;
    if ratio > 1.0 && not_ready > 0 {
        // Not-ready instances will take load soon: count them as using nothing.
        let all = per * f64::from(ready) / (f64::from(current) * p.target);
        if all <= 1.0 + p.tolerance {
            let reason = format!(
                "{head}, but with {not_ready} not-ready instance(s) counted as idle the ratio is {} → {current}",
                Num(all)
            );
            return Recommendation::wants(idx, KIND, current, reason);
        }
        let want = ceil_count(all * f64::from(current)).max(current);
        let reason = format!("{head} ({not_ready} not ready, counted as idle) → {current} → {want}");
        return Recommendation::wants(idx, KIND, want, reason);
    }
    let mut want = ceil_count(ratio * f64::from(ready));
    // Never go against the direction of the ratio.
    if (ratio < 1.0 && want > current) || (ratio > 1.0 && want < current) {
        want = current;
    }
    Recommendation::wants(idx, KIND, want, format!("{head} → {current} → {want}"))
}

/// ` per instance` after total metrics' values, so reasons read right.
pub(crate) fn per_note(m: &MetricKind) -> &'static str {
    if m.is_total() {
        " per instance"
    } else {
        ""
    }
}
