//! Table tests of the engine in the style of the HPA's replica_calculator_test: one case
//! struct, one runner, named cases pinning the edges.

use super::*;
use chrono::{TimeDelta, TimeZone};

/// Wednesday 2026-11-25 12:00 UTC.
pub(super) fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).single().expect("valid time")
}

pub(super) fn ago(secs: i64) -> DateTime<Utc> {
    noon() - TimeDelta::seconds(secs)
}

/// A config with no damping, so calculator cases see the raw combination.
pub(super) fn bare(policies: Vec<PolicyConfig>) -> ScalingConfig {
    let zero = Some(crate::config::ConfigDuration::from_secs(0));
    ScalingConfig {
        policies,
        scale_up_cooldown: zero,
        scale_down_cooldown: zero,
        scale_down_stabilization: zero,
        ..ScalingConfig::default()
    }
}

pub(super) fn target(metric: MetricKind, t: f64) -> PolicyConfig {
    PolicyConfig::Target(TargetPolicy::new(metric, t))
}

fn step(up: f64, down: f64, up_by: StepSize, down_by: StepSize) -> PolicyConfig {
    PolicyConfig::Step(StepPolicy {
        metric: MetricKind::Cpu,
        threshold_up: up,
        threshold_down: down,
        scale_up_by: up_by,
        scale_down_by: down_by,
        window: crate::config::ConfigDuration::from_secs(60),
        active: true,
    })
}

fn schedule(start: &str, hours: u64, tz: &str, min: Option<u32>, desired: Option<u32>) -> PolicyConfig {
    PolicyConfig::Schedule(SchedulePolicy {
        start: start.into(),
        duration: crate::config::ConfigDuration::from_secs(hours * 3600),
        timezone: tz.into(),
        min,
        max: None,
        desired,
        active: true,
    })
}

/// Samples 10 s apart ending at noon, oldest first.
pub(super) fn windows(series: &[(MetricKind, &[f64])]) -> MetricWindows {
    let mut w = MetricWindows::new();
    for (m, values) in series {
        for (i, v) in values.iter().enumerate() {
            w.push(m.clone(), ago(10 * (values.len() - 1 - i) as i64), *v);
        }
    }
    w
}

struct Case {
    name: &'static str,
    config: ScalingConfig,
    cost: Option<CostConfig>,
    state: PoolState,
    metrics: Vec<(MetricKind, &'static [f64])>,
    memory: EngineMemory,
    desired: u32,
    reason: &'static [&'static str],
    alerts: &'static [AlertLevel],
}

impl Case {
    fn new(name: &'static str, config: ScalingConfig, current: u32, ready: u32, desired: u32) -> Self {
        Case {
            name,
            config,
            cost: None,
            state: PoolState::new(current, ready),
            metrics: Vec::new(),
            memory: EngineMemory::new(),
            desired,
            reason: &[],
            alerts: &[],
        }
    }
    fn m(mut self, metric: MetricKind, v: &'static [f64]) -> Self {
        self.metrics.push((metric, v));
        self
    }
    fn why(mut self, reason: &'static [&'static str]) -> Self {
        self.reason = reason;
        self
    }
    fn mem(mut self, f: impl FnOnce(&mut EngineMemory)) -> Self {
        f(&mut self.memory);
        self
    }
    fn state(mut self, f: impl FnOnce(&mut PoolState)) -> Self {
        f(&mut self.state);
        self
    }
    fn cost(mut self, c: CostConfig, spent: f64, alerts: &'static [AlertLevel]) -> Self {
        self.cost = Some(c);
        self.state.spend_this_period = spent;
        self.alerts = alerts;
        self
    }

    fn run(mut self) {
        let w = windows(&self.metrics);
        let d = decide(&self.state, &self.config, self.cost.as_ref(), &w, &mut self.memory, noon());
        assert_eq!(d.desired, self.desired, "case {:?}: desired; reason: {}", self.name, d.reason);
        for part in self.reason {
            assert!(d.reason.contains(part), "case {:?}: reason {:?} lacks {:?}", self.name, d.reason, part);
        }
        let levels: Vec<AlertLevel> = d.alerts.iter().map(|a| a.level).collect();
        assert_eq!(levels, self.alerts, "case {:?}: alerts {:?}", self.name, d.alerts);
        assert_eq!(d.direction, Direction::between(d.current, d.desired), "case {:?}", self.name);
    }
}

