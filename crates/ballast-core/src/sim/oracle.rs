//! The oracle: the fewest replica-hours any schedule can bill while meeting the SLO at
//! every instant, knowing the whole trace in advance.
//!
//! Let `n(t)` be the replicas the load at `t` needs ([`ReplicaModel::needed`]) and `L`
//! the start-up delay. The oracle bills, at each instant,
//!
//! ```text
//! M(t) = max { n(s) : t ≤ s ≤ min(t + L, end) }
//! ```
//!
//! and its replica-hours are `∫ M(t) dt / 3600`.
//!
//! **No schedule that meets the SLO bills less** (billing as in the [module
//! docs](super): from the request until removal, starting replicas included; a run may
//! start with any replicas ready at the first time). Take any instant `t` and the `s` in
//! `[t, t + L]` where `n(s) = M(t)`. Meeting the SLO at `s` takes at least `M(t)` ready
//! replicas at `s`. Each was either asked for at or before `s − L ≤ t`, or present from
//! the start `≤ t`; either way it exists at `t` (it is not removed before `s ≥ t`), so
//! it is billed at `t`. Hence every SLO-meeting schedule bills at least `M(t)` at every
//! `t`, and at least `∫ M dt` in total.
//!
//! **The oracle meets the SLO with exactly `M(t)`**, so the bound is tight. Split the
//! need into layers: layer `k` is the time where `n ≥ k`, and one replica serves it.
//! That replica exists exactly when `n` reaches `k` somewhere in the next `L` seconds:
//! it is asked for `L` before each stretch of need (or exists from the start if the
//! stretch begins within `L` of it), kept through gaps shorter than `L` (keeping costs
//! the gap, re-asking would cost `L`), and removed once no need is within `L`. So it is
//! ready whenever layer `k` needs it, and the count of live layer replicas at `t` is
//! `#{k : max n over [t, t+L] ≥ k} = M(t)`.
//!
//! `M` is a step function that can change only at trace step starts `s_j` and at
//! `s_j − L`, so the integral is exact: a sliding-window maximum over the steps.

use super::model::ReplicaModel;
use super::run::SeriesPoint;
use super::trace::Trace;
use super::SimError;
use serde::Serialize;
use std::collections::VecDeque;

/// The oracle's bill. Serialises as the `"oracle"` object of the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OracleReport {
    /// `∫ M(t) dt / 3600`: the least replica-hours that meet the SLO throughout.
    pub replica_hours: f64,
    /// `replica_hours × price_per_replica_hour`.
    pub cost: f64,
    /// Most replicas billed at once.
    pub peak_replicas: u32,
    /// The schedule: `billed` is `M(t)`, `ready` the replicas the load needs, `n(t)`.
    #[serde(skip)]
    pub series: Vec<SeriesPoint>,
}

/// The oracle for a trace under a model (validates the model; see the module docs).
pub fn oracle(trace: &Trace, model: &ReplicaModel) -> Result<OracleReport, SimError> {
    super::run::Scenario::new(trace.clone(), *model).map(|s| s.oracle().clone())
}

