//! `ballast serve --config`: hot reload on SIGHUP under load (the admin listener
//! following `[admin]` included) and graceful drain on SIGTERM, with real processes.

use ballast_tests::{connected_to, get, Load, signal, start_backend, start_ballast, temp_file, Stream, TempDir, Watched};
use nix::sys::signal::Signal;
use std::net::SocketAddr;
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

/// `config_for(backend)` with an `[admin]` section listening on `admin` (none: no section).
fn config_with_admin(backend: &str, admin: Option<&str>) -> String {
    let section = admin.map(|a| format!("\n[admin]\nlisten = \"{a}\"\n")).unwrap_or_default();
    config_for(backend) + &section
}

/// A loopback address with a port that was free a moment ago (bound, then released).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

/// The address of the `n`-th `admin on ADDR (...)` line `serve` printed (waits up to 30 s).
async fn admin_line(serve: &Watched, n: usize) -> SocketAddr {
    let (_, line) = serve.wait_for(Stream::Out, n, 30, "admin on", |l| l.starts_with("admin on ")).await;
    let addr = line["admin on ".len()..].split(' ').next().expect("an address after `admin on`");
    addr.parse().unwrap_or_else(|e| panic!("bad admin address in {line:?}: {e}"))
}

/// Asserts `GET http://ADDR/healthz` answers 200.
async fn assert_healthy(addr: SocketAddr) {
    let r = get(&format!("http://{addr}/healthz")).await.unwrap_or_else(|e| panic!("admin on {addr}: {e}"));
    assert_eq!(r.status, 200, "admin on {addr}: {}", r.text());
}

/// Waits (at most 10 s) until connecting to `addr` is refused: nothing listens there.
async fn wait_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => assert!(Instant::now() < deadline, "{addr} still accepts connections: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
}

/// Rewrites the config file with `[admin]` on `admin`, sends SIGHUP and waits for the
/// `n`-th successful reload to be logged.
async fn reload_admin(serve: &Watched, path: &std::path::Path, backend: &str, admin: Option<&str>, n: usize) {
    std::fs::write(path, config_with_admin(backend, admin)).expect("rewrite config");
    signal(&serve.process, Signal::SIGHUP);
    serve.wait_for(Stream::Err, n, 30, "config reloaded", |l| l.contains("config reloaded from")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_moves_adds_and_removes_the_admin_listener_and_keeps_it_when_the_new_address_is_taken() {
    let backend = start_backend("app", &[]).await;
    let backend = backend.addr.to_string();
    let dir = TempDir::new();
    let (_config_dir, path) = temp_file("ballast.toml", &config_with_admin(&backend, Some("127.0.0.1:0")));
    let logs = dir.0.join("logs");
    let serve = Watched::start(&["serve", "--config", path.to_str().expect("utf-8"), "--log-dir", logs.to_str().expect("utf-8")]);
    let proxy = serve.listening().await;
    let first = admin_line(&serve, 1).await;
    assert_healthy(first).await;

    // unchanged: the listener stays where it is
    reload_admin(&serve, &path, &backend, Some("127.0.0.1:0"), 1).await;
    // moved: bound on the new address, the old one closed
    let moved = free_addr();
    reload_admin(&serve, &path, &backend, Some(&moved.to_string()), 2).await;
    assert_eq!(admin_line(&serve, 2).await, moved);
    assert_healthy(moved).await;
    wait_refused(first).await;

    // taken: the error names admin.listen and the address, the old listener keeps answering
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    reload_admin(&serve, &path, &backend, Some(&taken_addr.to_string()), 3).await;
    let (_, error) = serve
        .wait_for(Stream::Err, 1, 30, "the admin.listen error", |l| l.contains("admin.listen") && l.contains("cannot bind"))
        .await;
    assert!(error.contains(&taken_addr.to_string()) && error.contains("in use"), "{error}");
    assert!(error.contains(&format!("stays on {moved}")) && error.contains("rest of the reload is applied"), "{error}");
    assert_healthy(moved).await;
    let r = get(&format!("http://{proxy}/")).await.expect("the proxy still serves");
    assert_eq!((r.status.as_u16(), r.backend().as_deref()), (200, Some("app")));
    drop(taken);

    // an invalid config changes nothing, the admin listener included
    std::fs::write(&path, config_with_admin(&backend, Some("not an address"))).expect("write bad config");
    signal(&serve.process, Signal::SIGHUP);
    serve.wait_for(Stream::Err, 1, 30, "reload refused", |l| l.contains("reload refused")).await;
    assert_healthy(moved).await;

    // removed: the listener stops
    reload_admin(&serve, &path, &backend, None, 4).await;
    wait_refused(moved).await;
    // added back
    let added = free_addr();
    reload_admin(&serve, &path, &backend, Some(&added.to_string()), 5).await;
    assert_eq!(admin_line(&serve, 3).await, added);
    assert_healthy(added).await;

    let lines = serve.lines(Stream::Out);
    let announced: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).filter(|l| l.starts_with("admin on ")).collect();
    assert_eq!(announced.len(), 3, "one line at start, one per move or addition, none otherwise: {announced:#?}");
}
