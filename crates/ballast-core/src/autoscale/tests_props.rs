//! Property tests of the engine's invariants: bounds hold, cooldowns hold, constant load
//! does not oscillate.

use super::tests::{ago, noon, target};
use super::*;
use crate::config::ConfigDuration;
use chrono::TimeDelta;
use proptest::prelude::*;

fn secs(s: u64) -> Option<ConfigDuration> {
    Some(ConfigDuration::from_secs(s))
}

fn policy() -> impl Strategy<Value = PolicyConfig> {
    prop_oneof![
        (10.0..100.0f64).prop_map(|t| target(MetricKind::Cpu, t)),
        (1.0..500.0f64).prop_map(|t| target(MetricKind::Rps, t)),
        (50.0..100.0f64, 0.0..50.0f64, 0..4u32, 1.0..60.0f64).prop_map(|(up, down, by, pct)| {
            PolicyConfig::Step(StepPolicy {
                metric: MetricKind::Cpu,
                threshold_up: up,
                threshold_down: down,
                scale_up_by: StepSize::Instances(by + 1),
                scale_down_by: StepSize::Percent(pct),
                window: ConfigDuration::from_secs(60),
                active: true,
            })
        }),
        (50.0..100.0f64, 0.0..50.0f64).prop_map(|(up, down)| PolicyConfig::Score(ScorePolicy::new(up, down))),
        (10.0..100.0f64).prop_map(|t| PolicyConfig::Predictive(PredictivePolicy::new(MetricKind::Cpu, t))),
    ]
}

prop_compose! {
    fn config()(
        min in 0..5u32,
        extra in 0..20u32,
        policies in proptest::collection::vec(policy(), 1..4),
        up_cd in 0..600u64,
        down_cd in 0..600u64,
        stab in 0..600u64,
        zero in any::<bool>(),
        limit in proptest::option::of((1..6u32, 10.0..200.0f64)),
    ) -> ScalingConfig {
        ScalingConfig {
            min,
            max: (min + extra).max(1),
            policies,
            scale_up_cooldown: secs(up_cd),
            scale_down_cooldown: secs(down_cd),
            scale_down_stabilization: secs(stab),
            scale_to_zero: zero.then(|| ScaleToZero { idle_after: ConfigDuration::from_secs(300), ..ScaleToZero::default() }),
            max_scale_up: limit.map(|(n, p)| RateLimit {
                instances: Some(n),
                percent: Some(p),
                period: ConfigDuration::from_secs(60),
                select: LimitSelect::Max,
            }),
            ..ScalingConfig::default()
        }
    }
}

