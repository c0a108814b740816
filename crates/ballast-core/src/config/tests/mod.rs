//! Tests of the config model: parsing, validation rules, round trips and properties.

mod parse;
mod props;
mod validate_admin;
mod validate_balancer;
mod validate_pool;

use super::*;

/// Parses `text`, panicking with the error when it does not parse.
fn parsed(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("does not parse: {e}\n{text}"),
    }
}

/// Parses and validates `text`, panicking with every problem when it is not valid.
fn valid(text: &str) -> Config {
    match parse_and_validate(text) {
        Ok(c) => c,
        Err(errors) => panic!("not valid: {errors:#?}\n{text}"),
    }
}

#[test]
fn example_parses_and_validates_clean() {
    let config = valid(EXAMPLE);
    assert_eq!(config.balancers.len(), 2);
    assert_eq!(config.pools.len(), 3);
}

/// A small valid config that validation cases edit: balancer "web" on 127.0.0.1:8080 with
/// one route to pool "api", which has one static instance.
const BASE: &str = r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:8080"
[[balancer.route]]
split = [{ pool = "api" }]

[[pool]]
name = "api"
[[pool.instance]]
address = "127.0.0.1:9000"
"#;

/// One validation case: an edit of [`BASE`] and every error it must produce, each as the
/// exact path and a part of the message. An empty `expect` means the edit stays valid.
struct Case {
    name: &'static str,
    edit: fn(&mut Config),
    expect: &'static [(&'static str, &'static str)],
}

/// Runs validation cases, checking that each produces exactly the expected errors.
fn run(cases: &[Case]) {
    assert!(validate(&parsed(BASE)).is_empty(), "BASE must be valid");
    let mut failures = Vec::new();
    for case in cases {
        let mut config = parsed(BASE);
        (case.edit)(&mut config);
        let errors = validate(&config);
        let matches = errors.len() == case.expect.len()
            && case.expect.iter().all(|(path, part)| {
                errors.iter().any(|e| e.path == *path && e.message.contains(part))
            });
        if !matches {
            failures.push(format!("{}: expected {:?}\n  got {:#?}", case.name, case.expect, errors));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// A valid process provider.
fn process() -> ProcessProvider {
    ProcessProvider {
        command: "./server".to_string(),
        args: vec!["--port".to_string(), "{port}".to_string()],
        env: Default::default(),
        working_dir: None,
        grace_period: ConfigDuration::from_secs(10),
        port_range: PortRange::default(),
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut c = parsed(BASE);
    c.balancers[0].listen = "nowhere".to_string();
    c.balancers[0].routes[0].split[0].pool = "missing".to_string();
    c.pools[0].panic_threshold = 2.0;
    c.pools[0].instances[0].weight = 0;
    c.pools[0].retry.attempts = 99;
    let paths: Vec<String> = validate(&c).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "balancer \"web\".listen",
            "balancer \"web\".route[0].split[0].pool",
            "pool \"api\".panic_threshold",
            "pool \"api\".retry.attempts",
            "pool \"api\".instance[0].weight",
        ]
    );
}

#[test]
fn error_display_is_path_then_message() {
    let mut c = parsed(BASE);
    c.pools[0].instances[0].weight = 0;
    let shown: Vec<String> = validate(&c).iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["pool \"api\".instance[0].weight: 0 is out of range; use 1 to 10000"]);
}
