//! `ballast check` and the quick start `ballast demo`, as an operator runs them.

use ballast_tests::{ballast_bin, get, temp_file};
use ballast_control::process::{ManagedProcess, ProcessSpec};
use std::time::{Duration, Instant};

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
    let spec = ProcessSpec {
        program: ballast_bin(),
        args: vec!["demo".into(), "--listen".into(), "127.0.0.1:0".into()],
        ..Default::default()
    };
    let mut demo = ManagedProcess::spawn(&spec).expect("spawn demo");
    let lines = tokio::time::timeout(Duration::from_secs(30), demo.read_lines_until("listening on "))
        .await
        .expect("demo starts within 30s")
        .expect("demo announces its address");
    let addr = lines.last().and_then(|l| l.strip_prefix("listening on ")).expect("address line").trim().to_string();
    let pids: Vec<i32> = lines
        .iter()
        .filter_map(|l| l.split("pid ").nth(1))
        .filter_map(|p| p.trim_end_matches(')').trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 3, "three backends with their pids in {lines:?}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let r = get(&format!("http://{addr}/")).await.expect("demo serves");
        assert_eq!(r.status, 200);
        seen.insert(r.backend().expect("x-backend"));
    }
    assert!(seen.len() >= 2, "load is spread: {seen:?}");

    ballast_tests::signal(&demo, nix::sys::signal::Signal::SIGINT);
    let status = demo.stop(Duration::from_secs(10)).await.expect("demo exits");
    assert!(status.success(), "clean exit on Ctrl-C: {status}");
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in pids {
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
            assert!(Instant::now() < deadline, "backend pid {pid} outlived the demo");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}
