//! `/metrics` over real sockets: a real proxy over a real backend, requests sent through
//! it, and the exposition scraped over HTTP moving by exactly what was sent; the text
//! checked by Prometheus' own `promtool`.

mod common;

use ballast_admin::AdminSources;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn config(backend: std::net::SocketAddr) -> String {
    format!(
        r#"
[[balancer]]
name = "front"
listen = "127.0.0.1:0"
[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "app" }}]

[[pool]]
name = "app"
[[pool.instance]]
address = "{backend}"
[pool.retry]
attempts = 0
[pool.health]
kind = "tcp"
interval = "50ms"
timeout = "40ms"
"#
    )
}

/// `(le, cumulative count)` of one histogram series, in exposition order.
fn buckets(all: &BTreeMap<String, f64>, series: &str) -> Vec<(f64, f64)> {
    let suffix = format!("\",{series}}}");
    let mut out: Vec<(f64, f64)> = all
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix("ballast_backend_response_latency_seconds_bucket{le=\"")?.strip_suffix(&suffix)?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().expect("le is a number") }, *v))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

async fn scrape(admin: std::net::SocketAddr) -> (String, BTreeMap<String, f64>) {
    let answer = get_accept(admin, "/metrics", PROMETHEUS_ACCEPT).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some(ballast_admin::server::OPENMETRICS));
    let all = samples(&answer.body);
    (answer.body, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histogram_move_by_exactly_the_requests_sent() {
    let be = backend().await;
    let proxy = proxy(&config(be.addr));
    let front = proxy.local_addr("front").expect("front");
    let admin = admin(AdminSources::new(proxy.clone()));
    let series = format!("pool=\"app\",backend=\"{}\"", be.addr);

    let (_, before) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&before, &format!("ballast_backend_requests_total{{{series}}}")), 0.0);
    assert_eq!(sample(&before, &format!("ballast_backend_response_latency_seconds_count{{{series}}}")), 0.0);
    assert_eq!(sample(&before, "ballast_pool_held_requests{pool=\"app\"}"), 0.0);

    let (fast, slow, failing) = (10, 3, 2);
    for (path, n, status) in [("/", fast, 200), ("/slow", slow, 200), ("/fail", failing, 503)] {
        for _ in 0..n {
            assert_eq!(get(front, path).await.status, status, "{path} through the proxy");
        }
    }
    let sent = f64::from(fast + slow + failing);
    // The proxy records a request's end just after the client has the last byte.
    let stats = proxy.backend_stats("app", &be.addr.to_string()).expect("stats");
    eventually(Duration::from_secs(5), "every request ended", || stats.latency.snapshot().count() == sent as u64).await;

    let (text, after) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&after, &format!("ballast_backend_requests_total{{{series}}}")), sent);
    assert_eq!(sample(&after, &format!("ballast_backend_failures_total{{{series}}}")), f64::from(failing));
    assert_eq!(sample(&after, &format!("ballast_backend_in_flight{{{series}}}")), 0.0);
    assert_eq!(sample(&after, &format!("ballast_backend_response_latency_seconds_count{{{series}}}")), sent);
    let b = buckets(&after, &series);
    assert_eq!(b.len(), ballast_admin::exposition::LATENCY_BOUNDS_SECONDS.len() + 1, "{text}");
    assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative counts are monotone: {b:?}");
    assert_eq!(b.last().map(|x| (x.0, x.1)), Some((f64::INFINITY, sent)), "+Inf equals _count");
    // /slow takes at least 30 ms, so it is never counted under 25 ms (a lower bound: no
    // assumption on how fast the machine is).
    let under_25ms = b.iter().find(|x| x.0 == 0.025).expect("le 0.025").1;
    assert!(under_25ms <= f64::from(fast + failing), "{b:?}");
    let sum = sample(&after, &format!("ballast_backend_response_latency_seconds_sum{{{series}}}"));
    assert!(sum >= f64::from(slow) * SLOW.as_secs_f64() * (1.0 - 1.0 / 32.0), "sum {sum}");

    // The next scrape reads the atomics again: 5 more requests show at once.
    for _ in 0..5 {
        assert_eq!(get(front, "/").await.status, 200);
    }
    eventually(Duration::from_secs(5), "the 5 more ended", || stats.latency.snapshot().count() == sent as u64 + 5).await;
    let (_, again) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&again, &format!("ballast_backend_requests_total{{{series}}}")), sent + 5.0);
    assert_eq!(sample(&again, &format!("ballast_backend_response_latency_seconds_count{{{series}}}")), sent + 5.0);
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_rotation_follow_the_backend() {
    let be = backend().await;
    let addr = be.addr;
    let proxy = proxy(&config(addr));
    let admin = admin(AdminSources::new(proxy.clone()));
    let series = format!("pool=\"app\",backend=\"{addr}\"");
    let up = format!("ballast_backend_health_up{{{series}}}");
    let rotation = format!("ballast_backend_in_rotation{{{series}}}");
    let healthy = || proxy.health_status().iter().any(|(_, l)| l.iter().any(|h| h.checks > 0 && h.health.name() == "healthy"));
    eventually(Duration::from_secs(5), "first health check passed", healthy).await;
    let (_, all) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&all, &up), 1.0);
    assert_eq!(sample(&all, &rotation), 1.0);

    drop(be); // the backend goes away: TCP checks fail
    let unhealthy = || proxy.health_status().iter().any(|(_, l)| l.iter().any(|h| h.health.name() == "unhealthy"));
    eventually(Duration::from_secs(10), "health check failed", unhealthy).await;
    let (_, all) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&all, &up), 0.0);
    assert_eq!(sample(&all, &rotation), 0.0);
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_exposition() {
    let be = backend().await;
    let proxy = proxy(&config(be.addr));
    let front = proxy.local_addr("front").expect("front");
    for path in ["/", "/slow", "/fail"] {
        get(front, path).await;
    }
    let admin = admin(AdminSources::new(proxy.clone()));
    let (text, _) = scrape(admin.local_addr()).await;
    for family in [
        "ballast_backend_requests", "ballast_backend_failures", "ballast_backend_in_flight",
        "ballast_backend_response_latency_seconds", "ballast_backend_in_rotation", "ballast_backend_health_up",
        "ballast_pool_held_requests", "ballast_pool_replicas", "ballast_pool_replicas_desired",
        "ballast_pool_provider_error", "ballast_pool_rolling", "ballast_pool_decisions", "ballast_pool_provider_errors",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} missing:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    // Without an Accept naming OpenMetrics: the Prometheus text format, same samples.
    let plain = get(admin.local_addr(), "/metrics").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some(ballast_admin::server::PROMETHEUS_TEXT));
    assert_eq!(samples(&plain.body), samples(&text));
    assert!(plain.body.contains("# TYPE ballast_backend_requests_total counter\n"), "{}", plain.body);
    promtool_check(&plain.body);
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

