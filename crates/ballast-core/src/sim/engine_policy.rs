//! The real scaling engine as a simulator policy: [`EnginePolicy`] calls
//! [`autoscale::decide`](crate::autoscale::decide) at every decision of a run, and
//! [`build_policy`] turns a `--policy NAME` into a policy and its sync interval.
//!
//! # What the engine sees
//! At each decision the policy pushes one sample per metric, stamped with the decision's
//! time, describing the interval that just ended ([`Observation`]):
//! - `rps`: the offered load, requests per second, pool total;
//! - `cpu`: utilisation of the ready replicas in percent, `100 × offered ÷ (ready ×
//!   capacity)`, capped at 100 (a replica cannot use more than its allocation); left out
//!   with no ready replica (no instance reports);
//! - `latency-p95`, milliseconds: an upper bound on the M/M/c 95th percentile, the
//!   97.5th percentile of the Erlang C wait plus the 97.5th percentile of the service
//!   time (by the union bound at most 5% of requests take longer). When the ready
//!   replicas cannot keep up the queue grows without bound; requests then time out, and
//!   the sample is [`OVERLOAD_LATENCY_MS`];
//! - `concurrency`: in-flight requests by Little's law, offered load × mean latency
//!   (with the overload latency above when the queue is unstable).
//!
//! The pool state has `current` = ready + starting, `ready`, the model's start-up delay
//! as the measured `startup_time` (the predictive policy looks that far plus one sync
//! interval ahead), the spend of the current budget period when the pool has a
//! `[pool.cost]` budget (billed replicas × price, reset at each period end), and, with
//! no ready replica, the requests of the last interval as held requests (they wake a
//! pool scaled to zero).
//!
//! # Time
//! `now` is the trace clock read as Unix time: CSV `t_seconds` are seconds since the
//! Unix epoch (a trace starting at 0 starts on Thursday 1970-01-01 00:00 UTC, which
//! matters only to schedule windows), and an access log's seconds count from its first
//! timestamp ([`Trace::start_unix_s`](super::Trace::start_unix_s)); see
//! [`EnginePolicy::with_clock_origin`].
//!
//! # The warm start
//! The run's first decision sees a pool sized for the first load and gets what it asks
//! for at once (see the [module docs](super)). That change is not a scaling action, so
//! the policy forgets it in the engine's cooldown and rate-limit history; the
//! stabilisation history keeps it.
//!
//! # Acting
//! The policy returns [`Decision::desired`](crate::autoscale::Decision) when the
//! decision says to act, else the current count: a dry-run config never changes the pool.

use super::model::erlang_c;
use super::{FixedPolicy, Observation, SimOptions, SimPolicy};
use crate::autoscale::{
    at_epoch_millis, decide, named_policy, CostConfig, EngineMemory, MetricKind, MetricWindows, PolicyConfig,
    PoolState, ScalingConfig, NAMED_POLICIES,
};
use crate::config::{Config, FieldError};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The latency sample, milliseconds, when the ready replicas cannot keep up: the
/// default upstream response timeout (60 s), after which requests fail.
pub const OVERLOAD_LATENCY_MS: f64 = 60_000.0;

/// Metric samples older than this before a decision are dropped (longer than any
/// window a policy reads by default).
const KEEP_SAMPLES: TimeDelta = TimeDelta::hours(1);

/// A simulator policy that asks the real decision engine.
#[derive(Debug, Clone)]
pub struct EnginePolicy {
    name: String,
    config: ScalingConfig,
    cost: Option<CostConfig>,
    memory: EngineMemory,
    windows: MetricWindows,
    origin_ms: i64,
    spend: f64,
    period_end: Option<DateTime<Utc>>,
    last_t_s: Option<f64>,
    last_reason: String,
}

impl EnginePolicy {
    /// A policy named `name` running `config` (validated first; errors name the field
    /// under `scaling.` / `cost.`), priced and budgeted by `cost` if given.
    pub fn new(
        name: impl Into<String>,
        config: ScalingConfig,
        cost: Option<CostConfig>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        config.validate("scaling", &mut errors);
        if let Some(c) = &cost {
            c.validate("cost", &mut errors);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EnginePolicy {
            name: name.into(),
            config,
            cost,
            memory: EngineMemory::new(),
            windows: MetricWindows::new(),
            origin_ms: 0,
            spend: 0.0,
            period_end: None,
            last_t_s: None,
            last_reason: String::new(),
        })
    }

