//! Whole-simulator tests: hand-computed runs, the oracle bound and its tightness as
//! properties, the shipped traces, determinism, and run errors.

use super::*;
use proptest::prelude::*;

/// Returns scripted counts in turn (the last one forever) and keeps what it saw.
struct Script {
    values: Vec<u32>,
    seen: Vec<Observation>,
}

impl Script {
    fn new(values: Vec<u32>) -> Self {
        Script { values, seen: Vec::new() }
    }
}

impl SimPolicy for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn desired(&mut self, obs: &Observation) -> u32 {
        let v = self.values.get(self.seen.len()).or(self.values.last()).copied().unwrap_or(0);
        self.seen.push(*obs);
        v
    }
}

/// Knows the future: asks for the most any step in `[t, t + startup + interval)` needs.
/// On traces whose times and start-up are multiples of the interval this is exactly the
/// oracle's schedule.
struct Lookahead {
    steps: Vec<(f64, f64, u32)>,
    reach_s: f64,
}

impl Lookahead {
    fn new(sc: &Scenario, opts: &SimOptions) -> Self {
        let trace = sc.trace();
        let steps = (0..trace.points().len()).map(|j| (trace.points()[j].t_s, trace.step_end_s(j), sc.needed()[j])).collect();
        Lookahead { steps, reach_s: sc.model().startup_s + opts.sync_interval_s }
    }
}

impl SimPolicy for Lookahead {
    fn name(&self) -> &str {
        "lookahead"
    }
    fn desired(&mut self, obs: &Observation) -> u32 {
        let t = obs.t_s;
        let from = self.steps.partition_point(|s| s.1 <= t);
        let to = self.steps.partition_point(|s| s.0 < t + self.reach_s);
        self.steps[from..to.max(from)].iter().map(|s| s.2).max().unwrap_or(0)
    }
}

fn scenario(csv: &str, model: ReplicaModel) -> Scenario {
    let trace = parse_trace(csv).unwrap_or_else(|e| panic!("{e}"));
    Scenario::new(trace, model).unwrap_or_else(|e| panic!("{e}"))
}

