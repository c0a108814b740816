//! Validation of `[pool.scaling]` and `[pool.cost]`: every problem, with its field path,
//! what is wrong and how to fix it. Shapes (unknown metric names, negative durations,
//! malformed steps) are already rejected while parsing, with the field named by
//! `serde_path_to_error`; this checks meaning.

use super::config::{PolicyConfig, RateLimit, ScalingConfig, MAX_HOLD_QUEUE, MAX_HOLD_TIMEOUT};
use super::cost::CostConfig;
use super::forecast::PredictivePolicy;
use super::metrics::MetricKind;
use super::schedule::{self, SchedulePolicy};
use super::score::ScorePolicy;
use super::step::{StepPolicy, StepSize};
use super::target::TargetPolicy;
use super::templates::{template, TEMPLATE_NAMES};
use crate::config::{ConfigDuration, FieldError};
use std::time::Duration;

/// Collects errors under one path prefix.
struct Check<'a> {
    base: String,
    errors: &'a mut Vec<FieldError>,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(format!("{}.{field}", self.base), message));
    }

    fn positive(&mut self, field: &str, v: f64) {
        if !v.is_finite() || v <= 0.0 {
            self.fail(field, format!("{v} is not allowed; use a number above 0"));
        }
    }

    fn non_negative(&mut self, field: &str, v: f64) {
        if !v.is_finite() || v < 0.0 {
            self.fail(field, format!("{v} is not allowed; use 0 or more"));
        }
    }

    fn nonzero_duration(&mut self, field: &str, d: ConfigDuration) {
        if d.0.is_zero() {
            self.fail(field, "0s is not allowed; use a duration such as \"30s\" or \"5m\"");
        }
    }

    fn thresholds(&mut self, up: f64, down: f64) {
        self.non_negative("threshold_up", up);
        self.non_negative("threshold_down", down);
        if up <= down {
            self.fail(
                "threshold_up",
                format!("threshold_up ({up}) must be greater than threshold_down ({down}); raise it or lower threshold_down"),
            );
        }
    }

    fn step(&mut self, field: &str, s: StepSize) {
        if s == StepSize::Instances(0) {
            self.fail(field, "a step of 0 never changes the pool; use at least 1 or a percent such as \"50%\"");
        }
    }

    fn unit_range(&mut self, field: &str, metric: &MetricKind, v: f64) {
        let percent = matches!(metric, MetricKind::Cpu | MetricKind::Memory | MetricKind::ErrorRate);
        if percent && v > 100.0 {
            self.fail(field, format!("{v} is above 100; {metric} is a percent (0–100)"));
        }
    }
}

