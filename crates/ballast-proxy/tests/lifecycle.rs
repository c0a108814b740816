//! Reload, graceful shutdown, idle timeout, connection limit and access log.

mod common;

use common::*;
use ballast_proxy::{AccessLog, ProxyServer};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// A backend that answers `name` once the returned gate gets a permit per request; it
/// notifies `arrived` as each request comes in.
async fn gated(name: &'static str) -> (Backend, Arc<Semaphore>, Arc<Notify>) {
    let gate = Arc::new(Semaphore::new(0));
    let arrived = Arc::new(Notify::new());
    let (g, a) = (gate.clone(), arrived.clone());
    let b = backend(move |_req| {
        let (g, a) = (g.clone(), a.clone());
        async move {
            a.notify_one();
            g.acquire().await.expect("gate").forget();
            let mut r = Response::new(full(name));
            r.headers_mut().insert("x-backend", name.parse().expect("name"));
            r
        }
    })
    .await;
    (b, gate, arrived)
}

/// An HTTP/1.1 keep-alive connection to `addr`.
async fn connection(addr: std::net::SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    sender
}

#[tokio::test]
async fn reload_swaps_routes_without_failing_in_flight_requests() {
    let (slow, gate, arrived) = gated("old").await;
    let new = echo("new").await;
    let (proxy, addr) = proxy(&simple_config(&[slow.addr], "", "")).await;
    let stats_before = proxy.backend_stats("app", &slow.addr.to_string()).expect("stats");
    let mut kept = connection(addr).await;
    let in_flight = tokio::spawn(send(addr, get("/")));
    arrived.notified().await;

    let summary = proxy.reload(&config(&simple_config(&[new.addr, slow.addr], "", ""))).expect("reload");
    assert_eq!(summary.updated, ["web"]);
    assert!(summary.started.is_empty() && summary.stopped.is_empty());
    let stats_after = proxy.backend_stats("app", &slow.addr.to_string()).expect("stats");
    assert!(Arc::ptr_eq(&stats_before, &stats_after), "stats survive the reload");
    assert_eq!(stats_after.in_flight.load(std::sync::atomic::Ordering::Relaxed), 1);

    let only_new = proxy.reload(&config(&simple_config(&[new.addr], "", ""))).expect("reload");
    assert_eq!(only_new.updated, ["web"]);
    for _ in 0..3 {
        let got = collect(kept.send_request(get("/")).await.expect("kept connection")).await;
        assert_eq!(got.headers["x-backend"], "new", "a connection opened before the reload routes anew");
    }
    gate.add_permits(1);
    let old = in_flight.await.expect("task");
    assert_eq!(old.status, StatusCode::OK, "the in-flight request finished on the old route");
    assert_eq!(&old.body[..], b"old");
}

#[tokio::test]
async fn a_failing_reload_changes_nothing() {
    let a = echo("a").await;
    let (proxy, addr) = proxy(&simple_config(&[a.addr], "", "")).await;
    let bad_address = simple_config(&[a.addr], "", "").replace(&a.addr.to_string(), "not an address");
    let err = proxy.reload(&config(&bad_address)).expect_err("bad instance address");
    assert!(err.to_string().contains("pool \"app\".instance[0].address"), "{err}");
    let bad_pool = simple_config(&[a.addr], "", "").replace("pool = \"app\"", "pool = \"nope\"");
    let err = proxy.reload(&config(&bad_pool)).expect_err("unknown pool");
    assert!(err.to_string().contains("route[0].split[0].pool: unknown pool \"nope\""), "{err}");
    let mut two = simple_config(&[a.addr], "", "");
    two.push_str("\n[[balancer]]\nname = \"bad\"\nlisten = \"127.0.0.1:notaport\"\n");
    let err = proxy.reload(&config(&two)).expect_err("bad listen address");
    assert!(err.to_string().contains("balancer \"bad\": listen address"), "{err}");
    assert_eq!(send(addr, get("/")).await.headers["x-backend"], "a", "old config still serves");
    assert_eq!(proxy.local_addrs().len(), 1);
}

