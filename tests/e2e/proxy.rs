//! `ballast proxy`: forwarding, distribution and failure handling with real backend
//! processes.

use ballast_tests::{get, Load, raw_exchange, sigkill, start_backend, start_ballast, Running};
use std::time::Duration;

async fn three_backends() -> Vec<Running> {
    vec![start_backend("b1", &[]).await, start_backend("b2", &[]).await, start_backend("b3", &[]).await]
}

async fn proxy_over(backends: &[Running], balance: &str) -> Running {
    let to: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    start_ballast(["proxy", "--listen", "127.0.0.1:0", "--balance", balance, "--threads", "2", "--to", &to.join(",")])
        .await
}

#[tokio::test]
async fn round_robin_spreads_evenly_over_real_backends() {
    let backends = three_backends().await;
    let proxy = proxy_over(&backends, "round-robin").await;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let r = get(&proxy.url("/")).await.expect("get");
        assert_eq!(r.status, 200, "{}", r.text());
        *counts.entry(r.backend().expect("x-backend")).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        assert!((90..=110).contains(n), "{name} got {n} of 300: {counts:?}");
    }
}

#[tokio::test]
async fn every_algorithm_serves_through_the_one_liner() {
    let backends = three_backends().await;
    for algo in ["round-robin", "weighted-round-robin", "least-connections", "random", "least-request", "peak-ewma", "ip-hash", "leastconn"] {
        let proxy = proxy_over(&backends, algo).await;
        for _ in 0..10 {
            let r = get(&proxy.url("/x")).await.expect("get");
            assert_eq!(r.status, 200, "{algo}: {}", r.text());
        }
    }
}

#[tokio::test]
async fn a_sigkilled_backend_costs_no_client_visible_get_error() {
    let mut backends = three_backends().await;
    let proxy = proxy_over(&backends, "round-robin").await;
    let victim = backends.remove(1);
    let load = Load::start(&proxy.url("/"), 8);
    load.wait_for_more(200).await;
    sigkill(&victim.process);
    load.wait_for_more(1000).await;
    let report = load.finish().await;
    assert!(report.ok > 100, "too little traffic to mean anything: {report:?}");
    assert!(report.errors.is_empty(), "client-visible errors: {:?}", &report.errors[..report.errors.len().min(5)]);
    drop(victim);
}

#[tokio::test]
async fn all_backends_down_is_502_and_no_backends_alive_does_not_hang() {
    let backends = three_backends().await;
    let proxy = proxy_over(&backends, "least-request").await;
    drop(backends);
    let r = get(&proxy.url("/")).await.expect("a response, not a hang");
    assert!(r.status == 502 || r.status == 503, "{} {}", r.status, r.text());
}

#[tokio::test]
async fn malformed_requests_get_the_right_status_and_do_not_disturb_others() {
    let backends = three_backends().await;
    let proxy = proxy_over(&backends, "round-robin").await;
    let wait = Duration::from_secs(5);

    let bad_line = raw_exchange(proxy.addr, b"GARBAGE\r\n\r\n", wait).await;
    assert!(bad_line.starts_with("HTTP/1.1 400"), "bad request line: {bad_line:?}");

    let conflict = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let reply = raw_exchange(proxy.addr, conflict, wait).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "CL/TE conflict: {reply:?}");

    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200 * 1024));
    let reply = raw_exchange(proxy.addr, huge.as_bytes(), wait).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "oversized headers: {:?}", &reply[..reply.len().min(80)]);

    // A well-behaved client is served throughout.
    let r = get(&proxy.url("/after")).await.expect("get");
    assert_eq!(r.status, 200);
}
