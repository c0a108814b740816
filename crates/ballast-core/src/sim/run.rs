//! The run loop: step a policy through a trace and account replica-hours, SLO time,
//! scaling actions and flips (the rules are in the [module docs](super)).
//!
//! Time advances event by event, not in fixed ticks: the state only changes at trace
//! steps, decisions and replicas becoming ready, so each stretch between two such events
//! is integrated exactly. Ties at one instant resolve as: replicas become ready, then the
//! policy decides (seeing them), then replicas with zero start-up become ready.

use super::model::ReplicaModel;
use super::oracle::{oracle_from_needs, OracleReport};
use super::trace::Trace;
use super::{Observation, SimError, SimPolicy};
use crate::config::FieldError;
use serde::Serialize;
use std::collections::VecDeque;

/// Most decisions one run may take (trace duration ÷ sync interval).
pub const MAX_DECISIONS: f64 = 10_000_000.0;
/// Smallest accepted sync interval, seconds.
pub const MIN_SYNC_INTERVAL_S: f64 = 0.01;

/// How a run is driven.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SimOptions {
    /// Seconds between two policy decisions. Default 15 (the Kubernetes HPA's period).
    pub sync_interval_s: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { sync_interval_s: 15.0 }
    }
}

impl SimOptions {
    /// Checks the interval against the trace: at least [`MIN_SYNC_INTERVAL_S`], finite,
    /// and at most [`MAX_DECISIONS`] decisions over `duration_s`.
    pub fn validate(&self, duration_s: f64) -> Result<(), FieldError> {
        let s = self.sync_interval_s;
        if !s.is_finite() || s < MIN_SYNC_INTERVAL_S {
            return Err(FieldError::new("sim.sync_interval_s", format!("{s} is out of range; use a number of seconds of at least {MIN_SYNC_INTERVAL_S}")));
        }
        if duration_s / s > MAX_DECISIONS {
            return Err(FieldError::new(
                "sim.sync_interval_s",
                format!("{s} s over a {duration_s} s trace makes more than {MAX_DECISIONS} decisions; use a longer interval"),
            ));
        }
        Ok(())
    }
}

/// One change of a run's replica counts: from `t_s` on, until the next point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Trace time, seconds.
    pub t_s: f64,
    /// Ready replicas (for the oracle: the replicas the load needs).
    pub ready: u32,
    /// Billed replicas: ready + starting.
    pub billed: u32,
}

/// The outcome of one policy over one trace. Serialises to the `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// The policy's name.
    pub name: String,
    /// Billed replica-hours (starting replicas included).
    pub replica_hours: f64,
    /// `replica_hours × price_per_replica_hour`.
    pub cost: f64,
    /// Minutes during which ready replicas were fewer than the SLO needs.
    pub slo_violation_minutes: f64,
    /// Requests offered while the SLO was violated.
    pub requests_over_slo: f64,
    /// Requests offered above `ready × capacity` (queued without bound or dropped).
    pub requests_unserved: f64,
    /// Decisions that changed the replica count (the warm start excluded).
    pub scale_actions: u64,
    /// Scale actions in the opposite direction to the previous action.
    pub flips: u64,
    /// `replica_hours ÷ oracle replica_hours`.
    pub ratio_to_oracle: f64,
    /// Most replicas billed at once.
    pub peak_replicas: u32,
    /// Every change of (ready, billed), for charts; the last point is at the trace end.
    #[serde(skip)]
    pub series: Vec<SeriesPoint>,
}

/// A trace and a model, checked and prepared once (needs per step, the oracle), to run
/// any number of policies against.
#[derive(Debug, Clone)]
pub struct Scenario {
    trace: Trace,
    model: ReplicaModel,
    needed: Vec<u32>,
    oracle: OracleReport,
}