prop_compose! {
    fn metrics()(cpu in proptest::option::of(0.0..300.0f64), rps in proptest::option::of(0.0..5000.0f64),
                 mem in proptest::option::of(0.0..100.0f64)) -> MetricWindows {
        let mut w = MetricWindows::new();
        for (m, v) in [(MetricKind::Cpu, cpu), (MetricKind::Rps, rps), (MetricKind::Memory, mem)] {
            if let Some(v) = v {
                w.push(m.clone(), ago(20), v);
                w.push(m, noon(), v);
            }
        }
        w
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// min ≤ desired ≤ max, or 0 with scale to zero on, whatever the inputs.
    #[test]
    fn desired_within_bounds(
        config in config(),
        current in 0..40u32,
        ready_share in 0.0..=1.0f64,
        pending in 0..3u32,
        w in metrics(),
        last_up in proptest::option::of(0..900i64),
        last_demand in proptest::option::of(0..900i64),
        manual in proptest::option::of(0..60u32),
    ) {
        let mut state = PoolState::new(current, (f64::from(current) * ready_share) as u32);
        state.pending_requests = pending;
        state.manual = manual.map(|replicas| ManualOverride { replicas, reason: "p".into(), expires_at: None });
        let mut memory = EngineMemory { last_scale_up: last_up.map(ago), last_demand: last_demand.map(ago), first_seen: Some(ago(3600)), ..EngineMemory::default() };
        let d = decide(&state, &config, None, &w, &mut memory, noon());
        let zero_ok = config.scale_to_zero.is_some() && d.desired == 0;
        prop_assert!(zero_ok || (config.min..=config.max).contains(&d.desired), "{} not in [{}, {}]: {}", d.desired, config.min, config.max, d.reason);
        prop_assert_eq!(d.direction, Direction::between(current, d.desired));
        prop_assert!(!d.reason.is_empty());
    }

    /// Across a run of decisions on random load, no scale-down happens inside the
    /// scale-down cooldown and no scale-up inside the scale-up cooldown.
    #[test]
    fn cooldowns_hold(
        config in config(),
        loads in proptest::collection::vec(0.0..400.0f64, 10..60),
    ) {
        let mut config = config;
        config.scale_to_zero = None;
        let (up_cd, down_cd) = (config.scale_up_cooldown.map_or(0, |d| d.0.as_secs() as i64), config.scale_down_cooldown.map_or(0, |d| d.0.as_secs() as i64));
        let mut memory = EngineMemory::new();
        let mut w = MetricWindows::new();
        let mut current = config.min.max(1);
        let (mut last_up, mut last_any): (Option<i64>, Option<i64>) = (None, None);
        for (i, load) in loads.iter().enumerate() {
            let t = i as i64 * 15;
            let now = noon() + TimeDelta::seconds(t);
            w.push(MetricKind::Cpu, now, *load);
            w.push(MetricKind::Rps, now, load * 10.0);
            let d = decide(&PoolState::new(current, current), &config, None, &w, &mut memory, now);
            if d.desired < current {
                prop_assert!(last_any.is_none_or(|l| t - l >= down_cd), "scale-down at {t}s, last scale at {last_any:?}, cooldown {down_cd}s: {}", d.reason);
                last_any = Some(t);
            } else if d.desired > current {
                prop_assert!(last_up.is_none_or(|l| t - l >= up_cd), "scale-up at {t}s, last up at {last_up:?}, cooldown {up_cd}s: {}", d.reason);
                last_up = Some(t);
                last_any = Some(t);
            }
            current = d.desired;
        }
    }

    /// On constant demand the count moves in one direction only, then stays.
    #[test]
    fn no_oscillation_on_constant_load(
        demand in 0.0..3000.0f64,
        start in 1..30u32,
        which in 0..3usize,
        t in 40.0..90.0f64,
    ) {
        let mut config = match which {
            0 => ScalingConfig { policies: vec![target(MetricKind::Cpu, t)], ..ScalingConfig::default() },
            1 => named_policy("hpa").expect("hpa"),
            _ => named_policy("predictive").expect("predictive"),
        };
        config.max = 40;
        let mut memory = EngineMemory::new();
        let mut w = MetricWindows::new();
        let mut current = start;
        let mut directions = Vec::new();
        for i in 0..80 {
            let now = noon() + TimeDelta::seconds(i * 15);
            // cpu of the ready instances carrying the demand (instance-percent).
            w.push(MetricKind::Cpu, now, demand / f64::from(current.max(1)));
            let d = decide(&PoolState::new(current, current), &config, None, &w, &mut memory, now);
            if d.direction != Direction::Hold {
                directions.push(d.direction);
            }
            current = d.desired;
        }
        prop_assert!(directions.windows(2).all(|p| p[0] == p[1]), "directions {directions:?}");
    }
}

const ZONES: [&str; 5] = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"];
const CRONS: [&str; 4] = ["0 9 * * 1-5", "30 2 * * *", "*/20 * * * *", "0 0 1 * *"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Schedule windows in any zone (DST included), over any times, never panic, and the
    /// cached evaluation always equals a fresh one.
    #[test]
    fn schedules_cache_agrees_anywhere(
        start in 0..4_000_000_000i64,
        steps in proptest::collection::vec(1..20_000i64, 1..30),
        zone in 0..ZONES.len(),
        cron in 0..CRONS.len(),
        hours in 1..30u64,
    ) {
        let config = ScalingConfig {
            policies: vec![PolicyConfig::Schedule(SchedulePolicy {
                start: CRONS[cron].into(),
                duration: ConfigDuration::from_secs(hours * 1800),
                timezone: ZONES[zone].into(),
                min: Some(4),
                max: None,
                desired: Some(5),
                active: true,
            })],
            ..ScalingConfig::default()
        };
        let mut memory = EngineMemory::new();
        let mut now = at_epoch_millis(start * 1000);
        for step in steps {
            now += TimeDelta::seconds(step);
            let w = MetricWindows::new();
            let cached = decide(&PoolState::new(2, 2), &config, None, &w, &mut memory, now);
            let fresh = decide(&PoolState::new(2, 2), &config, None, &w, &mut EngineMemory::new(), now);
            prop_assert_eq!(&cached.recommendations, &fresh.recommendations, "at {}", now);
            prop_assert_eq!(cached.min, fresh.min);
        }
    }
}
