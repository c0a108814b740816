//! The scaling section of a pool (`[pool.scaling]`): bounds, policies, damping.
//!
//! ```toml
//! [pool.scaling]
//! min = 2
//! max = 20
//! template = "web-balanced"          # optional: adds a composite-score policy and cooldowns
//! scale_down_cooldown = "5m"
//! max_scale_up = { instances = 4, percent = 100, period = "1m" }
//!
//! [[pool.scaling.policy]]
//! kind = "target"
//! metric = "cpu"
//! target = 70
//! ```
//! Fields left out take the template's value when a template is named, else the
//! documented default.

use super::forecast::PredictivePolicy;
use super::schedule::SchedulePolicy;
use super::score::ScorePolicy;
use super::step::StepPolicy;
use super::target::TargetPolicy;
use super::templates::{self, Template};
use crate::config::ConfigDuration;
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;

/// Scaling settings of one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingConfig {
    /// Fewest instances while the pool is in use; default 1. Scale to zero may go below.
    #[serde(default = "default_min")]
    pub min: u32,
    /// Most instances; default 10.
    #[serde(default = "default_max")]
    pub max: u32,
    /// A named template (see [`templates::TEMPLATE_NAMES`]) whose policy is added after
    /// the explicit ones and whose cooldowns fill fields left out.
    #[serde(default)]
    pub template: Option<String>,
    /// Policies (`[[pool.scaling.policy]]`), each tagged by `kind`.
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    /// No scale-up sooner than this after the last scale-up; default 60s.
    #[serde(default)]
    pub scale_up_cooldown: Option<ConfigDuration>,
    /// No scale-down sooner than this after the last scaling action in either
    /// direction; default 5m.
    #[serde(default)]
    pub scale_down_cooldown: Option<ConfigDuration>,
    /// A scale-down goes only to the highest recommendation seen in this window; default 5m.
    #[serde(default)]
    pub scale_down_stabilization: Option<ConfigDuration>,
    /// A scale-up goes only to the lowest recommendation seen in this window; default 0s.
    #[serde(default)]
    pub scale_up_stabilization: Option<ConfigDuration>,
    /// Largest scale-up per period; default none.
    #[serde(default)]
    pub max_scale_up: Option<RateLimit>,
    /// Largest scale-down per period; default none.
    #[serde(default)]
    pub max_scale_down: Option<RateLimit>,
    /// Go to zero instances after an idle period; default off.
    #[serde(default)]
    pub scale_to_zero: Option<ScaleToZero>,
    /// Decide and explain but never act: every decision is marked dry-run.
    #[serde(default)]
    pub dry_run: bool,
    /// How often the controller calls the engine; the predictive lead adds it. Default 15s.
    #[serde(default = "default_sync")]
    pub sync_interval: ConfigDuration,
    /// Where `prometheus:<name>` metrics are queried (`[pool.scaling.prometheus]`).
    #[serde(default)]
    pub prometheus: Option<super::prometheus::PrometheusSource>,
}

fn default_min() -> u32 {
    1
}
fn default_max() -> u32 {
    10
}
fn default_sync() -> ConfigDuration {
    ConfigDuration::from_secs(15)
}

impl Default for ScalingConfig {
    fn default() -> Self {
        ScalingConfig {
            min: default_min(),
            max: default_max(),
            template: None,
            policies: Vec::new(),
            scale_up_cooldown: None,
            scale_down_cooldown: None,
            scale_down_stabilization: None,
            scale_up_stabilization: None,
            max_scale_up: None,
            max_scale_down: None,
            scale_to_zero: None,
            dry_run: false,
            sync_interval: default_sync(),
            prometheus: None,
        }
    }
}

/// Defaults of the damping fields when neither the pool nor its template sets them.
pub const DEFAULT_SCALE_UP_COOLDOWN: Duration = Duration::from_secs(60);
/// Default scale-down cooldown.
pub const DEFAULT_SCALE_DOWN_COOLDOWN: Duration = Duration::from_secs(300);
/// Default scale-down stabilisation window (the Kubernetes HPA's).
pub const DEFAULT_SCALE_DOWN_STABILIZATION: Duration = Duration::from_secs(300);

