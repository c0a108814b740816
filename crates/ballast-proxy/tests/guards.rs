//! Health checks, outlier ejection, circuit breakers and pool limits wired into the
//! request path, against in-process backends on loopback.

mod common;

use ballast_core::resilience::{CircuitState, EventKind, Health, HealthEvent};
use ballast_proxy::ProxyServer;
use common::*;
use http::{Response, StatusCode};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Polls `cond` every 10 ms until it holds; panics with `what` after `limit`.
async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn has_event(events: &[HealthEvent], instance: &str, want: impl Fn(&EventKind) -> bool) -> bool {
    events.iter().any(|e| e.instance == instance && want(&e.kind))
}

/// A backend that, while `failing` is set, fails half its requests in runs of `run` (500
/// for `run` requests, 200 for the next `run`, and so on), and answers 200 otherwise;
/// counts its requests.
async fn flaky(name: &'static str, run: usize, failing: Arc<AtomicBool>, hits: Arc<AtomicUsize>) -> Backend {
    backend(move |_req| {
        let n = hits.fetch_add(1, Ordering::SeqCst);
        let fail = failing.load(Ordering::SeqCst) && (n / run) % 2 == 0;
        async move {
            let mut r = Response::new(full(name));
            r.headers_mut().insert("x-backend", name.parse().expect("name"));
            if fail {
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            r
        }
    })
    .await
}

#[tokio::test]
async fn health_checks_take_a_dead_instance_out_and_bring_it_back_after_rise() {
    let a = echo("a").await;
    let b = echo("b").await;
    let b_addr = b.addr;
    let pool = "[pool.health]\nkind = \"tcp\"\ninterval = \"50ms\"\ntimeout = \"40ms\"\nrise = 2\nfall = 2\n";
    let (proxy, _addr) = proxy(&simple_config(&[a.addr, b.addr], "", pool)).await;
    let stats = proxy.backend_stats("app", &b_addr.to_string()).expect("stats");
    b.kill();
    drop(b);
    let events = proxy.events();
    let out = eventually(Duration::from_secs(3), "b unhealthy", || !stats.healthy.load(Ordering::Acquire)).await;
    assert!(out < Duration::from_secs(1), "out of rotation after {out:?}");
    let id = b_addr.to_string();
    assert!(has_event(&events.recent(100), &id, |k| matches!(k, EventKind::Health { to: Health::Unhealthy, .. })));
    // Restart on the same address: back after `rise` passing checks.
    let listener = TcpListener::bind(b_addr).await.expect("rebind b");
    eventually(Duration::from_secs(3), "b healthy again", || stats.healthy.load(Ordering::Acquire)).await;
    assert!(has_event(&events.recent(100), &id, |k| matches!(k, EventKind::Health { to: Health::Healthy, .. })));
    let status = proxy.health_status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].0, "app");
    let b_status = status[0].1.iter().find(|h| h.instance == id).expect("b is checked");
    assert_eq!(b_status.health, Health::Healthy);
    assert!(b_status.checks >= 4, "fall 2 + rise 2 checks at least: {b_status:?}");
    drop(listener);
}

#[tokio::test]
async fn a_backend_that_never_answers_is_cut_by_the_timeout_and_ejected() {
    let live = echo("live").await;
    // Accepts and reads, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let balancer = "[balancer.timeouts]\nupstream_response = \"150ms\"\n";
    let pool = "[pool.outlier]\nconsecutive_failures = 2\nbase_ejection = \"10s\"\nmax_ejected_percent = 50\n\
                [pool.circuit_breaker]\nenabled = false\n";
    let (proxy, addr) = proxy(&simple_config(&[silent_addr, live.addr], balancer, pool)).await;
    let mut timeouts = 0;
    for _ in 0..20 {
        let got = send(addr, get("/")).await;
        match got.status {
            StatusCode::GATEWAY_TIMEOUT => timeouts += 1,
            s => assert_eq!(s, StatusCode::OK),
        }
    }
    assert_eq!(timeouts, 2, "two timeouts eject the silent instance, then only the live one answers");
    let events = proxy.events().recent(100);
    assert!(has_event(&events, &silent_addr.to_string(), |k| matches!(k, EventKind::Ejected { .. })), "{events:?}");
}

