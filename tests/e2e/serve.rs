//! `ballast serve --config`: hot reload on SIGHUP under load and graceful drain on
//! SIGTERM, with real processes.

use ballast_tests::{connected_to, get, Load, signal, start_backend, start_ballast, temp_file};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn config_for(backend: &str) -> String {
    format!(
        r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:0"

[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "app" }}]

[[pool]]
name = "app"
balance = "round-robin"

[[pool.instance]]
address = "{backend}"
"#
    )
}

/// Polls `url` until the answering backend is `want` (bounded).
async fn wait_for_backend(url: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = get(url).await {
            if r.backend().as_deref() == Some(want) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered from {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sighup_reload_under_load_drops_nothing_and_bad_configs_are_refused() {
    let old = start_backend("old", &[]).await;
    let new = start_backend("new", &[]).await;
    let (_dir, path) = temp_file("ballast.toml", &config_for(&old.addr.to_string()));
    let proxy = start_ballast(["serve", "--config", path.to_str().expect("utf-8 path")]).await;
    wait_for_backend(&proxy.url("/"), "old").await;

    let load = Load::start(&proxy.url("/"), 8);
    load.wait_for_more(50).await;
    std::fs::write(&path, config_for(&new.addr.to_string())).expect("rewrite config");
    signal(&proxy.process, Signal::SIGHUP);
    wait_for_backend(&proxy.url("/"), "new").await;

    // An invalid config is refused and the running one keeps serving.
    std::fs::write(&path, "[[balancer]]\nname = 3\n").expect("write bad config");
    signal(&proxy.process, Signal::SIGHUP);
    for _ in 0..20 {
        let r = get(&proxy.url("/")).await.expect("still serving");
        assert_eq!(r.backend().as_deref(), Some("new"));
    }
    load.wait_for_more(50).await;
    let report = load.finish().await;
    assert!(report.errors.is_empty(), "errors during reload: {:?}", &report.errors[..report.errors.len().min(5)]);
    assert!(report.by_backend.contains_key("old") && report.by_backend.contains_key("new"), "{report:?}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let slow = start_backend("slow", &["--latency", "1s"]).await;
    let (_dir, path) = temp_file("ballast.toml", &config_for(&slow.addr.to_string()));
    let proxy = start_ballast(["serve", "--config", path.to_str().expect("utf-8 path")]).await;
    let url = proxy.url("/");
    let in_flight = tokio::spawn(async move { get(&url).await });
    // Wait until the proxy has opened its upstream connection: the request is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connected_to(slow.addr) {
        assert!(Instant::now() < deadline, "the request never reached the backend");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(&proxy.process, Signal::SIGTERM);
    let r = in_flight.await.expect("join").expect("the in-flight request completes");
    assert_eq!(r.status, 200);
    let status = proxy.process.stop(Duration::from_secs(10)).await.expect("exit");
    assert!(status.success(), "graceful exit, got {status}");
}
