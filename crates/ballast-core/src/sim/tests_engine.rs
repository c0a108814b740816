//! The engine driven by the simulator: shipped traces against the oracle, the HPA
//! emulation, predictive against reactive target tracking, config pools and names.

use super::*;
use crate::config::parse_and_validate;
use crate::sim::{parse_trace, PolicyReport, ReplicaModel, Scenario, Trace};

const DIURNAL: &str = include_str!("../../../../traces/diurnal-14d.csv");
const SHIPPED: [(&str, &str); 4] = [
    ("diurnal-14d.csv", DIURNAL),
    ("spiky.csv", include_str!("../../../../traces/spiky.csv")),
    ("ramp.csv", include_str!("../../../../traces/ramp.csv")),
    ("sample-access.log", include_str!("../../../../traces/sample-access.log")),
];

fn scenario(text: &str, model: ReplicaModel) -> Scenario {
    let trace = parse_trace(text).unwrap_or_else(|e| panic!("{e}"));
    Scenario::new(trace, model).unwrap_or_else(|e| panic!("{e}"))
}

fn run_named(sc: &Scenario, name: &str, pools: &[ConfigPool]) -> PolicyReport {
    let origin = sc.trace().start_unix_s().unwrap_or(0);
    let (mut policy, opts) =
        build_policy(name, pools, sc.model().max_replicas, origin).unwrap_or_else(|e| panic!("{e}"));
    sc.simulate(policy.as_mut(), &opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn no_slo_meeting_policy_beats_the_oracle_on_any_shipped_trace() {
    for (file, text) in SHIPPED {
        let sc = scenario(text, ReplicaModel::default());
        let peak = sc.needed().iter().copied().max().unwrap_or(0);
        let oracle = sc.oracle().replica_hours;
        let fixed = format!("fixed-{peak}");
        let mut met = 0;
        for name in ["hpa", "target", "step", "score", "predictive", fixed.as_str()] {
            let r = run_named(&sc, name, &[]);
            assert!(r.replica_hours > 0.0 && r.replica_hours.is_finite(), "{file} {name}: {r:?}");
            assert!((r.ratio_to_oracle - r.replica_hours / oracle).abs() < 1e-12, "{file} {name}");
            if r.slo_violation_minutes == 0.0 {
                met += 1;
                assert!(
                    r.replica_hours >= oracle * (1.0 - 1e-12),
                    "{file} {name}: {} < oracle {oracle}",
                    r.replica_hours
                );
            }
        }
        // fixed at the peak always meets the SLO, so the bound is checked at least once.
        assert!(met >= 1, "{file}");
    }
}

#[test]
fn on_the_diurnal_trace_predictive_beats_target_tracking_on_slo_minutes_within_1_1x() {
    let sc = scenario(DIURNAL, ReplicaModel::default());
    let target = run_named(&sc, "target", &[]);
    let predictive = run_named(&sc, "predictive", &[]);
    // Measured: target 4919.9 replica-hours with 1.0 SLO minute (the load jumps ~30% at
    // the first weekday midnight after the weekend, day 7, which no reactive policy can
    // meet within the 60 s start-up); predictive 4640.8 with 0: the weekly season sees
    // the jump coming.
    assert!(
        predictive.slo_violation_minutes < target.slo_violation_minutes,
        "predictive {} SLO minutes vs target {}",
        predictive.slo_violation_minutes,
        target.slo_violation_minutes
    );
    assert!(
        predictive.replica_hours <= 1.1 * target.replica_hours,
        "predictive {} replica-hours vs target {}",
        predictive.replica_hours,
        target.replica_hours
    );
}

/// The issue's target T1: on the diurnal trace the best named policy bills at most
/// 1.15× the oracle's replica-hours with SLO-violation minutes at most 1% of the trace,
/// and predictive is such a policy.
#[test]
fn on_the_diurnal_trace_a_named_policy_is_within_1_15x_of_the_oracle_inside_the_slo() {
    let sc = scenario(DIURNAL, ReplicaModel::default());
    let allowed_minutes = 0.01 * sc.trace().duration_s() / 60.0;
    let within = |r: &PolicyReport| r.slo_violation_minutes <= allowed_minutes;
    let reports: Vec<PolicyReport> = NAMED_POLICIES.iter().map(|n| run_named(&sc, n, &[])).collect();
    let best = reports
        .iter()
        .filter(|r| within(r))
        .min_by(|a, b| a.ratio_to_oracle.total_cmp(&b.ratio_to_oracle))
        .unwrap_or_else(|| panic!("no named policy within the SLO: {reports:?}"));
    // Measured: predictive 1.142× with 0 SLO minutes; target and hpa 1.21×.
    assert!(best.ratio_to_oracle <= 1.15, "best {} at {:.3}×", best.name, best.ratio_to_oracle);
    let predictive = reports.iter().find(|r| r.name == "predictive").unwrap_or_else(|| panic!("predictive"));
    assert!(within(predictive), "{} SLO minutes > {allowed_minutes}", predictive.slo_violation_minutes);
    assert!(predictive.ratio_to_oracle <= 1.15, "predictive at {:.3}×", predictive.ratio_to_oracle);
}

/// `(t, billed)` at every change of the billed count.
fn billed_changes(r: &PolicyReport) -> Vec<(f64, u32)> {
    let mut out: Vec<(f64, u32)> = Vec::new();
    for p in &r.series {
        if out.last().is_none_or(|l| l.1 != p.billed) {
            out.push((p.t_s, p.billed));
        }
    }
    out
}

#[test]
fn hpa_scales_down_only_after_five_minutes_of_stabilisation() {
    // 800 req/s for 10 minutes, then 100 req/s for 20; replicas start at once.
    let model = ReplicaModel { startup_s: 0.0, ..ReplicaModel::default() };
    let sc = scenario("0,800\n600,100\n1800,100\n", model);
    let r = run_named(&sc, "hpa", &[]);
    // Warm start: 10 replicas (800 at 85%) run at 80% cpu, above 70% by more than the
    // 0.1 tolerance: ceil(10 × 80/70) = 12. The decision at 600 still sees 800 req/s
    // and recommends 12; from 615 on it recommends 2 (100 req/s ÷ 12 = 8.3% cpu), but
    // the highest recommendation of the last 5 minutes holds until 900.
    assert_eq!(billed_changes(&r), vec![(0.0, 12), (900.0, 2)], "{r:?}");
    assert_eq!(r.slo_violation_minutes, 0.0);
    assert_eq!((r.scale_actions, r.flips), (1, 0));
    // Reactive target tracking averages a 60 s window, so at 615 it still sees 3 samples
    // of 800 and one of 100 (52% cpu → 9), the highest of its window after 600: down to
    // 9 at 900, then its 5-minute scale-down cooldown holds until 1200.
    let t = run_named(&sc, "target", &[]);
    assert_eq!(billed_changes(&t), vec![(0.0, 12), (900.0, 9), (1200.0, 2)], "{t:?}");
}

#[test]
fn hpa_holds_inside_its_tolerance_and_scales_up_at_once() {
    let model = ReplicaModel { startup_s: 0.0, ..ReplicaModel::default() };
    // 10 replicas after the warm start at 700 req/s (70% cpu). 750 req/s is 75%: ratio
    // 1.07, inside the ±10% band. 1000 req/s is 100%: ratio 1.43 → 15 replicas.
    let sc = scenario("0,700\n300,750\n600,1000\n900,1000\n", model);
    let r = run_named(&sc, "hpa", &[]);
    // The decision at 615 sees the first sample of 1000 (each sync reads the last 15 s).
    assert_eq!(billed_changes(&r), vec![(0.0, 10), (615.0, 15)], "{r:?}");
}

#[test]
fn the_predictive_lead_is_the_measured_startup_plus_the_sync_interval() {
    let mut p = EnginePolicy::named("predictive", 100).unwrap_or_else(|| panic!("predictive"));
    let obs = Observation {
        t_s: 0.0,
        elapsed_s: 0.0,
        interval_s: 15.0,
        ready: 4,
        starting: 0,
        current: 4,
        offered_rps: 300.0,
        served_rps: 300.0,
        utilisation: 0.75,
        latency_s: Some(0.011),
        slo_violated_s: 0.0,
        capacity_rps: 100.0,
        startup_s: 240.0,
    };
    p.desired(&obs);
    assert!(p.last_reason().contains("in 4m 15s"), "{}", p.last_reason());
}

#[test]
fn engine_policies_are_deterministic() {
    let sc = scenario(SHIPPED[1].1, ReplicaModel::default());
    for name in ["hpa", "predictive", "score"] {
        assert_eq!(run_named(&sc, name, &[]), run_named(&sc, name, &[]), "{name}");
    }
}

const CONFIG: &str = r#"
[[pool]]
name = "plain"

[[pool]]
name = "api"
[pool.scaling]
min = 2
max = 40
scale_down_cooldown = "2m"
[[pool.scaling.policy]]
kind = "target"
metric = "rps"
target = 60
[[pool.scaling.policy]]
kind = "schedule"
start = "0 0 * * *"
duration = "1h"
min = 20
[pool.cost]
price_per_instance_hour = 0.5
"#;

fn pools_of(text: &str) -> Vec<ConfigPool> {
    ConfigPool::all(&parse_and_validate(text).unwrap_or_else(|e| panic!("{e:?}")))
}

#[test]
fn config_pools_run_the_operators_own_scaling() {
    let pools = pools_of(CONFIG);
    assert_eq!(pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["api"]);
    assert!(pools[0].has_schedule());
    // 300 req/s for two hours from midnight (Unix time 0): rps target 60 → 5 replicas,
    // but the schedule window holds at least 20 for the first hour.
    let sc = scenario("0,300\n3600,300\n7200,300\n", ReplicaModel { startup_s: 0.0, ..ReplicaModel::default() });
    for name in ["config", "api"] {
        let r = run_named(&sc, name, &pools);
        assert_eq!(r.name, "api");
        let changes = billed_changes(&r);
        assert_eq!(changes.first(), Some(&(0.0, 20)), "{name}: {changes:?}");
        assert_eq!(changes.last().map(|c| c.1), Some(5), "{name}: {changes:?}");
        assert!(changes.last().is_some_and(|c| c.0 >= 3600.0), "{name}: {changes:?}");
    }
    // The schedule alone has no vote after its window: the pool stays where it is.
    let r = run_named(&sc, "schedule", &pools);
    assert_eq!(r.name, "schedule");
    assert_eq!(billed_changes(&r), vec![(0.0, 20)], "{r:?}");
}

#[test]
fn policy_names_are_checked_with_a_precise_error() {
    let pools = pools_of(CONFIG);
    let no_schedule = pools_of(&CONFIG.replace("kind = \"schedule\"", "kind = \"step\"").replace(
        "start = \"0 0 * * *\"\nduration = \"1h\"\nmin = 20",
        "metric = \"cpu\"\nthreshold_up = 80\nthreshold_down = 30",
    ));
    let err = |spec: &str, pools: &[ConfigPool]| match build_policy(spec, pools, 100, 0) {
        Ok(_) => panic!("{spec} should be refused"),
        Err(e) => {
            assert_eq!(e.path, "policy");
            e.to_string()
        }
    };
    assert!(err("wobble", &pools).starts_with("policy: unknown policy \"wobble\"; use one of fixed-N, target,"));
    assert!(err("fixed-x", &[]).contains("N in fixed-N must be a whole number"));
    assert!(err("config", &[]).contains("needs --config FILE"));
    assert!(err("schedule", &[]).contains("needs --config FILE"));
    assert!(err("schedule", &no_schedule).contains("no pool in the config has a kind = \"schedule\" policy"));
    assert!(
        err("plain", &pools).starts_with("policy: unknown policy \"plain\""),
        "a pool without scaling is no policy"
    );
    for ok in ["fixed-0", "fixed-3", "target", "step", "score", "predictive", "hpa", "config", "api", "schedule"] {
        assert!(build_policy(ok, &pools, 100, 0).is_ok(), "{ok}");
    }
}

#[test]
fn invalid_scaling_is_refused_with_the_field() {
    let mut config = crate::autoscale::named_policy("target").unwrap_or_default();
    config.min = 5;
    config.max = 2;
    let errors = EnginePolicy::new("x", config, None).err().unwrap_or_default();
    assert!(errors.iter().any(|e| e.path.starts_with("scaling.")), "{errors:?}");
}

#[test]
fn samples_describe_the_interval_the_engine_is_told_about() {
    // Overload: no latency estimate, cpu capped at 100, latency at the overload value.
    let mut p = EnginePolicy::named("target", 100).unwrap_or_else(|| panic!("target"));
    let mut obs = Observation {
        t_s: 60.0,
        elapsed_s: 60.0,
        interval_s: 15.0,
        ready: 2,
        starting: 0,
        current: 2,
        offered_rps: 300.0,
        served_rps: 200.0,
        utilisation: 1.5,
        latency_s: None,
        slo_violated_s: 15.0,
        capacity_rps: 100.0,
        startup_s: 0.0,
    };
    // 100% cpu over target 70 → ceil(2 × 100/70) = 3.
    assert_eq!(p.desired(&obs), 3, "{}", p.last_reason());
    assert!(p.last_reason().contains("cpu 100%"), "{}", p.last_reason());
    // No ready replica: cpu is left out and a cpu policy cannot vote; it holds.
    obs = Observation {
        t_s: 75.0,
        ready: 0,
        current: 3,
        starting: 3,
        utilisation: f64::INFINITY,
        served_rps: 0.0,
        ..obs
    };
    assert_eq!(p.desired(&obs), 3, "{}", p.last_reason());
    // p95 bound: M/M/1 at λ = 50, μ = 100: C = 0.5, wait ln(20)/50 s, service ln(40)/100 s.
    let want = ((0.5f64 / 0.025).ln() / 50.0 + 40f64.ln() / 100.0) * 1000.0;
    assert!((super::p95_bound_ms(1, 50.0, 100.0) - want).abs() < 1e-9);
}

#[test]
fn access_log_time_is_unix_time() {
    let sc = scenario(SHIPPED[3].1, ReplicaModel::default());
    let trace: &Trace = sc.trace();
    let origin = trace.start_unix_s().unwrap_or(0);
    assert!(origin > 1_000_000_000, "{origin}");
    let mut p = EnginePolicy::named("hpa", 10).unwrap_or_else(|| panic!("hpa")).with_clock_origin(origin);
    sc.simulate(&mut p, &SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let last = p.memory().last_decide.map(|t| t.timestamp()).unwrap_or(0);
    assert!(last >= origin && last <= origin + trace.duration_s() as i64, "{last} vs {origin}");
}

/// Mean absolute percentage error of the predictive policy's forecaster on the diurnal
/// trace, one start-up time (60 s) ahead, fed every 15 s as the engine feeds it.
#[test]
fn forecasts_on_the_diurnal_trace_are_within_15_percent_mape() {
    use crate::autoscale::{at_epoch_millis, Forecaster};
    let sc = scenario(DIURNAL, ReplicaModel::default());
    let trace = sc.trace();
    let rps_at = |t: f64| {
        let j = trace.points().partition_point(|p| p.t_s <= t).saturating_sub(1);
        trace.points()[j].rps
    };
    let mut f = Forecaster::new(300);
    let (mut sum, mut n, mut sum_day2) = (0.0, 0u32, 0.0);
    let mut n_day2 = 0u32;
    let horizon = std::time::Duration::from_secs(60);
    let mut t = 0.0;
    while t + 60.0 < trace.end_s() {
        let now = at_epoch_millis((t * 1000.0) as i64);
        f.observe(now, rps_at(t));
        if let Some((forecast, _)) = f.forecast(now, horizon) {
            let actual = rps_at(t + 60.0);
            let e = (forecast - actual).abs() / actual;
            sum += e;
            n += 1;
            if t >= 86_400.0 {
                sum_day2 += e;
                n_day2 += 1;
            }
        }
        t += 15.0;
    }
    let (mape, mape_day2) = (sum / f64::from(n), sum_day2 / f64::from(n_day2));
    println!("MAPE one start-up ahead: {:.2}% overall, {:.2}% from day 2", mape * 100.0, mape_day2 * 100.0);
    assert!(mape <= 0.15, "MAPE {mape}");
}

#[test]
fn a_budget_caps_the_pool_by_what_is_left_to_spend() {
    // 1 per instance-hour, 50 per day from midnight: the cap is
    // floor((50 − spent) / hours left). Billing 2 replicas keeps it at 2 through the
    // first 12 hours; were the spend not tracked it would reach floor(50/12) = 4.
    let config = "[[pool]]\nname = \"api\"\n[pool.scaling]\nmin = 1\nmax = 100\n\
                  [[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"cpu\"\ntarget = 70\n\
                  [pool.cost]\nprice_per_instance_hour = 1.0\nbudget = 50.0\nperiod = \"daily\"\n";
    let pools = pools_of(config);
    let sc = scenario("0,300\n21600,300\n", ReplicaModel { startup_s: 0.0, ..ReplicaModel::default() });
    let r = run_named(&sc, "api", &pools);
    assert_eq!(r.peak_replicas, 2, "{r:?}");
    assert!((r.replica_hours - 2.0 * 43_200.0 / 3600.0).abs() < 1e-9, "{r:?}");
    assert!(r.slo_violation_minutes > 700.0, "300 req/s needs 4 replicas: {r:?}");
}

#[test]
fn a_season_without_level_history_is_used_as_is() {
    use crate::autoscale::{at_epoch_millis, Forecaster};
    const DAY: i64 = 86_400;
    // The first 10 minutes of history ran at 400, the rest at 100. Two minutes before
    // the history is a day old, 5 minutes ahead is 3 minutes past yesterday's start:
    // the daily season knows that time (400) but not the hour before now a day ago.
    let mut f = Forecaster::new(300);
    for t in (0..DAY - 120).step_by(60) {
        f.observe(at_epoch_millis(t * 1000), if t < 600 { 400.0 } else { 100.0 });
    }
    let got = f.forecast(at_epoch_millis((DAY - 120) * 1000), std::time::Duration::from_secs(300));
    assert_eq!(got, Some((400.0, "seasonal daily")));
}
