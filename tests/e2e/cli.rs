//! `ballast check` and the quick start `ballast demo`, as an operator runs them.

use ballast_tests::{ballast_bin, get, pids_in, temp_file, wait_gone};
use ballast_control::process::{ManagedProcess, ProcessSpec};
use std::time::Duration;

#[test]
fn check_prints_every_error_with_its_field_and_exits_non_zero() {
    let (_dir, path) = temp_file(
        "bad.toml",
        r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:99999"
[[balancer.route]]
split = [{ pool = "missing" }]

[[pool]]
name = "app"
panic_threshold = 1.5
"#,
    );
    let out = std::process::Command::new(ballast_bin()).arg("check").arg(&path).output().expect("run check");
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("listen") && text.contains("99999"), "{text}");
    assert!(text.contains("missing"), "{text}");
    assert!(text.contains("panic_threshold") && text.contains("1.5"), "{text}");
}

#[test]
fn check_accepts_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/ballast-core/src/config/example.toml");
    let out = std::process::Command::new(ballast_bin()).arg("check").arg(example).output().expect("run check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_reports_a_missing_file_plainly() {
    let out = std::process::Command::new(ballast_bin()).args(["check", "/nonexistent/ballast.toml"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ballast.toml"));
}

#[tokio::test]
async fn demo_serves_and_cleans_up_its_children_on_ctrl_c() {
    let logs = ballast_tests::TempDir::new();
    let spec = ProcessSpec {
        program: ballast_bin(),
        args: vec!["demo".into(), "--listen".into(), "127.0.0.1:0".into(), "--admin".into(), "127.0.0.1:0".into(), "--min".into(), "3".into(), "--log-dir".into(), logs.0.clone().into()],
        ..Default::default()
    };
    let mut demo = ManagedProcess::spawn(&spec).expect("spawn demo");
    // the try-it lines come once the --min backends are ready; the last one names the logs
    let lines = tokio::time::timeout(Duration::from_secs(60), demo.read_lines_until("Backend logs: "))
        .await
        .expect("demo starts within 60s")
        .expect("demo prints what to try");
    let addr = lines.iter().find_map(|l| l.strip_prefix("listening on ")).expect("address line").trim().to_string();
    let started: Vec<&str> = lines.iter().map(String::as_str).filter(|l| l.starts_with("started instance ")).collect();
    let pids = pids_in(started.iter().copied());
    assert_eq!(pids.len(), 3, "three backends with their pids in {lines:?}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let r = get(&format!("http://{addr}/")).await.expect("demo serves");
        assert_eq!(r.status, 200);
        seen.insert(r.backend().expect("x-backend"));
    }
    assert!(seen.len() >= 2, "load is spread: {seen:?}");
    // the admin listener shows the pool and the traffic just sent
    let admin = lines.iter().find_map(|l| l.strip_prefix("admin on ")).expect("admin line").split(' ').next().expect("addr").to_string();
    let pools = get(&format!("http://{admin}/api/v1/pools")).await.expect("pools");
    assert_eq!(pools.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&pools.text()).expect("json");
    let demo_pool = doc["pools"].as_array().expect("pools").iter().find(|p| p["name"] == "demo").expect("demo pool").clone();
    assert_eq!(demo_pool["replicas"]["by_phase"]["ready"], 3, "{demo_pool}");
    let metrics = get(&format!("http://{admin}/metrics")).await.expect("metrics");
    let served: f64 = metrics
        .text()
        .lines()
        .filter(|l| l.starts_with("ballast_backend_requests_total{pool=\"demo\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(served >= 30.0, "30 requests counted over the demo backends: {}", metrics.text());

    ballast_tests::signal(&demo, nix::sys::signal::Signal::SIGINT);
    let status = demo.stop(Duration::from_secs(30)).await.expect("demo exits");
    assert!(status.success(), "clean exit on Ctrl-C: {status}");
    wait_gone(&pids, 10).await;
}

/// An admin address already taken: the demo says which one and exits before it starts
/// any backend.
#[test]
fn demo_refuses_a_taken_admin_address_before_starting_backends() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let logs = ballast_tests::TempDir::new();
    let out = std::process::Command::new(ballast_bin())
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", &addr, "--log-dir"])
        .arg(&logs.0)
        .output()
        .expect("run demo");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot start the admin listener on {addr}")), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started instance"), "no backend started");
}

#[test]
fn demo_refuses_bad_flags_with_the_flag_named() {
    for (args, words) in [
        (&["--min", "5", "--max", "3"][..], "--min (5) is greater than --max (3)"),
        (&["--interval", "100ms"], "--interval"),
        (&["--target", "0"], "--target"),
        (&["--admin", "localhost"], "--admin"),
        (&["--admin", "127.0.0.1:99999"], "--admin"),
    ] {
        let out = std::process::Command::new(ballast_bin()).arg("demo").args(args).output().expect("run demo");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
    }
}

/// The binary turns mimalloc's eager arena commit off by re-executing itself once with
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` (same pid): the running process has it set, and an
/// operator's own value is kept.
#[tokio::test]
async fn the_binary_runs_with_lean_allocator_settings_unless_the_operator_chose() {
    let environ = |pid: u32| std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let has = |env: &[u8], entry: &str| env.split(|b| *b == 0).any(|e| e == entry.as_bytes());

    let backend = ballast_tests::start_backend("lean", &[]).await;
    assert!(has(&environ(backend.process.pid()), "MIMALLOC_ARENA_EAGER_COMMIT=0"), "re-executed with the setting");

    let spec = ProcessSpec {
        program: ballast_bin(),
        args: ["demo-backend", "--port", "0"].map(Into::into).to_vec(),
        env: vec![("MIMALLOC_ARENA_EAGER_COMMIT".into(), "1".into())],
        ..Default::default()
    };
    let mut chosen = ManagedProcess::spawn(&spec).expect("spawn");
    tokio::time::timeout(Duration::from_secs(30), chosen.read_announcement("listening on ")).await.expect("starts").expect("announces");
    let env = environ(chosen.pid());
    assert!(has(&env, "MIMALLOC_ARENA_EAGER_COMMIT=1") && !has(&env, "MIMALLOC_ARENA_EAGER_COMMIT=0"), "the operator's value stays");
}
