//! Upstream failures: retries on another instance for safe requests, 502 when every
//! try fails, 503 with no instance, 504 on a slow upstream; stats count it all.

mod common;

use common::*;
use http::{Request, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A backend that reads a request and closes the connection without answering.
async fn hang_up_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn gets_to_a_dead_instance_are_retried_elsewhere() {
    let live = echo("live").await;
    let dead = dead_addr().await;
    let (proxy, addr) = proxy(&simple_config(&[dead, live.addr], "", "")).await;
    let client = pooled_client();
    for _ in 0..20 {
        let resp = client.request(Request::get(format!("http://{addr}/")).body(empty()).expect("req")).await;
        let got = collect(resp.expect("response")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers["x-backend"], "live");
    }
    let dead_stats = proxy.backend_stats("app", &dead.to_string()).expect("stats");
    assert!(dead_stats.failures.load(Ordering::Relaxed) >= 1);
    assert_eq!(dead_stats.in_flight.load(Ordering::Relaxed), 0);
    let live_stats = proxy.backend_stats("app", &live.addr.to_string()).expect("stats");
    assert_eq!(live_stats.requests.load(Ordering::Relaxed), 20);
    assert_eq!(live_stats.failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn killing_an_instance_with_pooled_connections_causes_no_client_error() {
    let a = echo("a").await;
    let b = echo("b").await;
    let (_proxy, addr) = proxy(&simple_config(&[a.addr, b.addr], "", "")).await;
    let client = pooled_client();
    let mut seen_a = false;
    for _ in 0..10 {
        let resp = client.request(Request::get(format!("http://{addr}/")).body(empty()).expect("req")).await;
        seen_a |= collect(resp.expect("response")).await.headers["x-backend"] == "a";
    }
    assert!(seen_a, "both instances served before the kill");
    a.kill();
    for i in 0..30 {
        let resp = client.request(Request::get(format!("http://{addr}/")).body(empty()).expect("req")).await;
        let got = collect(resp.expect("response")).await;
        assert_eq!(got.status, StatusCode::OK, "request {i} after the kill");
        assert_eq!(got.headers["x-backend"], "b");
    }
}

#[tokio::test]
async fn get_is_retried_when_the_upstream_hangs_up_but_a_post_with_body_is_not() {
    let (hang, _task) = hang_up_backend().await;
    let live = echo("live").await;
    let (_proxy, addr) = proxy(&simple_config(&[hang, live.addr], "", "")).await;
    for _ in 0..4 {
        let got = send(addr, get("/")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers["x-backend"], "live");
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(addr, Request::post("/").body(full("data")).expect("req")).await.status);
    }
    assert!(statuses.contains(&StatusCode::BAD_GATEWAY), "round-robin sends one POST to the hang-up: {statuses:?}");
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
}

#[tokio::test]
async fn every_instance_failing_is_502() {
    let (d1, d2) = (dead_addr().await, dead_addr().await);
    let (_proxy, addr) = proxy(&simple_config(&[d1, d2], "", "")).await;
    let got = send(addr, get("/")).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(&got.body[..], b"bad gateway\n");
    assert!(got.headers.contains_key("x-request-id"));
    let post = send(addr, Request::post("/").body(full("x")).expect("req")).await;
    assert_eq!(post.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_pool_without_instances_is_503() {
    let (_proxy, addr) = proxy(&simple_config(&[], "", "")).await;
    let got = send(addr, get("/")).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&got.body[..], b"no instance available\n");
}

#[tokio::test]
async fn a_slow_upstream_is_504_after_the_response_timeout() {
    let slow = backend(|_req| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let (_proxy, addr) =
        proxy(&simple_config(&[slow.addr], "[balancer.timeouts]\nupstream_response = \"200ms\"", "")).await;
    let started = tokio::time::Instant::now();
    let got = send(addr, get("/")).await;
    assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_reused_upstream_connection_times_out_too() {
    // The response deadline lives with the pooled connection and is pushed on per
    // request: a slow answer on a connection that already served one still times out.
    let b = backend(|req| async move {
        if req.uri().path() == "/slow" {
            std::future::pending::<()>().await;
        }
        echo_response("b", req).await
    })
    .await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "[balancer.timeouts]\nupstream_response = \"200ms\"", "")).await;
    assert_eq!(send(addr, get("/fast")).await.status, StatusCode::OK);
    let started = tokio::time::Instant::now();
    assert_eq!(send(addr, get("/slow")).await.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(b.accepted.load(Ordering::Relaxed), 1, "the slow request reused the pooled connection");
    assert_eq!(send(addr, get("/fast")).await.status, StatusCode::OK, "a fresh connection after the timeout");
    assert_eq!(b.accepted.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_post_with_a_body_moves_on_when_connecting_fails() {
    let live = echo("live").await;
    let dead = dead_addr().await;
    let (_proxy, addr) = proxy(&simple_config(&[dead, live.addr], "", "")).await;
    for i in 0..6 {
        let got = send(addr, Request::post("/").body(full(vec![b'p'; 100 + i])).expect("req")).await;
        assert_eq!(got.status, StatusCode::OK, "the body was never sent to the dead instance");
        assert_eq!(got.json()["received"], 100 + i);
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let client = pooled_client();
    for _ in 0..50 {
        let resp = client.request(Request::get(format!("http://{addr}/")).body(empty()).expect("req")).await;
        assert_eq!(collect(resp.expect("response")).await.status, StatusCode::OK);
    }
    assert_eq!(b.accepted.load(Ordering::Relaxed), 1, "sequential requests share one upstream connection");
    // A response that is not read to the end does not leave a half-read connection in
    // the pool: the next request still succeeds.
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("hs");
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(get("/")).await.expect("head");
    drop(resp);
    drop(sender);
    let _ = conn.await;
    for _ in 0..5 {
        assert_eq!(send(addr, get("/")).await.status, StatusCode::OK);
    }
}