impl Scenario {
    /// Validates the model and computes what every trace step needs.
    pub fn new(trace: Trace, model: ReplicaModel) -> Result<Scenario, SimError> {
        model.validate().map_err(SimError::Invalid)?;
        let needed = trace
            .points()
            .iter()
            .map(|p| {
                model.needed(p.rps).map_err(|e| SimError::NeedsTooMany { t_s: p.t_s, rps: p.rps, max_replicas: e.max_replicas })
            })
            .collect::<Result<Vec<u32>, SimError>>()?;
        let oracle = oracle_from_needs(&trace, &needed, &model);
        Ok(Scenario { trace, model, needed, oracle })
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The model.
    pub fn model(&self) -> &ReplicaModel {
        &self.model
    }

    /// Ready replicas each trace step needs to meet the SLO.
    pub fn needed(&self) -> &[u32] {
        &self.needed
    }

    /// The oracle's schedule and cost.
    pub fn oracle(&self) -> &OracleReport {
        &self.oracle
    }

    /// Runs `policy` over the whole trace.
    pub fn simulate(&self, policy: &mut dyn SimPolicy, opts: &SimOptions) -> Result<PolicyReport, SimError> {
        self.simulate_with_progress(policy, opts, &mut |_| {})
    }

    /// Like [`simulate`](Self::simulate), calling `progress` with the fraction done
    /// (0 to 1) about every 10,000 decisions and once at the end.
    pub fn simulate_with_progress(
        &self,
        policy: &mut dyn SimPolicy,
        opts: &SimOptions,
        progress: &mut dyn FnMut(f64),
    ) -> Result<PolicyReport, SimError> {
        opts.validate(self.trace.duration_s()).map_err(SimError::Invalid)?;
        let mut run = Run::new(self, opts.sync_interval_s);
        run.go(policy, progress);
        Ok(run.finish(policy.name()))
    }
}

/// Runs one policy over a trace: [`Scenario::new`] then [`Scenario::simulate`].
pub fn simulate(trace: &Trace, model: &ReplicaModel, policy: &mut dyn SimPolicy, opts: &SimOptions) -> Result<PolicyReport, SimError> {
    Scenario::new(trace.clone(), *model)?.simulate(policy, opts)
}

/// The mutable state and the accumulators of one run.
struct Run<'a> {
    sc: &'a Scenario,
    interval: f64,
    t: f64,
    seg: usize,
    decisions: u64,
    ready: u32,
    /// Batches of starting replicas: (ready at, count), oldest first.
    starting: VecDeque<(f64, u32)>,
    starting_total: u32,
    replica_s: f64,
    violation_s: f64,
    over_req: f64,
    unserved_req: f64,
    actions: u64,
    flips: u64,
    last_direction: i8,
    peak: u32,
    series: Vec<SeriesPoint>,
    /// Since the last decision: ∫offered, ∫served, violation seconds.
    window: (f64, f64, f64),
}

impl<'a> Run<'a> {
    fn new(sc: &'a Scenario, interval: f64) -> Self {
        Run {
            sc,
            interval,
            t: sc.trace.start_s(),
            seg: 0,
            decisions: 0,
            ready: 0,
            starting: VecDeque::new(),
            starting_total: 0,
            replica_s: 0.0,
            violation_s: 0.0,
            over_req: 0.0,
            unserved_req: 0.0,
            actions: 0,
            flips: 0,
            last_direction: 0,
            peak: 0,
            series: Vec::new(),
            window: (0.0, 0.0, 0.0),
        }
    }

    fn next_decision(&self) -> f64 {
        self.sc.trace.start_s() + self.decisions as f64 * self.interval
    }

    fn go(&mut self, policy: &mut dyn SimPolicy, progress: &mut dyn FnMut(f64)) {
        let (start, end) = (self.sc.trace.start_s(), self.sc.trace.end_s());
        self.warm_start(policy);
        while self.t < end {
            let seg_end = self.sc.trace.step_end_s(self.seg);
            let next_ready = self.starting.front().map_or(f64::INFINITY, |b| b.0);
            let until = seg_end.min(self.next_decision()).min(next_ready).min(end);
            self.integrate(until);
            if self.t >= seg_end && self.seg + 1 < self.sc.needed.len() {
                self.seg += 1;
            }
            self.promote();
            if self.t < end && self.t >= self.next_decision() {
                self.decide(policy);
                self.promote();
                if self.decisions % 10_000 == 0 {
                    progress((self.t - start) / (end - start));
                }
            }
            self.record();
        }
        self.series.push(SeriesPoint { t_s: end, ready: self.ready, billed: self.billed() });
        progress(1.0);
    }

    fn billed(&self) -> u32 {
        self.ready + self.starting_total
    }

