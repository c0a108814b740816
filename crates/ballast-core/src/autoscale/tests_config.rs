//! Tests of the `[pool.scaling]` / `[pool.cost]` file format and its validation.

use super::*;
use crate::config::FieldError;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct File {
    pool: Vec<Pool>,
}

#[derive(Debug, Deserialize)]
struct Pool {
    scaling: ScalingConfig,
    #[serde(default)]
    cost: Option<CostConfig>,
}

/// Parses a file of pools, returning the failing field path and message on error.
fn parse(s: &str) -> Result<File, (String, String)> {
    let de = toml::Deserializer::parse(s).map_err(|e| (String::new(), e.to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

fn one(s: &str) -> Pool {
    let mut f = parse(s).unwrap_or_else(|e| panic!("parse failed: {e:?}"));
    f.pool.remove(0)
}

fn errors_of(scaling: &str) -> Vec<FieldError> {
    let p = one(&format!("[[pool]]\n[pool.scaling]\n{scaling}"));
    let mut errors = Vec::new();
    p.scaling.validate("pool \"api\".scaling", &mut errors);
    errors
}

const FULL: &str = r#"
[[pool]]
[pool.scaling]
min = 2
max = 20
template = "web-balanced"
scale_up_cooldown = "30s"
scale_down_cooldown = "5m"
scale_down_stabilization = "3m"
max_scale_up = { instances = 4, percent = 100, period = "1m" }
max_scale_down = { percent = 50, period = "1m", select = "min" }
scale_to_zero = { idle_after = "20m" }
dry_run = true

[[pool.scaling.policy]]
kind = "target"
metric = "cpu"
target = 70

[[pool.scaling.policy]]
kind = "step"
metric = "latency-p95"
threshold_up = 300
threshold_down = 100
scale_up_by = "50%"
scale_down_by = 1

[[pool.scaling.policy]]
kind = "score"
threshold_up = 75
threshold_down = 25
weights = { cpu = 40, memory = 30, rps = 20, "error-rate" = 10, "latency-p99" = 5 }
full_scale = { rps = 250, "latency-p99" = 800 }

[[pool.scaling.policy]]
kind = "schedule"
start = "0 9 * * 1-5"
duration = "9h"
timezone = "Europe/Berlin"
min = 4

[[pool.scaling.policy]]
kind = "predictive"
metric = "rps"
target = 100
interval = "5m"
forecast_only = true

[[pool.scaling.policy]]
kind = "target"
metric = "custom:jobs_waiting"
target = 10
active = false

[pool.cost]
price_per_instance_hour = 0.096
budget = 500
period = "monthly"
"#;

#[test]
fn full_section_parses_and_validates() {
    let p = one(FULL);
    let s = &p.scaling;
    assert_eq!((s.min, s.max), (2, 20));
    assert_eq!(s.policies.len(), 6);
    let kinds: Vec<&str> = s.policies.iter().map(PolicyConfig::kind).collect();
    assert_eq!(kinds, ["target", "step", "score", "schedule", "predictive", "target"]);
    match &s.policies[1] {
        PolicyConfig::Step(p) => {
            assert_eq!(p.scale_up_by, StepSize::Percent(50.0));
            assert_eq!(p.scale_down_by, StepSize::Instances(1));
        }
        other => panic!("expected step, got {other:?}"),
    }
    match &s.policies[5] {
        PolicyConfig::Target(p) => assert_eq!(p.metric, MetricKind::Custom("jobs_waiting".into())),
        other => panic!("expected target, got {other:?}"),
    }
    assert_eq!(s.max_scale_down.as_ref().map(|l| l.select), Some(LimitSelect::Min));
    assert!(!s.policies[5].is_active());
    let mut errors = Vec::new();
    s.validate("pool \"api\".scaling", &mut errors);
    let cost = p.cost.expect("cost");
    cost.validate("pool \"api\".cost", &mut errors);
    assert_eq!(errors, []);
    assert_eq!(cost.warning_at, 0.75);
    // The config serialises back to TOML and reads the same.
    let back = toml::to_string(&s).expect("serialise");
    let again: ScalingConfig = toml::from_str(&back).expect("reparse");
    assert_eq!(&again, s);
}

#[test]
fn shape_errors_name_the_field() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("unknown metric", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"cpux\"\ntarget = 70", "pool[0].scaling.policy[0]", "metric: unknown metric \"cpux\"; use one of cpu, memory"),
        ("empty custom name", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"custom:\"\ntarget = 70", "pool[0].scaling.policy[0]", "metric: unknown metric \"custom:\""),
        ("unknown kind", "[[pool.scaling.policy]]\nkind = \"magic\"", "pool[0].scaling.policy[0]", "unknown variant `magic`"),
        ("unknown policy field", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"cpu\"\ntarget = 70\ntreshold = 1", "pool[0].scaling.policy[0]", "unknown field `treshold`"),
        ("negative cooldown", "scale_down_cooldown = \"-30s\"", "pool[0].scaling.scale_down_cooldown", "invalid duration \"-30s\""),
        ("bad step", "[[pool.scaling.policy]]\nkind = \"step\"\nmetric = \"cpu\"\nthreshold_up = 80\nthreshold_down = 20\nscale_up_by = \"lots\"", "pool[0].scaling.policy[0]", "scale_up_by: invalid step \"lots\""),
        ("negative step", "[[pool.scaling.policy]]\nkind = \"step\"\nmetric = \"cpu\"\nthreshold_up = 80\nthreshold_down = 20\nscale_up_by = -2", "pool[0].scaling.policy[0]", "scale_up_by: step -2 is negative"),
        ("zero percent step", "[[pool.scaling.policy]]\nkind = \"step\"\nmetric = \"cpu\"\nthreshold_up = 80\nthreshold_down = 20\nscale_up_by = \"0%\"", "pool[0].scaling.policy[0]", "scale_up_by: invalid step \"0%\"; the percent must be a number above 0"),
        ("missing kind", "[[pool.scaling.policy]]\nmetric = \"cpu\"", "pool[0].scaling.policy[0]", "missing field `kind`"),
        ("bad duration in a policy", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"cpu\"\ntarget = 70\nwindow = \"soon\"", "pool[0].scaling.policy[0]", "window: invalid duration \"soon\""),
        ("weight of an unknown metric", "[[pool.scaling.policy]]\nkind = \"score\"\nthreshold_up = 70\nthreshold_down = 30\nweights = { cpu = 40, gpu = 60 }", "pool[0].scaling.policy[0]", "weights.gpu: unknown metric \"gpu\""),
        ("missing target", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"cpu\"", "pool[0].scaling.policy[0]", "missing field `target`"),
        ("negative min", "min = -1", "pool[0].scaling.min", "invalid value"),
        ("unknown scaling field", "maximum = 3", "pool[0].scaling", "unknown field `maximum`"),
    ];
    for (name, body, path, message) in cases {
        let err = parse(&format!("[[pool]]\n[pool.scaling]\n{body}\n")).expect_err(name);
        assert!(err.0.starts_with(path), "case {name:?}: path {:?} should start with {path:?}", err.0);
        assert!(err.1.contains(message), "case {name:?}: message {:?} lacks {message:?}", err.1);
    }
}

#[test]
fn validation_cases() {
    let p = "pool \"api\".scaling";
    let cases: &[(&str, &str, &str, &str)] = &[
        ("min > max", "min = 5\nmax = 3\ntemplate = \"web-balanced\"", "min", "min (5) is greater than max (3); lower min or raise max"),
        ("max 0", "min = 0\nmax = 0\ntemplate = \"web-balanced\"", "max", "0 is not allowed"),
        ("unknown template", "template = \"web-balance\"", "template", "unknown template \"web-balance\"; use one of web-balanced, web-aggressive"),
        ("no policy", "min = 1", "policy", "no policy and no template"),
        ("up <= down", "[[pool.scaling.policy]]\nkind = \"step\"\nmetric = \"cpu\"\nthreshold_up = 30\nthreshold_down = 70", "policy[0].threshold_up", "threshold_up (30) must be greater than threshold_down (70)"),
        ("score weights sum to 0", "[[pool.scaling.policy]]\nkind = \"score\"\nthreshold_up = 70\nthreshold_down = 30\nweights = { cpu = 0 }", "policy[0].weights", "the weights sum to 0"),
        ("negative weight", "[[pool.scaling.policy]]\nkind = \"score\"\nthreshold_up = 70\nthreshold_down = 30\nweights = { cpu = -5, rps = 10 }", "policy[0].weights.cpu", "-5 is not allowed; use 0 or more"),
        ("full scale without weight", "[[pool.scaling.policy]]\nkind = \"score\"\nthreshold_up = 70\nthreshold_down = 30\nfull_scale = { \"queue-depth\" = 50 }", "policy[0].full_scale.queue-depth", "queue-depth has no weight"),
        ("score above 100", "[[pool.scaling.policy]]\nkind = \"score\"\nthreshold_up = 170\nthreshold_down = 30", "policy[0].threshold_up", "above 100"),
        ("cpu target above 100", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"cpu\"\ntarget = 170", "policy[0].target", "cpu is a percent"),
        ("zero target", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"rps\"\ntarget = 0", "policy[0].target", "0 is not allowed; use a number above 0"),
        ("tolerance 1", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"rps\"\ntarget = 5\ntolerance = 1.5", "policy[0].tolerance", "use a fraction from 0 to below 1"),
        ("zero window", "[[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"rps\"\ntarget = 5\nwindow = \"0s\"", "policy[0].window", "0s is not allowed"),
        ("zero step", "[[pool.scaling.policy]]\nkind = \"step\"\nmetric = \"cpu\"\nthreshold_up = 80\nthreshold_down = 20\nscale_up_by = 0", "policy[0].scale_up_by", "a step of 0 never changes the pool"),
        ("bad cron", "[[pool.scaling.policy]]\nkind = \"schedule\"\nstart = \"0 25 * * *\"\nduration = \"1h\"\nmin = 2", "policy[0].start", "invalid cron expression \"0 25 * * *\""),
        ("bad zone", "[[pool.scaling.policy]]\nkind = \"schedule\"\nstart = \"0 9 * * *\"\nduration = \"1h\"\ntimezone = \"Mars/Olympus\"\nmin = 2", "policy[0].timezone", "unknown time zone \"Mars/Olympus\""),
        ("empty window", "[[pool.scaling.policy]]\nkind = \"schedule\"\nstart = \"0 9 * * *\"\nduration = \"1h\"", "policy[0].desired", "the window changes nothing"),
        ("window min > max", "[[pool.scaling.policy]]\nkind = \"schedule\"\nstart = \"0 9 * * *\"\nduration = \"1h\"\nmin = 5\nmax = 2", "policy[0].min", "min (5) is greater than max (2)"),
        ("window desired outside", "[[pool.scaling.policy]]\nkind = \"schedule\"\nstart = \"0 9 * * *\"\nduration = \"1h\"\ndesired = 50", "policy[0].desired", "desired (50) is outside"),
        ("predictive interval", "[[pool.scaling.policy]]\nkind = \"predictive\"\nmetric = \"rps\"\ntarget = 100\ninterval = \"2d\"", "policy[0].interval", "use 1m to 1d"),
        ("predictive interval too fine", "[[pool.scaling.policy]]\nkind = \"predictive\"\nmetric = \"rps\"\ntarget = 100\ninterval = \"10s\"", "policy[0].interval", "10s is not allowed; use 1m to 1d"),
        ("rate limit empty", "template = \"web-balanced\"\nmax_scale_up = { period = \"1m\" }", "max_scale_up", "set `instances`, `percent` or both"),
        ("rate limit zero", "template = \"web-balanced\"\nmax_scale_down = { instances = 0 }", "max_scale_down.instances", "0 would forbid every change"),
        ("idle zero", "template = \"web-balanced\"\nscale_to_zero = { idle_after = \"0s\" }", "scale_to_zero.idle_after", "0s is not allowed"),
        ("sync zero", "template = \"web-balanced\"\nsync_interval = \"0s\"", "sync_interval", "0s is not allowed"),
    ];
    for (name, body, field, message) in cases {
        let errors = errors_of(body);
        let path = format!("{p}.{field}");
        let hit = errors.iter().find(|e| e.path == path);
        let e = hit.unwrap_or_else(|| panic!("case {name:?}: no error at {path}; got {errors:?}"));
        assert!(e.message.contains(message), "case {name:?}: {:?} lacks {message:?}", e.message);
    }
}

#[test]
fn cost_validation_cases() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("no price", "budget = 100", "price_per_instance_hour", "no price is set"),
        ("negative price", "price_per_instance_hour = -1", "price_per_instance_hour", "-1 is not allowed"),
        (
            "vcpu without price",
            "price_per_instance_hour = 1\nvcpus_per_instance = 2",
            "price_per_vcpu_hour",
            "vcpus_per_instance is set but price_per_vcpu_hour is not",
        ),
        ("zero budget", "price_per_instance_hour = 1\nbudget = 0", "budget", "use a number above 0"),
        (
            "warning above 1",
            "price_per_instance_hour = 1\nwarning_at = 75",
            "warning_at",
            "use a fraction of the budget",
        ),
        (
            "warning >= critical",
            "price_per_instance_hour = 1\nwarning_at = 0.9\ncritical_at = 0.8",
            "warning_at",
            "must be below critical_at (0.8)",
        ),
        ("empty currency", "price_per_instance_hour = 1\ncurrency = \" \"", "currency", "empty"),
    ];
    for (name, body, field, message) in cases {
        let p = one(&format!("[[pool]]\n[pool.scaling]\ntemplate = \"web-balanced\"\n[pool.cost]\n{body}\n"));
        let mut errors = Vec::new();
        p.cost.expect("cost").validate("pool \"api\".cost", &mut errors);
        let path = format!("pool \"api\".cost.{field}");
        let e = errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("case {name:?}: no error at {path}; got {errors:?}"));
        assert!(e.message.contains(message), "case {name:?}: {:?} lacks {message:?}", e.message);
    }
    let err = parse("[[pool]]\n[pool.scaling]\ntemplate = \"web-balanced\"\n[pool.cost]\nperiod = \"yearly\"\n")
        .expect_err("yearly is not a period");
    assert_eq!(err.0, "pool[0].cost.period");
    assert!(err.1.contains("unknown variant `yearly`, expected one of `daily`, `weekly`, `monthly`"), "{}", err.1);
}

