//! Serving one client connection: optional TLS handshake, HTTP/1.1 or HTTP/2 (sniffed
//! from the h2 preface or chosen by ALPN), with the header-read timeout, head-size
//! limit, idle watchdog and graceful shutdown on the listener's stop signal.

use crate::conn_io::{ConnInfo, SniffIo};
use crate::proxy::{handle, ListenerState};
use arc_swap::ArcSwapOption;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// hyper refuses a read buffer below this (`max_buf_size` panics).
const MIN_BUF: usize = 8192;

/// Serves `stream` until the client closes, the connection idles out, or `stop` fires
/// (then in-flight requests finish first).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ListenerState>,
    tls: Arc<ArcSwapOption<rustls::ServerConfig>>,
    stop: watch::Receiver<bool>,
) {
    let info = Arc::new(ConnInfo::new(peer));
    match tls.load_full() {
        None => serve_http(SniffIo::new(stream, info.clone()), info, state, stop).await,
        Some(config) => {
            let handshake_limit = state.snapshot.load().settings.header_read;
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => serve_http(SniffIo::new(tls_stream, info.clone()), info, state, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<I>(io: I, info: Arc<ConnInfo>, state: Arc<ListenerState>, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = state.snapshot.load().settings.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read)
        .max_buf_size(usize::try_from(settings.max_header_bytes).unwrap_or(usize::MAX).max(MIN_BUF))
        // Head and (small) body copied into one buffer and sent with one `send`: cheaper
        // in the kernel than a two-part `writev` for the usual short responses.
        .writev(false)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    let svc_info = info.clone();
    // Boxed once here: hyper moves the service future around (for HTTP/2 into a
    // spawned task per stream), and the request future is several KB.
    let svc = service_fn(move |req| Box::pin(handle(state.clone(), svc_info.clone(), req)));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let idle = settings.idle;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let mut seen_requests = 0;
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(peer = %info.peer, error = %e, "client connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = &mut idle_timer, if !closing => {
                let requests = info.requests.load(Ordering::Relaxed);
                if requests == seen_requests && info.in_flight.load(Ordering::Relaxed) == 0 {
                    tracing::trace!(peer = %info.peer, "closing idle client connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                } else {
                    seen_requests = requests;
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                }
            }
        }
    }
}
