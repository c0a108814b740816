//! Unit tests of the parts: forecaster, predictive policy, budget periods, metric windows.

use super::tests::{noon, windows};
use super::*;
use chrono::{TimeDelta, TimeZone};
use std::f64::consts::TAU;

const DAY: i64 = 86_400;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).single().expect("monday") + TimeDelta::seconds(secs)
}

/// A daily wave: 100 ± 80.
fn wave(t: i64) -> f64 {
    100.0 + 80.0 * (TAU * (t.rem_euclid(DAY)) as f64 / DAY as f64).sin()
}

fn feed(f: &mut Forecaster, from: i64, to: i64, value: impl Fn(i64) -> f64) {
    for t in (from..to).step_by(60) {
        f.observe(at(t), value(t));
    }
}

#[test]
fn forecaster_follows_a_daily_season() {
    let mut f = Forecaster::new(300);
    feed(&mut f, 0, 2 * DAY + 6 * 3600, wave);
    let now = at(2 * DAY + 6 * 3600 - 60);
    let (v, method) = f.forecast(now, std::time::Duration::from_secs(1800)).expect("forecast");
    let actual = wave(2 * DAY + 6 * 3600 + 1800);
    assert_eq!(method, "seasonal daily");
    assert!((v - actual).abs() < 0.05 * actual, "forecast {v} vs actual {actual}");
}

#[test]
fn forecaster_carries_a_level_change() {
    let mut f = Forecaster::new(300);
    // Day two runs 50 above day one.
    feed(&mut f, 0, DAY + 12 * 3600, |t| wave(t) + if t >= DAY { 50.0 } else { 0.0 });
    let now = at(DAY + 12 * 3600 - 60);
    let (v, _) = f.forecast(now, std::time::Duration::from_secs(3600)).expect("forecast");
    let actual = wave(DAY + 13 * 3600) + 50.0;
    assert!((v - actual).abs() < 0.05 * actual, "forecast {v} vs actual {actual}");
}

#[test]
fn forecaster_takes_the_higher_of_daily_and_weekly() {
    // Weekdays busy, weekends quiet.
    let weekly = |t: i64| if (t / DAY) % 7 >= 5 { 20.0 } else { 200.0 };
    let hour = std::time::Duration::from_secs(3600);
    // Sunday 23:49 of the second week: yesterday says 20, last Monday says 200. The
    // mean (110) would meet Monday's load with half the instances it needs.
    let mut f = Forecaster::new(300);
    feed(&mut f, 0, 14 * DAY - 600, weekly);
    assert_eq!(f.forecast(at(14 * DAY - 660), hour), Some((200.0, "seasonal daily+weekly")));
    // Friday 23:49: yesterday says 200, last Saturday 20; the higher holds until the
    // daily level correction has seen the quiet hour.
    let mut f = Forecaster::new(300);
    feed(&mut f, 0, 12 * DAY - 600, weekly);
    assert_eq!(f.forecast(at(12 * DAY - 660), hour), Some((200.0, "seasonal daily+weekly")));
    feed(&mut f, 12 * DAY - 600, 12 * DAY + 3900, weekly);
    let (v, _) = f.forecast(at(12 * DAY + 3840), hour).expect("forecast");
    assert!((v - 20.0).abs() < 1e-9, "forecast {v}");
}

#[test]
fn the_peak_forecast_covers_the_whole_look_ahead() {
    // Yesterday 10 minutes at 500 from 09:05 in a day of 100: at 09:00, 20 minutes
    // ahead is back to 100, but the look-ahead passes through the burst.
    let mut f = Forecaster::new(300);
    let burst = |t: i64| if (9 * 3600 + 300..9 * 3600 + 900).contains(&t.rem_euclid(DAY)) { 500.0 } else { 100.0 };
    feed(&mut f, 0, DAY + 9 * 3600, burst);
    let (now, ahead) = (at(DAY + 9 * 3600), std::time::Duration::from_secs(1800));
    let (point, _) = f.forecast(now, ahead).expect("point");
    let (peak, method) = f.forecast_peak(now, ahead).expect("peak");
    assert!((point - 100.0).abs() < 1e-9, "point {point}");
    assert!(peak >= 300.0, "peak {peak}");
    assert_eq!(method, "seasonal daily");
    assert_eq!(Forecaster::new(300).forecast_peak(at(0), ahead), None);
}

