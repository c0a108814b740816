//! Upstream connections: our own lean HTTP/1.1 client. A small keep-alive pool per
//! instance, connecting with a timeout, and sending one request with the outcome
//! classified for retries.
//!
//! The request head is encoded once per client request ([`codec`]); every attempt sends
//! the same bytes. Connecting is a separate step from sending, so a connect failure
//! leaves the request (and its body) with the caller, who may send it to another
//! instance. A connection found dead before any of the body was taken hands the request
//! back unsent ([`SendError::NotSent`]). A connection goes back to its pool only once its
//! response has been read to the end and its request sent whole ([`UpstreamBody`] does
//! that), so every pooled connection is ready for the next request.
//!
//! No task is spawned per connection: whoever holds a [`PooledConn`] (the request while
//! it waits for the response head, then the response body while it is relayed) does its
//! I/O in its own task, with no channel and no cross-task wake. An idle connection in the
//! pool is checked without a waker when it is checked out: a readable one (EOF, or bytes
//! nobody asked for) is dropped.

pub mod chunked;
pub mod codec;
mod conn;
mod pool;
mod response;
pub mod tunnel;

pub use conn::{PooledConn, UploadError};
pub use pool::{ConnPool, ConnRegistry};
pub use response::{RelayError, UpstreamBody};

use crate::body::{BodyError, RequestBody};
use crate::error::ProxyError;
use bytes::Bytes;
use codec::{RequestFraming, ResponseHead};
use http::uri::Authority;
use std::future::{poll_fn, Future};
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// TCP keep-alive probe interval on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Opens a new connection to `addr` within `timeout` (`TCP_NODELAY`, TCP keep-alive).
/// Boxed: a connection moves between the pool, the request and the response body.
pub async fn connect(addr: &Authority, timeout: Duration) -> Result<Box<PooledConn>, ProxyError> {
    let connect_err = |source: io::Error| ProxyError::Connect { addr: addr.to_string(), source };
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr.as_str())).await {
        Err(_) => {
            return Err(connect_err(io::Error::new(io::ErrorKind::TimedOut, format!("no connection within {timeout:?}"))))
        }
        Ok(Err(e)) => return Err(connect_err(e)),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
    Ok(Box::new(PooledConn::new(stream, Box::pin(tokio::time::sleep_until(Instant::now() + timeout)))))
}

/// A request ready to go out on any connection.
#[derive(Debug)]
pub struct Outgoing {
    /// The encoded head ([`codec::encode_request_head`]); shared by every attempt.
    pub head: Bytes,
    /// The body, sent after the head with `framing`.
    pub body: RequestBody,
    /// How the body goes on the wire (the head announces it).
    pub framing: RequestFraming,
    /// Whether the request is HEAD (its response has no body).
    pub head_request: bool,
    /// Whether the method is idempotent: a bodyless idempotent request that met a stale
    /// pooled connection may go out again.
    pub idempotent: bool,
}

/// How sending a request failed.
#[derive(Debug)]
pub enum SendError {
    /// The connection was dead before the request could have had any effect (nothing
    /// written, or a pooled connection closed before answering a request whose body was
    /// not read or that may be repeated): here it is back, body untouched, to send
    /// elsewhere.
    NotSent(Box<Outgoing>, io::Error),
    /// The request (or part of it) was sent, or the response timed out or was unusable.
    Failed(ProxyError),
}

