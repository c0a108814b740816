//! The engine driven by the simulator: shipped traces against the oracle, the HPA
//! emulation, predictive against reactive, policy names.

use super::*;
use crate::sim::{parse_trace, ReplicaModel, Scenario};

#[test]
#[ignore]
fn debug_violations() {
    let text = include_str!("../../../../traces/diurnal-14d.csv");
    let sc = Scenario::new(parse_trace(text).unwrap(), ReplicaModel::default()).unwrap();
    for name in ["target", "predictive"] {
        let (mut p, opts) = build_policy(name, &[], 10_000, 0).unwrap();
        let r = sc.simulate(p.as_mut(), &opts).unwrap();
        println!("{name}: {} {}", r.replica_hours, r.slo_violation_minutes);
        let pts = sc.trace().points();
        let mut k = 0;
        for (j, pt) in pts.iter().enumerate() {
            while k + 1 < r.series.len() && r.series[k + 1].t_s <= pt.t_s { k += 1; }
            if r.series[k].ready < sc.needed()[j] {
                println!("  t={} rps={} need={} ready={} billed={} prev_rps={}", pt.t_s, pt.rps, sc.needed()[j], r.series[k].ready, r.series[k].billed, pts[j.saturating_sub(1)].rps);
            }
        }
    }
}