#[test]
fn the_margin_tracks_the_95th_percentile_of_forecast_errors() {
    let mut f = Forecaster::new(60);
    assert_eq!(f.margin(), 0.0);
    // Forecast 100 every 15 s; actual demand cycles through 80, 81, ..., 119: errors
    // spread evenly over −20% ... +19%, whose 95th percentile is +17%.
    for i in 0..20_000i64 {
        let t = 15 * i;
        f.observe(at(t), 80.0 + (i % 40) as f64);
        f.expect(at(t + 15), 100.0);
    }
    assert!((f.margin() - 0.17).abs() < 0.015, "margin {}", f.margin());
    // A short burst (5 minutes at double) moves it by at most 20 × 0.0019.
    let before = f.margin();
    for i in 20_000..20_020i64 {
        f.observe(at(15 * i), 200.0);
        f.expect(at(15 * i + 15), 100.0);
    }
    assert!(f.margin() - before <= 0.039, "{before} → {}", f.margin());
    // Forecasts above the actual drive it to 0, never below.
    for i in 20_020..40_000i64 {
        f.observe(at(15 * i), 50.0);
        f.expect(at(15 * i + 15), 100.0);
    }
    assert_eq!(f.margin(), 0.0);
}

#[test]
fn forecasts_are_checked_once_in_order_and_bad_ones_are_ignored() {
    let mut f = Forecaster::new(60);
    f.expect(at(60), 100.0);
    f.expect(at(30), 1.0); // due before a pending one: ignored
    f.expect(at(90), f64::NAN);
    f.expect(at(90), 0.0); // no relative error of a zero forecast
    f.observe(at(59), 1000.0); // not due yet
    assert_eq!(f.margin(), 0.0);
    f.observe(at(100), 1000.0); // +900% error: up one step, capped by the step size
    assert!((f.margin() - 0.0019).abs() < 1e-12, "{}", f.margin());
    f.observe(at(200), 1000.0); // nothing pending any more
    assert!((f.margin() - 0.0019).abs() < 1e-12, "{}", f.margin());
}

#[test]
fn forecaster_trend_naive_and_none() {
    let mut f = Forecaster::new(60);
    assert_eq!(f.forecast(at(0), std::time::Duration::ZERO), None);
    f.observe(at(0), 42.0);
    assert_eq!(f.forecast(at(10), std::time::Duration::from_secs(600)), Some((42.0, "naive")));
    // A ramp of +10 per minute for 30 minutes, then look 10 minutes ahead.
    let mut f = Forecaster::new(60);
    feed(&mut f, 0, 1800, |t| t as f64 / 6.0);
    let (v, method) = f.forecast(at(1740), std::time::Duration::from_secs(600)).expect("forecast");
    assert_eq!(method, "trend");
    assert!((v - 390.0).abs() < 10.0, "forecast {v}");
    // A falling trend never goes below zero.
    let mut f = Forecaster::new(60);
    feed(&mut f, 0, 600, |t| 100.0 - t as f64 / 6.0);
    assert_eq!(f.forecast(at(540), std::time::Duration::from_secs(3600)).map(|r| r.0), Some(0.0));
}

#[test]
fn forecaster_ignores_bad_input_and_resets_after_a_long_gap() {
    let mut f = Forecaster::new(60);
    feed(&mut f, 0, 600, |_| 10.0);
    f.observe(at(660), f64::NAN);
    f.observe(at(100), 1e9); // older than the newest bucket
    assert_eq!(f.forecast(at(599), std::time::Duration::ZERO).map(|r| r.0), Some(10.0));
    f.observe(at(30 * DAY), 99.0);
    assert_eq!(f.forecast(at(30 * DAY), std::time::Duration::from_secs(60)), Some((99.0, "naive")));
}

