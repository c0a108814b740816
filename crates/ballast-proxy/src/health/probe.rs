//! One probe of one instance, by the kind the pool's `[pool.health]` names.

use super::error::HealthError;
use super::{http, icmp};
use ballast_core::config::{HealthCheckConfig, HealthCheckKind};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A probe in progress: `Ok` carries a short description of the success (`"status 200"`),
/// `Err` why it failed.
pub type ProbeFuture = Pin<Box<dyn Future<Output = Result<String, HealthError>> + Send + 'static>>;

/// Something that can check one instance address (`host:port`). [`Prober`] is the real
/// one; the seam lets the checker's scheduling be tested on a paused clock.
pub trait Probe: Send + Sync + 'static {
    /// Starts a probe of `addr`. The future must finish (fail) within the check's timeout.
    fn probe(&self, addr: &str) -> ProbeFuture;
}

/// The probe a `[pool.health]` section describes: HTTP/HTTPS `GET`, TCP connect or ICMP
/// echo, each bounded by `timeout`. Cheap to clone.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    kind: HealthCheckKind,
    timeout: Duration,
    http: Option<http::HttpProbe>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").field("kind", &self.inner.kind).field("timeout", &self.inner.timeout).finish()
    }
}

impl Prober {
    /// Builds the probe. Fails with [`HealthError::Config`] when `path` or `host` cannot
    /// be sent, and with [`HealthError::IcmpNotPermitted`] for `icmp` when this process
    /// may open neither a raw nor an unprivileged ICMP socket (so start-up says so plainly
    /// instead of marking every instance down).
    pub fn new(cfg: &HealthCheckConfig) -> Result<Self, HealthError> {
        let http = if cfg.kind.is_http() { Some(http::HttpProbe::new(cfg)?) } else { None };
        if cfg.kind == HealthCheckKind::Icmp {
            icmp_available().map_err(HealthError::IcmpNotPermitted)?;
        }
        Ok(Prober { inner: Arc::new(Inner { kind: cfg.kind, timeout: cfg.timeout.0, http }) })
    }

    /// The kind of check.
    pub fn kind(&self) -> HealthCheckKind {
        self.inner.kind
    }
}

use icmp::icmp_available;

impl Probe for Prober {
    fn probe(&self, addr: &str) -> ProbeFuture {
        let inner = Arc::clone(&self.inner);
        let addr = addr.to_string();
        Box::pin(async move {
            let after = inner.timeout;
            match tokio::time::timeout(after, inner.run(&addr)).await {
                Ok(result) => result,
                Err(_) => Err(HealthError::Timeout { after }),
            }
        })
    }
}

impl Inner {
    async fn run(&self, addr: &str) -> Result<String, HealthError> {
        let target = resolve(addr).await?;
        match (self.kind, &self.http) {
            (HealthCheckKind::Http | HealthCheckKind::Https, Some(h)) => h.check(addr, target).await,
            (HealthCheckKind::Tcp, _) => {
                tokio::net::TcpStream::connect(target)
                    .await
                    .map_err(|source| HealthError::Connect { addr: target.to_string(), source })?;
                Ok("connected".to_string())
            }
            (HealthCheckKind::Icmp, _) => icmp::ping(target.ip()).await,
            (kind, None) => Err(HealthError::Config { field: "kind", reason: format!("{} probe not set up", kind.name()) }),
        }
    }
}

/// The first address `addr` (`host:port`) resolves to.
pub(super) async fn resolve(addr: &str) -> Result<SocketAddr, HealthError> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let mut addrs = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| HealthError::Resolve { addr: addr.to_string(), reason: e.to_string() })?;
    addrs.next().ok_or_else(|| HealthError::Resolve { addr: addr.to_string(), reason: "no address".to_string() })
}
