//! Scale from zero over real sockets: requests to a pool at zero instances are held
//! (bounded queue, timeout), counted for the controller, and served once the pool gets
//! an instance; pools that cannot be at zero still answer 503 at once.

mod common;

use ballast_core::config::InstanceConfig;
use ballast_proxy::ProxyServer;
use common::*;
use http::{Request, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Safety net for waits on a condition; never the thing a test measures.
const PATIENCE: Duration = Duration::from_secs(10);

/// Balancer `web` → pool `app` with no instance and the given `[pool.scaling]` body.
fn zero_pool(scaling: &str) -> String {
    format!(
        "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[balancer.route]]\nsplit = [{{ pool = \"app\" }}]\n\n\
         [[pool]]\nname = \"app\"\nbalance = \"round-robin\"\n\
         [pool.provider]\nkind = \"process\"\ncommand = \"true\"\n\
         {scaling}"
    )
}

const HOLDS: &str = "[pool.scaling]\nmin = 0\ntemplate = \"web-balanced\"\nscale_to_zero = { hold_queue = 4 }\n";

fn instance(addr: SocketAddr) -> InstanceConfig {
    InstanceConfig { address: addr.to_string(), weight: 1, zone: None }
}

/// Polls `cond` until it holds (bounded by [`PATIENCE`]).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `server` holds `n` requests for `app`.
async fn held(server: &ProxyServer, n: u32) {
    until(&format!("{n} held requests"), || server.pending_requests("app") == n).await;
}

#[tokio::test]
async fn a_held_request_is_served_once_the_pool_gets_an_instance() {
    let (server, addr) = proxy(&zero_pool(HOLDS)).await;
    let mut demand = server.demand("app").expect("the pool holds");
    assert_eq!(*demand.borrow_and_update(), 0);
    let client = tokio::spawn(send(addr, get("/first")));
    tokio::time::timeout(PATIENCE, demand.changed()).await.expect("woken").expect("pool still holds");
    assert_eq!(*demand.borrow_and_update(), 1, "the controller sees the held request");
    assert_eq!(server.pending_requests("app"), 1);
    assert!(!client.is_finished(), "still held");

    let backend = echo("cold").await;
    server.set_pool_instances("app", &[instance(backend.addr)]).expect("members set");
    let got = tokio::time::timeout(PATIENCE, client).await.expect("served").expect("client task");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["backend"], "cold");
    assert_eq!(got.json()["uri"], "/first");
    held(&server, 0).await;
    let stats = server.backend_stats("app", &backend.addr.to_string()).expect("stats");
    assert_eq!(stats.requests.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_held_request_keeps_its_body_and_gets_it_through() {
    let (server, addr) = proxy(&zero_pool(HOLDS)).await;
    let body = vec![b'x'; 256 * 1024];
    let req = Request::post("/upload").header("host", "t").body(full(body.clone())).expect("request");
    let client = tokio::spawn(send(addr, req));
    held(&server, 1).await;
    let backend = echo("cold").await;
    server.set_pool_instances("app", &[instance(backend.addr)]).expect("members set");
    let got = tokio::time::timeout(PATIENCE, client).await.expect("served").expect("client task");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["received"], body.len() as u64, "the whole body arrived after the hold");
}

#[tokio::test]
async fn a_held_request_times_out_with_503_and_retry_after() {
    let scaling = "[pool.scaling]\nmin = 0\ntemplate = \"web-balanced\"\nscale_to_zero = { hold_timeout = \"300ms\" }\n";
    let (server, addr) = proxy(&zero_pool(scaling)).await;
    let got = send(addr, get("/")).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(got.headers["retry-after"], "1");
    let text = String::from_utf8_lossy(&got.body);
    assert!(text.contains("no instance is ready yet"), "{text}");
    assert_eq!(server.pending_requests("app"), 0, "the slot is given back");
}

#[tokio::test]
async fn a_full_hold_queue_refuses_at_once() {
    let scaling = "[pool.scaling]\nmin = 0\ntemplate = \"web-balanced\"\nscale_to_zero = { hold_queue = 1 }\n";
    let (server, addr) = proxy(&zero_pool(scaling)).await;
    let first = tokio::spawn(send(addr, get("/first")));
    held(&server, 1).await;
    let second = tokio::time::timeout(PATIENCE, send(addr, get("/second"))).await.expect("refused at once");
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(server.pending_requests("app"), 1, "the refused one never counted");
    let backend = echo("cold").await;
    server.set_pool_instances("app", &[instance(backend.addr)]).expect("members set");
    let got = tokio::time::timeout(PATIENCE, first).await.expect("served").expect("client task");
    assert_eq!((got.status, got.json()["uri"].as_str()), (StatusCode::OK, Some("/first")));
}

#[tokio::test]
async fn a_client_that_goes_away_while_held_leaves_the_queue() {
    let (server, addr) = proxy(&zero_pool(HOLDS)).await;
    let mut demand = server.demand("app").expect("the pool holds");
    let mut a = tokio::net::TcpStream::connect(addr).await.expect("connect");
    a.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    let b = tokio::spawn(send(addr, get("/b")));
    held(&server, 2).await;
    drop(a);
    held(&server, 1).await;
    demand.borrow_and_update();
    assert_eq!(*demand.borrow(), 1, "the receiver sees the decrement");
    let backend = echo("cold").await;
    server.set_pool_instances("app", &[instance(backend.addr)]).expect("members set");
    let got = tokio::time::timeout(PATIENCE, b).await.expect("served").expect("client task");
    assert_eq!(got.status, StatusCode::OK);
    let stats = server.backend_stats("app", &backend.addr.to_string()).expect("stats");
    assert_eq!(stats.requests.load(std::sync::atomic::Ordering::Relaxed), 1, "the gone client was not forwarded");
}

#[tokio::test]
async fn a_reload_that_gives_instances_releases_held_requests() {
    let scaling = "[pool.scaling]\nmin = 0\ntemplate = \"web-balanced\"\n";
    let text = zero_pool(scaling).replace("[pool.provider]\nkind = \"process\"\ncommand = \"true\"\n", "");
    let (server, addr) = proxy(&text).await;
    let client = tokio::spawn(send(addr, get("/r")));
    held(&server, 1).await;
    let backend = echo("reloaded").await;
    let with = format!("{text}[[pool.instance]]\naddress = \"{}\"\n", backend.addr);
    server.reload(&config(&with)).expect("reload");
    let got = tokio::time::timeout(PATIENCE, client).await.expect("served").expect("client task");
    assert_eq!(got.json()["backend"], "reloaded");
}

#[tokio::test]
async fn a_reload_that_stops_holding_answers_held_requests() {
    let (server, addr) = proxy(&zero_pool(HOLDS)).await;
    let mut demand = server.demand("app").expect("the pool holds");
    let client = tokio::spawn(send(addr, get("/")));
    held(&server, 1).await;
    server.reload(&config(&zero_pool("[pool.scaling]\nmin = 1\ntemplate = \"web-balanced\"\n"))).expect("reload");
    let got = tokio::time::timeout(PATIENCE, client).await.expect("answered").expect("client task");
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(String::from_utf8_lossy(&got.body), "no instance available\n");
    assert!(server.demand("app").is_none(), "no longer holds");
    let closed = tokio::time::timeout(PATIENCE, async {
        while demand.changed().await.is_ok() {}
    });
    closed.await.expect("the old receiver sees the channel closed");
}

#[tokio::test]
async fn pools_that_cannot_be_at_zero_answer_503_at_once() {
    for scaling in ["", "[pool.scaling]\nmin = 1\ntemplate = \"web-balanced\"\n"] {
        let (server, addr) = proxy(&zero_pool(scaling)).await;
        assert!(server.demand("app").is_none(), "{scaling:?}");
        let got = tokio::time::timeout(PATIENCE, send(addr, get("/"))).await.expect("answered at once");
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{scaling:?}");
        assert_eq!(String::from_utf8_lossy(&got.body), "no instance available\n");
        assert_eq!(server.pending_requests("app"), 0);
    }
    let (server, _) = proxy(&zero_pool(HOLDS)).await;
    assert!(server.demand("nope").is_none(), "unknown pool");
    assert_eq!(server.pending_requests("nope"), 0);
}

#[tokio::test]
async fn a_pool_with_instances_is_not_held_and_a_raw_client_sees_the_answer() {
    let backend = echo("warm").await;
    let (server, addr) = proxy(&zero_pool(HOLDS)).await;
    server.set_pool_instances("app", &[instance(backend.addr)]).expect("members set");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /w HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await.expect("answered").expect("read");
    assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    assert_eq!(server.pending_requests("app"), 0);
}