/// Runs `promtool check metrics` (Debian's `prometheus` package; scripts/test.sh
/// installs it) on `text` and fails with its findings.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let promtool = "/usr/bin/promtool";
    assert!(std::path::Path::new(promtool).exists(), "{promtool} missing: run scripts/test.sh (installs prometheus)");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}\n{}\n--- exposition:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_of_a_pool_at_zero_show_until_it_gets_an_instance() {
    let config = "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
                  [[balancer.route]]\nsplit = [{ pool = \"app\" }]\n\n\
                  [[pool]]\nname = \"app\"\n[pool.provider]\nkind = \"process\"\ncommand = \"true\"\nargs = [\"{port}\"]\n\
                  [pool.scaling]\nmin = 0\ntemplate = \"web-balanced\"\nscale_to_zero = { hold_queue = 4 }\n";
    let proxy = proxy(config);
    let front = proxy.local_addr("web").expect("web");
    let admin = admin(AdminSources::new(proxy.clone()));
    let clients: Vec<_> = (0..3).map(|_| tokio::spawn(async move { get(front, "/").await.status })).collect();
    eventually(Duration::from_secs(10), "3 requests held", || proxy.pending_requests("app") == 3).await;

    let (_, all) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&all, "ballast_pool_held_requests{pool=\"app\"}"), 3.0);
    let doc: serde_json::Value = serde_json::from_str(&get(admin.local_addr(), "/api/v1/pools").await.body).expect("JSON");
    assert_eq!(doc["pools"][0]["held_requests"], 3);
    assert_eq!(doc["pools"][0]["instances"], serde_json::json!([]));

    let be = backend().await;
    let instance = ballast_core::config::InstanceConfig { address: be.addr.to_string(), weight: 1, zone: None };
    proxy.set_pool_instances("app", &[instance]).expect("instances set");
    for c in clients {
        assert_eq!(c.await.expect("client"), 200, "a held request is served");
    }
    let (_, all) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&all, "ballast_pool_held_requests{pool=\"app\"}"), 0.0);
    assert_eq!(sample(&all, &format!("ballast_backend_requests_total{{pool=\"app\",backend=\"{}\"}}", be.addr)), 3.0);
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_during_traffic_stay_consistent_and_never_go_back() {
    let be = backend().await;
    let proxy = proxy(&config(be.addr));
    let front = proxy.local_addr("front").expect("front");
    let admin = admin(AdminSources::new(proxy.clone()));
    let series = format!("pool=\"app\",backend=\"{}\"", be.addr);
    let (clients, each) = (4, 40);
    let load: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(async move {
            for _ in 0..each {
                assert_eq!(get(front, "/").await.status, 200);
            }
        }))
        .collect();
    let (mut last_requests, mut last_count) = (0.0, 0.0);
    let mut scrapes = 0;
    loop {
        let done = load.iter().all(|t| t.is_finished());
        let (_, all) = scrape(admin.local_addr()).await;
        scrapes += 1;
        let requests = sample(&all, &format!("ballast_backend_requests_total{{{series}}}"));
        let count = sample(&all, &format!("ballast_backend_response_latency_seconds_count{{{series}}}"));
        let b = buckets(&all, &series);
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "monotone buckets: {b:?}");
        assert_eq!(b.last().map(|x| x.1), Some(count), "+Inf equals _count in every scrape");
        assert!(requests >= last_requests && count >= last_count, "counters never go back");
        (last_requests, last_count) = (requests, count);
        if done {
            break;
        }
    }
    for t in load {
        t.await.expect("client");
    }
    assert!(scrapes >= 1);
    let total = f64::from(clients * each);
    let (_, all) = scrape(admin.local_addr()).await;
    assert_eq!(sample(&all, &format!("ballast_backend_requests_total{{{series}}}")), total);
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}