use MetricKind::{Cpu, Memory, Rps};

fn cpu70() -> ScalingConfig {
    bare(vec![target(Cpu, 70.0)])
}

#[test]
fn calculator_cases() {
    let stz = |c: &mut ScalingConfig| {
        c.scale_to_zero = Some(ScaleToZero { idle_after: crate::config::ConfigDuration::from_secs(600), ..ScaleToZero::default() })
    };
    let mut zero_cfg = cpu70();
    stz(&mut zero_cfg);
    let mut min2 = cpu70();
    min2.min = 2;
    let cases = vec![
        Case::new("scale up", cpu70(), 4, 4, 5)
            .m(Cpu, &[80.0, 85.0, 84.0])
            .why(&["cpu 83% > target 70% over 3 samples → 4 → 5", "scale 4 → 5"]),
        Case::new("tolerance band", cpu70(), 4, 4, 4).m(Cpu, &[75.0]).why(&["within ±10%", "hold at 4"]),
        Case::new("scale down", cpu70(), 4, 4, 2).m(Cpu, &[30.0]).why(&["cpu 30% < target 70%"]),
        Case::new("missing metrics", cpu70(), 4, 4, 4).why(&["no cpu samples in the last 1m", "no policy has a vote"]),
        Case::new("missing metric blocks scale-down", bare(vec![target(Cpu, 70.0), target(Memory, 70.0)]), 4, 4, 4)
            .m(Cpu, &[30.0])
            .why(&["scale-down blocked: target policy #1 has no data"]),
        Case::new(
            "missing metric does not block scale-up",
            bare(vec![target(Cpu, 70.0), target(Memory, 70.0)]),
            4,
            4,
            8,
        )
        .m(Cpu, &[140.0]),
        Case::new("not-ready instances flip direction", cpu70(), 5, 3, 5)
            .m(Cpu, &[90.0])
            .why(&["2 not-ready instance(s) counted as idle the ratio is 0.77"]),
        Case::new("not-ready instances counted as idle", cpu70(), 4, 3, 6).m(Cpu, &[140.0]).why(&["1 not ready"]),
        Case::new("scale down ignores not-ready", cpu70(), 5, 2, 2).m(Cpu, &[50.0]),
        Case::new("ready count just changed: only the newest sample", cpu70(), 4, 4, 3)
            .m(Cpu, &[100.0, 100.0, 100.0, 50.0])
            .mem(|m| m.last_ready = Some(2))
            .why(&["cpu 50% < target 70% over 1 sample →"]),
        Case::new("ready count changed earlier: samples since then", cpu70(), 4, 4, 3)
            .m(Cpu, &[100.0, 100.0, 50.0, 50.0])
            .mem(|m| {
                m.last_ready = Some(4);
                m.ready_changed_at = Some(ago(15));
            })
            .why(&["over 2 samples"]),
        Case::new("totals ignore ready changes", bare(vec![target(Rps, 100.0)]), 4, 4, 4)
            .m(Rps, &[400.0, 400.0, 400.0, 400.0])
            .mem(|m| m.last_ready = Some(2))
            .why(&["over 4 samples"]),
        Case::new("at max", cpu70(), 8, 8, 10).m(Cpu, &[200.0]).why(&["23 clamped to [1, 10]"]),
        Case::new("at min", min2.clone(), 2, 2, 2).m(Cpu, &[5.0]).why(&["1 clamped to [2, 10]", "hold at 2"]),
        Case::new("below min comes up", min2, 1, 1, 2).m(Cpu, &[70.0]),
        Case::new("from zero on a total", bare(vec![target(Rps, 100.0)]), 0, 0, 3)
            .m(Rps, &[250.0])
            .why(&["rps 250 rps with no ready instance"]),
        Case::new("from zero on cpu has no data", cpu70(), 0, 0, 1).why(&["no cpu samples"]),
        Case::new("rps per instance", bare(vec![target(Rps, 100.0)]), 4, 4, 6)
            .m(Rps, &[550.0])
            .why(&["137.5 rps per instance"]),
        Case::new(
            "step up absolute",
            bare(vec![step(80.0, 40.0, StepSize::Instances(2), StepSize::Instances(1))]),
            3,
            3,
            5,
        )
        .m(Cpu, &[90.0])
        .why(&["> up 80 (+2)"]),
        Case::new(
            "step down percent",
            bare(vec![step(80.0, 40.0, StepSize::Instances(1), StepSize::Percent(50.0))]),
            5,
            5,
            2,
        )
        .m(Cpu, &[20.0])
        .why(&["< down 40 (-50%)"]),
        Case::new(
            "step between thresholds",
            bare(vec![step(80.0, 40.0, StepSize::Instances(1), StepSize::Instances(1))]),
            5,
            5,
            5,
        )
        .m(Cpu, &[60.0]),
        Case::new(
            "safest wins: largest scale-up",
            bare(vec![target(Cpu, 70.0), step(80.0, 40.0, StepSize::Instances(3), StepSize::Instances(1))]),
            4,
            4,
            7,
        )
        .m(Cpu, &[90.0]),
        Case::new("direction flip: up beats down", bare(vec![target(Cpu, 70.0), target(Rps, 100.0)]), 4, 4, 6)
            .m(Cpu, &[30.0])
            .m(Rps, &[600.0]),
        Case::new("scale-down needs every policy", bare(vec![target(Cpu, 70.0), target(Rps, 100.0)]), 6, 6, 6)
            .m(Cpu, &[30.0])
            .m(Rps, &[600.0]),
        Case::new("all agree on scale-down: largest vote", bare(vec![target(Cpu, 70.0), target(Rps, 100.0)]), 6, 6, 4)
            .m(Cpu, &[30.0])
            .m(Rps, &[400.0]),
        Case::new(
            "schedule raises min",
            bare(vec![target(Cpu, 70.0), schedule("0 9 * * *", 9, "UTC", Some(6), None)]),
            4,
            4,
            6,
        )
        .m(Cpu, &[70.0])
        .why(&["window \"0 9 * * *\" open 2026-11-25 09:00 UTC – 2026-11-25 18:00 UTC, min 6"]),
        Case::new(
            "schedule closed",
            bare(vec![target(Cpu, 70.0), schedule("0 20 * * *", 1, "UTC", Some(6), None)]),
            4,
            4,
            4,
        )
        .m(Cpu, &[70.0]),
        Case::new(
            "schedule zone: 09:00 New York is closed at 12:00 UTC",
            bare(vec![target(Cpu, 70.0), schedule("0 9 * * *", 2, "America/New_York", Some(6), None)]),
            4,
            4,
            4,
        )
        .m(Cpu, &[70.0]),
        Case::new(
            "schedule zone: 06:00 New York is open at 12:00 UTC",
            bare(vec![target(Cpu, 70.0), schedule("0 6 * * *", 2, "America/New_York", Some(6), None)]),
            4,
            4,
            6,
        )
        .m(Cpu, &[70.0])
        .why(&["EST"]),
        Case::new(
            "schedule desired vote",
            bare(vec![target(Cpu, 70.0), schedule("0 9 * * 1-5", 9, "UTC", None, Some(8))]),
            4,
            4,
            8,
        )
        .m(Cpu, &[70.0])
        .why(&["desired 8 → 4 → 8"]),
        Case::new("manual override", cpu70(), 4, 4, 7)
            .m(Cpu, &[10.0])
            .state(|s| {
                s.manual = Some(ManualOverride {
                    replicas: 7,
                    reason: "load test".into(),
                    expires_at: Some(noon() + TimeDelta::hours(1)),
                })
            })
            .why(&["manual override 7 (load test) until 2026-11-25 13:00 UTC"]),
        Case::new("manual override clamped to max", cpu70(), 4, 4, 10)
            .state(|s| s.manual = Some(ManualOverride { replicas: 50, reason: "x".into(), expires_at: None })),
        Case::new("manual override expired", cpu70(), 4, 4, 5)
            .m(Cpu, &[84.0])
            .state(|s| s.manual = Some(ManualOverride { replicas: 9, reason: "x".into(), expires_at: Some(ago(60)) }))
            .why(&["manual override expired"]),
        Case::new("scale to zero after idle", zero_cfg.clone(), 2, 2, 0)
            .m(Rps, &[0.0, 0.0, 0.0])
            .mem(|m| {
                m.first_seen = Some(ago(3600));
                m.last_demand = Some(ago(700));
            })
            .why(&["no requests for 10m: scaling to zero"]),
        Case::new("not idle long enough", zero_cfg.clone(), 2, 2, 1).m(Rps, &[0.0]).m(Cpu, &[10.0]).mem(|m| {
            m.first_seen = Some(ago(3600));
            m.last_demand = Some(ago(300));
        }),
        Case::new("no rps samples: never idle", zero_cfg.clone(), 2, 2, 2).mem(|m| m.first_seen = Some(ago(3600))),
        Case::new("wake from zero", zero_cfg.clone(), 0, 0, 1)
            .state(|s| s.pending_requests = 3)
            .why(&["demand at zero instances: waking"]),
        Case::new("wake from zero on rps", zero_cfg.clone(), 0, 0, 1).m(Rps, &[0.0, 2.0]),
        Case::new("at zero without demand", zero_cfg, 0, 0, 0).m(Rps, &[0.0]).why(&["at zero, no demand"]),
    ];
    for c in cases {
        c.run();
    }
}