#[tokio::test]
async fn reload_starts_and_stops_listeners() {
    let a = echo("a").await;
    let (proxy, addr) = proxy(&simple_config(&[a.addr], "", "")).await;
    let with_api = simple_config(&[a.addr], "", "").replace("name = \"web\"", "name = \"api\"");
    let summary = proxy.reload(&config(&with_api)).expect("reload");
    assert_eq!(summary.started, ["api"]);
    assert_eq!(summary.stopped, ["web"]);
    let api = proxy.local_addr("api").expect("api listens");
    assert_eq!(send(api, get("/")).await.status, StatusCode::OK);
    assert!(proxy.local_addr("web").is_none());
    // The stopped listener's socket is closed once its accept loop ends.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the old listener no longer accepts");
    assert!(proxy.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_request_and_stops_accepting() {
    let (slow, gate, arrived) = gated("slow").await;
    let (proxy, addr) = proxy(&simple_config(&[slow.addr], "", "")).await;
    let in_flight = tokio::spawn(send(addr, get("/")));
    arrived.notified().await;
    let proxy = Arc::new(proxy);
    let draining = proxy.clone();
    let shutdown = tokio::spawn(async move { draining.shutdown(Duration::from_secs(10)).await });
    // The listener closes: new connections are refused while the request is in flight.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "no new connections during the drain");
    assert!(!shutdown.is_finished());
    gate.add_permits(1);
    let got = in_flight.await.expect("task");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body[..], b"slow");
    assert!(shutdown.await.expect("task"), "drained within the grace period");
    assert!(proxy.local_addrs().is_empty());
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let (slow, _gate, arrived) = gated("never").await;
    let (proxy, addr) = proxy(&simple_config(&[slow.addr], "", "")).await;
    let _in_flight = tokio::spawn(send(addr, get("/")));
    arrived.notified().await;
    assert!(!proxy.shutdown(Duration::from_millis(100)).await, "a stuck request cannot drain");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let a = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[a.addr], "[balancer.timeouts]\nidle = \"200ms\"", "")).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    let started = tokio::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the proxy closes an idle keep-alive connection");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200 OK"));
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let a = echo("a").await;
    let (_proxy, addr) =
        proxy(&simple_config(&[a.addr], "[balancer.limits]\nmax_connections = 1", "")).await;
    let mut first = connection(addr).await;
    assert_eq!(collect(first.send_request(get("/")).await.expect("first")).await.status, StatusCode::OK);
    let second = tokio::spawn(send(addr, get("/")));
    // While the first connection is open the second is not served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "served beyond max_connections");
    drop(first);
    let got = tokio::time::timeout(Duration::from_secs(5), second).await.expect("served once a slot frees");
    assert_eq!(got.expect("task").status, StatusCode::OK);
}

#[tokio::test]
async fn access_log_writes_one_json_line_per_request() {
    let a = echo("a").await;
    let toml = simple_config(&[a.addr], "access_log = \"json\"", "");
    let (log, lines) = AccessLog::channel();
    let proxy = ProxyServer::start(&config(&toml), log).expect("start");
    let addr = proxy.local_addr("web").expect("addr");
    let req = Request::get("/logged?q=1").header("user-agent", "tester").body(empty()).expect("req");
    let got = send(addr, req).await;
    let line = lines.recv_timeout(Duration::from_secs(5)).expect("a log line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["uri"], "/logged?q=1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["user_agent"], "tester");
    assert_eq!(v["upstream"], a.addr.to_string());
    assert_eq!(v["request_id"], got.headers["x-request-id"].to_str().expect("ascii"));
    assert_eq!(v["bytes"], got.body.len());
    let not_found = simple_config(&[a.addr], "access_log = \"combined\"", "").replace("split = [", "host = \"x\"\nsplit = [");
    let (log, lines) = AccessLog::channel();
    let proxy = ProxyServer::start(&config(&not_found), log).expect("start");
    send(proxy.local_addr("web").expect("addr"), get("/missing")).await;
    let line = lines.recv_timeout(Duration::from_secs(5)).expect("a log line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("\"GET /missing HTTP/1.1\" 404 9 \"-\" \"-\""), "{line}");
}
