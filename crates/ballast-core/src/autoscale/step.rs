//! Threshold/step policies: above `threshold_up` add a step, below `threshold_down`
//! remove one. Steps are absolute (`2`) or a percent of the current count (`"50%"`,
//! rounded up, at least 1). The composite score policy reuses [`step_vote`].

use super::config::yes;
use super::decision::Recommendation;
use super::metrics::{MetricKind, Num, Over};
use super::target::{default_window, per_note};
use super::Ctx;
use crate::config::ConfigDuration;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `kind = "step"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPolicy {
    /// The metric compared with the thresholds (per instance for total metrics).
    pub metric: MetricKind,
    /// Above this, add `scale_up_by`.
    pub threshold_up: f64,
    /// Below this, remove `scale_down_by`.
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

/// A step: a number of instances (`2`) or a percent of the current count (`"50%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepSize {
    /// This many instances.
    Instances(u32),
    /// This percent of the current count, rounded up, at least 1 instance.
    Percent(f64),
}

impl Default for StepSize {
    fn default() -> Self {
        StepSize::Instances(1)
    }
}

impl StepSize {
    /// Instances to add or remove from `current`.
    pub fn of(&self, current: u32) -> u32 {
        match *self {
            StepSize::Instances(n) => n,
            StepSize::Percent(p) => ((f64::from(current) * p / 100.0).ceil().max(1.0)).min(f64::from(u32::MAX)) as u32,
        }
    }
}

impl fmt::Display for StepSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepSize::Instances(n) => write!(f, "{n}"),
            StepSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for StepSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StepSize::Instances(n) => s.serialize_u32(*n),
            StepSize::Percent(_) => s.collect_str(self),
        }
    }
}

const STEP_HELP: &str = "write a whole number of instances (2) or a percent (\"50%\")";

fn parse_step(s: &str) -> Result<StepSize, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(StepSize::Percent(v)),
            _ => Err(format!("invalid step {s:?}; the percent must be a number above 0; {STEP_HELP}")),
        };
    }
    t.parse::<u32>().map(StepSize::Instances).map_err(|_| format!("invalid step {s:?}; {STEP_HELP}"))
}

impl<'de> Deserialize<'de> for StepSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StepSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(STEP_HELP)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StepSize, E> {
                u32::try_from(v).map(StepSize::Instances).map_err(|_| E::custom(format!("step {v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StepSize, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("step {v} is negative; {STEP_HELP}")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StepSize, E> {
                parse_step(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The count a threshold policy wants for `value`: `(count, comparison for reasons)`.
pub(crate) fn step_vote(
    current: u32,
    value: f64,
    up: f64,
    down: f64,
    up_by: StepSize,
    down_by: StepSize,
) -> (u32, String) {
    if value > up {
        (current.saturating_add(up_by.of(current)), format!("> up {} (+{up_by})", Num(up)))
    } else if value < down {
        (current.saturating_sub(down_by.of(current)), format!("< down {} (-{down_by})", Num(down)))
    } else {
        (current, format!("between {} and {}", Num(down), Num(up)))
    }
}

/// The metric value a threshold compares: per instance for totals. From zero ready
/// instances a total is taken as what one instance would carry; other metrics have no
/// value then.
pub(crate) fn per_instance(metric: &MetricKind, mean: f64, ready: u32) -> Option<f64> {
    match (metric.is_total(), ready) {
        (true, 0) => Some(mean),
        (true, r) => Some(mean / f64::from(r)),
        (false, 0) => None,
        (false, _) => Some(mean),
    }
}

/// The vote of a step policy.
pub(crate) fn evaluate(p: &StepPolicy, idx: usize, ctx: &Ctx<'_>) -> Recommendation {
    const KIND: &str = "step";
    let current = ctx.state.current;
    let Some(s) = ctx.read(&p.metric, p.window.0) else {
        return Recommendation::no_data(idx, KIND, format!("no {} samples in the last {}", p.metric, p.window));
    };
    let Some(v) = per_instance(&p.metric, s.mean, ctx.state.ready) else {
        return Recommendation::no_data(idx, KIND, format!("no ready instance reports {}", p.metric));
    };
    let (want, cmp) = step_vote(current, v, p.threshold_up, p.threshold_down, p.scale_up_by, p.scale_down_by);
    let reason = format!(
        "{} {}{} {cmp} {} → {current} → {want}",
        p.metric,
        p.metric.show(v),
        per_note(&p.metric),
        Over(s.count)
    );
    Recommendation::wants(idx, KIND, want, reason)
}
