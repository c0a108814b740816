//! The client side of HTTP/1.1 over raw sockets, served by our own loop: pipelining,
//! keep-alive rules, request bodies (`Content-Length`, chunked, `Expect: 100-continue`),
//! and the hand-over to hyper mid-connection.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for reads; never the thing a test measures.
const PATIENCE: Duration = Duration::from_secs(5);

/// One response read off `s`: its head, and its body (by `Content-Length`, or chunked).
async fn response(s: &mut TcpStream, pending: &mut Vec<u8>) -> (String, Vec<u8>) {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let lower = head.to_ascii_lowercase();
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().expect("a length"));
            let chunked = lower.contains("transfer-encoding: chunked");
            let body_start = end + 4;
            if let Some(n) = length {
                if pending.len() >= body_start + n {
                    let body = pending[body_start..body_start + n].to_vec();
                    pending.drain(..body_start + n);
                    return (head, body);
                }
            } else if chunked {
                if let Some(stop) = pending[body_start..].windows(5).position(|w| w == b"0\r\n\r\n") {
                    let body = pending[body_start..body_start + stop].to_vec();
                    pending.drain(..body_start + stop + 5);
                    return (head, body);
                }
            } else {
                pending.drain(..body_start);
                return (head, Vec::new());
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk)).await.expect("in time").expect("read");
        assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(pending));
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// A new connection to `addr` on which `bytes` were written.
async fn sent(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    s
}

/// The echo backend's JSON description of the request it got.
fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("echo json")
}

/// Everything the proxy sends on `s` until it closes it (within the patience).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await.expect("closed in time").expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the proxy closes `s` (EOF) within the patience.
async fn closes(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest)).await, Ok(Ok(_))) && rest.is_empty()
}

fn uri_of(body: &[u8]) -> String {
    json(body)["uri"].as_str().expect("uri").to_string()
}

async fn started() -> (Backend, ballast_proxy::ProxyServer, SocketAddr) {
    let b = echo("a").await;
    let (server, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    (b, server, addr)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_b, _server, addr) = started().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(uri_of(&body), "/1");
    // A HEAD response announces a length and carries no body.
    let head_resp = {
        loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let h = String::from_utf8_lossy(&pending[..end]).into_owned();
                pending.drain(..end + 4);
                break h;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk)).await.expect("in time").expect("read");
            assert!(n > 0);
            pending.extend_from_slice(&chunk[..n]);
        }
    };
    assert!(head_resp.starts_with("HTTP/1.1 200") && head_resp.contains("content-length"), "{head_resp}");
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(uri_of(&body), "/3", "the third answer follows the bodyless HEAD directly");
}

