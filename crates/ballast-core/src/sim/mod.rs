//! The simulator behind `ballast sim`: replay a request-rate trace against a model of
//! replicas, let scaling policies decide, and compare them with the oracle.
//!
//! - [`trace`]: the load, from CSV or an access log ([`parse_trace`]).
//! - [`model`]: capacity, start-up delay, M/M/c latency and the SLO ([`ReplicaModel`]).
//! - [`run`]: the deterministic run loop ([`simulate`], [`Scenario`]).
//! - [`mod@oracle`]: the cheapest schedule that meets the SLO knowing the future.
//! - [`report`] and [`svg`]: the side-by-side table, the JSON and the chart.
//! - [`engine_policy`]: the real scaling engine as a policy ([`EnginePolicy`]) and
//!   `--policy NAME` ([`build_policy`]).
//!
//! The rules every run follows, policies and oracle alike:
//! - **Warm start**: the first decision, at the trace's first time, sees a pool sized
//!   for the first load ([`ReplicaModel::needed`] ready replicas) and gets what it asks
//!   for at once, ready, as if the policy had been running before the trace. It is not
//!   counted as a scale action. (`fixed-N` starts with N; the oracle with its choice.)
//! - **Decisions** every `sync_interval_s` after that: the policy sees an
//!   [`Observation`] of the past interval and returns a desired count (clamped to
//!   `max_replicas`). New replicas are billed at once and ready `startup_s` later.
//!   Removals take effect at once, starting replicas first (newest first), then ready
//!   ones: cancelling a replica that is not serving yet never hurts.
//! - **Billing**: every replica counts from the moment it is asked for until it is
//!   removed, starting or ready: replica-hours = ∫ (ready + starting) dt / 3600.
//! - **SLO**: at every instant the SLO holds iff `ready ≥ needed(offered load)`.
//!   Violation minutes add up the time it does not; "requests over SLO" counts every
//!   request offered during that time (they all see the violated latency/utilisation);
//!   "requests unserved" counts the part of the load above `ready × capacity`.
//!
//! Everything is pure and deterministic: the same trace, model, policy and options give
//! the same report, bit for bit.

pub mod access_log;
pub mod engine_policy;
pub mod model;
pub mod oracle;
pub mod report;
pub mod run;
pub mod svg;
pub mod trace;

#[cfg(test)]
mod tests;

pub use engine_policy::{build_policy, ConfigPool, EnginePolicy, POLICY_NAMES};
pub use model::{ReplicaModel, Slo};
pub use oracle::{oracle, OracleReport};
pub use report::{compare, SimReport};
pub use run::{simulate, PolicyReport, Scenario, SeriesPoint, SimOptions};
pub use svg::render_svg;
pub use trace::{parse_trace, Trace, TraceError, TraceFormat, TracePoint};

use crate::config::FieldError;
use thiserror::Error;

/// What the simulator asks of a scaling policy each step.
pub trait SimPolicy {
    /// Name shown in reports, e.g. `fixed-4` or `target-cpu-60`.
    fn name(&self) -> &str;
    /// The replica count the policy wants now (ready + starting). Values above the
    /// model's `max_replicas` are clamped.
    fn desired(&mut self, obs: &Observation) -> u32;
}

/// What a policy observes at one decision. Rates are means over the interval since the
/// previous decision (at the first decision: the load at that instant); replica counts
/// are as of now. A policy never sees the future.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Trace time of this decision, seconds.
    pub t_s: f64,
    /// Seconds since the trace start.
    pub elapsed_s: f64,
    /// Seconds between decisions (`sync_interval_s`).
    pub interval_s: f64,
    /// Replicas serving traffic now.
    pub ready: u32,
    /// Replicas asked for and not ready yet.
    pub starting: u32,
    /// `ready + starting`: what the provider reports as the current count.
    pub current: u32,
    /// Offered load, requests per second (what the balancer receives).
    pub offered_rps: f64,
    /// Load actually served, requests per second (at most ready × capacity).
    pub served_rps: f64,
    /// `offered_rps ÷ (ready × capacity)`; may exceed 1; 0 with no load;
    /// `f64::INFINITY` with load and no ready replica.
    pub utilisation: f64,
    /// M/M/c mean latency estimate for `offered_rps` on `ready` replicas, seconds;
    /// `None` when they cannot keep up.
    pub latency_s: Option<f64>,
    /// Seconds of the past interval during which the SLO was violated.
    pub slo_violated_s: f64,
    /// One replica's capacity, requests per second (from the model).
    pub capacity_rps: f64,
    /// Replica start-up delay, seconds (from the model).
    pub startup_s: f64,
}

/// A constant replica count: `fixed-N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedPolicy {
    n: u32,
    name: String,
}

impl FixedPolicy {
    /// Always `n` replicas.
    pub fn new(n: u32) -> Self {
        FixedPolicy { n, name: format!("fixed-{n}") }
    }

    /// Reads `fixed-N` (N a whole number, at most [`model::MAX_REPLICAS_LIMIT`]).
    /// `None` when `spec` does not start with `fixed-`; an error when N is bad.
    pub fn from_spec(spec: &str) -> Option<Result<Self, FieldError>> {
        let n = spec.strip_prefix("fixed-")?;
        Some(match n.parse::<u32>() {
            Ok(n) if n <= model::MAX_REPLICAS_LIMIT => Ok(FixedPolicy::new(n)),
            _ => Err(FieldError::new(
                "policy",
                format!("{spec:?}: N in fixed-N must be a whole number from 0 to {}", model::MAX_REPLICAS_LIMIT),
            )),
        })
    }
}

impl SimPolicy for FixedPolicy {
    fn name(&self) -> &str {
        &self.name
    }
    fn desired(&mut self, _obs: &Observation) -> u32 {
        self.n
    }
}

/// Why a simulation could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SimError {
    /// The trace was refused.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A model field or a run option is out of range.
    #[error("{0}")]
    Invalid(FieldError),
    /// Some load needs more replicas than the model allows, so no policy can meet it.
    #[error("at t = {t_s} s the trace offers {rps} req/s, which needs more than max_replicas = {max_replicas} replicas to meet the SLO; raise sim.max_replicas or sim.capacity_rps")]
    NeedsTooMany {
        /// Time of the step, seconds.
        t_s: f64,
        /// Its load, requests per second.
        rps: f64,
        /// The model's limit.
        max_replicas: u32,
    },
}
