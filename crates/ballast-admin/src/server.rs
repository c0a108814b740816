//! [`AdminServer`]: the admin listener's accept loop, connection limits and graceful
//! shutdown (hyper-util serving the axum router, as the proxy's listeners do).

use crate::error::AdminError;
use crate::routes::router;
pub use crate::routes::{OPENMETRICS, PROMETHEUS_TEXT};
use crate::sources::AdminSources;
use ballast_core::config::AdminConfig;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// A client has this long to send a request's headers (slow clients cannot hold a
/// connection open forever by trickling bytes).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a request head (request line and headers); a longer one is refused
/// with `431` (hyper's minimum buffer is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most connections served at once; further ones wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// The running admin listener. Dropping it without [`shutdown`](Self::shutdown) also
/// stops accepting (the stop channel closes), without waiting for open connections.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    /// `Some(grace)` asks the accept loop to stop; dropping it stops with no grace.
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<bool>,
}

impl AdminServer {
    /// Binds `addr` (port 0 lets the OS choose) and serves `/metrics`, `/healthz` and
    /// `/api/v1/pools` over `sources`. Must run inside a tokio runtime.
    ///
    /// Errors: [`AdminError::Bind`] when the address cannot be bound,
    /// [`AdminError::Socket`] when the socket cannot be registered with the runtime.
    pub fn start(addr: SocketAddr, sources: AdminSources) -> Result<AdminServer, AdminError> {
        let std_listener = std::net::TcpListener::bind(addr).map_err(|source| AdminError::Bind { addr, source })?;
        let socket = |source| AdminError::Socket { addr, source };
        std_listener.set_nonblocking(true).map_err(socket)?;
        let local_addr = std_listener.local_addr().map_err(socket)?;
        let listener = TcpListener::from_std(std_listener).map_err(socket)?;
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, sources, stop_rx));
        tracing::info!(%local_addr, "admin listener: /metrics, /healthz, /api/v1/pools");
        Ok(AdminServer { local_addr, stop, task })
    }

    /// [`start`](Self::start) on the address of the config's `[admin]` section.
    ///
    /// Errors: [`AdminError::Address`] when `listen` is not an `IP:port`, else as `start`.
    pub fn start_configured(config: &AdminConfig, sources: AdminSources) -> Result<AdminServer, AdminError> {
        let addr = config.listen.parse().map_err(|_| AdminError::Address { listen: config.listen.clone() })?;
        AdminServer::start(addr, sources)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes idle connections, lets requests in progress finish for at
    /// most `grace`, then closes every connection left (including clients still sending
    /// their request head). True when every connection finished within `grace`.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let _ = self.stop.send(Some(grace));
        self.task.await.unwrap_or(false)
    }
}

/// Accepts until asked to stop, then drains (see [`AdminServer::shutdown`]).
async fn accept_loop(listener: TcpListener, sources: AdminSources, mut stop: watch::Receiver<Option<Duration>>) -> bool {
    let service = TowerToHyperService::new(router(sources));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let grace = loop {
        tokio::select! {
            stopped = stop.wait_for(Option::is_some) => break stopped.ok().and_then(|g| *g).unwrap_or_default(),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = accept(&listener, &limit) => {
                let Some((stream, permit)) = accepted else { continue };
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()).into_owned());
                conns.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("admin connection: {e}");
                    }
                    drop(permit);
                });
            }
        }
    };
    drop(listener);
    let drained = tokio::time::timeout(grace, graceful.shutdown()).await.is_ok();
    // Whatever is left (a stalled request head, a slow reader) is closed now.
    conns.shutdown().await;
    drained
}

/// The next connection once a slot under [`MAX_CONNECTIONS`] is free; None after an
/// accept error (logged, with a short back-off so a full fd table does not spin).
async fn accept(listener: &TcpListener, limit: &Arc<Semaphore>) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let permit = limit.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _)) => Some((stream, permit)),
        Err(e) => {
            tracing::warn!("admin listener: accept failed: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await; // back-off, not synchronisation
            None
        }
    }
}
