//! Bodies stream both ways (100 MB never sits whole in the proxy), and HTTP/2 with prior
//! knowledge (h2c) is served.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

const CHUNK: usize = 64 * 1024;
const TOTAL: u64 = 100 * 1024 * 1024;

/// A body fed from a channel.
fn channel_body() -> (mpsc::Sender<Bytes>, TestBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let s = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(s).boxed())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100mb_upload_streams_through() {
    // The backend signals when its first bytes arrive; the client sends the rest only
    // then. A proxy that buffered the whole body would deadlock here.
    let first_seen = Arc::new(Notify::new());
    let notify = first_seen.clone();
    let b = backend(move |req| {
        let notify = notify.clone();
        async move {
            let mut body = req.into_body();
            let mut received = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                if received == 0 {
                    notify.notify_one();
                }
                received += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Response::new(full(received.to_string()))
        }
    })
    .await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let (tx, body) = channel_body();
    let rss_before = rss_kib();
    let req = Request::post("/upload").header("content-length", TOTAL.to_string()).body(body).expect("req");
    let response = tokio::spawn(send(addr, req));
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    tx.send(chunk.clone()).await.expect("first chunk");
    first_seen.notified().await;
    for _ in 1..(TOTAL / CHUNK as u64) {
        tx.send(chunk.clone()).await.expect("chunk");
    }
    drop(tx);
    let got = response.await.expect("task");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body[..], TOTAL.to_string().as_bytes());
    let growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 50, "RSS grew {growth_mib} MiB for a 100 MiB upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100mb_download_streams_through() {
    // The backend sends one chunk, then waits until the client has it.
    let client_got_first = Arc::new(Notify::new());
    let gate = client_got_first.clone();
    let b = backend(move |_req| {
        let gate = gate.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![9u8; CHUNK]);
                let _ = tx.send(chunk.clone()).await;
                gate.notified().await;
                for _ in 1..(TOTAL / CHUNK as u64) {
                    if tx.send(chunk.clone()).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(body)
        }
    })
    .await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("hs");
    tokio::spawn(conn);
    let rss_before = rss_kib();
    let resp = sender.send_request(get("/download")).await.expect("response head");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("frame");
        if received == 0 {
            client_got_first.notify_one();
        }
        received += frame.data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, TOTAL);
    let growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 50, "RSS grew {growth_mib} MiB for a 100 MiB download");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served_with_concurrent_streams() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2");
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::post(format!("http://h2.test:8443/item/{i}?q={i}"))
                .body(full(vec![b'z'; i * 10]))
                .expect("req");
            let resp = sender.send_request(req).await.expect("response");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            collect(resp).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let got = t.await.expect("task");
        assert_eq!(got.status, StatusCode::OK);
        let j = got.json();
        assert_eq!(j["uri"], format!("/item/{i}?q={i}"));
        assert_eq!(j["version"], "HTTP/1.1", "upstream speaks HTTP/1.1");
        assert_eq!(j["received"], i * 10);
        assert_eq!(got.seen_header("host"), ["h2.test:8443"], ":authority becomes Host");
        assert_eq!(got.seen_header("x-forwarded-host"), ["h2.test:8443"]);
        assert!(!got.headers.contains_key("connection"), "no connection headers over h2");
    }
}
