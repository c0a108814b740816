//! Shared helpers of the admin integration tests: a real HTTP backend on a loopback
//! port 0, a real proxy in front of it, a raw HTTP/1.1 client and an exposition parser.
#![allow(dead_code)]

use ballast_admin::{AdminServer, AdminSources};
use ballast_proxy::{AccessLog, ProxyServer};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long `/slow` takes at least.
pub const SLOW: Duration = Duration::from_millis(30);

/// A backend: `/slow` answers 200 after [`SLOW`], `/fail` answers 503, anything else 200.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`Backend`].
pub async fn backend() -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let status = match req.uri().path() {
                        "/slow" => {
                            tokio::time::sleep(SLOW).await; // the latency under test
                            StatusCode::OK
                        }
                        "/fail" => StatusCode::SERVICE_UNAVAILABLE,
                        _ => StatusCode::OK,
                    };
                    let mut r = Response::new(Full::new(Bytes::from_static(b"hello\n")));
                    *r.status_mut() = status;
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Backend { addr, task }
}

/// A proxy from TOML `config` (validated first).
pub fn proxy(config: &str) -> Arc<ProxyServer> {
    let config = ballast_core::config::parse(config).expect("config parses");
    let errors = ballast_core::config::validate(&config);
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(ProxyServer::start(&config, AccessLog::off()).expect("proxy starts"))
}

/// An admin listener on a loopback port chosen by the OS.
pub fn admin(sources: AdminSources) -> AdminServer {
    AdminServer::start("127.0.0.1:0".parse().expect("addr"), sources).expect("admin starts")
}

/// A parsed HTTP/1.1 answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies are not decoded: the admin listener sends lengths).
    pub body: String,
}

impl Answer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Writes `raw` to `addr`, reads until the server closes, parses the answer.
pub async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything (e.g. 431).
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await.expect("answered in time");
    parse_answer(&out)
}

/// `GET path` with `connection: close`.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    send_raw(addr, format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").as_bytes()).await
}

/// `GET path` with `accept` and `connection: close`.
pub async fn get_accept(addr: SocketAddr, path: &str, accept: &str) -> Answer {
    send_raw(addr, format!("GET {path} HTTP/1.1\r\nhost: t\r\naccept: {accept}\r\nconnection: close\r\n\r\n").as_bytes()).await
}

/// What Prometheus 2.x sends as `Accept` when it scrapes.
pub const PROMETHEUS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn parse_answer(out: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.get(9..12)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}

/// The samples of an exposition, keyed by the series as written (`name{labels}`).
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_string(), value.parse::<f64>().expect("numeric value"))
        })
        .collect()
}

/// `samples[key]`, failing the test with the exposition when it is missing.
pub fn sample(all: &BTreeMap<String, f64>, key: &str) -> f64 {
    *all.get(key).unwrap_or_else(|| panic!("no series {key} in {all:#?}"))
}

/// Polls `cond` every 20 ms until it holds or `limit` passes (then fails with `what`).
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
}