#[test]
fn predictive_policy_scales_ahead_of_the_morning() {
    // Yesterday load jumped from 100 to 1000 rps at 09:00; now it is 08:55.
    let start = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).single().expect("time");
    let mut f = Forecaster::new(300);
    for m in 0..(24 * 60 + 8 * 60 + 55) {
        let t = start + TimeDelta::minutes(m);
        let nine = (m % (24 * 60)) >= 9 * 60;
        f.observe(t, if nine { 1000.0 } else { 100.0 });
    }
    let now = start + TimeDelta::minutes(24 * 60 + 8 * 60 + 55);
    let mut p = PredictivePolicy::new(MetricKind::Rps, 100.0);
    p.lead = Some(crate::config::ConfigDuration::from_secs(600));
    let mut config = ScalingConfig {
        policies: vec![
            PolicyConfig::Predictive(p.clone()),
            PolicyConfig::Target(TargetPolicy::new(MetricKind::Rps, 100.0)),
        ],
        ..ScalingConfig::default()
    };
    let mut w = MetricWindows::new();
    w.push(MetricKind::Rps, now, 100.0);
    let mut memory = EngineMemory::new();
    memory.forecasters.insert(0, f.clone());
    let d = decide(&PoolState::new(1, 1), &config, None, &w, &mut memory, now);
    assert_eq!(d.desired, 10, "{}", d.reason);
    assert!(d.reason.contains("forecast peak rps 1000 within 10m (seasonal daily) + 0.0% margin"), "{}", d.reason);
    // forecast_only records the same vote but does not act on it.
    p.forecast_only = true;
    config.policies[0] = PolicyConfig::Predictive(p);
    let mut memory = EngineMemory::new();
    memory.forecasters.insert(0, f);
    let d = decide(&PoolState::new(1, 1), &config, None, &w, &mut memory, now);
    assert_eq!(d.desired, 1, "{}", d.reason);
    assert_eq!(d.recommendations[0].desired, Some(10));
    assert!(!d.recommendations[0].acting && d.recommendations[0].reason.starts_with("forecast only: "));
}

#[test]
fn predictive_policy_covers_a_jump_the_seasons_did_not_see() {
    // A flat day at 100 rps; now, at the same time next day, 500 rps.
    let mut f = Forecaster::new(300);
    feed(&mut f, 0, DAY, |_| 100.0);
    let now = at(DAY);
    let mut w = MetricWindows::new();
    w.push(MetricKind::Rps, now, 500.0);
    let vote = |cover: bool, margin: bool| {
        let mut p = PredictivePolicy::new(MetricKind::Rps, 100.0);
        p.cover_current = cover;
        p.margin = margin;
        let config = ScalingConfig { policies: vec![PolicyConfig::Predictive(p)], ..ScalingConfig::default() };
        let mut memory = EngineMemory::new();
        memory.forecasters.insert(0, f.clone());
        let d = decide(&PoolState::new(1, 1), &config, None, &w, &mut memory, now);
        let f = memory.forecasters.get(&0).expect("forecaster");
        (d.recommendations[0].desired, d.recommendations[0].reason.clone(), f.forecast_peak(now, Duration::from_secs(15)))
    };
    let (covered, reason, _) = vote(true, true);
    assert_eq!(covered, Some(5), "{reason}");
    assert!(reason.contains("below the demand now (500), which is covered"), "{reason}");
    // Without the cover the vote is the forecast's: the level correction has seen one
    // sample of the jump in the last hour, far from all of it.
    let (forecast_only, reason, peak) = vote(false, true);
    let (peak, _) = peak.expect("peak");
    assert!(peak < 200.0, "{peak}");
    assert_eq!(forecast_only, Some(2), "{reason}");
    assert!(reason.contains("+ 0.0% margin at target"), "{reason}");
}

