//! The upstream HTTP/1.1 client against raw-TCP backends that send odd or hostile
//! responses: the exact status the client gets, and whether the upstream connection is
//! reused (it must not be after a close-delimited body or a CL+TE response).

mod common;

use bytes::Bytes;
use common::{get, proxy, send, simple_config, TestBody};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A backend that runs `script` on every accepted connection.
struct Raw {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw<F, Fut>(script: F) -> Raw
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let script = Arc::new(script);
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_nodelay(true);
            conns.spawn((script.clone())(s));
        }
    });
    Raw { addr, accepted, task }
}

/// Reads one request head; `None` when the peer closed. Returns the head and any bytes
/// read past it.
async fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A backend answering every request on a connection with `response`.
async fn answering(response: &'static [u8]) -> Raw {
    raw(move |mut s| async move {
        while read_head(&mut s).await.is_some() {
            if s.write_all(response).await.is_err() {
                return;
            }
        }
    })
    .await
}

async fn proxy_to(b: &Raw) -> (ballast_proxy::ProxyServer, SocketAddr) {
    proxy(&simple_config(&[b.addr], "", "")).await
}

/// Sends a GET; `Err` when the response was cut (head or body).
async fn try_get(addr: SocketAddr) -> Result<(StatusCode, Bytes), String> {
    let stream = TcpStream::connect(addr).await.expect("connect proxy");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(get("/")).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes()))
}

#[tokio::test]
async fn cl_plus_te_is_read_as_chunked_and_its_connection_is_not_reused() {
    let b = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    let (_p, addr) = proxy_to(&b).await;
    for _ in 0..2 {
        let got = send(addr, get("/")).await;
        assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &b"hello"[..]));
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2, "a CL+TE response's connection was reused");
}

#[tokio::test]
async fn conflicting_or_invalid_content_lengths_get_502() {
    for response in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\nabc",
    ] {
        let b = answering(response).await;
        let (_p, addr) = proxy_to(&b).await;
        let got = send(addr, get("/")).await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", String::from_utf8_lossy(response));
    }
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_502() {
    let big: &'static [u8] = {
        let mut v = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
        v.extend(std::iter::repeat_n(b'a', 70 * 1024));
        v.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
        v.leak()
    };
    let many: &'static [u8] = {
        let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..101 {
            v.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        v.extend_from_slice(b"content-length: 0\r\n\r\n");
        v.leak()
    };
    for response in [big, many] {
        let b = answering(response).await;
        let (_p, addr) = proxy_to(&b).await;
        assert_eq!(send(addr, get("/")).await.status, StatusCode::BAD_GATEWAY);
    }
}

#[tokio::test]
async fn chunked_bodies_with_trailers_arrive_whole_and_keep_the_connection() {
    let b = answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nx-sum: 7\r\n\r\n",
    )
    .await;
    let (_p, addr) = proxy_to(&b).await;
    for _ in 0..3 {
        let got = send(addr, get("/")).await;
        assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &b"abcdefg"[..]));
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1, "a clean chunked response's connection is reused");
}

#[tokio::test]
async fn a_bad_chunk_size_aborts_the_body_and_drops_the_connection() {
    let b = answering(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nnope\r\n0\r\n\r\n").await;
    let (_p, addr) = proxy_to(&b).await;
    // The head and the first chunk may or may not reach the client before the abort;
    // what it must never get is a body that looks whole.
    for _ in 0..2 {
        let got = try_get(addr).await;
        assert!(got.is_err(), "a cut body looked whole: {got:?}");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2, "the broken connection was reused");
}

#[tokio::test]
async fn a_close_delimited_body_is_relayed_and_its_connection_never_reused() {
    let b = raw(|mut s| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await;
            let _ = s.write_all(b"close").await;
        }
    })
    .await;
    let (_p, addr) = proxy_to(&b).await;
    for _ in 0..2 {
        let got = send(addr, get("/")).await;
        assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &b"until close"[..]));
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http_1_0_keeps_the_connection_only_with_keep_alive() {
    let plain = answering(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let kept = answering(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok").await;
    for (b, want) in [(&plain, 2), (&kept, 1)] {
        let (_p, addr) = proxy_to(b).await;
        for _ in 0..2 {
            let got = send(addr, get("/")).await;
            assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &b"ok"[..]));
        }
        assert_eq!(b.accepted.load(Ordering::SeqCst), want);
    }
}

