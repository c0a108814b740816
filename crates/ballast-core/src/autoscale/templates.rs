//! Policy templates (`template = "web-balanced"`) and the simulator's named policies.
//!
//! A template is a composite-score policy plus cooldowns and a stabilisation window;
//! the numbers in the table are the score's up/down thresholds.
//!
//! | template | up/down | weights | up cd | down cd | down window |
//! | --- | --- | --- | --- | --- | --- |
//! | web-balanced | 70/30 | cpu 40, memory 30, rps 20, error-rate 10 | 60s | 5m | 5m |
//! | web-aggressive | 60/40 | same, steps +50% / −1 | 30s | 3m | 2m |
//! | api-latency | 60/40 | cpu 30, latency-p95 30 (500ms = 100), rps 20, error-rate 10, memory 10 | 30s | 5m | 5m |
//! | batch-cost | 80/20 | cpu 50, memory 20, queue-depth 30 | 2m | 2m | 2m |
//! | ml-gpu | 75/25 | cpu 40, memory 30, concurrency 30 | 5m | 15m | 15m |
//! | dev-minimal | 90/10 | cpu 40, memory 30, rps 20, error-rate 10 | 1m | 2m | 1m |

use super::config::{LimitSelect, PolicyConfig, RateLimit, ScalingConfig};
use super::forecast::PredictivePolicy;
use super::metrics::MetricKind;
use super::score::ScorePolicy;
use super::step::{StepPolicy, StepSize};
use super::target::{default_window, TargetPolicy};
use crate::config::ConfigDuration;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The template names, for messages that list what is allowed.
pub const TEMPLATE_NAMES: [&str; 6] =
    ["web-balanced", "web-aggressive", "api-latency", "batch-cost", "ml-gpu", "dev-minimal"];

/// A named bundle of a score policy and damping.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Name, as written in config.
    pub name: &'static str,
    /// One line for the dashboard.
    pub description: &'static str,
    /// The composite-score policy it adds.
    pub policy: PolicyConfig,
    /// Scale-up cooldown.
    pub scale_up_cooldown: Duration,
    /// Scale-down cooldown.
    pub scale_down_cooldown: Duration,
    /// Scale-down stabilisation window.
    pub scale_down_stabilization: Duration,
}

fn weights(w: &[(MetricKind, f64)]) -> BTreeMap<MetricKind, f64> {
    w.iter().cloned().collect()
}

/// The template called `name`, if there is one.
pub fn template(name: &str) -> Option<Template> {
    find_template(name).cloned()
}

/// Every template, built once (decisions look theirs up on every call).
pub fn templates() -> &'static [Template] {
    static ALL: OnceLock<Vec<Template>> = OnceLock::new();
    ALL.get_or_init(|| TEMPLATE_NAMES.iter().filter_map(|n| build(n)).collect())
}

/// The template called `name`, without copying it.
pub(crate) fn find_template(name: &str) -> Option<&'static Template> {
    templates().iter().find(|t| t.name == name)
}

