//! The pooled keep-alive client to upstream instances and the classification of its
//! failures into [`ProxyError`]s (connect vs. after-connect, timeout, body cap).

use crate::body::{is_body_too_large, RequestBody};
use crate::error::ProxyError;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// The upstream client: HTTP/1.1 over pooled keep-alive TCP connections.
pub type UpstreamClient = Client<HttpConnector, RequestBody>;

/// Idle upstream connections kept per instance. Large, so that a burst's connections are
/// reused rather than re-opened (which costs a handshake and a TIME_WAIT socket each).
const POOL_MAX_IDLE_PER_HOST: usize = 1024;
/// How long an idle upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A client with the given connect timeout, `TCP_NODELAY` and TCP keep-alive on.
pub fn build_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Sends `req` to `addr` and waits at most `timeout` for the response head.
pub async fn send(
    client: &UpstreamClient,
    req: Request<RequestBody>,
    addr: &Authority,
    timeout: Duration,
) -> Result<Response<Incoming>, ProxyError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(ProxyError::UpstreamTimeout { addr: addr.to_string(), after: timeout }),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(source)) => Err(classify(source, addr)),
    }
}

fn classify(source: hyper_util::client::legacy::Error, addr: &Authority) -> ProxyError {
    if let Some(limit) = is_body_too_large(&source) {
        ProxyError::BodyTooLarge { limit }
    } else if source.is_connect() {
        ProxyError::Connect { addr: addr.to_string(), source }
    } else {
        ProxyError::Upstream { addr: addr.to_string(), source }
    }
}