fn damped() -> ScalingConfig {
    ScalingConfig { policies: vec![target(Cpu, 70.0)], ..ScalingConfig::default() }
}

#[test]
fn damping_cases() {
    let mut hpa = named_policy("hpa").expect("hpa");
    hpa.max = 50;
    let mut dry = cpu70();
    dry.dry_run = true;
    let mut down_limited = cpu70();
    down_limited.max_scale_down = Some(RateLimit {
        instances: Some(1),
        percent: None,
        period: crate::config::ConfigDuration::from_secs(60),
        select: LimitSelect::Max,
    });
    let cases = vec![
        Case::new("scale-up cooldown active", damped(), 4, 4, 4)
            .m(Cpu, &[140.0])
            .mem(|m| m.last_scale_up = Some(ago(30)))
            .why(&["scale-up blocked: cooldown 30s left", "hold at 4"]),
        Case::new("scale-up cooldown over", damped(), 4, 4, 8)
            .m(Cpu, &[140.0])
            .mem(|m| m.last_scale_up = Some(ago(61))),
        Case::new("scale-down cooldown counts a scale-up", damped(), 6, 6, 6)
            .m(Cpu, &[30.0])
            .mem(|m| m.last_scale_up = Some(ago(100)))
            .why(&["scale-down blocked: cooldown 200s left"]),
        Case::new("stabilisation keeps the highest recent", damped(), 6, 6, 6)
            .m(Cpu, &[30.0])
            .mem(|m| m.recommendations.push_back((ago(120), 6)))
            .why(&["stabilisation: highest recommendation in window is 6"]),
        Case::new("stabilisation steps down to the highest in window", damped(), 6, 6, 4)
            .m(Cpu, &[30.0])
            .mem(|m| m.recommendations.extend([(ago(400), 6), (ago(120), 4)])),
        Case::new("rate limit on scale-up", hpa.clone(), 2, 2, 6)
            .m(Cpu, &[700.0])
            .why(&["scale-up limited to 6 (at most 4 per 15s)"]),
        Case::new("rate limit counts earlier events", hpa.clone(), 4, 4, 6)
            .m(Cpu, &[700.0])
            .mem(|m| m.record_scale(ago(5), 2, 4)),
        Case::new("rate limit percent wins when larger", hpa, 10, 10, 20).m(Cpu, &[700.0]),
        Case::new("rate limit on scale-down", down_limited, 6, 6, 5).m(Cpu, &[10.0]).why(&["scale-down limited to 5"]),
        Case::new("dry run", dry, 4, 4, 5).m(Cpu, &[84.0]).why(&["[dry-run] cpu 84%"]),
    ];
    for c in cases {
        c.run();
    }
}