#[tokio::test]
async fn a_failing_instance_opens_its_breaker_and_recovers_through_half_open() {
    let failing = Arc::new(AtomicBool::new(true));
    let (bad_hits, good_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let bad = flaky("bad", 3, failing.clone(), bad_hits.clone()).await;
    let good = flaky("good", 3, Arc::new(AtomicBool::new(false)), good_hits.clone()).await;
    let pool = "[pool.outlier]\nenabled = false\n\
                [pool.circuit_breaker]\nfailure_threshold = 3\nrecovery_timeout = \"1s\"\n";
    let (proxy, addr) = proxy(&simple_config(&[bad.addr, good.addr], "", pool)).await;
    let client = pooled_client();
    let errors = errors_in(&client, addr, 40).await;
    assert_eq!(errors, 3, "the breaker opens after 3 failures in a row");
    assert_eq!(bad_hits.load(Ordering::SeqCst), 3, "no request reaches an open breaker");
    let id = bad.addr.to_string();
    let opened = |e: &EventKind| matches!(e, EventKind::Circuit { to: CircuitState::Open, .. });
    assert!(has_event(&proxy.events().recent(100), &id, opened));
    // Healed: the trial after the recovery timeout closes it.
    failing.store(false, Ordering::SeqCst);
    heals_through_half_open(&proxy, &client, addr, &id).await;
    assert!(bad_hits.load(Ordering::SeqCst) > 3, "traffic is back on the healed instance");
}

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, TestBody>;

/// Sends `n` requests one after the other; returns how many were not 200.
async fn errors_in(client: &Client, addr: std::net::SocketAddr, n: usize) -> usize {
    let mut errors = 0;
    for _ in 0..n {
        let resp = client.request(get(&format!("http://{addr}/"))).await.expect("response");
        if resp.status() != StatusCode::OK {
            errors += 1;
        }
        collect(resp).await;
    }
    errors
}

/// With the instance `id` healed: keeps traffic flowing until its breaker closes after a
/// good trial, and checks it went through half-open.
async fn heals_through_half_open(proxy: &ProxyServer, client: &Client, addr: std::net::SocketAddr, id: &str) {
    let events = proxy.events();
    let closed = |e: &EventKind| matches!(e, EventKind::Circuit { to: CircuitState::Closed, .. });
    eventually(Duration::from_secs(3), "breaker closes after a good trial", || {
        let client = client.clone();
        tokio::spawn(async move {
            if let Ok(r) = client.request(get(&format!("http://{addr}/"))).await {
                collect(r).await;
            }
        });
        has_event(&events.recent(100), id, closed)
    })
    .await;
    let half = |e: &EventKind| matches!(e, EventKind::Circuit { to: CircuitState::HalfOpen, .. });
    assert!(has_event(&events.recent(100), id, half), "went through half-open");
}

#[tokio::test]
async fn an_instance_failing_every_other_request_opens_its_breaker_by_rate_and_recovers() {
    let failing = Arc::new(AtomicBool::new(true));
    let (bad_hits, good_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let bad = flaky("bad", 1, failing.clone(), bad_hits.clone()).await;
    let good = flaky("good", 1, Arc::new(AtomicBool::new(false)), good_hits.clone()).await;
    // Never two failures in a row, so only the rate rule can open it.
    let pool = "[pool.outlier]\nenabled = false\n\
                [pool.circuit_breaker]\nfailure_threshold = 2\nrecovery_timeout = \"1s\"\n\
                min_requests = 10\nfailure_rate_threshold = 0.5\n";
    let (proxy, addr) = proxy(&simple_config(&[bad.addr, good.addr], "", pool)).await;
    let client = pooled_client();
    let errors = errors_in(&client, addr, 60).await;
    // bad sees fail, ok, fail, ...: its 11th request (a failure) makes 6 of 11 failed,
    // with at least min_requests seen, so the breaker opens and the rest go to good.
    assert_eq!(errors, 6, "every failure of bad until its breaker opened reached the client");
    assert_eq!(bad_hits.load(Ordering::SeqCst), 11, "no request reaches the open breaker");
    assert_eq!(good_hits.load(Ordering::SeqCst), 49, "traffic shifted to good");
    let id = bad.addr.to_string();
    let opened = |e: &EventKind| matches!(e, EventKind::Circuit { to: CircuitState::Open, .. });
    assert!(has_event(&proxy.events().recent(100), &id, opened));
    failing.store(false, Ordering::SeqCst);
    heals_through_half_open(&proxy, &client, addr, &id).await;
    let before = bad_hits.load(Ordering::SeqCst);
    assert_eq!(errors_in(&client, addr, 20).await, 0, "healed and closed: no errors");
    assert!(bad_hits.load(Ordering::SeqCst) > before, "traffic is back on the healed instance");
}

#[tokio::test]
async fn every_instance_open_is_a_fast_503_with_retry_after() {
    let failing = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicUsize::new(0));
    let only = flaky("only", 3, failing, hits.clone()).await;
    let pool = "[pool.outlier]\nenabled = false\n\
                [pool.circuit_breaker]\nfailure_threshold = 1\nrecovery_timeout = \"30s\"\n";
    let (_proxy, addr) = proxy(&simple_config(&[only.addr], "", pool)).await;
    assert_eq!(send(addr, get("/")).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    let got = send(addr, get("/")).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    let after: u64 = got.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((29..=30).contains(&after), "Retry-After {after}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_full_instance_queues_then_refuses_with_503() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let slow = backend(move |_req| {
        let g = g.clone();
        async move {
            let _ = g.acquire().await.map(|p| p.forget());
            Response::new(full("done"))
        }
    })
    .await;
    let pool = "[pool.limits]\nmax_in_flight_per_instance = 1\nmax_pending = 4\nqueue_timeout = \"200ms\"\n";
    let (_proxy, addr) = proxy(&simple_config(&[slow.addr], "", pool)).await;
    let first = tokio::spawn(send(addr, get("/")));
    let accepted = slow.accepted.clone();
    eventually(Duration::from_secs(2), "first request reached the backend", || accepted.load(Ordering::SeqCst) == 1).await;
    // The only slot is taken: the second waits in the queue and times out.
    let started = Instant::now();
    let second = send(addr, get("/")).await;
    let waited = started.elapsed();
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(second.headers.contains_key("retry-after"));
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2), "waited {waited:?}");
    gate.add_permits(10);
    assert_eq!(first.await.expect("first").status, StatusCode::OK);
    // Room again: requests go through.
    assert_eq!(send(addr, get("/")).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_killed_instance_is_out_of_rotation_within_a_second_without_errors() {
    let backends = [echo("a").await, echo("b").await, echo("c").await];
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let pool = "[pool.health]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"80ms\"\nfall = 2\nrise = 2\n\
                [pool.outlier]\nmax_ejected_percent = 34\n";
    let (proxy, addr) = proxy(&simple_config(&addrs, "", pool)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (stop, ok, errors, client) = (stop.clone(), ok.clone(), errors.clone(), pooled_client());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match client.request(get(&format!("http://{addr}/"))).await {
                        Ok(r) if r.status() == StatusCode::OK => {
                            collect(r).await;
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let counter = ok.clone();
    eventually(Duration::from_secs(5), "load running", || counter.load(Ordering::SeqCst) > 300).await;
    let killed_at = proxy.clock().now();
    backends[1].kill();
    let id = addrs[1].to_string();
    let events = proxy.events();
    let out = |e: &EventKind| matches!(e, EventKind::Ejected { .. } | EventKind::Health { to: Health::Unhealthy, .. });
    eventually(Duration::from_secs(3), "victim out of rotation", || has_event(&events.recent(100), &id, out)).await;
    let first = events.recent(100).into_iter().find(|e| e.instance == id && out(&e.kind)).expect("event");
    let took = first.at.saturating_sub(killed_at);
    let counter = ok.clone();
    let base = counter.load(Ordering::SeqCst);
    eventually(Duration::from_secs(5), "more load after the kill", || counter.load(Ordering::SeqCst) > base + 500).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    println!("killed instance out of rotation after {took:?} ({:?}); {} ok, {} errors", first.kind, ok.load(Ordering::SeqCst), errors.load(Ordering::SeqCst));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(errors.load(Ordering::SeqCst), 0, "client-visible errors");
}

#[tokio::test]
async fn adaptive_pools_are_probed_without_traffic_and_health_checks_follow_reloads() {
    let a = echo("a").await;
    let text = simple_config(&[a.addr], "", "").replace("round-robin", "adaptive");
    let (proxy, _addr) = proxy(&text).await;
    let accepted = a.accepted.clone();
    eventually(Duration::from_secs(3), "the prober reached the idle backend", || accepted.load(Ordering::SeqCst) > 0).await;

    // Reload: health checks on, and a second instance that is dead from the start.
    let dead = dead_addr().await;
    let pool = "[pool.health]\nkind = \"tcp\"\ninterval = \"50ms\"\ntimeout = \"40ms\"\nfall = 1\n";
    proxy.reload(&config(&simple_config(&[a.addr, dead], "", pool))).expect("reload");
    let stats = proxy.backend_stats("app", &dead.to_string()).expect("stats");
    eventually(Duration::from_secs(3), "the new instance is checked", || !stats.healthy.load(Ordering::Acquire)).await;
    let live = proxy.backend_stats("app", &a.addr.to_string()).expect("stats");
    assert!(live.healthy.load(Ordering::Acquire));
    // Checks off again: nobody holds the flag down any more.
    proxy.reload(&config(&simple_config(&[a.addr, dead], "", ""))).expect("reload");
    assert!(stats.healthy.load(Ordering::Acquire), "without checks every instance is trusted");
}
