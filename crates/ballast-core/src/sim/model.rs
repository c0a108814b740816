//! The replica model: what one replica can serve, how long it takes to start, what the
//! SLO is, and the queueing maths (M/M/c, Erlang C) that turns a load and a replica count
//! into a utilisation, a latency estimate and "SLO met or not".
//!
//! Each replica is one server of an M/M/c queue whose service rate μ is the replica's
//! `capacity_rps`; `c` ready replicas share Poisson arrivals at rate λ (the offered load).
//! The mean latency is the mean sojourn time `W = Wq + 1/μ`, where `Wq` is the Erlang C
//! waiting time `C(c, λ/μ) / (cμ − λ)`. With `λ ≥ cμ` the queue grows without bound and
//! the latency is undefined (`None`). The approximation ignores a replica's internal
//! concurrency: it says how queueing grows as a pool nears saturation, not a real p99.
//!
//! The SLO holds when the utilisation `λ / (cμ)` is at most `slo.max_utilisation` and,
//! if `slo.max_latency_s` is set, the estimated mean latency is at most that ceiling.
//! Zero load meets the SLO with zero replicas. Both conditions only get easier as `c`
//! grows, so there is a least replica count [`ReplicaModel::needed`] for every load, and
//! "SLO met" is exactly `ready ≥ needed(λ)`.

use crate::config::FieldError;
use serde::{Deserialize, Serialize};

/// Largest accepted `capacity_rps` and offered load, requests per second.
pub const MAX_RPS: f64 = 1e9;
/// Largest accepted start-up delay: one day.
pub const MAX_STARTUP_S: f64 = 86_400.0;
/// Largest accepted `max_replicas`.
pub const MAX_REPLICAS_LIMIT: u32 = 1_000_000;

/// The service level objective a replica count must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Utilisation ceiling: offered load ÷ (ready replicas × capacity), in (0, 1].
    /// Default 0.85.
    #[serde(default = "default_max_utilisation")]
    pub max_utilisation: f64,
    /// Ceiling on the M/M/c mean latency estimate, seconds; `None` (default) checks
    /// utilisation only. Must exceed one service time, `1 / capacity_rps`.
    #[serde(default)]
    pub max_latency_s: Option<f64>,
}

fn default_max_utilisation() -> f64 {
    0.85
}

impl Default for Slo {
    fn default() -> Self {
        Slo { max_utilisation: default_max_utilisation(), max_latency_s: None }
    }
}

/// Everything the simulator assumes about replicas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaModel {
    /// Requests per second one replica serves at full utilisation (the M/M/c service
    /// rate μ). Default 100.
    #[serde(default = "default_capacity")]
    pub capacity_rps: f64,
    /// Seconds from asking for a replica to it serving traffic. Default 60.
    #[serde(default = "default_startup")]
    pub startup_s: f64,
    /// The SLO every step is checked against.
    #[serde(default)]
    pub slo: Slo,
    /// Price of one replica for one hour (starting replicas are billed too). Default 0.05.
    #[serde(default = "default_price")]
    pub price_per_replica_hour: f64,
    /// Upper bound on replicas: policies asking for more get this many, and a trace that
    /// needs more is refused. Default 10000.
    #[serde(default = "default_max_replicas")]
    pub max_replicas: u32,
}

fn default_capacity() -> f64 {
    100.0
}
fn default_startup() -> f64 {
    60.0
}
fn default_price() -> f64 {
    0.05
}
fn default_max_replicas() -> u32 {
    10_000
}

impl Default for ReplicaModel {
    fn default() -> Self {
        ReplicaModel {
            capacity_rps: default_capacity(),
            startup_s: default_startup(),
            slo: Slo::default(),
            price_per_replica_hour: default_price(),
            max_replicas: default_max_replicas(),
        }
    }
}

/// Why [`ReplicaModel::needed`] has no answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TooManyNeeded {
    /// The `max_replicas` that was not enough.
    pub max_replicas: u32,
}

