//! Our own HTTP/1.1 server loop.
//!
//! hyper's HTTP/1.1 server is general and pays for it on every request: its dispatcher, a
//! `Service` future boxed per request, and heads parsed and encoded through its own types.
//! This loop serves HTTP/1.1 sequentially on the connection's task: read a head
//! ([`request::parse`]), run the request path in place (no spawn, no box) while reading
//! the request body, if any, off the connection into a bounded queue ([`body`]; `100
//! Continue` first when the client expects it), write the response ([`response`]), keep
//! the connection alive. After a `101 Switching Protocols` the connection, with any bytes
//! read past the request, goes to the tunnel ([`crate::upgrade`]).
//!
//! The first request it does not take (a transfer coding other than plain `chunked`,
//! another expectation, an upgrade with a body, an HTTP/2 preface, a malformed, oversized
//! or smuggling-shaped head) hands the connection, with every byte read so far, to hyper
//! for the rest of its life ([`super::serve_http`]): the error answers for those stay
//! hyper's.
//!
//! Timers: one watchdog per connection, as in [`super`]. The header-read limit counts
//! from the first byte of a head (an empty keep-alive wait is governed by `idle`); a head
//! not complete in time gets 408 and the connection closes. While a request runs, the
//! socket is still read, so a client that closes gives up its request at once (pipelined
//! bytes wait in the buffer, up to the head limit).

pub mod body;
pub mod request;
pub mod response;

use super::side_wake::SideWake;
use crate::conn_io::{ConnInfo, SniffIo};
use crate::body::ClientBody;
use crate::proxy::{respond, ClientRequest, ListenerState};
use crate::upgrade::ClientUpgrade;
use crate::upstream::tunnel::Rewind;
use bytes::BytesMut;
use request::Parsed;
use response::Exchange;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// The read buffer's first size, and the least free room kept before a read.
const READ_CHUNK: usize = 8192;

/// hyper's smallest read buffer; our head limit is never below it either, so both
/// servers refuse the same heads.
const MIN_HEAD_LIMIT: usize = 8192;

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE_START: &[u8] = b"PRI ";

const TIMEOUT_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const BAD_REQUEST_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Why the read side woke up while the loop waited for a head.
enum Turn {
    /// This many bytes arrived (0: the client closed).
    Read(usize),
    /// Reading failed.
    Failed(io::Error),
    /// The listener is stopping.
    Stop,
    /// The watchdog timer fired.
    Watchdog,
}