fn build(name: &str) -> Option<Template> {
    let secs = Duration::from_secs;
    let (description, score, cooldowns) = match name {
        "web-balanced" => ("general web service", ScorePolicy::new(70.0, 30.0), (60, 300, 300)),
        "web-aggressive" => {
            let mut p = ScorePolicy::new(60.0, 40.0);
            p.scale_up_by = StepSize::Percent(50.0);
            ("spiky web traffic: scale early and by half", p, (30, 180, 120))
        }
        "api-latency" => {
            let mut p = ScorePolicy::new(60.0, 40.0);
            p.weights = weights(&[
                (MetricKind::Cpu, 30.0),
                (MetricKind::LatencyP95, 30.0),
                (MetricKind::Rps, 20.0),
                (MetricKind::ErrorRate, 10.0),
                (MetricKind::Memory, 10.0),
            ]);
            p.full_scale.insert(MetricKind::LatencyP95, 500.0);
            ("latency-sensitive API", p, (30, 300, 300))
        }
        "batch-cost" => {
            let mut p = ScorePolicy::new(80.0, 20.0);
            p.weights = weights(&[(MetricKind::Cpu, 50.0), (MetricKind::Memory, 20.0), (MetricKind::QueueDepth, 30.0)]);
            ("batch workers: run hot, shrink fast", p, (120, 120, 120))
        }
        "ml-gpu" => {
            let mut p = ScorePolicy::new(75.0, 25.0);
            p.weights =
                weights(&[(MetricKind::Cpu, 40.0), (MetricKind::Memory, 30.0), (MetricKind::Concurrency, 30.0)]);
            ("slow-starting GPU inference", p, (300, 900, 900))
        }
        "dev-minimal" => ("development: as few instances as possible", ScorePolicy::new(90.0, 10.0), (60, 120, 60)),
        _ => return None,
    };
    let name = TEMPLATE_NAMES.iter().find(|n| **n == name)?;
    Some(Template {
        name,
        description,
        policy: PolicyConfig::Score(score),
        scale_up_cooldown: secs(cooldowns.0),
        scale_down_cooldown: secs(cooldowns.1),
        scale_down_stabilization: secs(cooldowns.2),
    })
}

/// The simulator's named policies, as `--policy NAME` spells them.
pub const NAMED_POLICIES: [&str; 5] = ["target", "step", "score", "predictive", "hpa"];

/// A complete scaling config for a named policy; set `min`/`max` afterwards. All read
/// `cpu` as utilisation percent (100 × load ÷ capacity of the ready instances); push
/// `rps` (pool total) too, which the score and scale to zero use:
/// - `target`: target tracking at 70%, defaults otherwise (60s up, 5m down cooldowns);
/// - `step`: +2 above 80%, −1 below 40%;
/// - `score`: the `web-balanced` template (score 70/30; metrics without data are left out);
/// - `predictive`: the peak seasonal forecast of cpu demand over the start-up time,
///   scaled up by its recent 95th-percentile error, at 80% (scaling down at 76%), and
///   never below what the demand now needs (see [`PredictivePolicy`]);
/// - `hpa`: the Kubernetes HPA: target 70%, tolerance 0.1, 15s sync, no cooldowns, 5m
///   scale-down stabilisation, scale-up at most +4 instances or +100% per 15s (the larger),
///   reading the latest 15s of cpu.
pub fn named_policy(name: &str) -> Option<ScalingConfig> {
    let mut c = ScalingConfig::default();
    let target = || PolicyConfig::Target(TargetPolicy::new(MetricKind::Cpu, 70.0));
    match name {
        "target" => c.policies.push(target()),
        "step" => c.policies.push(PolicyConfig::Step(StepPolicy {
            metric: MetricKind::Cpu,
            threshold_up: 80.0,
            threshold_down: 40.0,
            scale_up_by: StepSize::Instances(2),
            scale_down_by: StepSize::Instances(1),
            window: default_window(),
            active: true,
        })),
        "score" => c.template = Some("web-balanced".to_string()),
        "predictive" => {
            // Hotter than reactive tracking: the forecast is smooth, its margin covers
            // its own recent errors, and it never asks for less than the demand now.
            c.policies.push(PolicyConfig::Predictive(PredictivePolicy::new(MetricKind::Cpu, 80.0)));
        }
        "hpa" => {
            // The HPA reads the current metric each sync, not an average of older ones.
            let mut t = TargetPolicy::new(MetricKind::Cpu, 70.0);
            t.window = ConfigDuration::from_secs(15);
            c.policies.push(PolicyConfig::Target(t));
            let zero = Some(ConfigDuration::from_secs(0));
            c.scale_up_cooldown = zero;
            c.scale_down_cooldown = zero;
            c.scale_down_stabilization = Some(ConfigDuration::from_secs(300));
            c.sync_interval = ConfigDuration::from_secs(15);
            c.max_scale_up = Some(RateLimit {
                instances: Some(4),
                percent: Some(100.0),
                period: ConfigDuration::from_secs(15),
                select: LimitSelect::Max,
            });
        }
        _ => return None,
    }
    Some(c)
}