impl ReplicaModel {
    /// Checks every field; the error names the field (`sim.capacity_rps`) and the range.
    pub fn validate(&self) -> Result<(), FieldError> {
        let c = self.capacity_rps;
        if !c.is_finite() || c <= 0.0 || c > MAX_RPS {
            return Err(FieldError::new("sim.capacity_rps", format!("{c} is out of range; use a number above 0 and at most {MAX_RPS}")));
        }
        let s = self.startup_s;
        if !s.is_finite() || !(0.0..=MAX_STARTUP_S).contains(&s) {
            return Err(FieldError::new("sim.startup_s", format!("{s} is out of range; use 0 to {MAX_STARTUP_S} seconds")));
        }
        let u = self.slo.max_utilisation;
        if !u.is_finite() || u <= 0.0 || u > 1.0 {
            return Err(FieldError::new("sim.slo.max_utilisation", format!("{u} is out of range; use a fraction above 0 and at most 1, e.g. 0.85")));
        }
        if let Some(l) = self.slo.max_latency_s {
            let service = 1.0 / c;
            if !l.is_finite() || l <= service {
                return Err(FieldError::new(
                    "sim.slo.max_latency_s",
                    format!("{l} s cannot be met: one replica at capacity {c} req/s takes {service} s per request; use a larger ceiling"),
                ));
            }
        }
        let p = self.price_per_replica_hour;
        if !p.is_finite() || p < 0.0 {
            return Err(FieldError::new("sim.price_per_replica_hour", format!("{p} is out of range; use a finite number of at least 0")));
        }
        if self.max_replicas == 0 || self.max_replicas > MAX_REPLICAS_LIMIT {
            return Err(FieldError::new(
                "sim.max_replicas",
                format!("{} is out of range; use 1 to {MAX_REPLICAS_LIMIT}", self.max_replicas),
            ));
        }
        Ok(())
    }

    /// Offered load ÷ (ready × capacity). 0 when there is no load; `f64::INFINITY` when
    /// there is load and no ready replica. May exceed 1 (the pool is overloaded).
    pub fn utilisation(&self, offered_rps: f64, ready: u32) -> f64 {
        if offered_rps <= 0.0 {
            0.0
        } else if ready == 0 {
            f64::INFINITY
        } else {
            offered_rps / (f64::from(ready) * self.capacity_rps)
        }
    }

    /// Requests per second actually served: the offered load, at most ready × capacity.
    pub fn served(&self, offered_rps: f64, ready: u32) -> f64 {
        offered_rps.min(f64::from(ready) * self.capacity_rps)
    }

    /// M/M/c mean latency estimate in seconds, `None` when `ready` replicas cannot keep up
    /// (`λ ≥ ready × μ`, including `ready == 0`). With no load it is one service time.
    pub fn latency_s(&self, offered_rps: f64, ready: u32) -> Option<f64> {
        mmc_sojourn_s(ready, offered_rps, self.capacity_rps)
    }

    /// The least number of ready replicas that meets the SLO for `offered_rps`
    /// (0 for no load), or an error when more than `max_replicas` would be needed.
    pub fn needed(&self, offered_rps: f64) -> Result<u32, TooManyNeeded> {
        if offered_rps <= 0.0 {
            return Ok(0);
        }
        let too_many = TooManyNeeded { max_replicas: self.max_replicas };
        let per_replica = self.slo.max_utilisation * self.capacity_rps;
        // Least c with λ ≤ u·μ·c, settled by the same comparison `meets_utilisation` uses
        // so float rounding in the division cannot make the two disagree.
        let guess = (offered_rps / per_replica).ceil();
        if !guess.is_finite() || guess > f64::from(self.max_replicas) + 1.0 {
            return Err(too_many);
        }
        let mut c = guess as u32;
        while c > 1 && offered_rps <= per_replica * f64::from(c - 1) {
            c -= 1;
        }
        while offered_rps > per_replica * f64::from(c) {
            c += 1;
        }
        if c > self.max_replicas {
            return Err(too_many);
        }
        let Some(ceiling) = self.slo.max_latency_s else { return Ok(c) };
        // Latency: walk c upwards from the utilisation answer, carrying Erlang B along.
        let mu = self.capacity_rps;
        let a = offered_rps / mu;
        let mut b = erlang_b(c, a);
        loop {
            if let Some(w) = sojourn_from_b(c, a, b, mu) {
                if w <= ceiling {
                    return Ok(c);
                }
            }
            if c >= self.max_replicas {
                return Err(too_many);
            }
            c += 1;
            b = erlang_b_step(c, a, b);
        }
    }
}