/// Serves HTTP/1.1 on `io` until the client closes, the connection idles out or `stop`
/// fires (an idle connection then closes; one mid-request finishes that request first),
/// or hands it to hyper (see the module doc).
pub async fn serve<I>(mut io: I, info: Arc<ConnInfo>, state: Arc<ListenerState>, stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (header_read, idle, head_limit) = {
        let snap = state.snapshot.load();
        let s = &snap.settings;
        (s.header_read, s.idle, usize::try_from(s.max_header_bytes).unwrap_or(usize::MAX).max(MIN_HEAD_LIMIT))
    };
    // Polled only by the read phase, and only when it woke the task (see `SideWake`);
    // `stopping` is checked between requests without a lock.
    let stopping = stop.clone();
    let mut stop_rx = stop.clone();
    let mut changed = pin!(stop_rx.changed());
    let mut next_idle_check = Instant::now() + idle;
    let mut watchdog = pin!(tokio::time::sleep_until(next_idle_check));
    let mut side = SideWake::default();
    let mut seen_requests = 0;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::new();
    let mut first = true;
    if *stop.borrow() {
        return;
    }
    loop {
        // 1. A request head.
        let mut head_deadline: Option<Instant> = None;
        let head = loop {
            if !buf.is_empty() {
                if first && H2_PREFACE_START.starts_with(&buf[..buf.len().min(H2_PREFACE_START.len())]) {
                    if buf.len() >= H2_PREFACE_START.len() {
                        return handoff(io, buf, info, state, stop).await;
                    }
                } else {
                    match request::parse(&mut buf) {
                        Parsed::Lean(head) => break head,
                        Parsed::Handoff => return handoff(io, buf, info, state, stop).await,
                        Parsed::Invalid => {
                            let _ = io.write_all(BAD_REQUEST_400).await;
                            return;
                        }
                        Parsed::Partial if buf.len() > head_limit => {
                            return handoff(io, buf, info, state, stop).await;
                        }
                        Parsed::Partial => {}
                    }
                }
                if head_deadline.is_none() {
                    let deadline = Instant::now() + header_read;
                    head_deadline = Some(deadline);
                    if deadline < watchdog.deadline() {
                        watchdog.as_mut().reset(deadline);
                        side.arm();
                    }
                }
            }
            let turn = poll_fn(|cx| {
                if let Poll::Ready(r) = poll_read(&mut io, cx, &mut buf) {
                    return Poll::Ready(r.map_or_else(Turn::Failed, Turn::Read));
                }
                if side.due(cx) {
                    let mut side_cx = Context::from_waker(side.waker());
                    if changed.as_mut().poll(&mut side_cx).is_ready() {
                        return Poll::Ready(Turn::Stop);
                    }
                    if watchdog.as_mut().poll(&mut side_cx).is_ready() {
                        return Poll::Ready(Turn::Watchdog);
                    }
                }
                Poll::Pending
            })
            .await;
            match turn {
                Turn::Read(0) | Turn::Stop => return,
                Turn::Read(_) => {}
                Turn::Failed(e) => {
                    tracing::debug!(peer = %info.peer, error = %e, "client connection ended with an error");
                    return;
                }
                Turn::Watchdog => {
                    let now = Instant::now();
                    if head_deadline.is_some_and(|d| now >= d) {
                        tracing::debug!(peer = %info.peer, "request head not read within header_read");
                        let _ = io.write_all(TIMEOUT_408).await;
                        return;
                    }
                    if now >= next_idle_check {
                        let requests = info.requests.load(Ordering::Relaxed);
                        if head_deadline.is_none() && requests == seen_requests {
                            tracing::trace!(peer = %info.peer, "closing idle client connection");
                            return;
                        }
                        seen_requests = requests;
                        next_idle_check = now + idle;
                    }
                    let next = head_deadline.map_or(next_idle_check, |d| d.min(next_idle_check));
                    watchdog.as_mut().reset(next);
                    // A reset sleep must be polled again to register.
                    side.arm();
                }
            }
        };
        first = false;
        let request::Head { parts, keep_alive, trailers, body, expect_continue, upgrade } = *head;
        let ex = Exchange {
            head_request: parts.method == http::Method::HEAD,
            http11: parts.version == http::Version::HTTP_11,
            keep_alive,
        };
        // An upgrade's connection goes to the tunnel once the `101` is written.
        let (switch_to, switched) = match upgrade {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(ClientUpgrade::Lean(rx)))
            }
            false => (None, None),
        };
        let (mut req, mut inflow) = match body {
            request::BodyFraming::None => (ClientRequest { parts, body: None, upgrade: switched }, None),
            framing => {
                let (body, mut pump) = body::pumped(framing);
                // What came with the head is ready before the request goes upstream.
                pump.feed(&mut buf);
                let owed = if expect_continue { CONTINUE_100.len() } else { 0 };
                let req = ClientRequest { parts, body: Some(ClientBody::Pumped(body)), upgrade: None };
                (req, Some(Inflow { pump, continue_owed: owed }))
            }
        };
        // 2. The request path, in place, while the client side is read (the body, or an
        // end that cancels the request).
        let resp = {
            let mut serving = pin!(respond(&state, &info, &mut req));
            let resp = poll_fn(|cx| {
                if let Poll::Ready(resp) = serving.as_mut().poll(cx) {
                    return Poll::Ready(Some(resp));
                }
                poll_client(&mut io, cx, &mut buf, inflow.as_mut(), head_limit).map(|()| None)
            })
            .await;
            match resp {
                Some(resp) => resp,
                None => {
                    tracing::debug!(peer = %info.peer, "client closed the connection mid-request");
                    return;
                }
            }
        };
        // 3. The response; the connection closes after it when either side or the
        // listener says so, or when the request body was not read to its end.
        let body_read = |inflow: &Option<Inflow>| inflow.as_ref().is_none_or(|i| i.pump.is_read());
        let stopping = matches!(stopping.has_changed(), Ok(true) | Err(_));
        let ex = Exchange { keep_alive: ex.keep_alive && !stopping && body_read(&inflow), ..ex };
        let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let (framing, keep) = response::encode_head(&mut out, &resp, ex);
        let client = |io: &mut I, cx: &mut Context<'_>| poll_client(io, cx, &mut buf, inflow.as_mut(), head_limit);
        if let Err(e) = response::write_body(&mut io, &mut out, resp.into_body(), framing, trailers, client).await {
            tracing::debug!(peer = %info.peer, error = %e, "response not sent whole; closing");
            return;
        }
        if let (true, Some(tx)) = (switching, switch_to) {
            // The tunnel takes the connection, with whatever the client sent past its head.
            let _ = tx.send(Box::new(Rewind::new(buf.freeze(), io)));
            return;
        }
        if !keep || !body_read(&inflow) {
            let _ = io.shutdown().await;
            return;
        }
    }
}

