//! Hostile and malformed requests get precise statuses and do not disturb other clients.

mod common;

use common::*;
use http::{Request, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes raw bytes on a new connection and returns everything read until the proxy
/// closes the connection (or 5 s pass, which fails the calling test's expectations).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_in_either_order() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let cases: [&[u8]; 3] = [
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    ];
    for case in cases {
        let resp = raw(addr, case).await;
        assert_eq!(status_line(&resp), "HTTP/1.1 400 Bad Request", "{resp}");
    }
    // A smuggled second request must not reach the backend either way: the connection
    // is closed after the 400.
    let resp = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert_eq!(resp.matches("HTTP/1.1").count(), 1, "{resp}");
    assert_eq!(send(addr, get("/ok")).await.status, StatusCode::OK, "others unaffected");
}

#[tokio::test]
async fn plain_chunked_request_is_forwarded() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let resp = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&resp), "HTTP/1.1 200 OK", "{resp}");
    assert!(resp.contains("\"received\":4"), "{resp}");
}

#[tokio::test]
async fn bad_request_line_is_400() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    for bad in [&b"GARBAGE\r\n\r\n"[..], b"GET /\x01 HTTP/1.1\r\n\r\n", b"GET / HTTP/9.9\r\nHost: t\r\n\r\n"] {
        let resp = raw(addr, bad).await;
        assert!(status_line(&resp).starts_with("HTTP/1.1 400") || status_line(&resp).starts_with("HTTP/1.1 505"), "{bad:?}: {resp}");
    }
    assert_eq!(send(addr, get("/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "[balancer.limits]\nmax_header_bytes = 16384", "")).await;
    let big = "x".repeat(32 * 1024);
    let resp = raw(addr, format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes()).await;
    assert_eq!(status_line(&resp), "HTTP/1.1 431 Request Header Fields Too Large", "{resp}");
    let fits = "y".repeat(8 * 1024);
    let ok = send(addr, Request::get("/").header("x-big", fits).body(empty()).expect("req")).await;
    assert_eq!(ok.status, StatusCode::OK, "a head under the limit passes");
}

#[tokio::test]
async fn body_over_the_limit_is_413_declared_or_streamed() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "[balancer.limits]\nmax_body_bytes = 1000", "")).await;
    let declared = send(addr, Request::post("/").body(full(vec![b'a'; 1001])).expect("req")).await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    let at_limit = send(addr, Request::post("/").body(full(vec![b'a'; 1000])).expect("req")).await;
    assert_eq!(at_limit.status, StatusCode::OK);
    let chunk = format!("{:x}\r\n{}\r\n", 600, "b".repeat(600));
    let streamed = raw(
        addr,
        format!("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_line(&streamed), "HTTP/1.1 413 Payload Too Large", "{streamed}");
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_other_clients_are_served() {
    let b = echo("a").await;
    let (_proxy, addr) =
        proxy(&simple_config(&[b.addr], "[balancer.timeouts]\nheader_read = \"300ms\"", "")).await;
    let slow = TcpStream::connect(addr).await.expect("connect");
    stall_head_and_expect_cut_off(slow, addr).await;
}

/// Starts a head on `slow` and never finishes it: another client is served meanwhile,
/// and the proxy closes `slow` (with 408 or nothing) after the 300 ms header-read limit.
async fn stall_head_and_expect_cut_off(mut slow: TcpStream, addr: std::net::SocketAddr) {
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.expect("write");
    let started = tokio::time::Instant::now();
    assert_eq!(send(addr, get("/")).await.status, StatusCode::OK);
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow connection must be closed by the proxy");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "closed too early: {elapsed:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

/// Reads one response with a `Content-Length` body from `s`; returns its head.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .expect("a content-length");
            if buf.len() >= end + 4 + len {
                return head;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await.expect("in time").expect("read");
        assert!(n > 0, "closed before a full response: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_slow_head_after_a_keep_alive_request_is_cut_off() {
    let b = echo("a").await;
    let (_proxy, addr) =
        proxy(&simple_config(&[b.addr], "[balancer.timeouts]\nheader_read = \"300ms\"", "")).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..3 {
        slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
        let head = read_response(&mut slow).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    stall_head_and_expect_cut_off(slow, addr).await;
}

#[tokio::test]
async fn a_body_slower_than_the_header_limit_is_not_cut_off() {
    let b = echo("a").await;
    let (_proxy, addr) =
        proxy(&simple_config(&[b.addr], "[balancer.timeouts]\nheader_read = \"200ms\"", "")).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n").await.expect("write");
    // The head is complete; the body takes three header limits to arrive.
    for part in [&b"ab"[..], b"cd", b"ef"] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(part).await.expect("write body");
    }
    let head = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // And the connection still serves the next request.
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connect_method_is_refused() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let resp = raw(addr, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").await;
    assert_eq!(status_line(&resp), "HTTP/1.1 400 Bad Request", "{resp}");
}
