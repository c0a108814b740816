//! Health checks and passive detection with real processes: a demo backend SIGKILLed
//! under GET load costs no client error and comes back once restarted; a global rate
//! limit holds its rate over a window.

use ballast_tests::{get, sigkill, start_backend, start_ballast, temp_file, Load, Running};
use std::time::{Duration, Instant};

fn config(backends: &[&Running], balancer_extra: &str) -> String {
    let instances: String =
        backends.iter().map(|b| format!("[[pool.instance]]\naddress = \"{}\"\n", b.addr)).collect();
    format!(
        r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:0"
{balancer_extra}
[[balancer.route]]
split = [{{ pool = "app" }}]

[[pool]]
name = "app"
balance = "round-robin"
[pool.health]
kind = "http"
path = "/health"
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2
[pool.outlier]
consecutive_failures = 3
base_ejection = "1s"
max_ejected_percent = 34
[pool.circuit_breaker]
failure_threshold = 5
recovery_timeout = "1s"
{instances}"#
    )
}

/// GETs `url` until `want` answers (bounded); returns how long it took.
async fn until_backend(url: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(r) = get(url).await {
            if r.backend().as_deref() == Some(want) {
                return start.elapsed();
            }
        }
        assert!(start.elapsed() < limit, "{want} did not answer within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_sigkilled_backend_under_load_costs_no_error_and_returns_after_restart() {
    let b1 = start_backend("b1", &[]).await;
    let b2 = start_backend("b2", &[]).await;
    let b3 = start_backend("b3", &[]).await;
    let (_dir, path) = temp_file("ballast.toml", &config(&[&b1, &b2, &b3], ""));
    let proxy = start_ballast(["serve", "--config", path.to_str().expect("utf-8 path")]).await;
    until_backend(&proxy.url("/"), "b2", Duration::from_secs(10)).await;

    let load = Load::start(&proxy.url("/"), 16);
    load.wait_for_more(500).await;
    let started = Instant::now();
    let before = load.ok_so_far();
    sigkill(&b2.process);
    let port = b2.addr.port().to_string();
    drop(b2);
    // The measurement window: ~10 s of load with one of three instances dead.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = load.ok_so_far() - before;
    let rate = during as f64 / started.elapsed().as_secs_f64();
    // Restart on the same port: back in rotation after `rise` passing checks.
    let revived = start_ballast(["demo-backend", "--port", &port, "--name", "b2"]).await;
    let back = until_backend(&proxy.url("/"), "b2", Duration::from_secs(10)).await;
    let report = load.finish().await;
    println!("SIGKILL under load: {rate:.0} req/s for 10s, {} ok, {} errors; back {back:?} after restart", report.ok, report.errors.len());
    assert!(rate >= 500.0, "load too light to mean anything: {rate:.0} req/s");
    assert!(report.errors.is_empty(), "client-visible errors: {:?}", &report.errors[..report.errors.len().min(5)]);
    assert!(back < Duration::from_secs(3), "rise 2 × 200ms checks, took {back:?}");
    drop(revived);
}

#[tokio::test]
async fn a_global_rate_limit_holds_within_five_percent_over_ten_seconds() {
    let b1 = start_backend("b1", &[]).await;
    let extra = "rate_limit = { key = \"global\", rate = 200, burst = 20 }";
    let (_dir, path) = temp_file("ballast.toml", &config(&[&b1], extra));
    let proxy = start_ballast(["serve", "--config", path.to_str().expect("utf-8 path")]).await;
    until_backend(&proxy.url("/"), "b1", Duration::from_secs(10)).await;
    let window = Duration::from_secs(10);
    let load = Load::start(&proxy.url("/"), 8);
    // Past the initial burst: from here on the bucket refills at the rate.
    load.wait_for_more(100).await;
    let start = Instant::now();
    let before = load.ok_so_far();
    tokio::time::sleep(window).await;
    let allowed = load.ok_so_far() - before;
    let secs = start.elapsed().as_secs_f64();
    let report = load.finish().await;
    let rate = allowed as f64 / secs;
    let refused = report.errors.iter().filter(|e| e.starts_with("status 429")).count();
    println!("global limit 200/s: {allowed} allowed in {secs:.2}s = {rate:.1}/s, {refused} refused with 429");
    assert!((190.0..=210.0).contains(&rate), "rate {rate:.1}/s is not within 5% of 200/s");
    assert!(refused > 0, "the load exceeded the limit, so some were refused");
    assert_eq!(refused, report.errors.len(), "only 429s: {:?}", &report.errors[..report.errors.len().min(3)]);
}