/// The oracle from the per-step needs `needed[j]` of `trace`'s steps.
pub(crate) fn oracle_from_needs(trace: &Trace, needed: &[u32], model: &ReplicaModel) -> OracleReport {
    let points = trace.points();
    let lead = model.startup_s;
    let (start, end) = (trace.start_s(), trace.end_s());
    let mut cuts: Vec<f64> = Vec::with_capacity(points.len() * 2 + 1);
    for p in points {
        cuts.push(p.t_s);
        if p.t_s - lead > start {
            cuts.push(p.t_s - lead);
        }
    }
    cuts.push(end);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();

    let step_end = |j: usize| trace.step_end_s(j);
    // Indices of steps in the window [m, m + L], needs decreasing front to back.
    let mut window: VecDeque<usize> = VecDeque::new();
    let (mut next_in, mut current) = (0usize, 0usize);
    let mut replica_s = 0.0;
    let mut peak = 0u32;
    let mut series: Vec<SeriesPoint> = Vec::new();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // M is constant on (a, b): evaluate it in the middle, clear of the cut points.
        let mid = a + (b - a) / 2.0;
        while next_in < points.len() && points[next_in].t_s <= mid + lead {
            while window.back().is_some_and(|&j| needed[j] <= needed[next_in]) {
                window.pop_back();
            }
            window.push_back(next_in);
            next_in += 1;
        }
        while window.front().is_some_and(|&j| step_end(j) <= mid) {
            window.pop_front();
        }
        while step_end(current) <= mid && current + 1 < points.len() {
            current += 1;
        }
        let billed = window.front().map_or(0, |&j| needed[j]);
        replica_s += f64::from(billed) * (b - a);
        peak = peak.max(billed);
        let point = SeriesPoint { t_s: a, ready: needed[current], billed };
        if series.last().is_none_or(|l| l.ready != point.ready || l.billed != point.billed) {
            series.push(point);
        }
    }
    if let Some(&last) = series.last() {
        series.push(SeriesPoint { t_s: end, ..last });
    }
    let replica_hours = replica_s / 3600.0;
    OracleReport { replica_hours, cost: replica_hours * model.price_per_replica_hour, peak_replicas: peak, series }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::parse_trace;

    fn hours(csv: &str, startup_s: f64) -> f64 {
        let trace = parse_trace(csv).unwrap_or_else(|e| panic!("{e}"));
        let model = ReplicaModel { capacity_rps: 100.0, startup_s, ..ReplicaModel::default() };
        oracle(&trace, &model).map(|o| o.replica_hours * 3600.0).unwrap_or(f64::NAN)
    }

    #[test]
    fn without_startup_the_oracle_is_the_integral_of_needs() {
        // needs (u = 0.85, 100 req/s): 1, 3, 0, 2 for 10 s each → 60 replica-seconds.
        assert_eq!(hours("0,50\n10,200\n20,0\n30,170\n", 0.0), 60.0);
    }

    #[test]
    fn startup_pulls_each_rise_forward_and_keeps_short_gaps() {
        // needs 1, 3, 0, 2 (10 s each), L = 5: M = 1 on [0,5), 3 on [5,20), 0 on
        // [20,25), 2 on [25,40) → 5 + 45 + 0 + 30 = 80.
        assert_eq!(hours("0,50\n10,200\n20,0\n30,170\n", 5.0), 80.0);
        // L = 10: the rise at 10 is asked for at 0, the gap is kept: 3 on [0,20), 2 on [20,40).
        assert_eq!(hours("0,50\n10,200\n20,0\n30,170\n", 10.0), 60.0 + 40.0);
        // A gap longer than L: needs 1 (10 s), 0 (100 s), 1 (10 s), L = 5:
        // 10 + 5 (lead) + 10 = 25.
        assert_eq!(hours("0,50\n10,0\n110,50\n120,50\n", 5.0), 25.0 + 10.0);
        // L longer than the whole trace: M(t) = max of what is left = 3 then 2.
        assert_eq!(hours("0,50\n10,200\n20,0\n30,170\n", 1000.0), 3.0 * 20.0 + 2.0 * 20.0);
    }

    #[test]
    fn series_tracks_billed_and_needed() {
        let trace = parse_trace("0,50\n10,200\n20,0\n30,170\n").unwrap_or_else(|e| panic!("{e}"));
        let model = ReplicaModel { startup_s: 5.0, ..ReplicaModel::default() };
        let o = oracle(&trace, &model).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(f64, u32, u32)> = o.series.iter().map(|p| (p.t_s, p.ready, p.billed)).collect();
        assert_eq!(got, vec![(0.0, 1, 1), (5.0, 1, 3), (10.0, 3, 3), (20.0, 0, 0), (25.0, 0, 2), (30.0, 2, 2), (40.0, 2, 2)]);
        assert_eq!(o.peak_replicas, 3);
        assert!((o.cost - 80.0 / 3600.0 * 0.05).abs() < 1e-15);
    }
}
