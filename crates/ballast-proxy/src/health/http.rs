//! HTTP and HTTPS probes: `GET path` with the configured `Host`, healthy when the status
//! is in `expected_status` and (when set) the body contains `body_contains`.

use super::error::HealthError;
use super::tls::probe_client_config;
use ballast_core::config::{HealthCheckConfig, HealthCheckKind, StatusRange};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Most body bytes read looking for `body_contains`; a health page larger than this is
/// only searched in its first 64 KiB (and a hostile endless body cannot hold the probe).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("ballast-health/", env!("CARGO_PKG_VERSION"));

/// A prepared HTTP(S) probe.
pub(super) struct HttpProbe {
    path: PathAndQuery,
    host: Option<HeaderValue>,
    expected: StatusRange,
    needle: Option<String>,
    tls: Option<TlsConnector>,
}

impl HttpProbe {
    pub(super) fn new(cfg: &HealthCheckConfig) -> Result<Self, HealthError> {
        let bad_path = |reason: String| HealthError::Config { field: "path", reason };
        if !cfg.path.starts_with('/') {
            return Err(bad_path(format!("{:?} must start with '/'", cfg.path)));
        }
        let path = cfg.path.parse::<PathAndQuery>().map_err(|e| bad_path(format!("{:?}: {e}", cfg.path)))?;
        let host = match &cfg.host {
            Some(h) => Some(HeaderValue::from_str(h).map_err(|_| HealthError::Config {
                field: "host",
                reason: format!("{h:?} is not a valid Host header value"),
            })?),
            None => None,
        };
        let tls = match cfg.kind {
            HealthCheckKind::Https => Some(TlsConnector::from(
                probe_client_config().map_err(|e| HealthError::Tls(format!("client setup: {e}")))?,
            )),
            _ => None,
        };
        Ok(HttpProbe { path, host, expected: cfg.expected_status, needle: cfg.body_contains.clone(), tls })
    }

    /// Probes the instance configured as `addr`, resolved to `target`.
    pub(super) async fn check(&self, addr: &str, target: SocketAddr) -> Result<String, HealthError> {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|source| HealthError::Connect { addr: target.to_string(), source })?;
        let _ = tcp.set_nodelay(true);
        let host = match &self.host {
            Some(h) => h.clone(),
            None => HeaderValue::from_str(addr).map_err(|_| HealthError::Config {
                field: "host",
                reason: format!("instance address {addr:?} is not a valid Host header; set health.host"),
            })?,
        };
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.path.clone())
            .header(header::HOST, host.clone())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| HealthError::Http(e.to_string()))?;
        match &self.tls {
            None => self.exchange(TokioIo::new(tcp), req).await,
            Some(connector) => {
                let name = server_name(host.to_str().unwrap_or_default(), target);
                let tls = connector.connect(name, tcp).await.map_err(|e| HealthError::Tls(e.to_string()))?;
                self.exchange(TokioIo::new(tls), req).await
            }
        }
    }

    async fn exchange<I>(&self, io: I, req: Request<Empty<Bytes>>) -> Result<String, HealthError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let http_err = |e: hyper::Error| HealthError::Http(e.to_string());
        let (mut sender, mut conn) = hyper::client::conn::http1::handshake(io).await.map_err(http_err)?;
        let work = async {
            let resp = sender.send_request(req).await.map_err(http_err)?;
            let status = resp.status().as_u16();
            if !self.expected.contains(status) {
                return Err(HealthError::Status { status, expected: self.expected });
            }
            if let Some(needle) = &self.needle {
                body_contains(resp.into_body(), needle).await?;
                return Ok(format!("status {status}, body matched"));
            }
            Ok(format!("status {status}"))
        };
        tokio::pin!(work);
        // Drive the connection and the exchange together; the connection may finish first
        // (server closed after a complete response), then the exchange still completes.
        tokio::select! {
            r = &mut work => r,
            c = &mut conn => {
                c.map_err(http_err)?;
                work.await
            }
        }
    }
}

/// Reads at most [`MAX_BODY_BYTES`], stopping as soon as `needle` is found.
async fn body_contains(mut body: hyper::body::Incoming, needle: &str) -> Result<(), HealthError> {
    let needle_bytes = needle.as_bytes();
    let mut seen: Vec<u8> = Vec::new();
    while seen.len() < MAX_BODY_BYTES {
        let Some(frame) = body.frame().await else { break };
        let frame = frame.map_err(|e| HealthError::Http(format!("reading body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let room = MAX_BODY_BYTES - seen.len();
            seen.extend_from_slice(&data[..data.len().min(room)]);
            if contains(&seen, needle_bytes) {
                return Ok(());
            }
        }
    }
    Err(HealthError::BodyMismatch { needle: needle.to_string(), read: seen.len() })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// SNI for the probe: the host part of the `Host` value when it is a DNS name or an IP,
/// else the resolved IP.
fn server_name(host: &str, target: SocketAddr) -> ServerName<'static> {
    let bare = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).unwrap_or_else(|_| ServerName::IpAddress(target.ip().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_search_handles_edges() {
        assert!(contains(b"abc", b""));
        assert!(contains(b"xxOKxx", b"OK"));
        assert!(!contains(b"O", b"OK"));
    }

    #[test]
    fn sni_comes_from_the_host_header_or_the_address() {
        let t: SocketAddr = "10.0.0.7:8443".parse().expect("addr");
        assert_eq!(server_name("api.internal:8443", t), ServerName::try_from("api.internal").expect("dns"));
        assert_eq!(server_name("[::1]:8443", t), ServerName::IpAddress("::1".parse::<std::net::IpAddr>().expect("ip").into()));
        assert_eq!(server_name("bad host!", t), ServerName::IpAddress(t.ip().into()));
    }

    #[test]
    fn bad_paths_and_hosts_name_the_field() {
        let mut cfg = HealthCheckConfig { path: "healthz".into(), ..HealthCheckConfig::default() };
        let e = HttpProbe::new(&cfg).err().expect("relative path refused");
        assert_eq!(e.to_string(), "health.path: \"healthz\" must start with '/'");
        cfg.path = "/a b".into();
        assert!(matches!(HttpProbe::new(&cfg), Err(HealthError::Config { field: "path", .. })));
        cfg.path = "/".into();
        cfg.host = Some("evil\r\nX-Injected: 1".into());
        let e = HttpProbe::new(&cfg).err().expect("header injection refused");
        assert!(matches!(e, HealthError::Config { field: "host", .. }), "{e}");
    }
}