#[test]
fn predictive_policy_adds_its_margin_when_asked() {
    // Demand keeps coming in 10% above a flat forecast: the margin grows.
    let mut f = Forecaster::new(300);
    feed(&mut f, 0, DAY, |_| 100.0);
    for i in 0..500 {
        f.expect(at(DAY + 15 * i), 90.9);
        f.observe(at(DAY + 15 * i), 100.0);
    }
    assert!((f.margin() - 0.1).abs() < 0.002, "{}", f.margin());
    let now = at(DAY + 15 * 500);
    let mut w = MetricWindows::new();
    w.push(MetricKind::Rps, now, 100.0);
    for (margin, want) in [(true, 2), (false, 1)] {
        let mut p = PredictivePolicy::new(MetricKind::Rps, 100.0);
        p.margin = margin;
        let config = ScalingConfig { policies: vec![PolicyConfig::Predictive(p)], ..ScalingConfig::default() };
        let mut memory = EngineMemory::new();
        memory.forecasters.insert(0, f.clone());
        let d = decide(&PoolState::new(1, 1), &config, None, &w, &mut memory, now);
        assert_eq!(d.recommendations[0].desired, Some(want), "{}", d.recommendations[0].reason);
    }
}

#[test]
fn predictive_policy_scales_down_only_below_its_band() {
    // A flat 100 rps, forecast and now; 3 instances. At target 52 two would run at 96%
    // of it, inside the 5% band: hold. At target 55, 91%: down to 2. Up is not banded:
    // from 1 instance, target 52 asks for 2.
    let mut f = Forecaster::new(300);
    feed(&mut f, 0, DAY, |_| 100.0);
    let now = at(DAY);
    let mut w = MetricWindows::new();
    w.push(MetricKind::Rps, now, 100.0);
    for (current, target, want) in [(3, 52.0, 3), (3, 55.0, 2), (1, 52.0, 2)] {
        let p = PredictivePolicy::new(MetricKind::Rps, target);
        let config = ScalingConfig { policies: vec![PolicyConfig::Predictive(p)], ..ScalingConfig::default() };
        let mut memory = EngineMemory::new();
        memory.forecasters.insert(0, f.clone());
        let d = decide(&PoolState::new(current, current), &config, None, &w, &mut memory, now);
        assert_eq!(d.recommendations[0].desired, Some(want), "{current} at {target}: {}", d.recommendations[0].reason);
    }
}

