//! The admin listener facing bad clients, over real sockets: unknown paths, wrong and
//! malformed methods, oversized heads, garbage bytes, slow clients; each gets a precise
//! 4xx and the listener keeps serving. Also start and shutdown.

mod common;

use ballast_admin::{AdminError, AdminServer, AdminSources};
use common::*;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"
[[balancer]]
name = "front"
listen = "127.0.0.1:0"
[[balancer.route]]
path_prefix = "/"
split = [{ pool = "app" }]

[[pool]]
name = "app"
[[pool.instance]]
address = "127.0.0.1:9"
"#;

fn problem(answer: &Answer, status: u16) -> Value {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{answer:?}");
    let v: Value = serde_json::from_str(&answer.body).expect("problem JSON");
    assert_eq!(v["status"], status);
    assert_eq!(v["type"], "about:blank");
    v
}

async fn still_serving(admin: std::net::SocketAddr) {
    let ok = get(admin, "/healthz").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "ok\n"), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_wrong_methods_get_problem_json() {
    let admin = admin(AdminSources::new(proxy(CONFIG)));
    let at = admin.local_addr();

    let v = problem(&get(at, "/nope?q=1").await, 404);
    assert_eq!(v["instance"], "/nope");
    assert_eq!(v["detail"], "no such endpoint: /nope");
    let v = problem(&get(at, "/metrics/extra").await, 404);
    assert_eq!(v["instance"], "/metrics/extra");

    for (method, path) in [("DELETE", "/metrics"), ("POST", "/api/v1/pools"), ("BREW", "/healthz")] {
        let raw = format!("{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
        let answer = send_raw(at, raw.as_bytes()).await;
        let v = problem(&answer, 405);
        assert_eq!(answer.header("allow"), Some("GET, HEAD"));
        assert_eq!(v["detail"], format!("{path} answers GET, HEAD, not {method}"));
    }
    // HEAD is GET without a body; query strings are ignored.
    let head = send_raw(at, b"HEAD /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(get(at, "/healthz?%%zz=&&&").await.status, 200);
    assert_eq!(get(at, "/metrics?name[]=x").await.status, 200);
    // HTTP/1.0 without a host header.
    let old = send_raw(at, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(old.status, 200);
    still_serving(at).await;
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_get_precise_4xx_and_the_listener_keeps_serving() {
    let admin = admin(AdminSources::new(proxy(CONFIG)));
    let at = admin.local_addr();

    // An 8 KiB path: answered 404, the path cut in the answer.
    let long = format!("/{}", "a".repeat(8 * 1024));
    let answer = get(at, &long).await;
    let v = problem(&answer, 404);
    let instance = v["instance"].as_str().expect("instance");
    assert!(instance.starts_with("/aaaa") && instance.ends_with('…') && instance.len() < 300, "{instance}");
    assert!(answer.body.len() < 1024, "the answer does not echo the whole path");

    // A head larger than the buffer: 431, not a hang or a crash.
    let huge = format!("/{}", "a".repeat(100 * 1024));
    assert_eq!(get(at, &huge).await.status, 431);
    let many_headers: String = (0..2000).map(|i| format!("x-h{i}: {}\r\n", "v".repeat(40))).collect();
    let raw = format!("GET /healthz HTTP/1.1\r\nhost: t\r\n{many_headers}\r\n");
    assert_eq!(send_raw(at, raw.as_bytes()).await.status, 431);

    // Malformed request lines and garbage: 400.
    for raw in [
        &b"G@T /healthz HTTP/1.1\r\nhost: t\r\n\r\n"[..],
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nhost: t\r\n\r\n",
        b"GET /hea lthz x HTTP/1.1\r\nhost: t\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nbad header line\r\n\r\n",
    ] {
        let answer = send_raw(at, raw).await;
        assert_eq!(answer.status, 400, "{:?} -> {answer:?}", String::from_utf8_lossy(raw));
    }
    // A body on a GET is read and ignored.
    let raw = b"GET /healthz HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"x\":[1,2]}";
    assert_eq!(send_raw(at, raw).await.status, 200);
    still_serving(at).await;
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_block_others() {
    let admin = admin(AdminSources::new(proxy(CONFIG)));
    let at = admin.local_addr();
    // Half a request line, then nothing: it holds one connection only.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(at).await.expect("connect");
        s.write_all(b"GET /metr").await.expect("write");
        slow.push(s);
    }
    still_serving(at).await;
    assert_eq!(get(at, "/metrics").await.status, 200);
    // Shutdown does not wait for the stalled heads (10 s header timeout): after the
    // grace they are cut, and shutdown says so.
    assert!(!admin.shutdown(Duration::from_millis(300)).await, "stalled connections had to be cut");
    for mut s in slow {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_keep_alive_connections_and_stops_listening() {
    let admin = admin(AdminSources::new(proxy(CONFIG)));
    let at = admin.local_addr();
    let mut keep = tokio::net::TcpStream::connect(at).await.expect("connect");
    keep.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = keep.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(admin.shutdown(Duration::from_secs(5)).await);
    let n = tokio::time::timeout(Duration::from_secs(5), keep.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(tokio::net::TcpStream::connect(at).await.is_err(), "no longer listening");
}

#[tokio::test]
async fn a_taken_or_foreign_address_is_a_bind_error_naming_it() {
    let sources = AdminSources::new(proxy(CONFIG));
    let first = admin(sources.clone());
    let taken = first.local_addr();
    match AdminServer::start(taken, sources.clone()) {
        Err(AdminError::Bind { addr, .. }) => assert_eq!(addr, taken),
        other => panic!("expected a bind error, got {other:?}"),
    }
    // TEST-NET-1 is no address of this machine: binding fails, nothing is sent.
    let foreign = "192.0.2.1:9900".parse().expect("addr");
    let err = AdminServer::start(foreign, sources).expect_err("not local");
    assert!(matches!(err, AdminError::Bind { addr, .. } if addr == foreign));
    assert!(err.to_string().starts_with("admin listener: cannot bind 192.0.2.1:9900: "), "{err}");
    assert!(first.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn the_config_section_starts_the_listener_or_names_the_bad_address() {
    use ballast_core::config::AdminConfig;
    let sources = AdminSources::new(proxy(CONFIG));
    let started = AdminServer::start_configured(&AdminConfig { listen: "127.0.0.1:0".into() }, sources.clone()).expect("starts");
    assert!(started.local_addr().ip().is_loopback() && started.local_addr().port() != 0);
    still_serving(started.local_addr()).await;
    assert!(started.shutdown(Duration::from_secs(5)).await);
    for bad in ["localhost:9900", "127.0.0.1", "", "127.0.0.1:99999"] {
        let err = AdminServer::start_configured(&AdminConfig { listen: bad.into() }, sources.clone()).expect_err(bad);
        assert!(matches!(&err, AdminError::Address { listen } if listen == bad), "{err:?}");
        assert_eq!(err.to_string(), format!("admin.listen: {bad:?} is not an IP:port listen address"));
    }
}
