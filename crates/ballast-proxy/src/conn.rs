//! Serving one client connection: optional TLS handshake, then our own HTTP/1.1 loop
//! ([`h1`]), which hands the connection to hyper (`serve_http`: HTTP/2 sniffed from the
//! preface or chosen by ALPN, and unusual HTTP/1.1 heads) with the header-read
//! timeout, head-size limit, idle watchdog and graceful shutdown on the listener's stop
//! signal.
//!
//! One timer per connection, the watchdog, serves both the idle limit and the HTTP/1.1
//! header-read limit ([`head_timer`] for hyper's side): no timer is armed or cancelled per
//! request.

pub mod h1;
pub mod head_timer;
pub mod side_wake;

use crate::conn_io::{ConnInfo, SniffIo};
use crate::proxy::{handle, ListenerState};
use arc_swap::ArcSwapOption;
use head_timer::{HeadCheck, HeadTimer, HeadWatch};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use side_wake::SideWake;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

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
        None => h1::serve(stream, info, state, stop).await,
        Some(config) => {
            let handshake_limit = state.snapshot.load().settings.header_read;
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_http(SniffIo::new(tls_stream, info.clone()), info, state, stop).await;
                    } else {
                        h1::serve(tls_stream, info, state, stop).await;
                    }
                }
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
    let header_read = settings.header_read;
    let head = Arc::new(HeadWatch::new(Instant::now().into_std()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(HeadTimer::new(head.clone()))
        .header_read_timeout(header_read)
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
    // spawned task per stream), and the request future is nearly 2 KB.
    let svc = service_fn(move |req| Box::pin(handle(state.clone(), svc_info.clone(), req)));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let idle = settings.idle;
    let mut next_idle_check = Instant::now() + idle;
    let watchdog = tokio::time::sleep_until(next_idle_check.min(Instant::now() + header_read));
    tokio::pin!(watchdog);
    let mut seen_requests = 0;
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let mut side = SideWake::default();
    loop {
        let turn = {
            let mut changed = std::pin::pin!(stop.changed());
            side.arm();
            std::future::poll_fn(|cx| {
                // The connection first: it is what wakes the task on almost every turn.
                if let Poll::Ready(res) = conn.as_mut().poll(cx) {
                    return Poll::Ready(Turn::Ended(res));
                }
                if side.due(cx) {
                    let mut side_cx = Context::from_waker(side.waker());
                    if !closing {
                        if let Poll::Ready(res) = changed.as_mut().poll(&mut side_cx) {
                            return Poll::Ready(Turn::Stop(res.is_ok()));
                        }
                    }
                    // Stays on while closing: a half-sent head must not hold the drain up.
                    if watchdog.as_mut().poll(&mut side_cx).is_ready() {
                        return Poll::Ready(Turn::Watchdog);
                    }
                }
                Poll::Pending
            })
            .await
        };
        match turn {
            Turn::Ended(res) => {
                if let Err(e) = res {
                    tracing::debug!(peer = %info.peer, error = %e, "client connection ended with an error");
                }
                return;
            }
            Turn::Stop(alive) => {
                if !alive || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            Turn::Watchdog => {
                let now = Instant::now();
                // An expired head deadline ends the connection when hyper polls it, on
                // the next turn of this loop.
                let next_head_check = match head.check(now.into_std()) {
                    HeadCheck::Until(deadline) => Instant::from_std(deadline),
                    HeadCheck::Unarmed | HeadCheck::Expired => now + header_read,
                };
                if now >= next_idle_check {
                    let requests = info.requests.load(Ordering::Relaxed);
                    if !closing && requests == seen_requests && info.in_flight.load(Ordering::Relaxed) == 0 {
                        tracing::trace!(peer = %info.peer, "closing idle client connection");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    seen_requests = requests;
                    next_idle_check = now + idle;
                }
                watchdog.as_mut().reset(next_idle_check.min(next_head_check));
            }
        }
    }
}

/// Why [`serve_http`]'s loop woke up.
enum Turn<E> {
    /// The connection ended.
    Ended(Result<(), E>),
    /// The stop signal changed (false: its sender is gone).
    Stop(bool),
    /// The watchdog timer fired.
    Watchdog,
}