/// A request body being read off the connection, and the `100 Continue` owed for it.
struct Inflow {
    pump: body::Pump,
    /// Bytes of [`CONTINUE_100`] still to write once the request path asks for the body.
    continue_owed: usize,
}

/// The client side while a request is served: sends `100 Continue` when owed and due,
/// reads the request body into its queue, and otherwise keeps reading (pipelined bytes,
/// up to the head limit) to notice a client that goes away: `Ready` then.
fn poll_client<I: AsyncRead + AsyncWrite + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    inflow: Option<&mut Inflow>,
    head_limit: usize,
) -> Poll<()> {
    if let Some(inflow) = inflow {
        while inflow.continue_owed > 0 && inflow.pump.demanded() {
            let at = CONTINUE_100.len() - inflow.continue_owed;
            match Pin::new(&mut *io).poll_write(cx, &CONTINUE_100[at..]) {
                Poll::Ready(Ok(n)) if n > 0 => inflow.continue_owed -= n,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
            if inflow.continue_owed == 0 && matches!(Pin::new(&mut *io).poll_flush(cx), Poll::Ready(Err(_))) {
                return Poll::Ready(());
            }
        }
        while inflow.pump.feed(buf) == body::Need::Bytes {
            match poll_read(io, cx, buf) {
                Poll::Ready(Ok(0)) => {
                    inflow.pump.cut(io::ErrorKind::UnexpectedEof.into());
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    inflow.pump.cut(e);
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
    // Past the head limit, further bytes wait in the socket.
    while buf.len() <= head_limit {
        match poll_read(io, cx, buf) {
            Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(_)) => {}
            Poll::Pending => break,
        }
    }
    Poll::Pending
}

/// Reads into `buf`, keeping some free room first.
fn poll_read<I: AsyncRead + Unpin>(io: &mut I, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_CHUNK / 8 {
        buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// Gives the connection, with the bytes read so far, to hyper. From here on its reads,
/// starting with those bytes, are scanned for smuggling-shaped heads ([`SniffIo`]), which
/// hyper would otherwise resolve silently. This loop sees both fields of such a head
/// itself ([`request::parse`] hands it over), so it need not scan its own reads.
async fn handoff<I>(io: I, buf: BytesMut, info: Arc<ConnInfo>, state: Arc<ListenerState>, stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = SniffIo::new(Rewind::new(buf.freeze(), io), info.clone());
    super::serve_http(io, info, state, stop).await;
}