#[test]
fn predictive_options_parse_and_older_memory_still_loads() {
    let p: PredictivePolicy =
        serde_json::from_str(r#"{"metric":"rps","target":50,"margin":false,"cover_current":false}"#).expect("parse");
    assert!(!p.margin && !p.cover_current);
    let p: PredictivePolicy = serde_json::from_str(r#"{"metric":"rps","target":50}"#).expect("parse");
    assert!(p.margin && p.cover_current, "both default to on");
    let bad = serde_json::from_str::<PredictivePolicy>(r#"{"metric":"rps","target":50,"margin":"yes"}"#);
    assert!(bad.is_err_and(|e| e.to_string().contains("expected a boolean")));
    // A forecaster saved before the margin existed.
    let old = r#"{"interval":300,"first":0,"buckets":[100.0],"open":null}"#;
    let f: Forecaster = serde_json::from_str(old).expect("older forecaster");
    assert_eq!(f.margin(), 0.0);
}

#[test]
fn predictive_policy_builds_history_through_decide() {
    let config = named_policy("predictive").expect("predictive");
    let mut memory = EngineMemory::new();
    let mut w = MetricWindows::new();
    for i in 0..40 {
        let now = noon() + TimeDelta::seconds(15 * i);
        w.push(MetricKind::Cpu, now, 35.0);
        decide(&PoolState::new(2, 2), &config, None, &w, &mut memory, now);
    }
    let f = memory.forecasters.get(&0).expect("forecaster of policy 0");
    let (v, _) = f.forecast(noon() + TimeDelta::seconds(600), std::time::Duration::ZERO).expect("forecast");
    assert!((v - 70.0).abs() < 1e-9, "demand is cpu × ready = 70, got {v}");
}

#[test]
fn budget_periods_end_on_calendar_boundaries() {
    let wed = noon(); // Wednesday 2026-11-25 12:00
    let t = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("time");
    assert_eq!(BudgetPeriod::Daily.end_after(wed), t(2026, 11, 26));
    assert_eq!(BudgetPeriod::Weekly.end_after(wed), t(2026, 11, 30));
    assert_eq!(BudgetPeriod::Monthly.end_after(wed), t(2026, 12, 1));
    assert_eq!(BudgetPeriod::Monthly.end_after(t(2026, 12, 31)), t(2027, 1, 1));
    assert_eq!(BudgetPeriod::Weekly.end_after(t(2026, 11, 30)), t(2026, 12, 7));
}

#[test]
fn instance_price_adds_vcpu_and_memory() {
    let mut c = CostConfig::per_instance_hour(0.01, None);
    c.vcpus_per_instance = Some(2.0);
    c.price_per_vcpu_hour = Some(0.04);
    c.memory_gb_per_instance = Some(4.0);
    c.price_per_gb_hour = Some(0.005);
    assert!((c.instance_hour_price() - 0.11).abs() < 1e-12);
    c.price_per_gb_hour = None; // half a pair prices nothing
    assert!((c.instance_hour_price() - 0.09).abs() < 1e-12);
}

#[test]
fn metric_windows_summarise_ranges() {
    let mut w = MetricWindows::new();
    let t = |s| noon() + TimeDelta::seconds(s);
    w.push(MetricKind::Cpu, t(10), 30.0);
    w.push(MetricKind::Cpu, t(30), 50.0);
    w.push(MetricKind::Cpu, t(20), 40.0); // out of order: inserted in place
    w.push(MetricKind::Cpu, t(40), f64::INFINITY); // dropped
    assert_eq!(w.len(&MetricKind::Cpu), 3);
    let s = w.summary(&MetricKind::Cpu, t(10), t(30)).expect("two samples");
    assert_eq!((s.count, s.mean, s.max, s.latest), (2, 45.0, 50.0, 50.0), "from is exclusive, to inclusive");
    assert_eq!(w.summary(&MetricKind::Cpu, t(30), t(60)), None);
    assert_eq!(w.summary(&MetricKind::Memory, t(0), t(60)), None);
    w.trim_before(t(25));
    assert_eq!(w.len(&MetricKind::Cpu), 1);
    w.trim_before(t(100));
    assert!(w.is_empty());
    assert_eq!(windows(&[(MetricKind::Rps, &[1.0, 2.0])]).len(&MetricKind::Rps), 2);
}

#[test]
fn metric_names_round_trip() {
    for name in [
        "cpu",
        "memory",
        "rps",
        "concurrency",
        "latency-p50",
        "latency-p95",
        "latency-p99",
        "error-rate",
        "queue-depth",
        "prometheus:http_p95",
        "custom:jobs",
    ] {
        let m: MetricKind = name.parse().expect(name);
        assert_eq!(m.to_string(), name);
    }
    for bad in ["", "CPU", "prometheus:", "custom: ", "latency", "gpu"] {
        let err = bad.parse::<MetricKind>().expect_err(bad);
        assert!(err.to_string().starts_with(&format!("unknown metric {bad:?}; use one of cpu")), "{err}");
    }
    assert_eq!(MetricKind::LatencyP95.format_value(230.456), "230.46ms");
    assert_eq!(MetricKind::Rps.format_value(5.0), "5 rps");
}

#[test]
fn epoch_millis_converts_and_clamps() {
    assert_eq!(at_epoch_millis(noon().timestamp_millis()), noon());
    assert_eq!(at_epoch_millis(i64::MAX), DateTime::<Utc>::MAX_UTC);
    assert_eq!(at_epoch_millis(i64::MIN), DateTime::<Utc>::MIN_UTC);
}

#[test]
fn rate_limit_allowance() {
    let l = |i, p, select| RateLimit {
        instances: i,
        percent: p,
        period: crate::config::ConfigDuration::from_secs(60),
        select,
    };
    assert_eq!(l(Some(4), Some(100.0), LimitSelect::Max).allowance(2), 4);
    assert_eq!(l(Some(4), Some(100.0), LimitSelect::Max).allowance(10), 10);
    assert_eq!(l(Some(4), Some(100.0), LimitSelect::Min).allowance(10), 4);
    assert_eq!(l(None, Some(50.0), LimitSelect::Max).allowance(3), 2);
    assert_eq!(l(None, None, LimitSelect::Max).allowance(3), u32::MAX);
}

#[test]
fn schedule_cache_agrees_with_a_fresh_evaluation() {
    let window = |start: &str, tz: &str| {
        PolicyConfig::Schedule(SchedulePolicy {
            start: start.into(),
            duration: crate::config::ConfigDuration::from_secs(9 * 3600),
            timezone: tz.into(),
            min: Some(5),
            max: None,
            desired: None,
            active: true,
        })
    };
    let mut config =
        ScalingConfig { policies: vec![window("0 9 * * 1-5", "Europe/Berlin")], ..ScalingConfig::default() };
    let mut memory = EngineMemory::new();
    let from = Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).single().expect("time"); // spans the DST change
    let mut opened = 0;
    for step in 0..(4 * 24 * 4) {
        if step == 200 {
            config.policies[0] = window("30 22 * * *", "UTC"); // a config change mid-run
        }
        let now = from + TimeDelta::minutes(15 * step);
        let cached = decide(&PoolState::new(1, 1), &config, None, &MetricWindows::new(), &mut memory, now);
        let fresh = decide(&PoolState::new(1, 1), &config, None, &MetricWindows::new(), &mut EngineMemory::new(), now);
        assert_eq!((cached.min, &cached.recommendations), (fresh.min, &fresh.recommendations), "at {now}");
        opened += usize::from(cached.min == 5);
    }
    assert!(opened > 0 && opened < 4 * 24 * 4, "the window opened and closed ({opened} open steps)");
}

#[test]
fn numbers_show_at_most_two_decimals() {
    use super::metrics::Num;
    let shown: Vec<String> =
        [83.3333, 5.0, 137.5, -2.005, -0.25, 0.004, 1e20, f64::NAN].iter().map(|v| Num(*v).to_string()).collect();
    assert_eq!(shown, ["83.33", "5", "137.5", "-2.01", "-0.25", "0", "100000000000000000000", "NaN"]);
}

#[test]
fn extreme_times_do_not_panic() {
    let mut config = named_policy("predictive").expect("predictive");
    config.policies.push(PolicyConfig::Schedule(SchedulePolicy {
        start: "0 9 * * 1-5".into(),
        duration: crate::config::ConfigDuration::from_secs(9 * 3600),
        timezone: "Pacific/Kiritimati".into(), // UTC+14
        min: Some(3),
        max: None,
        desired: None,
        active: true,
    }));
    config.policies.push(PolicyConfig::Schedule(SchedulePolicy {
        start: "0 9 * * *".into(),
        duration: crate::config::ConfigDuration::from_secs(3600),
        timezone: "Pacific/Pago_Pago".into(), // UTC-11
        min: Some(3),
        max: None,
        desired: None,
        active: true,
    }));
    config.template = Some("web-balanced".into());
    config.scale_to_zero = Some(ScaleToZero { idle_after: crate::config::ConfigDuration::from_secs(60), ..ScaleToZero::default() });
    let cost = CostConfig::per_instance_hour(1.0, Some(100.0));
    for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let mut w = MetricWindows::new();
        w.push(MetricKind::Cpu, now, 90.0);
        w.push(MetricKind::Rps, now, 10.0);
        let mut memory = EngineMemory::new();
        for _ in 0..2 {
            let d = decide(&PoolState::new(3, 3), &config, Some(&cost), &w, &mut memory, now);
            assert!((config.min..=config.max).contains(&d.desired), "at {now}: {}", d.reason);
        }
    }
}


