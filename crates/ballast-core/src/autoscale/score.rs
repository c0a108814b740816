//! Composite load score: weighted, normalised metrics → one 0–100 number with up/down
//! thresholds, then a step like [`step`](super::step).
//!
//! Each weighted metric is normalised to 0–100 against its full-scale value (the value
//! that counts as 100: cpu and memory 100%, rps 100 per instance, concurrency 10 per
//! instance, latency 1000ms, error rate 10%, queue depth 100 per instance, Prometheus and
//! custom 100), capped at 100. The score is the weighted mean over the metrics that have
//! data; metrics without data are named in the reason and left out of the mean.

use super::config::yes;
use super::decision::Recommendation;
use super::metrics::{MetricKind, Num, Over};
use super::step::{per_instance, step_vote, StepSize};
use super::target::default_window;
use super::Ctx;
use crate::config::ConfigDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// `kind = "score"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorePolicy {
    /// Relative weight per metric; default cpu 40, memory 30, rps 20, error-rate 10.
    #[serde(default = "default_weights")]
    pub weights: BTreeMap<MetricKind, f64>,
    /// The value that counts as a score of 100, per metric, overriding the defaults
    /// listed in the module documentation (e.g. `full_scale = { rps = 250 }`).
    #[serde(default)]
    pub full_scale: BTreeMap<MetricKind, f64>,
    /// Above this score (0–100), add `scale_up_by`.
    pub threshold_up: f64,
    /// Below this score, remove `scale_down_by`.
    pub threshold_down: f64,
    /// Step up; default 1 instance.
    #[serde(default)]
    pub scale_up_by: StepSize,
    /// Step down; default 1 instance.
    #[serde(default)]
    pub scale_down_by: StepSize,
    /// Samples averaged: those of the last `window`; default 1m.
    #[serde(default = "default_window")]
    pub window: ConfigDuration,
    /// Default true.
    #[serde(default = "yes")]
    pub active: bool,
}

/// The default weights: cpu 40, memory 30, rps 20, error-rate 10.
pub fn default_weights() -> BTreeMap<MetricKind, f64> {
    BTreeMap::from([
        (MetricKind::Cpu, 40.0),
        (MetricKind::Memory, 30.0),
        (MetricKind::Rps, 20.0),
        (MetricKind::ErrorRate, 10.0),
    ])
}

impl ScorePolicy {
    /// A score policy with the default weights and the given thresholds.
    pub fn new(threshold_up: f64, threshold_down: f64) -> Self {
        ScorePolicy {
            weights: default_weights(),
            full_scale: BTreeMap::new(),
            threshold_up,
            threshold_down,
            scale_up_by: StepSize::default(),
            scale_down_by: StepSize::default(),
            window: default_window(),
            active: true,
        }
    }

    /// The value of `metric` that counts as 100.
    pub fn full_scale_of(&self, metric: &MetricKind) -> f64 {
        if let Some(v) = self.full_scale.get(metric) {
            return *v;
        }
        match metric {
            MetricKind::Concurrency => 10.0,
            MetricKind::LatencyP50 | MetricKind::LatencyP95 | MetricKind::LatencyP99 => 1000.0,
            MetricKind::ErrorRate => 10.0,
            _ => 100.0,
        }
    }
}

/// The score of the current metrics (0–100), the parts for the reason, and how many
/// samples were read; `None` when no weighted metric has data.
fn score(p: &ScorePolicy, ctx: &Ctx<'_>) -> (Option<f64>, String, usize) {
    let (mut sum, mut weight, mut samples) = (0.0, 0.0, 0);
    let (mut parts, mut missing) = (String::with_capacity(128), String::new());
    for (metric, w) in p.weights.iter().filter(|(_, w)| **w > 0.0) {
        let value = ctx.read(metric, p.window.0).and_then(|s| {
            samples = samples.max(s.count);
            per_instance(metric, s.mean, ctx.state.ready)
        });
        let Some(v) = value else {
            let sep = if missing.is_empty() { "" } else { ", " };
            let _ = write!(missing, "{sep}{metric}");
            continue;
        };
        let full = p.full_scale_of(metric);
        let norm = if full > 0.0 { (v / full * 100.0).clamp(0.0, 100.0) } else { 0.0 };
        sum += w * norm;
        weight += w;
        let sep = if parts.is_empty() { "" } else { ", " };
        let _ = write!(parts, "{sep}{metric} {}→{}", metric.show(v), Num(norm));
    }
    if !missing.is_empty() {
        let sep = if parts.is_empty() { "" } else { "; " };
        let _ = write!(parts, "{sep}no data: {missing}");
    }
    let score = (weight > 0.0).then(|| (sum / weight).min(100.0));
    (score, parts, samples)
}

/// The vote of a score policy.
pub(crate) fn evaluate(p: &ScorePolicy, idx: usize, ctx: &Ctx<'_>) -> Recommendation {
    const KIND: &str = "score";
    let current = ctx.state.current;
    let (score, parts, samples) = score(p, ctx);
    let Some(s) = score else {
        return Recommendation::no_data(idx, KIND, format!("score: no weighted metric has data ({parts})"));
    };
    let (want, cmp) = step_vote(current, s, p.threshold_up, p.threshold_down, p.scale_up_by, p.scale_down_by);
    let reason = format!("score {} {cmp} {} ({parts}) → {current} → {want}", Num(s), Over(samples));
    Recommendation::wants(idx, KIND, want, reason)
}