/// Erlang B blocking probability for `servers` servers and offered load `a = λ/μ`
/// (in erlangs), by the stable recursion `B(k) = a·B(k−1) / (k + a·B(k−1))`, `B(0) = 1`.
///
/// For `servers ≥ a` (the only case a stable queue has) the cost is
/// O(√a + servers − a), not O(servers): the recursion forgets where it started (each
/// step scales an error in `B` by about `k/a`, so the ~9√a steps from `k₀ = a − 9√a` up
/// to `a` shrink it by about e^(−40)), so it starts at `k₀` from the large-load
/// asymptote `B ≈ 1 − k₀/a`. Once `B` underflows to 0 it stays 0, and the loop stops.
pub fn erlang_b(servers: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return if servers == 0 { 1.0 } else { 0.0 };
    }
    let k0 = (a - 9.0 * a.sqrt() - 1.0).floor();
    let (mut k, mut b) = if k0 >= 1.0 && f64::from(servers) >= a { (k0 as u32, 1.0 - k0 / a) } else { (0, 1.0) };
    while k < servers && b > 0.0 {
        k += 1;
        b = erlang_b_step(k, a, b);
    }
    b
}

/// The plain recursion from `B(0) = 1`, O(servers): the reference for [`erlang_b`].
#[cfg(test)]
fn erlang_b_exact(servers: u32, a: f64) -> f64 {
    (1..=servers).fold(1.0, |b, k| erlang_b_step(k, a, b))
}

fn erlang_b_step(k: u32, a: f64, prev: f64) -> f64 {
    let ab = a * prev;
    ab / (f64::from(k) + ab)
}

/// Erlang C: the probability that an arrival waits, for `servers` servers and offered
/// load `a = λ/μ` erlangs. 1 when `a ≥ servers` (every arrival waits, queue unstable).
pub fn erlang_c(servers: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    if servers == 0 || a >= f64::from(servers) {
        return 1.0;
    }
    c_from_b(servers, a, erlang_b(servers, a))
}

fn c_from_b(servers: u32, a: f64, b: f64) -> f64 {
    let rho = a / f64::from(servers);
    b / (1.0 - rho * (1.0 - b))
}

/// M/M/c mean waiting time in the queue, seconds (`C / (cμ − λ)`); `None` when the
/// queue is unstable (`λ ≥ cμ`).
pub fn mmc_wait_s(servers: u32, arrival_rps: f64, service_rps: f64) -> Option<f64> {
    mmc_sojourn_s(servers, arrival_rps, service_rps).map(|w| w - 1.0 / service_rps)
}

/// M/M/c mean time in the system (wait + service), seconds; `None` when unstable.
pub fn mmc_sojourn_s(servers: u32, arrival_rps: f64, service_rps: f64) -> Option<f64> {
    if arrival_rps <= 0.0 {
        return (servers > 0).then_some(1.0 / service_rps);
    }
    let a = arrival_rps / service_rps;
    if a >= f64::from(servers) {
        return None;
    }
    sojourn_from_b(servers, a, erlang_b(servers, a), service_rps)
}