    /// The engine's named policy `name` (one of [`NAMED_POLICIES`]) with bounds
    /// `1..=max_replicas`; `None` for other names.
    pub fn named(name: &str, max_replicas: u32) -> Option<Self> {
        let mut config = named_policy(name)?;
        config.min = 1;
        config.max = max_replicas.max(1);
        EnginePolicy::new(name, config, None).ok()
    }

    /// Reads trace time `t` as Unix time `origin_unix_s + t` (default origin 0).
    pub fn with_clock_origin(mut self, origin_unix_s: i64) -> Self {
        self.origin_ms = origin_unix_s.saturating_mul(1000);
        self
    }

    /// The config the engine runs.
    pub fn config(&self) -> &ScalingConfig {
        &self.config
    }

    /// How a run of this policy is driven: decisions every `sync_interval` of the config.
    pub fn options(&self) -> SimOptions {
        SimOptions { sync_interval_s: self.config.sync_interval.0.as_secs_f64() }
    }

    /// The engine's memory after the decisions so far (forecaster history included).
    pub fn memory(&self) -> &EngineMemory {
        &self.memory
    }

    /// The reason of the last decision, for debugging a run.
    pub fn last_reason(&self) -> &str {
        &self.last_reason
    }

    fn now(&self, t_s: f64) -> DateTime<Utc> {
        // Whole milliseconds: t_s is at most 1e11 s, well inside i64 milliseconds.
        at_epoch_millis(self.origin_ms.saturating_add((t_s * 1000.0).round() as i64))
    }

    fn push_samples(&mut self, obs: &Observation, now: DateTime<Utc>) {
        let w = &mut self.windows;
        w.trim_before(now - KEEP_SAMPLES);
        w.push(MetricKind::Rps, now, obs.offered_rps);
        if obs.ready == 0 {
            return;
        }
        w.push(MetricKind::Cpu, now, obs.utilisation.min(1.0) * 100.0);
        let mean_ms = obs.latency_s.map_or(OVERLOAD_LATENCY_MS, |l| l * 1000.0);
        w.push(MetricKind::Concurrency, now, obs.offered_rps * mean_ms / 1000.0);
        let p95 = match obs.latency_s {
            Some(_) => p95_bound_ms(obs.ready, obs.offered_rps, obs.capacity_rps).min(OVERLOAD_LATENCY_MS),
            None => OVERLOAD_LATENCY_MS,
        };
        w.push(MetricKind::LatencyP95, now, p95);
    }

    /// Adds the last interval's bill to the period's spend, starting a new period when
    /// the last one ended.
    fn track_spend(&mut self, obs: &Observation, now: DateTime<Utc>) {
        let Some(cost) = self.cost.as_ref().filter(|c| c.budget.is_some()) else { return };
        if self.period_end.is_none_or(|end| now >= end) {
            self.spend = 0.0;
            self.period_end = Some(cost.period.end_after(now));
        } else if let Some(last) = self.last_t_s {
            let hours = (obs.t_s - last).max(0.0) / 3600.0;
            self.spend += f64::from(obs.current) * hours * cost.instance_hour_price();
        }
    }
}

/// Upper bound on the 95th percentile sojourn time of M/M/c, milliseconds, for a stable
/// queue (`offered < ready × capacity`): P(W > a + b) ≤ P(Wq > a) + P(S > b) with both
/// terms at 2.5%. P(Wq > t) = C·e^(−(cμ−λ)t) and P(S > t) = e^(−μt).
fn p95_bound_ms(ready: u32, offered: f64, capacity: f64) -> f64 {
    const TAIL: f64 = 0.025;
    let c = erlang_c(ready, offered / capacity);
    let spare = f64::from(ready) * capacity - offered;
    let wait = if c > TAIL && spare > 0.0 { (c / TAIL).ln() / spare } else { 0.0 };
    let service = (1.0 / TAIL).ln() / capacity;
    (wait + service) * 1000.0
}

impl SimPolicy for EnginePolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn desired(&mut self, obs: &Observation) -> u32 {
        let now = self.now(obs.t_s);
        let warm_start = self.last_t_s.is_none();
        self.push_samples(obs, now);
        self.track_spend(obs, now);
        let held = if obs.ready == 0 {
            (obs.offered_rps * obs.interval_s.max(1.0)).ceil().min(f64::from(u32::MAX)) as u32
        } else {
            0
        };
        let state = PoolState {
            current: obs.current,
            ready: obs.ready.min(obs.current),
            startup_time: Duration::try_from_secs_f64(obs.startup_s).unwrap_or_default(),
            spend_this_period: self.spend,
            pending_requests: held,
            manual: None,
        };
        let d = decide(&state, &self.config, self.cost.as_ref(), &self.windows, &mut self.memory, now);
        if warm_start {
            self.memory.scale_events.clear();
            self.memory.last_scale_up = None;
            self.memory.last_scale_down = None;
        }
        self.last_t_s = Some(obs.t_s);
        let out = if d.should_act() { d.desired } else { d.current };
        self.last_reason = d.reason;
        out
    }
}