/// A policy attached to a pool (`[[pool.scaling.policy]]`), tagged by `kind`.
///
/// Deserialising names the failing field inside the policy (`metric: unknown metric
/// "cpux"; ...`), which serde's derived tagged enums cannot do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PolicyConfig {
    /// `kind = "target"`: keep a metric near a target per instance.
    Target(TargetPolicy),
    /// `kind = "step"`: add or remove a step when a metric crosses a threshold.
    Step(StepPolicy),
    /// `kind = "score"`: a weighted 0–100 load score with up/down thresholds.
    Score(ScorePolicy),
    /// `kind = "schedule"`: a cron window that sets min/max/desired while active.
    Schedule(SchedulePolicy),
    /// `kind = "predictive"`: scale ahead of a seasonal forecast.
    Predictive(PredictivePolicy),
}

impl PolicyConfig {
    /// The `kind` tag as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyConfig::Target(_) => "target",
            PolicyConfig::Step(_) => "step",
            PolicyConfig::Score(_) => "score",
            PolicyConfig::Schedule(_) => "schedule",
            PolicyConfig::Predictive(_) => "predictive",
        }
    }

    /// False when the operator switched the policy off (`active = false`).
    pub fn is_active(&self) -> bool {
        match self {
            PolicyConfig::Target(p) => p.active,
            PolicyConfig::Step(p) => p.active,
            PolicyConfig::Score(p) => p.active,
            PolicyConfig::Schedule(p) => p.active,
            PolicyConfig::Predictive(p) => p.active,
        }
    }
}

const KINDS: &[&str] = &["target", "step", "score", "schedule", "predictive"];

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let kind = match map.remove("kind") {
            Some(serde_json::Value::String(k)) => k,
            Some(other) => return Err(de::Error::custom(format!("kind must be a string, not {other}"))),
            None => return Err(de::Error::missing_field("kind")),
        };
        let body = serde_json::Value::Object(map);
        match kind.as_str() {
            "target" => fields(body).map(PolicyConfig::Target),
            "step" => fields(body).map(PolicyConfig::Step),
            "score" => fields(body).map(PolicyConfig::Score),
            "schedule" => fields(body).map(PolicyConfig::Schedule),
            "predictive" => fields(body).map(PolicyConfig::Predictive),
            other => Err(de::Error::unknown_variant(other, KINDS)),
        }
    }
}

/// Reads a policy's fields, prefixing an error with the field it is about.
fn fields<T: DeserializeOwned, E: de::Error>(body: serde_json::Value) -> Result<T, E> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            E::custom(e.into_inner())
        } else {
            E::custom(format!("{path}: {}", e.into_inner()))
        }
    })
}

/// `active` defaults to true.
pub(crate) fn yes() -> bool {
    true
}

/// Largest change per period: `{ instances = 4, percent = 100, period = "1m" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// At most this many instances per period.
    #[serde(default)]
    pub instances: Option<u32>,
    /// At most this percent of the count at the start of the period.
    #[serde(default)]
    pub percent: Option<f64>,
    /// The period; default 1m.
    #[serde(default = "default_rate_period")]
    pub period: ConfigDuration,
    /// With both limits set, `max` (default) allows the larger change, `min` the smaller.
    #[serde(default)]
    pub select: LimitSelect,
}

fn default_rate_period() -> ConfigDuration {
    ConfigDuration::from_secs(60)
}

impl RateLimit {
    /// How many instances may change in one period starting from `base` instances.
    pub fn allowance(&self, base: u32) -> u32 {
        let by_pct = self.percent.map(|p| (f64::from(base) * p / 100.0).ceil().max(0.0) as u32);
        match (self.instances, by_pct, self.select) {
            (Some(a), Some(b), LimitSelect::Max) => a.max(b),
            (Some(a), Some(b), LimitSelect::Min) => a.min(b),
            (Some(a), None, _) | (None, Some(a), _) => a,
            (None, None, _) => u32::MAX,
        }
    }
}

/// Which of two rate limits applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitSelect {
    /// The larger allowed change (the Kubernetes HPA's default).
    #[default]
    Max,
    /// The smaller allowed change.
    Min,
}

