//! `ballast sim` as an operator runs it: the table, `--json`, `--svg`, policies from a
//! config file, precise errors for bad input, and the same output for the same input.

use ballast_tests::{ballast_bin, temp_file};
use std::path::Path;
use std::process::Output;

fn sim(args: &[&str]) -> Output {
    std::process::Command::new(ballast_bin()).arg("sim").args(args).output().expect("run ballast sim")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shipped(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../traces/").to_string() + name
}

/// Fails with the exit code 1 and the given text on stderr.
fn refused(args: &[&str], wants: &[&str]) {
    let out = sim(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    for want in wants {
        assert!(err.contains(want), "{args:?}: missing {want:?} in {err}");
    }
    assert!(out.stdout.is_empty(), "{args:?} printed a report: {}", stdout(&out));
}

const TINY: &str = "t_seconds,requests_per_second\n0,50\n60,200\n120,50\n";

#[test]
fn json_has_the_issue_shape_and_fixed_n_matches_a_hand_calculation() {
    let (_dir, trace) = temp_file("tiny.csv", TINY);
    let t = trace.to_string_lossy();
    let out = sim(&["--trace", &t, "--startup", "30", "--policy", "fixed-2", "--policy", "hpa", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    // Needs at 100 req/s per replica and 85%: 1, 3, 1 for 60 s each. Oracle with a 30 s
    // start-up: 1 on [0,30), 3 on [30,120), 1 on [120,180) = 360 replica-seconds.
    let oracle = json["oracle"]["replica_hours"].as_f64().expect("oracle.replica_hours");
    assert!((oracle - 0.1).abs() < 1e-12, "{json}");
    let policies = json["policies"].as_array().expect("policies array");
    assert_eq!(policies.len(), 2);
    for p in policies {
        assert!(p["name"].is_string(), "{p}");
        for f in ["replica_hours", "cost", "slo_violation_minutes", "ratio_to_oracle"] {
            assert!(p[f].is_f64(), "{f} in {p}");
        }
        for n in ["scale_actions", "flips"] {
            assert!(p[n].is_u64(), "{n} in {p}");
        }
    }
    // fixed-2: 2 replicas × 180 s = 0.1 replica-hours at 0.05 each; short of the 3
    // needed for the minute [60, 120).
    let f = &policies[0];
    assert_eq!(f["name"], "fixed-2");
    assert!((f["replica_hours"].as_f64().unwrap_or(0.0) - 0.1).abs() < 1e-12, "{f}");
    assert!((f["cost"].as_f64().unwrap_or(0.0) - 0.005).abs() < 1e-12, "{f}");
    assert!((f["slo_violation_minutes"].as_f64().unwrap_or(0.0) - 1.0).abs() < 1e-12, "{f}");
    assert_eq!((f["scale_actions"].as_u64(), f["flips"].as_u64()), (Some(0), Some(0)));
    assert!((f["ratio_to_oracle"].as_f64().unwrap_or(0.0) - 1.0).abs() < 1e-12, "{f}");
    assert_eq!(policies[1]["name"], "hpa");
}

#[test]
fn the_table_compares_the_default_policies_with_the_oracle() {
    let ramp = shipped("ramp.csv");
    let out = sim(&["--trace", &ramp]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let names: Vec<&str> = table.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(names[..5], ["policy", "oracle", "hpa", "target", "predictive"], "{table}");
    assert!(names.get(5).is_some_and(|n| n.starts_with("fixed-")), "{table}");
    assert!(table
        .lines()
        .next()
        .is_some_and(|h| h.contains("replica-h") && h.contains("SLO min") && h.contains("x oracle")));
    // Not a terminal: no progress bar on stderr.
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn same_input_same_output_and_the_svg_is_written() {
    let spiky = shipped("spiky.csv");
    let (dir, _) = temp_file("unused", "");
    let svg: Vec<String> = ["a.svg", "b.svg"].iter().map(|n| dir.0.join(n).to_string_lossy().into_owned()).collect();
    let run = |svg: &str| {
        let out = sim(&[
            "--trace", &spiky, "--policy", "hpa", "--policy", "score", "--policy", "fixed-10", "--json", "--svg", svg,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    assert_eq!(run(&svg[0]), run(&svg[1]));
    let (a, b) = (std::fs::read_to_string(&svg[0]).expect("svg a"), std::fs::read_to_string(&svg[1]).expect("svg b"));
    assert_eq!(a, b);
    assert!(a.starts_with("<svg") || a.starts_with("<?xml"), "{}", &a[..a.len().min(80)]);
    assert!(a.contains("xmlns=\"http://www.w3.org/2000/svg\"") && a.trim_end().ends_with("</svg>"));
    for name in ["oracle", "hpa", "score", "fixed-10"] {
        assert!(a.contains(name), "{name} missing from the chart");
    }
    let opened = a.matches("<svg").count();
    assert_eq!(opened, a.matches("</svg>").count());
}

#[test]
fn access_logs_and_config_pools_are_simulated() {
    let config = "[[pool]]\nname = \"api\"\n[pool.scaling]\nmin = 1\nmax = 20\n\
                  [[pool.scaling.policy]]\nkind = \"target\"\nmetric = \"rps\"\ntarget = 50\n\
                  [pool.cost]\nprice_per_instance_hour = 2.0\n";
    let (_dir, path) = temp_file("pool.toml", config);
    let log = shipped("sample-access.log");
    let out =
        sim(&["--trace", &log, "--config", &path.to_string_lossy(), "--json", "--capacity", "2", "--startup", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let names: Vec<&str> =
        json["policies"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names[..4], ["hpa", "target", "predictive", "api"], "{json}");
    // The pool's price prices every policy: cost = replica-hours × 2.
    for p in json["policies"].as_array().into_iter().flatten() {
        let (h, c) = (p["replica_hours"].as_f64().unwrap_or(-1.0), p["cost"].as_f64().unwrap_or(-1.0));
        assert!((c - 2.0 * h).abs() < 1e-9, "{p}");
    }
}

#[test]
fn malformed_traces_are_reported_with_their_line() {
    let (_d1, bad) = temp_file("trace.csv", "t_seconds,requests_per_second\n0,10\n60,abc\n");
    refused(&["--trace", &bad.to_string_lossy()], &["trace.csv: line 3: requests_per_second \"abc\" is not a number"]);
    let (_d2, neg) = temp_file("neg.csv", "0,10\n\n# comment\n60,-4\n");
    refused(&["--trace", &neg.to_string_lossy()], &["neg.csv: line 4: requests_per_second \"-4\" is negative"]);
    let (_d3, back) = temp_file("back.csv", "0,10\n60,20\n30,5\n");
    refused(&["--trace", &back.to_string_lossy()], &["back.csv: line 3: t_seconds \"30\" is not after"]);
    let (_d4, empty) = temp_file("empty.csv", "t_seconds,requests_per_second\n");
    refused(&["--trace", &empty.to_string_lossy()], &["empty.csv: trace is empty"]);
    let (_d5, dir) = temp_file("binary.csv", "");
    std::fs::write(&dir, b"0,10\n60,\xff\xfe\n").expect("write");
    refused(&["--trace", &dir.to_string_lossy()], &["binary.csv: line 2: not UTF-8 text"]);
}

#[test]
fn oversized_traces_are_refused_before_parsing() {
    let (dir, _) = temp_file("unused", "");
    let big = dir.0.join("big.csv");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(64 * 1024 * 1024 + 1).expect("sparse 64 MiB + 1");
    refused(&["--trace", &big.to_string_lossy()], &["big.csv: more than 67108864 bytes"]);
}

#[test]
fn bad_flags_and_files_get_precise_errors() {
    let ramp = shipped("ramp.csv");
    // clap refuses out-of-range numbers with exit code 2 and names the flag.
    for (flag, value, want) in [
        ("--capacity", "-5", "-5 is out of range"),
        ("--capacity", "0", "0 is out of range"),
        ("--capacity", "abc", "\"abc\" is not a number"),
        ("--startup", "-1", "-1 is out of range; use 0 to 86400 seconds"),
        ("--startup", "inf", "is not a finite number"),
    ] {
        let out = sim(&["--trace", &ramp, flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&out);
        assert!(err.contains(flag) && err.contains(want), "{flag} {value}: {err}");
    }
    refused(
        &["--trace", &ramp, "--policy", "hpa", "--policy", "wobble"],
        &["--policy: unknown policy \"wobble\"; use one of fixed-N"],
    );
    refused(
        &["--trace", &ramp, "--policy", "fixed-x"],
        &["--policy: \"fixed-x\": N in fixed-N must be a whole number"],
    );
    refused(&["--trace", &ramp, "--policy", "config"], &["--policy: \"config\" needs --config FILE"]);
    refused(&["--trace", "/nonexistent/trace.csv"], &["/nonexistent/trace.csv: cannot read:"]);
    refused(&["--trace", &ramp, "--config", "/nonexistent/pool.toml"], &["/nonexistent/pool.toml: cannot read:"]);
    let (_d, cfg) = temp_file("bad.toml", "[[pool]]\nname = \"api\"\n[pool.scaling]\nmin = 5\nmax = 2\n");
    refused(&["--trace", &ramp, "--config", &cfg.to_string_lossy()], &["bad.toml: pool \"api\".scaling"]);
    let (_d2, plain) = temp_file("plain.toml", "[[pool]]\nname = \"api\"\n");
    refused(
        &["--trace", &ramp, "--config", &plain.to_string_lossy()],
        &["plain.toml: no pool has a [pool.scaling] section"],
    );
    // A trace that needs more replicas than the model allows.
    let (_d3, huge) = temp_file("huge.csv", "0,1\n60,900000000\n");
    refused(&["--trace", &huge.to_string_lossy(), "--policy", "fixed-1"], &["huge.csv: at t = 60 s the trace offers"]);
    // An SVG path that cannot be written.
    refused(
        &["--trace", &ramp, "--policy", "fixed-1", "--svg", "/nonexistent/dir/out.svg"],
        &["/nonexistent/dir/out.svg: cannot write the chart"],
    );
    assert!(!Path::new("/nonexistent/dir/out.svg").exists());
}