impl ScalingConfig {
    /// Checks meaning (bounds, thresholds, weights, schedules, templates) and pushes one
    /// [`FieldError`] per problem; `path` is the section's path, e.g. `pool "api".scaling`.
    pub fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut c = Check { base: path.to_string(), errors };
        if self.max == 0 {
            c.fail("max", "0 is not allowed; use at least 1 (scale to zero is `scale_to_zero`, not max = 0)");
        }
        if self.min > self.max {
            c.fail("min", format!("min ({}) is greater than max ({}); lower min or raise max", self.min, self.max));
        }
        if let Some(t) = &self.template {
            if template(t).is_none() {
                c.fail("template", format!("unknown template {t:?}; use one of {}", TEMPLATE_NAMES.join(", ")));
            }
        }
        if self.policies.is_empty() && self.template.is_none() {
            c.fail("policy", "no policy and no template: add a [[pool.scaling.policy]] or template = \"web-balanced\"");
        }
        c.nonzero_duration("sync_interval", self.sync_interval);
        for (field, limit) in [("max_scale_up", &self.max_scale_up), ("max_scale_down", &self.max_scale_down)] {
            if let Some(l) = limit {
                rate_limit(&mut c, field, l);
            }
        }
        if let Some(z) = &self.scale_to_zero {
            c.nonzero_duration("scale_to_zero.idle_after", z.idle_after);
            if !(1..=MAX_HOLD_QUEUE).contains(&z.hold_queue) {
                c.fail(
                    "scale_to_zero.hold_queue",
                    format!("{} is not allowed; use 1 to {MAX_HOLD_QUEUE} held requests (default 1000)", z.hold_queue),
                );
            }
            c.nonzero_duration("scale_to_zero.hold_timeout", z.hold_timeout);
            if z.hold_timeout.0 > MAX_HOLD_TIMEOUT {
                c.fail(
                    "scale_to_zero.hold_timeout",
                    format!("{} is too long; use at most 10m (default 30s): clients give up before that", z.hold_timeout),
                );
            }
        }
        super::prometheus::validate(self.prometheus.as_ref(), &self.policies, path, c.errors);
        for (i, p) in self.policies.iter().enumerate() {
            let mut pc = Check { base: format!("{path}.policy[{i}]"), errors: c.errors };
            match p {
                PolicyConfig::Target(p) => target(&mut pc, p),
                PolicyConfig::Step(p) => step(&mut pc, p),
                PolicyConfig::Score(p) => score(&mut pc, p),
                PolicyConfig::Schedule(p) => schedule(&mut pc, p, self.max),
                PolicyConfig::Predictive(p) => predictive(&mut pc, p),
            }
        }
    }
}

fn rate_limit(c: &mut Check<'_>, field: &str, l: &RateLimit) {
    if l.instances.is_none() && l.percent.is_none() {
        c.fail(field, "set `instances`, `percent` or both, e.g. { instances = 4, percent = 100, period = \"1m\" }");
    }
    if l.instances == Some(0) {
        c.fail(&format!("{field}.instances"), "0 would forbid every change; use at least 1");
    }
    if let Some(p) = l.percent {
        c.positive(&format!("{field}.percent"), p);
    }
    c.nonzero_duration(&format!("{field}.period"), l.period);
}

fn target(c: &mut Check<'_>, p: &TargetPolicy) {
    c.positive("target", p.target);
    c.unit_range("target", &p.metric, p.target);
    if !(0.0..1.0).contains(&p.tolerance) {
        c.fail("tolerance", format!("{} is not allowed; use a fraction from 0 to below 1 (0.1 = ±10%)", p.tolerance));
    }
    c.nonzero_duration("window", p.window);
}

fn step(c: &mut Check<'_>, p: &StepPolicy) {
    c.thresholds(p.threshold_up, p.threshold_down);
    c.unit_range("threshold_up", &p.metric, p.threshold_up);
    c.step("scale_up_by", p.scale_up_by);
    c.step("scale_down_by", p.scale_down_by);
    c.nonzero_duration("window", p.window);
}

fn score(c: &mut Check<'_>, p: &ScorePolicy) {
    c.thresholds(p.threshold_up, p.threshold_down);
    if p.threshold_up > 100.0 {
        c.fail("threshold_up", format!("{} is above 100; the score runs from 0 to 100", p.threshold_up));
    }
    for (m, w) in &p.weights {
        c.non_negative(&format!("weights.{m}"), *w);
    }
    let sum: f64 = p.weights.values().filter(|w| w.is_finite() && **w > 0.0).sum();
    if sum <= 0.0 {
        c.fail(
            "weights",
            "the weights sum to 0; give at least one metric a weight above 0, e.g. { cpu = 40, memory = 30 }",
        );
    }
    for (m, v) in &p.full_scale {
        c.positive(&format!("full_scale.{m}"), *v);
        if !p.weights.contains_key(m) {
            c.fail(
                &format!("full_scale.{m}"),
                format!("{m} has no weight, so its full scale is never used; add weights.{m} or remove it"),
            );
        }
    }
    c.step("scale_up_by", p.scale_up_by);
    c.step("scale_down_by", p.scale_down_by);
    c.nonzero_duration("window", p.window);
}

