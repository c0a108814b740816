//! Shared helpers of the proxy's integration tests: in-process hyper backends on
//! loopback port 0, proxies started from TOML text, and small clients.
#![allow(dead_code)]

use ballast_core::config::Config;
use ballast_proxy::{AccessLog, ProxyServer};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A response body for test backends.
pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A full body.
pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e: Infallible| match e {}).boxed()
}

/// An in-process HTTP/1.1 backend. Dropping or [`Backend::kill`]ing it aborts its
/// accept loop and every open connection, like a SIGKILLed process.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Stops accepting and drops every connection at once.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a backend serving `handler` (with upgrades enabled).
pub async fn backend<F, Fut>(handler: F) -> Backend
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
    serve_backend(listener, handler)
}

/// [`echo`] on a given address (an instance restarted where it was).
pub async fn echo_on(name: &'static str, addr: SocketAddr) -> Backend {
    let listener = TcpListener::bind(addr).await.expect("rebind backend");
    serve_backend(listener, move |req| echo_response(name, req))
}

fn serve_backend<F, Fut>(listener: TcpListener, handler: F) -> Backend
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let addr = listener.local_addr().expect("addr");
    let handler = Arc::new(handler);
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let handler = handler.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend { addr, accepted, task }
}

/// A backend answering with JSON describing the request: its `name`, method, URI,
/// headers (name → list of values) and the number of body bytes it read.
pub async fn echo(name: &'static str) -> Backend {
    backend(move |req| echo_response(name, req)).await
}

/// The echo handler of [`echo`].
pub async fn echo_response(name: &str, req: Request<Incoming>) -> Response<TestBody> {
    let (parts, mut body) = req.into_parts();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => received += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<serde_json::Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        headers.insert(name.as_str().to_string(), values.into());
    }
    let v = serde_json::json!({
        "backend": name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "received": received,
    });
    let mut resp = Response::new(full(v.to_string()));
    resp.headers_mut().insert("content-type", "application/json".parse().expect("static"));
    resp.headers_mut().insert("x-backend", name.parse().expect("name"));
    resp
}

/// Parses TOML into a config.
pub fn config(toml_text: &str) -> Config {
    toml::from_str(toml_text).expect("test config parses")
}

/// Starts a proxy for `toml_text`; returns it and the address of balancer `web`.
pub async fn proxy(toml_text: &str) -> (ProxyServer, SocketAddr) {
    let server = ProxyServer::start(&config(toml_text), AccessLog::off()).expect("proxy starts");
    let addr = server.local_addr("web").expect("balancer web");
    (server, addr)
}

/// One balancer `web` on port 0 routing everything to pool `app` of `backends`.
pub fn simple_config(backends: &[SocketAddr], extra_balancer: &str, extra_pool: &str) -> String {
    let instances: String =
        backends.iter().map(|a| format!("[[pool.instance]]\naddress = \"{a}\"\n")).collect();
    format!(
        "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n{extra_balancer}\n\
         [[balancer.route]]\nsplit = [{{ pool = \"app\" }}]\n\n\
         [[pool]]\nname = \"app\"\nbalance = \"round-robin\"\n{extra_pool}\n{instances}"
    )
}

/// A complete response.
pub struct Got {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Got {
    /// The body as JSON (echo backends).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("json body ({e}): {:?}", self.body))
    }

    /// The values of request header `name` as the echo backend saw it.
    pub fn seen_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
}

/// Sends `req` over a fresh HTTP/1.1 connection to `addr` and reads the whole response.
pub async fn send(addr: SocketAddr, req: Request<TestBody>) -> Got {
    let stream = TcpStream::connect(addr).await.expect("connect proxy");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("response");
    collect(resp).await
}

/// Reads a response to the end.
pub async fn collect(resp: Response<Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got { status: parts.status, headers: parts.headers, body }
}

/// A GET of `path` with a Host header.
pub fn get(path: &str) -> Request<TestBody> {
    Request::get(path).header("host", "test.local").body(empty()).expect("request")
}

/// An empty body.
pub fn empty() -> TestBody {
    Empty::new().map_err(|e: Infallible| match e {}).boxed()
}

/// A pooled HTTP/1.1 client (keep-alive), for many requests.
pub fn pooled_client() -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, TestBody> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// An address nothing listens on (bound, then closed: connects are refused).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}