/// Why waiting for the response head ended without one.
enum Wait {
    Io(io::Error),
    Body(BodyError),
    Length,
    Protocol(&'static str),
    Timeout,
}

/// Sends `out` on `conn` and waits at most `timeout` for the response head, sending the
/// body meanwhile (and after: the response body goes on with it).
pub async fn send(
    conn: &mut PooledConn,
    out: Outgoing,
    addr: &Authority,
    timeout: Duration,
) -> Result<ResponseHead, SendError> {
    let Outgoing { head, body, framing, head_request, idempotent } = out;
    conn.start(head.clone(), body, framing);
    conn.deadline.as_mut().reset(Instant::now() + timeout);
    let mut answered = false;
    let waited = poll_fn(|cx| poll_head(conn, cx, head_request, &mut answered)).await;
    let e = match waited {
        Ok(h) => return Ok(h),
        Err(Wait::Timeout) => ProxyError::UpstreamTimeout { addr: addr.to_string(), after: timeout },
        Err(Wait::Protocol(reason)) => ProxyError::UpstreamProtocol { addr: addr.to_string(), reason },
        Err(Wait::Length) => ProxyError::BadRequest { reason: "the request body does not match its Content-Length" },
        Err(Wait::Body(BodyError::TooLarge { limit })) => ProxyError::BodyTooLarge { limit },
        Err(Wait::Body(BodyError::Chunked(_))) => ProxyError::BadRequest { reason: "malformed chunked request body" },
        Err(Wait::Body(e)) => ProxyError::Upstream { addr: addr.to_string(), source: io::Error::other(e) },
        Err(Wait::Io(source)) => {
            // Nothing written: the request never left. A pooled connection that closed
            // without a word: it went stale, and the request may go again when the
            // upstream cannot have acted on it (body not started) or may act twice.
            let stale = conn.reused && !answered && (framing != RequestFraming::Empty || idempotent);
            if !conn.upload.wrote_any || stale {
                if let Some(body) = conn.take_untouched_body() {
                    let back = Outgoing { head, body, framing, head_request, idempotent };
                    return Err(SendError::NotSent(Box::new(back), source));
                }
            }
            ProxyError::Upstream { addr: addr.to_string(), source }
        }
    };
    Err(SendError::Failed(e))
}

/// One turn of waiting for the head: send what can be sent, parse what has been read.
fn poll_head(
    conn: &mut PooledConn,
    cx: &mut Context<'_>,
    head_request: bool,
    answered: &mut bool,
) -> Poll<Result<ResponseHead, Wait>> {
    if !conn.upload.is_done() {
        match conn.poll_upload(cx) {
            Poll::Ready(Err(UploadError::Write(e))) if !conn.upload.wrote_any => return Poll::Ready(Err(Wait::Io(e))),
            Poll::Ready(Err(UploadError::Write(e))) => {
                // The upstream stopped reading: it may have answered already (say 413).
                tracing::debug!(error = %e, "the upstream stopped taking the request body");
                conn.abandon_upload();
            }
            Poll::Ready(Err(UploadError::Body(e))) => return Poll::Ready(Err(Wait::Body(e))),
            Poll::Ready(Err(UploadError::Length)) => return Poll::Ready(Err(Wait::Length)),
            Poll::Ready(Ok(())) | Poll::Pending => {}
        }
    }
    loop {
        if !conn.buf.is_empty() {
            match codec::parse_response(&mut conn.buf, head_request) {
                Err(e) => return Poll::Ready(Err(Wait::Protocol(e.reason()))),
                Ok(Some(h)) => return Poll::Ready(Ok(h)),
                Ok(None) => {}
            }
        }
        match conn.poll_fill(cx, false) {
            Poll::Ready(Ok(0)) => {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response head");
                return Poll::Ready(Err(Wait::Io(e)));
            }
            Poll::Ready(Ok(_)) => *answered = true,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Wait::Io(e))),
            Poll::Pending => break,
        }
    }
    match conn.deadline.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(Wait::Timeout)),
        Poll::Pending => Poll::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A listener on a free loopback port and its address as an upstream authority.
    async fn listening() -> (TcpListener, Authority) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string().parse().expect("authority");
        (listener, addr)
    }

    #[tokio::test]
    async fn the_oldest_idle_connections_are_swept_once_their_instance_closed_them() {
        let (listener, addr) = listening().await;
        let pool = ConnPool::new(1);
        let oldest = connect(&addr, Duration::from_secs(5)).await.expect("connect");
        let (server_side_of_oldest, _) = listener.accept().await.expect("accept");
        let newest = connect(&addr, Duration::from_secs(5)).await.expect("connect");
        let (_server_side_of_newest, _) = listener.accept().await.expect("accept");
        pool.give_back(oldest);
        pool.give_back(newest);
        assert_eq!(pool.idle_count(), 2);
        // The instance closes the oldest; requests keep taking and returning the newest.
        drop(server_side_of_oldest);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.idle_count() == 2 {
            assert!(Instant::now() < deadline, "the closed connection was never swept");
            let c = pool.checkout().expect("the newest is ready");
            pool.give_back(c);
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.idle_count(), 1);
        assert!(pool.checkout().is_some(), "the live one stays");
    }

    #[tokio::test]
    async fn checkout_drops_an_idle_connection_that_got_stray_bytes_or_eof() {
        use tokio::io::AsyncWriteExt;
        let (listener, addr) = listening().await;
        let pool = ConnPool::new(1);
        let chatty = connect(&addr, Duration::from_secs(5)).await.expect("connect");
        let (mut server_side, _) = listener.accept().await.expect("accept");
        pool.give_back(chatty);
        server_side.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.expect("write");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match pool.checkout() {
                None => break,
                Some(c) => pool.give_back(c),
            }
            assert!(Instant::now() < deadline, "the connection with stray bytes was never dropped");
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.idle_count(), 0);
    }

    /// A connection, its server side, and an encoded bodyless request.
    async fn pair(method: http::Method) -> (Box<PooledConn>, TcpStream, Outgoing, Authority) {
        let (listener, addr) = listening().await;
        let conn = connect(&addr, Duration::from_secs(5)).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let pq = http::uri::PathAndQuery::from_static("/");
        let head = codec::encode_request_head(&method, &pq, &http::HeaderMap::new(), RequestFraming::Empty);
        let idempotent = method != http::Method::POST;
        let out = Outgoing { head, body: RequestBody::empty(), framing: RequestFraming::Empty, head_request: false, idempotent };
        (conn, server, out, addr)
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_without_a_word_hands_back_only_what_may_go_again() {
        for (method, reused, want_back) in
            [(http::Method::GET, true, true), (http::Method::POST, true, false), (http::Method::GET, false, false)]
        {
            let (mut conn, server, out, addr) = pair(method.clone()).await;
            conn.reused = reused;
            drop(server);
            match send(&mut conn, out, &addr, Duration::from_secs(5)).await {
                Err(SendError::NotSent(back, _)) => {
                    assert!(want_back, "{method} reused={reused} came back");
                    assert!(back.head.starts_with(method.as_str().as_bytes()), "the same head comes back");
                }
                Err(SendError::Failed(ProxyError::Upstream { .. })) => {
                    assert!(!want_back, "{method} reused={reused} should have come back");
                }
                other => panic!("{method} reused={reused}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn no_head_in_time_is_a_timeout_and_a_bad_head_names_its_fault() {
        use tokio::io::AsyncWriteExt;
        let (mut conn, _silent, out, addr) = pair(http::Method::GET).await;
        match send(&mut conn, out, &addr, Duration::from_millis(50)).await {
            Err(SendError::Failed(ProxyError::UpstreamTimeout { after, .. })) => {
                assert_eq!(after, Duration::from_millis(50));
            }
            other => panic!("{other:?}"),
        }
        let (mut conn, mut server, out, addr) = pair(http::Method::GET).await;
        server.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").await.expect("write");
        match send(&mut conn, out, &addr, Duration::from_secs(5)).await {
            Err(SendError::Failed(ProxyError::UpstreamProtocol { reason, .. })) => {
                assert_eq!(reason, "invalid or conflicting Content-Length");
            }
            other => panic!("{other:?}"),
        }
    }
}
