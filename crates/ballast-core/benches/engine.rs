//! Benchmarks of the scaling engine: one decision with every policy kind active (goal
//! under 50 µs), and one decision for each of 10,000 pools (goal under 100 ms).
//!
//! Metrics come from a steady [`MetricSource`] (as the simulator's trace source would),
//! and `now` advances by the 15s sync interval on every decision so cooldowns,
//! stabilisation history and the forecaster behave as in a long-running controller.

use ballast_core::autoscale::{
    decide, CostConfig, EngineMemory, Forecaster, LimitSelect, MetricKind, MetricSource, PolicyConfig, PoolState,
    PredictivePolicy, RateLimit, ScaleToZero, ScalingConfig, SchedulePolicy, ScorePolicy, StepPolicy, StepSize,
    Summary, TargetPolicy,
};
use ballast_core::config::ConfigDuration;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

/// The same summary for every metric at every time.
struct Steady;

impl MetricSource for Steady {
    fn summary(&self, metric: &MetricKind, _from: DateTime<Utc>, _to: DateTime<Utc>) -> Option<Summary> {
        let v = match metric {
            MetricKind::Cpu => 72.0,
            MetricKind::Memory => 55.0,
            MetricKind::Rps => 640.0,
            MetricKind::ErrorRate => 0.4,
            MetricKind::LatencyP95 => 180.0,
            _ => return None,
        };
        Some(Summary { mean: v, max: v * 1.2, latest: v, count: 4 })
    }
}

fn every_policy() -> (ScalingConfig, CostConfig) {
    let config = ScalingConfig {
        min: 2,
        max: 40,
        template: Some("api-latency".into()),
        policies: vec![
            PolicyConfig::Target(TargetPolicy::new(MetricKind::Cpu, 70.0)),
            PolicyConfig::Step(StepPolicy {
                metric: MetricKind::LatencyP95,
                threshold_up: 300.0,
                threshold_down: 100.0,
                scale_up_by: StepSize::Percent(50.0),
                scale_down_by: StepSize::Instances(1),
                window: ConfigDuration::from_secs(60),
                active: true,
            }),
            PolicyConfig::Score(ScorePolicy::new(70.0, 30.0)),
            PolicyConfig::Schedule(SchedulePolicy {
                start: "0 9 * * 1-5".into(),
                duration: ConfigDuration::from_secs(9 * 3600),
                timezone: "Europe/Berlin".into(),
                min: Some(4),
                max: None,
                desired: None,
                active: true,
            }),
            PolicyConfig::Predictive(PredictivePolicy::new(MetricKind::Rps, 100.0)),
        ],
        max_scale_up: Some(RateLimit {
            instances: Some(4),
            percent: Some(100.0),
            period: ConfigDuration::from_secs(60),
            select: LimitSelect::Max,
        }),
        scale_to_zero: Some(ScaleToZero { idle_after: ConfigDuration::from_secs(900), ..ScaleToZero::default() }),
        ..ScalingConfig::default()
    };
    (config, CostConfig::per_instance_hour(0.096, Some(5000.0)))
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).single().expect("valid time")
}

/// A forecaster with eight days of a daily wave, so both seasons are in play.
fn seeded_forecaster() -> Forecaster {
    let mut f = Forecaster::new(300);
    let from = start() - TimeDelta::days(8);
    for m in 0..(8 * 24 * 60) {
        let phase = f64::from(m % (24 * 60)) / (24.0 * 60.0) * std::f64::consts::TAU;
        f.observe(from + TimeDelta::minutes(i64::from(m)), 600.0 + 300.0 * phase.sin());
    }
    f
}

fn one_decision(c: &mut Criterion) {
    let (config, cost) = every_policy();
    let mut memory = EngineMemory::new();
    memory.forecasters.insert(4, seeded_forecaster());
    let mut state = PoolState::new(8, 8);
    state.startup_time = std::time::Duration::from_secs(90);
    state.spend_this_period = 1200.0;
    let mut now = start();
    c.bench_function("decide/every-policy", |b| {
        b.iter(|| {
            now += TimeDelta::seconds(15);
            let d = decide(black_box(&state), &config, Some(&cost), &Steady, &mut memory, now);
            black_box(d.desired)
        })
    });
}

fn ten_thousand_pools(c: &mut Criterion) {
    let (config, cost) = every_policy();
    let n = 10_000;
    let mut memories: Vec<EngineMemory> = (0..n).map(|_| EngineMemory::new()).collect();
    let states: Vec<PoolState> = (0..n).map(|i| PoolState::new(2 + (i % 30) as u32, 2 + (i % 30) as u32)).collect();
    let mut now = start();
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    group.bench_function("10k-pools", |b| {
        b.iter(|| {
            now += TimeDelta::seconds(15);
            let mut total = 0u64;
            for (state, memory) in states.iter().zip(memories.iter_mut()) {
                total += u64::from(decide(state, &config, Some(&cost), &Steady, memory, now).desired);
            }
            black_box(total)
        })
    });
    group.finish();
}

criterion_group!(benches, one_decision, ten_thousand_pools);
criterion_main!(benches);