fn schedule(c: &mut Check<'_>, p: &SchedulePolicy, pool_max: u32) {
    if let Err(e) = schedule::parse(p) {
        let field = if e.contains("time zone") { "timezone" } else { "start" };
        c.fail(field, e);
    }
    c.nonzero_duration("duration", p.duration);
    if p.min.is_none() && p.max.is_none() && p.desired.is_none() {
        c.fail("desired", "the window changes nothing; set min, max or desired");
    }
    if let (Some(lo), Some(hi)) = (p.min, p.max) {
        if lo > hi {
            c.fail("min", format!("min ({lo}) is greater than max ({hi}); lower min or raise max"));
        }
    }
    if let Some(d) = p.desired {
        let hi = p.max.unwrap_or(pool_max);
        if d > hi || p.min.is_some_and(|lo| d < lo) {
            c.fail(
                "desired",
                format!("desired ({d}) is outside the window's bounds; keep it between min and max ({hi})"),
            );
        }
    }
}

fn predictive(c: &mut Check<'_>, p: &PredictivePolicy) {
    c.positive("target", p.target);
    c.unit_range("target", &p.metric, p.target);
    let day = Duration::from_secs(86_400);
    // A week of buckets is kept: below a minute that history grows past 10,000 entries.
    if p.interval.0 < Duration::from_secs(60) || p.interval.0 > day {
        c.fail("interval", format!("{} is not allowed; use 1m to 1d (default 5m)", p.interval));
    }
    if let Some(l) = p.lead {
        if l.0 > day {
            c.fail("lead", format!("{l} is too far ahead; use at most 1d"));
        }
    }
    c.nonzero_duration("window", p.window);
}

impl CostConfig {
    /// Checks prices, budget and alert levels; `path` is e.g. `pool "api".cost`.
    pub fn validate(&self, path: &str, errors: &mut Vec<FieldError>) {
        let mut c = Check { base: path.to_string(), errors };
        let fields = [
            ("price_per_instance_hour", self.price_per_instance_hour),
            ("vcpus_per_instance", self.vcpus_per_instance),
            ("price_per_vcpu_hour", self.price_per_vcpu_hour),
            ("memory_gb_per_instance", self.memory_gb_per_instance),
            ("price_per_gb_hour", self.price_per_gb_hour),
        ];
        for (f, v) in fields {
            if let Some(v) = v {
                c.non_negative(f, v);
            }
        }
        let pairs = [
            ("vcpus_per_instance", "price_per_vcpu_hour", self.vcpus_per_instance, self.price_per_vcpu_hour),
            ("memory_gb_per_instance", "price_per_gb_hour", self.memory_gb_per_instance, self.price_per_gb_hour),
        ];
        for (a, b, va, vb) in pairs {
            if va.is_some() != vb.is_some() {
                let (set, missing) = if va.is_some() { (a, b) } else { (b, a) };
                c.fail(missing, format!("{set} is set but {missing} is not; set both or neither"));
            }
        }
        if self.price_per_instance_hour.is_none()
            && self.price_per_vcpu_hour.is_none()
            && self.price_per_gb_hour.is_none()
        {
            c.fail("price_per_instance_hour", "no price is set; set price_per_instance_hour (or vCPU/GB prices)");
        }
        if let Some(b) = self.budget {
            c.positive("budget", b);
        }
        for (f, v) in [("warning_at", self.warning_at), ("critical_at", self.critical_at)] {
            if !(v > 0.0 && v <= 1.0) {
                c.fail(
                    f,
                    format!("{v} is not allowed; use a fraction of the budget above 0 and at most 1 (0.75 = 75%)"),
                );
            }
        }
        if self.warning_at >= self.critical_at {
            c.fail(
                "warning_at",
                format!("warning_at ({}) must be below critical_at ({})", self.warning_at, self.critical_at),
            );
        }
        if self.currency.trim().is_empty() {
            c.fail("currency", "empty; use a label such as \"USD\"");
        }
    }
}
