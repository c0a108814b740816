//! Readiness probes the controller runs against its own instances: an HTTP GET (2xx or
//! 3xx passes) or a bare TCP connect. The proxy's active health checker keeps judging
//! traffic eligibility; this probe only decides when a new instance is ready and when a
//! ready one has been failing long enough to replace.

use crate::provider::BoxFuture;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Checks one instance.
pub trait Probe: Send + Sync {
    /// True when `address` (`host:port`) is healthy.
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, bool>;
}

/// `GET http://<address><path>`; a 2xx or 3xx answer within the timeout passes.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    path: String,
    timeout: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpProbe {
    /// Probes `path` (must start with `/`; anything else is replaced by `/`).
    pub fn new(path: &str, timeout: Duration) -> Self {
        let path = if path.starts_with('/') { path.to_string() } else { "/".to_string() };
        HttpProbe { path, timeout, client: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl Probe for HttpProbe {
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Ok(uri) = format!("http://{address}{}", self.path).parse::<hyper::Uri>() else { return false };
            match tokio::time::timeout(self.timeout, self.client.get(uri)).await {
                Ok(Ok(resp)) => resp.status().is_success() || resp.status().is_redirection(),
                _ => false,
            }
        })
    }
}

/// A TCP connect within the timeout passes.
#[derive(Debug, Clone, Copy)]
pub struct TcpProbe {
    /// Connect timeout.
    pub timeout: Duration,
}

impl Probe for TcpProbe {
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            matches!(tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(address)).await, Ok(Ok(_)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_pass_on_a_live_server_and_fail_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz ");
                let status = if ok { "200 OK" } else { "500 Oops" };
                let _ = s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes()).await;
            }
        });
        let t = Duration::from_secs(5);
        assert!(HttpProbe::new("/healthz", t).check(&addr).await);
        assert!(!HttpProbe::new("/other", t).check(&addr).await, "500 fails");
        assert!(TcpProbe { timeout: t }.check(&addr).await);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("a").to_string();
        assert!(!TcpProbe { timeout: t }.check(&closed).await);
        assert!(!HttpProbe::new("/healthz", t).check(&closed).await);
        assert!(!HttpProbe::new("/", t).check("not an address").await);
    }
}