fn run(sc: &Scenario, policy: &mut dyn SimPolicy, interval: f64) -> PolicyReport {
    sc.simulate(policy, &SimOptions { sync_interval_s: interval }).unwrap_or_else(|e| panic!("{e}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

// Needs at 100 req/s per replica, utilisation 0.85: 50 → 1, 200 → 3.
const TINY: &str = "t_seconds,requests_per_second\n0,50\n60,200\n120,50\n";

#[test]
fn fixed_n_matches_a_hand_calculation() {
    let sc = scenario(TINY, ReplicaModel { startup_s: 30.0, ..ReplicaModel::default() });
    let r = run(&sc, &mut FixedPolicy::new(2), 60.0);
    // 2 replicas for 180 s; short of the 3 needed during [60, 120).
    assert_eq!(r.name, "fixed-2");
    assert!(close(r.replica_hours, 360.0 / 3600.0), "{r:?}");
    assert!(close(r.cost, 0.1 * 0.05));
    assert!(close(r.slo_violation_minutes, 1.0));
    assert!(close(r.requests_over_slo, 200.0 * 60.0));
    assert_eq!(r.requests_unserved, 0.0);
    assert_eq!((r.scale_actions, r.flips, r.peak_replicas), (0, 0, 2));
    // Oracle, L = 30: 1 on [0,30), 3 on [30,120), 1 on [120,180) = 360 replica-seconds.
    assert!(close(sc.oracle().replica_hours, 360.0 / 3600.0));
    assert!(close(r.ratio_to_oracle, 1.0));
}

#[test]
fn a_scripted_run_bills_starting_replicas_and_counts_actions_and_flips() {
    let sc = scenario(TINY, ReplicaModel { startup_s: 30.0, ..ReplicaModel::default() });
    let mut policy = Script::new(vec![1, 3, 1]);
    let r = run(&sc, &mut policy, 60.0);
    // Billed 1 on [0,60), 3 on [60,120) (2 of them starting until 90), 1 on [120,180).
    assert!(close(r.replica_hours, 300.0 / 3600.0), "{r:?}");
    assert!(close(r.slo_violation_minutes, 0.5));
    assert!(close(r.requests_over_slo, 200.0 * 30.0));
    assert!(close(r.requests_unserved, 100.0 * 30.0));
    assert_eq!((r.scale_actions, r.flips), (2, 1));
    let series: Vec<(f64, u32, u32)> = r.series.iter().map(|p| (p.t_s, p.ready, p.billed)).collect();
    assert_eq!(series, vec![(0.0, 1, 1), (60.0, 1, 3), (90.0, 3, 3), (120.0, 1, 1), (180.0, 1, 1)]);

    let seen = &policy.seen;
    assert_eq!(seen.len(), 3, "warm start at 0, then 60 and 120; none at the end");
    // The warm start sees a pool right-sized for the first load.
    assert_eq!((seen[0].t_s, seen[0].ready, seen[0].offered_rps), (0.0, 1, 50.0));
    let at60 = seen[1];
    assert_eq!((at60.ready, at60.starting, at60.current), (1, 0, 1));
    assert_eq!((at60.offered_rps, at60.served_rps, at60.utilisation), (50.0, 50.0, 0.5));
    assert!(close(at60.latency_s.unwrap_or(f64::NAN), 1.0 / (100.0 - 50.0)));
    assert_eq!(at60.slo_violated_s, 0.0);
    let at120 = seen[2];
    assert_eq!((at120.ready, at120.starting, at120.offered_rps), (3, 0, 200.0));
    assert!(close(at120.served_rps, (30.0 * 100.0 + 30.0 * 200.0) / 60.0));
    assert!(close(at120.utilisation, 200.0 / 300.0));
    assert!(close(at120.slo_violated_s, 30.0));
    assert_eq!((at120.elapsed_s, at120.interval_s, at120.capacity_rps, at120.startup_s), (120.0, 60.0, 100.0, 30.0));
}

#[test]
fn removals_cancel_starting_replicas_first() {
    let sc = scenario("0,50\n100,50\n", ReplicaModel { startup_s: 100.0, ..ReplicaModel::default() });
    let r = run(&sc, &mut Script::new(vec![1, 3, 2, 1]), 10.0);
    // 1 on [0,10), 3 on [10,20), 2 on [20,30), then 1 until 200; the ready one stays.
    assert!(close(r.replica_hours * 3600.0, 10.0 + 30.0 + 20.0 + 170.0));
    assert_eq!(r.slo_violation_minutes, 0.0);
    assert_eq!((r.scale_actions, r.flips, r.peak_replicas), (3, 1, 3));
}

#[test]
fn zero_startup_replicas_are_ready_at_once_and_desires_are_clamped() {
    let model = ReplicaModel { startup_s: 0.0, max_replicas: 4, ..ReplicaModel::default() };
    let sc = scenario(TINY, model);
    let r = run(&sc, &mut Script::new(vec![0, 9]), 60.0);
    // 0 replicas on [0,60) (violating), then clamped to 4, ready at once.
    assert!(close(r.replica_hours * 3600.0, 4.0 * 120.0));
    assert!(close(r.slo_violation_minutes, 1.0));
    assert!(close(r.requests_unserved, 50.0 * 60.0));
    assert_eq!(r.peak_replicas, 4);
}

#[test]
fn run_errors_name_the_problem() {
    let trace = parse_trace(TINY).unwrap_or_else(|e| panic!("{e}"));
    let bad_model = ReplicaModel { capacity_rps: -1.0, ..ReplicaModel::default() };
    let e = Scenario::new(trace.clone(), bad_model).map(|_| ()).map_err(|e| e.to_string());
    assert!(e.as_ref().is_err_and(|e| e.starts_with("sim.capacity_rps: -1 is out of range")), "{e:?}");
    let small = ReplicaModel { max_replicas: 2, ..ReplicaModel::default() };
    assert_eq!(
        Scenario::new(trace.clone(), small).map(|_| ()),
        Err(SimError::NeedsTooMany { t_s: 60.0, rps: 200.0, max_replicas: 2 })
    );
    let interval_error = |csv: &str, interval: f64| {
        let sc = scenario(csv, ReplicaModel::default());
        sc.simulate(&mut FixedPolicy::new(1), &SimOptions { sync_interval_s: interval }).map(|_| ()).map_err(|e| e.to_string())
    };
    for (interval, want) in [(0.0, "sim.sync_interval_s: 0 is out of range"), (f64::NAN, "sim.sync_interval_s: NaN is out of range"), (-15.0, "sim.sync_interval_s: -15 is out of range")] {
        let got = interval_error(TINY, interval);
        assert!(got.as_ref().is_err_and(|e| e.starts_with(want)), "{got:?}");
    }
    assert_eq!(interval_error(TINY, 0.01), Ok(()), "18,000 decisions are fine");
    let got = interval_error("0,1\n100000,1\n", 0.01);
    assert!(got.as_ref().is_err_and(|e| e.starts_with("sim.sync_interval_s: 0.01 s over a 200000 s trace makes more than")), "{got:?}");
    assert_eq!(FixedPolicy::from_spec("fixed-7"), Some(Ok(FixedPolicy::new(7))));
    assert_eq!(FixedPolicy::from_spec("target-60"), None);
    for bad in ["fixed-", "fixed-x", "fixed--1", "fixed-2000000"] {
        assert!(FixedPolicy::from_spec(bad).is_some_and(|r| r.is_err_and(|e| e.path == "policy")), "{bad}");
    }
}

#[test]
fn progress_rises_to_one() {
    let sc = scenario("0,50\n300000,60\n", ReplicaModel::default());
    let mut seen = Vec::new();
    sc.simulate_with_progress(&mut FixedPolicy::new(1), &SimOptions { sync_interval_s: 1.0 }, &mut |f| seen.push(f))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(seen.len() > 10, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(seen.last(), Some(&1.0));
}

#[test]
fn runs_are_deterministic() {
    let text = include_str!("../../../../traces/spiky.csv");
    let once = || {
        let sc = scenario(text, ReplicaModel::default());
        let opts = SimOptions::default();
        let mut policies: Vec<Box<dyn SimPolicy>> = vec![Box::new(FixedPolicy::new(5)), Box::new(Lookahead::new(&sc, &opts))];
        let report = compare(&sc, &mut policies, &opts).unwrap_or_else(|e| panic!("{e}"));
        (report.to_json(), render_svg(&sc, &report), report)
    };
    let (a, b) = (once(), once());
    assert_eq!(a.2, b.2);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
}

#[test]
fn shipped_traces_parse_and_their_oracle_is_bracketed_and_achieved() {
    // (file, text, its row step: deciding on that grid lets the lookahead match the oracle)
    let traces = [
        ("diurnal-14d.csv", include_str!("../../../../traces/diurnal-14d.csv"), 60.0),
        ("spiky.csv", include_str!("../../../../traces/spiky.csv"), 10.0),
        ("ramp.csv", include_str!("../../../../traces/ramp.csv"), 10.0),
        ("sample-access.log", include_str!("../../../../traces/sample-access.log"), 1.0),
    ];
    for (name, text, grid) in traces {
        assert!(text.len() < 1 << 20, "{name} is over 1 MB");
        let sc = scenario(text, ReplicaModel::default());
        let want = if name.ends_with(".log") { TraceFormat::AccessLog } else { TraceFormat::Csv };
        assert_eq!(sc.trace().format(), want, "{name}");
        let trace = sc.trace();
        let need_s: f64 = (0..trace.points().len()).map(|j| f64::from(sc.needed()[j]) * (trace.step_end_s(j) - trace.points()[j].t_s)).sum();
        let peak = sc.needed().iter().copied().max().unwrap_or(0);
        let oracle_s = sc.oracle().replica_hours * 3600.0;
        assert!(oracle_s >= need_s * (1.0 - 1e-12), "{name}: oracle {oracle_s} < ∫needs {need_s}");
        assert!(oracle_s <= f64::from(peak) * trace.duration_s() * (1.0 + 1e-12), "{name}");
        let fixed = run(&sc, &mut FixedPolicy::new(peak), 15.0);
        assert_eq!(fixed.slo_violation_minutes, 0.0, "{name}");
        assert!(fixed.ratio_to_oracle >= 1.0, "{name}");
        let opts = SimOptions { sync_interval_s: grid };
        let look = run(&sc, &mut Lookahead::new(&sc, &opts), grid);
        assert_eq!(look.slo_violation_minutes, 0.0, "{name}");
        assert!(close(look.ratio_to_oracle, 1.0), "{name}: {look:?}");
        let coarse = SimOptions::default();
        let late = run(&sc, &mut Lookahead::new(&sc, &coarse), coarse.sync_interval_s);
        assert_eq!(late.slo_violation_minutes, 0.0, "{name}");
        assert!(late.ratio_to_oracle >= 1.0 - 1e-9 && late.ratio_to_oracle <= fixed.ratio_to_oracle, "{name}: {late:?}");
    }
}

/// A random trace on a 10 s grid with a start-up of a whole number of intervals, or
/// (`aligned == false`) with arbitrary times and start-up.
fn arb_case(aligned: bool) -> impl Strategy<Value = (Vec<TracePoint>, ReplicaModel)> {
    let steps = prop::collection::vec((1u32..=6, 0.0f64..600.0, 0.01f64..60.0), 1..24);
    (steps, 20.0f64..200.0, 0u32..=6, 0.01f64..90.0, 0.5f64..=1.0, prop::option::of(1.2f64..4.0)).prop_map(
        move |(steps, capacity_rps, k, free_startup, max_utilisation, latency_factor)| {
            let mut t = 0.0;
            let mut points = Vec::new();
            for (gap, rps, free_gap) in steps {
                points.push(TracePoint { t_s: t, rps });
                t += if aligned { 10.0 * f64::from(gap) } else { free_gap };
            }
            points[0].rps = points[0].rps.max(1.0);
            let startup_s = if aligned { 10.0 * f64::from(k) } else { free_startup };
            let slo = Slo { max_utilisation, max_latency_s: latency_factor.map(|f| f / capacity_rps) };
            (points, ReplicaModel { capacity_rps, startup_s, slo, ..ReplicaModel::default() })
        },
    )
}

fn build(points: Vec<TracePoint>, model: ReplicaModel) -> Scenario {
    let trace = Trace::new(points).unwrap_or_else(|e| panic!("{e}"));
    Scenario::new(trace, model).unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No run that meets the SLO throughout bills less than the oracle.
    #[test]
    fn no_slo_meeting_run_beats_the_oracle(
        (points, model) in prop_oneof![arb_case(true), arb_case(false)],
        script in prop::collection::vec(0u32..12, 1..40),
        fixed in 0u32..12,
        slack in 0u32..3,
        interval in prop_oneof![Just(10.0), 1.0f64..40.0],
    ) {
        let sc = build(points, model);
        let peak = sc.needed().iter().copied().max().unwrap_or(0);
        let opts = SimOptions { sync_interval_s: interval };
        let floor: Vec<u32> = script.iter().map(|v| peak + v % (slack + 1)).collect();
        let mut policies: Vec<Box<dyn SimPolicy>> = vec![
            Box::new(FixedPolicy::new(fixed)),
            Box::new(FixedPolicy::new(peak + slack)),
            Box::new(Script::new(script)),
            Box::new(Script::new(floor)),
            Box::new(Lookahead::new(&sc, &opts)),
        ];
        let oracle = sc.oracle().replica_hours;
        let mut reports = Vec::new();
        for policy in &mut policies {
            let r = sc.simulate(policy.as_mut(), &opts).unwrap_or_else(|e| panic!("{e}"));
            if r.slo_violation_minutes == 0.0 {
                prop_assert!(r.replica_hours >= oracle * (1.0 - 1e-9), "{} billed {} < oracle {}", r.name, r.replica_hours, oracle);
            }
            reports.push(r);
        }
        // The always-at-least-peak ones and the lookahead never violate.
        for i in [1, 3, 4] {
            prop_assert_eq!(reports[i].slo_violation_minutes, 0.0, "{}", reports[i].name);
        }
    }

    /// On a grid the lookahead policy realises the oracle's schedule: the bound is tight.
    #[test]
    fn the_oracle_is_achievable_on_a_grid((points, model) in arb_case(true)) {
        let sc = build(points, model);
        let opts = SimOptions { sync_interval_s: 10.0 };
        let r = sc.simulate(&mut Lookahead::new(&sc, &opts), &opts).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(r.slo_violation_minutes, 0.0);
        prop_assert!(close(r.replica_hours, sc.oracle().replica_hours), "{} vs oracle {}", r.replica_hours, sc.oracle().replica_hours);
    }
}