    /// The first decision: the policy sees a pool right-sized for the first load, and
    /// whatever it asks for is there at once, ready (see the module docs).
    fn warm_start(&mut self, policy: &mut dyn SimPolicy) {
        let model = &self.sc.model;
        let rps = self.sc.trace.points()[0].rps;
        let ready = self.sc.needed[0];
        let obs = self.observation(ready, rps, model.served(rps, ready), 0.0);
        self.ready = policy.desired(&obs).min(model.max_replicas);
        self.decisions = 1;
        self.record();
    }

    fn observation(&self, ready: u32, offered_rps: f64, served_rps: f64, slo_violated_s: f64) -> Observation {
        let model = &self.sc.model;
        Observation {
            t_s: self.t,
            elapsed_s: self.t - self.sc.trace.start_s(),
            interval_s: self.interval,
            ready,
            starting: self.starting_total,
            current: ready + self.starting_total,
            offered_rps,
            served_rps,
            utilisation: model.utilisation(offered_rps, ready),
            latency_s: model.latency_s(offered_rps, ready),
            slo_violated_s,
            capacity_rps: model.capacity_rps,
            startup_s: model.startup_s,
        }
    }

    /// Accounts the stretch `[t, until)`, over which nothing changes.
    fn integrate(&mut self, until: f64) {
        let dt = until - self.t;
        let rps = self.sc.trace.points()[self.seg].rps;
        let served = self.sc.model.served(rps, self.ready);
        self.replica_s += f64::from(self.billed()) * dt;
        self.unserved_req += (rps - served) * dt;
        self.window.0 += rps * dt;
        self.window.1 += served * dt;
        if self.ready < self.sc.needed[self.seg] {
            self.violation_s += dt;
            self.over_req += rps * dt;
            self.window.2 += dt;
        }
        self.t = until;
    }

    /// Starting replicas whose time has come become ready.
    fn promote(&mut self) {
        while let Some(&(at, n)) = self.starting.front() {
            if at > self.t {
                break;
            }
            self.ready += n;
            self.starting_total -= n;
            self.starting.pop_front();
        }
    }

    fn decide(&mut self, policy: &mut dyn SimPolicy) {
        let span = self.interval;
        let (offered, served, violated) = self.window;
        let obs = self.observation(self.ready, offered / span, served / span, violated);
        self.window = (0.0, 0.0, 0.0);
        self.decisions += 1;
        let desired = policy.desired(&obs).min(self.sc.model.max_replicas);
        let current = self.billed();
        if desired > current {
            let add = desired - current;
            self.starting.push_back((self.t + self.sc.model.startup_s, add));
            self.starting_total += add;
        } else {
            let mut remove = current - desired;
            while remove > 0 {
                match self.starting.back_mut() {
                    Some(batch) => {
                        let take = batch.1.min(remove);
                        batch.1 -= take;
                        self.starting_total -= take;
                        remove -= take;
                        if batch.1 == 0 {
                            self.starting.pop_back();
                        }
                    }
                    None => {
                        self.ready -= remove;
                        remove = 0;
                    }
                }
            }
        }
        if desired != current {
            let direction = if desired > current { 1 } else { -1 };
            self.actions += 1;
            if self.last_direction != 0 && direction != self.last_direction {
                self.flips += 1;
            }
            self.last_direction = direction;
        }
    }

    /// Appends a series point if the counts changed.
    fn record(&mut self) {
        let billed = self.billed();
        self.peak = self.peak.max(billed);
        let now = SeriesPoint { t_s: self.t, ready: self.ready, billed };
        match self.series.last_mut() {
            Some(last) if last.ready == now.ready && last.billed == now.billed => {}
            Some(last) if last.t_s == now.t_s => *last = now,
            _ => self.series.push(now),
        }
    }

    fn finish(self, name: &str) -> PolicyReport {
        let replica_hours = self.replica_s / 3600.0;
        PolicyReport {
            name: name.to_string(),
            replica_hours,
            cost: replica_hours * self.sc.model.price_per_replica_hour,
            slo_violation_minutes: self.violation_s / 60.0,
            requests_over_slo: self.over_req,
            requests_unserved: self.unserved_req,
            scale_actions: self.actions,
            flips: self.flips,
            ratio_to_oracle: replica_hours / self.sc.oracle.replica_hours,
            peak_replicas: self.peak,
            series: self.series,
        }
    }
}