fn sojourn_from_b(servers: u32, a: f64, b: f64, mu: f64) -> Option<f64> {
    if servers == 0 || a >= f64::from(servers) {
        return None;
    }
    let c = c_from_b(servers, a, b);
    let spare = (f64::from(servers) - a) * mu;
    Some(c / spare + 1.0 / mu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn erlang_values_match_hand_computation() {
        // B(2,1) = (1/2)/(1 + 1 + 1/2) = 0.2; C = 0.2 / (1 − 0.5·0.8) = 1/3.
        assert!(close(erlang_b(2, 1.0), 0.2));
        assert!(close(erlang_c(2, 1.0), 1.0 / 3.0));
        // B(3,2) = (8/6)/(1 + 2 + 2 + 8/6) = 4/19; C = (4/19)/(1 − (2/3)(15/19)) = 4/9.
        assert!(close(erlang_b(3, 2.0), 4.0 / 19.0));
        assert!(close(erlang_c(3, 2.0), 4.0 / 9.0));
        // M/M/1: C = ρ.
        assert!(close(erlang_c(1, 0.3), 0.3));
        assert_eq!(erlang_c(2, 2.0), 1.0);
        assert_eq!(erlang_c(0, 1.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
    }

    #[test]
    fn the_shortcut_recursion_matches_the_full_one() {
        for a in [0.5f64, 3.0, 99.0, 150.0, 1_000.0, 4_321.5, 20_000.0] {
            let sd = a.sqrt();
            let lo = (a - 12.0 * sd).max(1.0) as u32;
            let hi = (a + 12.0 * sd) as u32 + 5;
            for c in (lo..=hi).step_by(((hi - lo) / 40).max(1) as usize) {
                let (fast, exact) = (erlang_b(c, a), erlang_b_exact(c, a));
                assert!((fast - exact).abs() <= 1e-12 * exact, "a = {a}, c = {c}: {fast} vs {exact}");
            }
        }
        // Far above the load B underflows to exactly 0 and the loop stops early.
        assert_eq!(erlang_b(1_000_000, 1.0), 0.0);
        assert_eq!(erlang_b(0, 5.0), 1.0);
        assert_eq!(erlang_b(3, 0.0), 0.0);
    }

    #[test]
    fn waiting_times_match_hand_computation() {
        // M/M/1, λ = 0.5, μ = 1: Wq = ρ/(μ − λ) = 1, W = 1/(μ − λ) = 2.
        assert!(close(mmc_wait_s(1, 0.5, 1.0).unwrap_or(f64::NAN), 1.0));
        assert!(close(mmc_sojourn_s(1, 0.5, 1.0).unwrap_or(f64::NAN), 2.0));
        // M/M/2, λ = 1, μ = 1: Wq = (1/3)/(2 − 1) = 1/3.
        assert!(close(mmc_wait_s(2, 1.0, 1.0).unwrap_or(f64::NAN), 1.0 / 3.0));
        // M/M/3, λ = 20, μ = 10: Wq = (4/9)/(30 − 20) = 2/45.
        assert!(close(mmc_wait_s(3, 20.0, 10.0).unwrap_or(f64::NAN), 2.0 / 45.0));
        assert_eq!(mmc_sojourn_s(2, 20.0, 10.0), None);
        assert_eq!(mmc_sojourn_s(0, 1.0, 10.0), None);
        assert_eq!(mmc_sojourn_s(1, 0.0, 10.0), Some(0.1));
    }

    #[test]
    fn needed_by_utilisation_is_the_least_count_under_the_ceiling() {
        let m = ReplicaModel { capacity_rps: 100.0, ..ReplicaModel::default() };
        assert_eq!(m.needed(0.0), Ok(0));
        assert_eq!(m.needed(1.0), Ok(1));
        assert_eq!(m.needed(85.0), Ok(1));
        assert_eq!(m.needed(85.01), Ok(2));
        assert_eq!(m.needed(850.0), Ok(10));
        assert_eq!(m.needed(851.0), Ok(11));
        let small = ReplicaModel { max_replicas: 10, ..m };
        assert_eq!(small.needed(851.0), Err(TooManyNeeded { max_replicas: 10 }));
        assert_eq!(small.needed(1e9), Err(TooManyNeeded { max_replicas: 10 }));
    }

    #[test]
    fn needed_by_latency_adds_replicas_until_the_wait_fits() {
        // μ = 10, λ = 20, utilisation 1.0 allows 2 replicas but the queue is unstable;
        // 3 replicas: W = 2/45 + 0.1 ≈ 0.1444; 4 replicas: smaller.
        let slo = Slo { max_utilisation: 1.0, max_latency_s: Some(0.15) };
        let m = ReplicaModel { capacity_rps: 10.0, slo, ..ReplicaModel::default() };
        assert_eq!(m.needed(20.0), Ok(3));
        let tight = ReplicaModel { slo: Slo { max_latency_s: Some(0.144), ..slo }, ..m };
        assert_eq!(tight.needed(20.0), Ok(4));
        assert!(tight.latency_s(20.0, 4).unwrap_or(1.0) <= 0.144);
        let capped = ReplicaModel { max_replicas: 3, ..tight };
        assert_eq!(capped.needed(20.0), Err(TooManyNeeded { max_replicas: 3 }));
    }

    #[test]
    fn utilisation_and_served_edges() {
        let m = ReplicaModel::default();
        assert_eq!(m.utilisation(0.0, 0), 0.0);
        assert_eq!(m.utilisation(5.0, 0), f64::INFINITY);
        assert!(close(m.utilisation(150.0, 2), 0.75));
        assert_eq!(m.served(250.0, 2), 200.0);
        assert_eq!(m.served(150.0, 2), 150.0);
    }

    #[test]
    fn validation_names_the_field() {
        let ok = ReplicaModel::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases: Vec<(ReplicaModel, &str)> = vec![
            (ReplicaModel { capacity_rps: 0.0, ..ok }, "sim.capacity_rps"),
            (ReplicaModel { capacity_rps: f64::NAN, ..ok }, "sim.capacity_rps"),
            (ReplicaModel { capacity_rps: 2e9, ..ok }, "sim.capacity_rps"),
            (ReplicaModel { startup_s: -1.0, ..ok }, "sim.startup_s"),
            (ReplicaModel { startup_s: f64::INFINITY, ..ok }, "sim.startup_s"),
            (ReplicaModel { startup_s: 90_000.0, ..ok }, "sim.startup_s"),
            (ReplicaModel { slo: Slo { max_utilisation: 0.0, max_latency_s: None }, ..ok }, "sim.slo.max_utilisation"),
            (ReplicaModel { slo: Slo { max_utilisation: 1.5, max_latency_s: None }, ..ok }, "sim.slo.max_utilisation"),
            (ReplicaModel { slo: Slo { max_utilisation: 0.8, max_latency_s: Some(0.01) }, ..ok }, "sim.slo.max_latency_s"),
            (ReplicaModel { slo: Slo { max_utilisation: 0.8, max_latency_s: Some(f64::NAN) }, ..ok }, "sim.slo.max_latency_s"),
            (ReplicaModel { price_per_replica_hour: -0.1, ..ok }, "sim.price_per_replica_hour"),
            (ReplicaModel { max_replicas: 0, ..ok }, "sim.max_replicas"),
            (ReplicaModel { max_replicas: 2_000_000, ..ok }, "sim.max_replicas"),
        ];
        for (model, field) in cases {
            match model.validate() {
                Err(e) => assert_eq!(e.path, field, "{e}"),
                Ok(()) => panic!("{model:?} should be refused"),
            }
        }
        let e = ReplicaModel { slo: Slo { max_utilisation: 0.8, max_latency_s: Some(0.01) }, ..ok }.validate();
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("sim.slo.max_latency_s: 0.01 s cannot be met: one replica at capacity 100 req/s takes 0.01 s per request; use a larger ceiling".into())
        );
    }

    #[test]
    fn model_reads_from_toml_with_defaults_and_refuses_unknown_fields() {
        let m: ReplicaModel = toml::from_str("capacity_rps = 50.0\n[slo]\nmax_latency_s = 0.5\n").unwrap_or_default();
        assert_eq!(m.capacity_rps, 50.0);
        assert_eq!(m.slo.max_latency_s, Some(0.5));
        assert_eq!(m.slo.max_utilisation, 0.85);
        assert_eq!(m.startup_s, 60.0);
        let bad: Result<ReplicaModel, _> = toml::from_str("capacity = 50.0\n");
        assert!(bad.is_err_and(|e| e.to_string().contains("capacity")));
    }
}