#[test]
fn cost_cases() {
    use AlertLevel::{Critical, Warning};
    // 132 hours are left in November at noon on the 25th.
    let budget = CostConfig::per_instance_hour(1.0, Some(1000.0));
    let mut slo = budget.clone();
    slo.allow_slo_override = true;
    let cases = vec![
        Case::new("budget caps max", cpu70(), 4, 4, 3)
            .m(Cpu, &[200.0])
            .cost(budget.clone(), 1000.0 - 3.0 * 132.0, &[Warning])
            .why(&["budget caps max at 3"]),
        Case::new("budget warning", cpu70(), 1, 1, 1).m(Cpu, &[70.0]).cost(budget.clone(), 800.0, &[Warning]),
        Case::new("budget critical, min holds", cpu70(), 1, 1, 1).m(Cpu, &[70.0]).cost(
            budget.clone(),
            950.0,
            &[Critical, Warning, Critical],
        ),
        Case::new("SLO override passes the cap", cpu70(), 4, 4, 10).m(Cpu, &[200.0]).cost(
            slo,
            1000.0 - 3.0 * 132.0,
            &[Warning, Critical],
        ),
        Case::new("no budget: cost only", cpu70(), 4, 4, 5).m(Cpu, &[84.0]).cost(
            CostConfig::per_instance_hour(0.5, None),
            0.0,
            &[],
        ),
    ];
    for c in cases {
        c.run();
    }
}