/// A pool of a config file whose scaling a run can replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigPool {
    /// The pool's name.
    pub name: String,
    /// Its `[pool.scaling]`.
    pub scaling: ScalingConfig,
    /// Its `[pool.cost]`, if any.
    pub cost: Option<CostConfig>,
}

impl ConfigPool {
    /// Every pool of `config` that has a `[pool.scaling]` section, in file order.
    pub fn all(config: &Config) -> Vec<ConfigPool> {
        config
            .pools
            .iter()
            .filter_map(|p| {
                p.scaling.as_ref().map(|s| ConfigPool {
                    name: p.name.clone(),
                    scaling: s.clone(),
                    cost: p.cost.clone(),
                })
            })
            .collect()
    }

    /// True when the pool has a `kind = "schedule"` policy.
    pub fn has_schedule(&self) -> bool {
        self.scaling.policies.iter().any(|p| matches!(p, PolicyConfig::Schedule(_)))
    }
}

/// The names `--policy` accepts, for error messages.
pub const POLICY_NAMES: &str =
    "fixed-N, target, step, score, predictive, hpa, and with --config: config, schedule or a pool's name";

/// Builds the policy `spec` names, with the options to run it:
/// - `fixed-N`: N replicas throughout (decisions every 15 s);
/// - `target`, `step`, `score`, `predictive`, `hpa`: the engine's named policies
///   ([`named_policy`]) with bounds 1 to `max_replicas`;
/// - from `pools` (see [`ConfigPool::all`]): `config` runs the first pool's own scaling
///   (its bounds, policies, damping and budget), a pool's name runs that pool's, and
///   `schedule` runs the schedule policies of the first pool that has one, alone, with
///   that pool's bounds and damping.
///
/// Engine policies read trace time `t` as Unix time `origin_unix_s + t` (see
/// [`EnginePolicy::with_clock_origin`]). Errors name the field `policy` and list what is
/// allowed.
pub fn build_policy(
    spec: &str,
    pools: &[ConfigPool],
    max_replicas: u32,
    origin_unix_s: i64,
) -> Result<(Box<dyn SimPolicy>, SimOptions), FieldError> {
    if let Some(fixed) = FixedPolicy::from_spec(spec) {
        return Ok((Box::new(fixed?), SimOptions::default()));
    }
    if NAMED_POLICIES.contains(&spec) {
        let p = EnginePolicy::named(spec, max_replicas)
            .ok_or_else(|| FieldError::new("policy", format!("{spec:?}: the named policy does not validate")))?
            .with_clock_origin(origin_unix_s);
        let opts = p.options();
        return Ok((Box::new(p), opts));
    }
    let bad = |why: String| FieldError::new("policy", why);
    let run_pool = |name: &str, scaling: ScalingConfig, pool: &ConfigPool| {
        let p = EnginePolicy::new(name, scaling, pool.cost.clone())
            .map_err(|errors| {
                let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                bad(format!("{spec:?}: pool {:?} does not validate: {}", pool.name, all.join("; ")))
            })?
            .with_clock_origin(origin_unix_s);
        let opts = p.options();
        Ok((Box::new(p) as Box<dyn SimPolicy>, opts))
    };
    let first = pools.first();
    match spec {
        "config" => match first {
            Some(pool) => run_pool(&pool.name, pool.scaling.clone(), pool),
            None => Err(bad("\"config\" needs --config FILE with a pool that has [pool.scaling]".into())),
        },
        "schedule" => match pools.iter().find(|p| p.has_schedule()) {
            Some(pool) => {
                let mut scaling = pool.scaling.clone();
                scaling.template = None;
                scaling.policies.retain(|p| matches!(p, PolicyConfig::Schedule(_)));
                run_pool("schedule", scaling, pool)
            }
            None if first.is_none() => {
                Err(bad("\"schedule\" needs --config FILE with a pool that has a kind = \"schedule\" policy".into()))
            }
            None => Err(bad("\"schedule\": no pool in the config has a kind = \"schedule\" policy".into())),
        },
        _ => match pools.iter().find(|p| p.name == spec) {
            Some(pool) => run_pool(&pool.name, pool.scaling.clone(), pool),
            None => Err(bad(format!("unknown policy {spec:?}; use one of {POLICY_NAMES}"))),
        },
    }
}

#[cfg(test)]
#[path = "tests_engine.rs"]
mod tests;