#[tokio::test]
async fn a_request_with_a_body_mid_connection_is_served_and_the_connection_goes_on() {
    let (_b, _server, addr) = started().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut pending = Vec::new();
    s.write_all(b"GET /before HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    assert_eq!(uri_of(&response(&mut s, &mut pending).await.1), "/before");
    // A body, pipelined with a bodyless request after it: both reach the backend whole.
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v = json(&body);
    assert_eq!((v["uri"].as_str(), v["received"].as_u64()), (Some("/upload"), Some(5)));
    assert_eq!(uri_of(&response(&mut s, &mut pending).await.1), "/after");
}

#[tokio::test]
async fn http_1_0_keeps_the_connection_only_when_asked_and_close_is_honoured() {
    let (_b, _server, addr) = started().await;
    let mut pending = Vec::new();
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..2 {
        kept.write_all(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await.expect("write");
        let (head, _) = response(&mut kept, &mut pending).await;
        assert!(head.to_ascii_lowercase().contains("connection: keep-alive"), "{head}");
    }
    for (ask, what) in [(&b"GET /p HTTP/1.0\r\n\r\n"[..], "plain 1.0"), (b"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n", "close")] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(ask).await.expect("write");
        let mut pending = Vec::new();
        let (head, _) = response(&mut s, &mut pending).await;
        assert!(head.to_ascii_lowercase().contains("connection: close"), "{what}: {head}");
        assert!(closes(&mut s).await, "{what}: the proxy must close after the response");
    }
}

#[tokio::test]
async fn a_head_not_finished_in_time_gets_408_and_the_connection_closes() {
    let b = echo("a").await;
    let (_server, addr) = proxy(&simple_config(&[b.addr], "[balancer.timeouts]\nheader_read = \"200ms\"", "")).await;
    let mut s = sent(addr, b"GET / HTTP/1.1\r\nHost: t\r\n").await;
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{text}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_not_cut_by_the_header_limit() {
    let b = echo("a").await;
    let (_server, addr) = proxy(&simple_config(&[b.addr], "[balancer.timeouts]\nheader_read = \"100ms\"", "")).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut pending = Vec::new();
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    response(&mut s, &mut pending).await;
    // Three header limits with nothing sent: `idle` (60 s) governs an empty wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    assert_eq!(uri_of(&response(&mut s, &mut pending).await.1), "/2");
}

#[tokio::test]
async fn a_smuggling_shaped_head_after_a_lean_request_is_still_400() {
    let (_b, _server, addr) = started().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut pending = Vec::new();
    s.write_all(b"GET /lean HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    assert_eq!(uri_of(&response(&mut s, &mut pending).await.1), "/lean");
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .await
        .expect("write");
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
}

/// Reads until `s` has sent a whole head (up to the empty line); returns it.
async fn head_only(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte)).await.expect("in time").expect("read");
        assert!(n > 0, "closed before a head: {}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn expect_100_continue_gets_its_interim_answer_then_the_body_goes_through() {
    let (_b, _server, addr) = started().await;
    let mut s = sent(addr, b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n").await;
    // The client sends nothing more until it is told to go on.
    assert_eq!(head_only(&mut s).await, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"abcdef").await.expect("write body");
    let (head, body) = response(&mut s, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v = json(&body);
    assert_eq!(v["received"], 6);
}

#[tokio::test]
async fn an_expected_body_over_the_limit_is_refused_without_100_and_the_connection_closes() {
    let b = echo("a").await;
    let (_server, addr) = proxy(&simple_config(&[b.addr], "[balancer.limits]\nmax_body_bytes = 10", "")).await;
    let mut s = sent(addr, b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n").await;
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
}

#[tokio::test]
async fn a_chunked_body_reaches_the_backend_whole_and_the_connection_goes_on() {
    let (_b, _server, addr) = started().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut pending = Vec::new();
    s.write_all(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nx-sum: 7\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v = json(&body);
    assert_eq!((v["uri"].as_str(), v["received"].as_u64()), (Some("/c"), Some(7)));
    s.write_all(b"GET /then HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    assert_eq!(uri_of(&response(&mut s, &mut pending).await.1), "/then");
}

#[tokio::test]
async fn what_the_loop_cannot_take_apart_is_400_and_the_connection_closes() {
    let (_b, _server, addr) = started().await;
    let cases: [(&str, &[u8]); 2] = [
        ("a target the URI type refuses", b"GET /a<b HTTP/1.1\r\nHost: t\r\n\r\n"),
        (
            "a malformed chunked body",
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n",
        ),
    ];
    for (what, wire) in cases {
        let text = until_closed(&mut sent(addr, wire).await).await;
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{what}: {text}");
    }
}

#[tokio::test]
async fn an_upgrade_the_backend_declines_is_an_ordinary_exchange_and_the_connection_goes_on() {
    let (_b, _server, addr) = started().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut pending = Vec::new();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").await.expect("write");
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v = json(&body);
    assert_eq!(v["headers"]["upgrade"][0], "websocket", "the handshake reaches the backend: {v}");
    s.write_all(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    assert_eq!(uri_of(&response(&mut s, &mut pending).await.1), "/after");
}

#[tokio::test]
async fn a_client_gone_mid_body_gives_its_request_up_and_the_upstream_connection_is_dropped() {
    // A backend that never answers: it reports how many bytes it got before EOF.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = listener.local_addr().expect("addr");
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut up, _) = listener.accept().await.expect("accept");
        let mut all = Vec::new();
        let _ = up.read_to_end(&mut all).await;
        let _ = got_tx.send(all);
    });
    let (_server, addr) = proxy(&simple_config(&[backend], "", "")).await;
    let s = sent(addr, b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789").await;
    drop(s);
    let got = tokio::time::timeout(PATIENCE, got_rx).await.expect("the upstream connection closes").expect("sent");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("POST /up HTTP/1.1\r\n"), "{text}");
    let body = &got[got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4..];
    assert!(body.len() < 100, "no whole body may reach the backend: {} bytes", body.len());
    task.await.expect("backend task");
}