#[test]
fn templates_and_named_policies_are_valid() {
    for name in TEMPLATE_NAMES {
        let t = template(name).expect(name);
        assert_eq!(t.name, name);
        let c = ScalingConfig { template: Some(name.to_string()), ..ScalingConfig::default() };
        let mut errors = Vec::new();
        c.validate("t", &mut errors);
        assert_eq!(errors, [], "template {name}");
        assert!(t.scale_down_cooldown >= t.scale_up_cooldown, "{name}: scale down no faster than up");
    }
    let thresholds: Vec<(f64, f64)> = TEMPLATE_NAMES
        .iter()
        .filter_map(|n| match template(n)?.policy {
            PolicyConfig::Score(s) => Some((s.threshold_up, s.threshold_down)),
            _ => None,
        })
        .collect();
    assert_eq!(thresholds, [(70.0, 30.0), (60.0, 40.0), (60.0, 40.0), (80.0, 20.0), (75.0, 25.0), (90.0, 10.0)]);
    assert!(template("nope").is_none());
    for name in NAMED_POLICIES {
        let c = named_policy(name).expect(name);
        let mut errors = Vec::new();
        c.validate("p", &mut errors);
        assert_eq!(errors, [], "named policy {name}");
    }
    assert!(named_policy("oracle").is_none());
}