/// Scale-to-zero settings: `scale_to_zero = { idle_after = "15m", hold_queue = 1000,
/// hold_timeout = "30s" }`.
///
/// With it on, `min` holds only while the pool is awake: after `idle_after` with no
/// request, in-flight request or queued item (and rps samples showing so) the pool goes
/// to 0, and any demand (including requests the proxy holds) wakes it to at least 1.
/// Going to zero and waking skip cooldowns, stabilisation and rate limits: the idle
/// period is their damping, and a held request must not wait out a cooldown.
///
/// While the pool has no instance the proxy holds its requests (bodies unread) in a
/// queue of at most `hold_queue` per pool, each for at most `hold_timeout`: a full queue
/// answers 503 at once, a request that waited out the timeout gets 503; both carry
/// `Retry-After`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleToZero {
    /// With no request, in-flight request or queued item for this long, go to 0; default 15m.
    #[serde(default = "default_idle")]
    pub idle_after: ConfigDuration,
    /// Requests held at most per pool while it has no instance; 1 to
    /// [`MAX_HOLD_QUEUE`], default 1000.
    #[serde(default = "default_hold_queue")]
    pub hold_queue: u32,
    /// How long a held request waits for an instance before 503; above 0, at most
    /// [`MAX_HOLD_TIMEOUT`], default 30s.
    #[serde(default = "default_hold_timeout")]
    pub hold_timeout: ConfigDuration,
}

impl Default for ScaleToZero {
    fn default() -> Self {
        ScaleToZero { idle_after: default_idle(), hold_queue: default_hold_queue(), hold_timeout: default_hold_timeout() }
    }
}

/// Largest `scale_to_zero.hold_queue`: each held request keeps a client connection open.
pub const MAX_HOLD_QUEUE: u32 = 100_000;
/// Longest `scale_to_zero.hold_timeout`: clients and intermediaries give up before that.
pub const MAX_HOLD_TIMEOUT: Duration = Duration::from_secs(600);
/// Default `scale_to_zero.hold_queue`.
pub const DEFAULT_HOLD_QUEUE: u32 = 1000;
/// Default `scale_to_zero.hold_timeout`.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(30);

fn default_idle() -> ConfigDuration {
    ConfigDuration::from_secs(15 * 60)
}
fn default_hold_queue() -> u32 {
    DEFAULT_HOLD_QUEUE
}
fn default_hold_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_HOLD_TIMEOUT)
}

impl ScalingConfig {
    /// Whether the pool may run with zero instances (`min = 0` or a `scale_to_zero`
    /// section), so that the proxy should hold its requests while it has none.
    pub fn may_be_at_zero(&self) -> bool {
        self.min == 0 || self.scale_to_zero.is_some()
    }

    /// The hold queue bound and timeout: the `scale_to_zero` section's, else the defaults.
    pub fn hold_limits(&self) -> (u32, Duration) {
        self.scale_to_zero
            .as_ref()
            .map_or((DEFAULT_HOLD_QUEUE, DEFAULT_HOLD_TIMEOUT), |z| (z.hold_queue, z.hold_timeout.0))
    }
}

/// The effective settings of a config after its template is applied.
pub(crate) struct Resolved {
    pub template: Option<&'static Template>,
    pub up_cooldown: Duration,
    pub down_cooldown: Duration,
    pub down_window: Duration,
    pub up_window: Duration,
}

impl ScalingConfig {
    /// Fills the damping fields from the template (if any) and the defaults.
    pub(crate) fn resolve(&self) -> Resolved {
        let template = self.template.as_deref().and_then(templates::find_template);
        let pick = |own: Option<ConfigDuration>, tpl: Option<Duration>, default: Duration| {
            own.map(|d| d.0).or(tpl).unwrap_or(default)
        };
        let t = template;
        Resolved {
            up_cooldown: pick(self.scale_up_cooldown, t.map(|t| t.scale_up_cooldown), DEFAULT_SCALE_UP_COOLDOWN),
            down_cooldown: pick(
                self.scale_down_cooldown,
                t.map(|t| t.scale_down_cooldown),
                DEFAULT_SCALE_DOWN_COOLDOWN,
            ),
            down_window: pick(
                self.scale_down_stabilization,
                t.map(|t| t.scale_down_stabilization),
                DEFAULT_SCALE_DOWN_STABILIZATION,
            ),
            up_window: pick(self.scale_up_stabilization, None, Duration::ZERO),
            template,
        }
    }

    /// The explicit policies followed by the template's, as the engine applies them.
    pub fn effective_policies(&self) -> Vec<PolicyConfig> {
        let mut all = self.policies.clone();
        if let Some(t) = self.template.as_deref().and_then(templates::find_template) {
            all.push(t.policy.clone());
        }
        all
    }
}