#[test]
fn decision_carries_cost_votes_and_dry_run_leaves_no_event() {
    let mut config = cpu70();
    config.dry_run = true;
    let w = windows(&[(Cpu, &[84.0])]);
    let mut memory = EngineMemory::new();
    let cost = CostConfig::per_instance_hour(0.25, None);
    let d = decide(&PoolState::new(4, 4), &config, Some(&cost), &w, &mut memory, noon());
    assert!(d.dry_run && !d.should_act());
    assert_eq!(d.hourly_cost, Some(1.25));
    assert_eq!(d.recommendations.len(), 1);
    assert_eq!(d.recommendations[0].desired, Some(5));
    assert!(memory.scale_events.is_empty() && memory.last_scale_up.is_none());
    config.dry_run = false;
    let d = decide(&PoolState::new(4, 4), &config, None, &w, &mut memory, noon());
    assert!(d.should_act());
    assert_eq!(memory.last_scale_up, Some(noon()));
}

#[test]
fn switched_off_policy_is_recorded_but_not_combined() {
    let mut p = TargetPolicy::new(Cpu, 70.0);
    p.active = false;
    let config = bare(vec![PolicyConfig::Target(p), target(Rps, 100.0)]);
    let w = windows(&[(Cpu, &[10.0]), (Rps, &[600.0])]);
    let d = decide(&PoolState::new(4, 4), &config, None, &w, &mut EngineMemory::new(), noon());
    assert_eq!(d.desired, 6);
    assert!(!d.recommendations[0].acting);
    assert_eq!(d.recommendations[0].reason, "switched off");
}

#[test]
fn score_policy_math() {
    let config = bare(vec![PolicyConfig::Score(ScorePolicy::new(70.0, 30.0))]);
    let w = windows(&[(Cpu, &[90.0]), (Memory, &[80.0]), (Rps, &[400.0]), (MetricKind::ErrorRate, &[1.0])]);
    let d = decide(&PoolState::new(4, 4), &config, None, &w, &mut EngineMemory::new(), noon());
    // (40×90 + 30×80 + 20×100 + 10×10) / 100 = 81
    assert_eq!(d.desired, 5, "{}", d.reason);
    assert!(d.reason.contains("score 81 > up 70 (+1)"), "{}", d.reason);
    let w = windows(&[(Cpu, &[50.0])]);
    let d = decide(&PoolState::new(4, 4), &config, None, &w, &mut EngineMemory::new(), noon());
    assert_eq!(d.desired, 4);
    assert!(
        d.reason.contains("score 50 between 30 and 70") && d.reason.contains("no data: memory, rps, error-rate"),
        "{}",
        d.reason
    );
    let d = decide(&PoolState::new(4, 4), &config, None, &MetricWindows::new(), &mut EngineMemory::new(), noon());
    assert_eq!(d.recommendations[0].desired, None);
}

#[test]
fn template_policy_runs_with_its_cooldowns() {
    let config = ScalingConfig { template: Some("web-aggressive".into()), ..ScalingConfig::default() };
    let w = windows(&[(Cpu, &[95.0]), (Memory, &[90.0])]);
    let mut memory = EngineMemory::new();
    let d = decide(&PoolState::new(4, 4), &config, None, &w, &mut memory, noon());
    assert_eq!(d.desired, 6, "+50% of 4: {}", d.reason);
    assert_eq!(d.recommendations[0].kind, "score");
    // web-aggressive's scale-up cooldown is 30s.
    let later = noon() + TimeDelta::seconds(20);
    let d = decide(&PoolState::new(6, 6), &config, None, &w, &mut memory, later);
    assert!(d.reason.contains("scale-up blocked: cooldown 10s left"), "{}", d.reason);
}