#[test]
fn configs_decisions_and_memory_round_trip_through_json() {
    for name in NAMED_POLICIES {
        let c = named_policy(name).expect(name);
        let json = serde_json::to_string(&c).expect("serialise");
        let back: ScalingConfig = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, c, "{name}");
    }
    let config = named_policy("predictive").expect("predictive");
    let mut memory = EngineMemory::new();
    let mut w = MetricWindows::new();
    let mut last = None;
    for i in 0..30 {
        let now = super::tests::noon() + chrono::TimeDelta::seconds(15 * i);
        w.push(MetricKind::Cpu, now, 95.0);
        last = Some(decide(&PoolState::new(2, 2), &config, None, &w, &mut memory, now));
    }
    let json = serde_json::to_string(&memory).expect("serialise memory");
    let restored: EngineMemory = serde_json::from_str(&json).expect("parse memory");
    assert_eq!(restored, memory);
    let d = last.expect("decided");
    let back: Decision = serde_json::from_str(&serde_json::to_string(&d).expect("serialise")).expect("parse");
    assert_eq!(back, d);
}

#[test]
fn scale_to_zero_hold_knobs() {
    let p = one("[[pool]]\n[pool.scaling]\ntemplate = \"web-balanced\"\nscale_to_zero = {}");
    let z = p.scaling.scale_to_zero.clone().expect("section given");
    assert_eq!((z.hold_queue, z.hold_timeout.0), (DEFAULT_HOLD_QUEUE, DEFAULT_HOLD_TIMEOUT), "defaults");
    assert!(p.scaling.may_be_at_zero());
    assert_eq!(p.scaling.hold_limits(), (1000, std::time::Duration::from_secs(30)));
    let set = one("[[pool]]\n[pool.scaling]\nmin = 0\nscale_to_zero = { hold_queue = 5, hold_timeout = \"2m\" }");
    assert_eq!(set.scaling.hold_limits(), (5, std::time::Duration::from_secs(120)));
    let plain = one("[[pool]]\n[pool.scaling]\nmin = 1\ntemplate = \"web-balanced\"");
    assert!(!plain.scaling.may_be_at_zero(), "min 1 without scale_to_zero never holds");
    let min0 = one("[[pool]]\n[pool.scaling]\nmin = 0\ntemplate = \"web-balanced\"");
    assert!(min0.scaling.may_be_at_zero());
    assert_eq!(min0.scaling.hold_limits(), (DEFAULT_HOLD_QUEUE, DEFAULT_HOLD_TIMEOUT), "min 0 holds with the defaults");

    let p = "pool \"api\".scaling";
    let meaning: &[(&str, &str, &str)] = &[
        ("hold_queue = 0", "scale_to_zero.hold_queue", "0 is not allowed; use 1 to 100000 held requests"),
        ("hold_queue = 100001", "scale_to_zero.hold_queue", "100001 is not allowed; use 1 to 100000"),
        ("hold_timeout = \"0s\"", "scale_to_zero.hold_timeout", "0s is not allowed"),
        ("hold_timeout = \"11m\"", "scale_to_zero.hold_timeout", "11m is too long; use at most 10m"),
    ];
    for (knob, field, message) in meaning {
        let errors = errors_of(&format!("template = \"web-balanced\"\nscale_to_zero = {{ {knob} }}"));
        let path = format!("{p}.{field}");
        let e = errors.iter().find(|e| e.path == path).unwrap_or_else(|| panic!("{knob}: no error at {path}: {errors:?}"));
        assert!(e.message.contains(message), "{knob}: {:?} lacks {message:?}", e.message);
        assert_eq!(errors.len(), 1, "{knob}: only the knob is wrong: {errors:?}");
    }
    for ok in ["hold_queue = 1", "hold_queue = 100000", "hold_timeout = \"10m\"", "hold_timeout = \"1ms\""] {
        let errors = errors_of(&format!("template = \"web-balanced\"\nscale_to_zero = {{ {ok} }}"));
        assert!(errors.is_empty(), "{ok}: {errors:?}");
    }
    let shape: &[(&str, &str, &str)] = &[
        ("hold_queue = -1", "pool[0].scaling.scale_to_zero.hold_queue", "invalid value"),
        ("hold_queue = \"many\"", "pool[0].scaling.scale_to_zero.hold_queue", "invalid type"),
        ("hold_queue = 5000000000", "pool[0].scaling.scale_to_zero.hold_queue", "invalid value"),
        ("hold_timeout = \"soon\"", "pool[0].scaling.scale_to_zero.hold_timeout", ""),
        ("hold_timout = \"1s\"", "pool[0].scaling.scale_to_zero", "unknown field `hold_timout`"),
    ];
    for (knob, path, message) in shape {
        let err = parse(&format!("[[pool]]\n[pool.scaling]\nscale_to_zero = {{ {knob} }}")).expect_err(knob);
        assert!(err.0.starts_with(path), "{knob}: path {:?} should start with {path:?}", err.0);
        assert!(err.1.contains(message), "{knob}: message {:?} lacks {message:?}", err.1);
    }
}