#[tokio::test]
async fn informational_heads_are_skipped_and_a_head_may_come_byte_by_byte() {
    let continued = answering(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone").await;
    let (_p, addr) = proxy_to(&continued).await;
    let got = send(addr, get("/")).await;
    assert_eq!((got.status, &got.body[..]), (StatusCode::CREATED, &b"done"[..]));

    let trickle = raw(|mut s| async move {
        while read_head(&mut s).await.is_some() {
            for b in b"HTTP/1.1 200 OK\r\nx-slow: yes\r\ncontent-length: 5\r\n\r\nslow!" {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
    })
    .await;
    let (_p2, addr) = proxy_to(&trickle).await;
    let got = send(addr, get("/")).await;
    assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &b"slow!"[..]));
    assert_eq!(got.headers["x-slow"], "yes");
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_does_not_fail_the_next_request() {
    // Answers one request per connection, keep-alive announced, then closes.
    let b = answering_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let (_p, addr) = proxy_to(&b).await;
    for i in 0..5 {
        let got = send(addr, get("/")).await;
        assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &b"ok"[..]), "request {i}");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 5);
}

async fn answering_once(response: &'static [u8]) -> Raw {
    raw(move |mut s| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s.write_all(response).await;
        }
    })
    .await
}

/// Reads a chunked request body off `s` (after `rest`) and echoes each piece as a chunk,
/// having sent the response head before reading any of it.
async fn echo_chunked(mut s: TcpStream, mut rest: Vec<u8>) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // A size line.
        let line_end = loop {
            if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).expect("ascii"), 16).expect("hex");
        rest.drain(..line_end + 2);
        while rest.len() < size + 2 {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
        let data: Vec<u8> = rest.drain(..size + 2).take(size).collect();
        let mut out = format!("{size:x}\r\n").into_bytes();
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        if s.write_all(&out).await.is_err() || size == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn a_backend_that_answers_before_reading_the_upload_gets_all_of_it_echoed() {
    let b = raw(|mut s| async move {
        if let Some((_, rest)) = read_head(&mut s).await {
            echo_chunked(s, rest).await;
        }
    })
    .await;
    let (_p, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    // 4 MiB in 64 KiB frames of unknown total length: chunked upstream, and far more
    // than the socket buffers hold, so the upload and the echo must run together.
    let pieces: Vec<Bytes> = (0..64u8).map(|i| Bytes::from(vec![i; 64 * 1024])).collect();
    let want: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
    let stream = futures_util::stream::iter(pieces.into_iter().map(|p| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http_body::Frame::data(p))));
    let body: TestBody = http_body_util::StreamBody::new(stream).boxed();
    let req = Request::post("/echo").header("host", "test.local").body(body).expect("request");
    let got = tokio::time::timeout(Duration::from_secs(30), send(addr, req)).await.expect("no deadlock");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.len(), want.len());
    assert!(got.body[..] == want[..], "the echo differs from the upload");
}

#[tokio::test]
async fn a_head_response_declaring_a_length_has_no_body_and_keeps_the_connection() {
    let b = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n").await;
    let (_p, addr) = proxy_to(&b).await;
    for _ in 0..3 {
        let req = Request::head("/").header("host", "test.local").body(common::empty()).expect("request");
        let got = tokio::time::timeout(Duration::from_secs(10), send(addr, req)).await.expect("no wait for a body");
        assert_eq!((got.status, got.body.len()), (StatusCode::OK, 0));
        assert_eq!(got.headers["content-length"], "10");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_with_bytes_past_its_body_does_not_go_back_to_the_pool() {
    // A 204 followed by garbage: the garbage must not become the next response.
    let b = answering(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale").await;
    let (_p, addr) = proxy_to(&b).await;
    for _ in 0..2 {
        let got = send(addr, get("/")).await;
        assert_eq!((got.status, got.body.len()), (StatusCode::NO_CONTENT, 0));
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_get_handed_back_unsent_and_then_failing_still_gets_its_last_retry() {
    // Three instances in round-robin order: one that refuses connections (the request
    // comes back untouched), one that drops every request it reads (a failure after
    // sending), one that answers. With two retries allowed, every GET must end with a
    // 200 whichever of them comes first: a request handed back unsent must keep its
    // spare empty body for the attempt after the next one.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let dropping = raw(|mut s| async move {
        let _ = read_head(&mut s).await;
    })
    .await;
    let good = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let toml = simple_config(&[refused, dropping.addr, good.addr], "", "[pool.retry]\nattempts = 2\nmin_per_second = 1000\n");
    let (_server, addr) = proxy(&toml).await;
    for i in 0..9 {
        let got = try_get(addr).await;
        assert_eq!(got.map(|(s, _)| s), Ok(StatusCode::OK), "request {i}");
    }
}
