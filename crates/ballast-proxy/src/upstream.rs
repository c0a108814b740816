//! Upstream connections: a small keep-alive pool per instance, connecting with a
//! timeout, and sending one request with the outcome classified for retries.
//!
//! Connecting is a separate step from sending, so a connect failure leaves the request
//! (and its body) with the caller, who may send it to another instance. A pooled
//! connection that turns out to be closed hands the request back unsent too
//! (`try_send_request`). A connection goes back to its pool only once its response body
//! has been read to the end ([`crate::body::ResponseBody`] does that), so every pooled
//! connection is ready for the next request.
//!
//! No task is spawned per connection either: a [`PooledConn`] keeps hyper's sender and
//! its connection future together, and whoever holds it (the request while it waits for
//! the response head, then the response body while it is relayed) drives the
//! connection in its own task. The response then reaches the request without a
//! cross-task wake. An idle connection in the pool is polled once, without a waker, when
//! it is checked out: that notices an instance that closed it meanwhile.

use crate::body::{is_body_too_large, RequestBody};
use crate::error::ProxyError;
use crate::workers::current_worker;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Idle connections kept per instance. Large, so that a burst's connections are reused
/// rather than re-opened (each re-open costs a handshake and a TIME_WAIT socket).
const MAX_IDLE_PER_INSTANCE: usize = 1024;
/// TCP keep-alive probe interval on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// hyper's connection future (with upgrade support), type-erased: boxed once per
/// connection.
type ConnDriver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One upstream HTTP/1.1 connection: hyper's request sender and the connection future
/// that does the I/O, driven by whoever holds this (see the module doc).
pub struct PooledConn {
    sender: SendRequest<RequestBody>,
    /// `None` once the connection future has finished (closed, failed or upgraded).
    driver: Option<ConnDriver>,
    /// The response-head deadline, reused by every request on this connection: pushing
    /// a registered timer later is one atomic store, where a fresh `timeout()` per
    /// request would insert into and remove from the timer wheel each time.
    deadline: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn").field("open", &self.driver.is_some()).finish()
    }
}

impl PooledConn {
    /// Drives the connection's I/O. `Ready` once it has ended; dropping the driver then
    /// hands a queued but unsent request back to its sender.
    pub fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(driver) = self.driver.as_mut() else { return Poll::Ready(()) };
        match driver.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(res) => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                self.driver = None;
                Poll::Ready(())
            }
        }
    }

    /// Whether the connection can take a request now, after letting it catch up with
    /// what happened while nobody polled it (the end of the last response, or the
    /// instance closing it).
    fn ready_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_conn(&mut cx).is_pending() && self.sender.is_ready()
    }

    /// Whether the connection has ended.
    fn is_closed(&self) -> bool {
        self.driver.is_none() || self.sender.is_closed()
    }

    /// Hands the connection future to a task of its own (after a `101 Switching
    /// Protocols`, it completes the upgrade while nobody else polls it).
    pub fn spawn_driver(mut self) {
        if let Some(driver) = self.driver.take() {
            tokio::spawn(async move {
                if let Err(e) = driver.await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
        }
    }
}

/// The idle keep-alive connections of one instance, one shard per worker thread (see
/// [`crate::workers`]) so a connection is reused on the thread that drives it.
#[derive(Debug)]
pub struct ConnPool {
    shards: Vec<Mutex<Shard>>,
}

/// Every this many returns to a shard, its oldest idle connections are checked.
const SWEEP_EVERY: u32 = 64;
/// How many of the oldest idle connections one sweep checks.
const SWEEP_OLDEST: usize = 4;

#[derive(Debug, Default)]
struct Shard {
    /// Oldest first; requests take from the end.
    idle: Vec<PooledConn>,
    returns: u32,
}

impl Shard {
    /// Drops the oldest idle connections that have ended. Checkout takes the newest and
    /// never reaches the oldest while those are ready, and a connection nobody polls
    /// does not close its socket when the instance closes its end: without this, an
    /// instance's keep-alive timeout would leave them half-closed in the pool.
    fn sweep_oldest(&mut self) {
        let mut i = self.idle.len().min(SWEEP_OLDEST);
        while i > 0 {
            i -= 1;
            let _ = self.idle[i].ready_now();
            if self.idle[i].is_closed() {
                self.idle.remove(i);
            }
        }
    }
}

impl ConnPool {
    /// An empty pool with `shards` shards (at least 1).
    pub fn new(shards: usize) -> Self {
        ConnPool { shards: (0..shards.max(1)).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[current_worker() % self.shards.len()].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection ready for a request, if any; closed ones are dropped.
    pub fn checkout(&self) -> Option<PooledConn> {
        let idle = &mut self.shard().idle;
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].ready_now() {
                return Some(idle.swap_remove(i));
            }
            if idle[i].is_closed() {
                idle.swap_remove(i);
            }
            // Open but not ready (e.g. the rest of a response still unread): leave it.
        }
        None
    }

    /// Returns a connection whose response has been read to the end.
    pub fn give_back(&self, conn: PooledConn) {
        if conn.is_closed() {
            return;
        }
        let mut shard = self.shard();
        shard.returns = shard.returns.wrapping_add(1);
        if shard.returns % SWEEP_EVERY == 0 {
            shard.sweep_oldest();
        }
        if shard.idle.len() < MAX_IDLE_PER_INSTANCE {
            shard.idle.push(conn);
        }
    }

    /// Idle connections held, over all shards (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).idle.len()).sum()
    }
}

/// Connection pools by instance address, shared by every listener and kept across
/// reloads (only snapshot builds touch the map).
#[derive(Debug)]
pub struct ConnRegistry {
    shards: usize,
    map: Mutex<HashMap<String, Arc<ConnPool>>>,
}

impl ConnRegistry {
    /// A registry whose pools have `shards` shards (the number of worker threads).
    pub fn new(shards: usize) -> Self {
        ConnRegistry { shards, map: Mutex::default() }
    }

    /// The pool of `addr`, created when new.
    pub fn get_or_create(&self, addr: &str) -> Arc<ConnPool> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(addr.to_string()).or_insert_with(|| Arc::new(ConnPool::new(self.shards))).clone()
    }

    /// Drops the pools (and so the idle connections) of addresses not in `keep`.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|addr, _| keep(addr));
    }
}

/// Opens a new connection to `addr` within `timeout` (`TCP_NODELAY`, TCP keep-alive)
/// (its connection future is driven by the holder, see [`PooledConn`]).
pub async fn connect(addr: &Authority, timeout: Duration) -> Result<PooledConn, ProxyError> {
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
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        // One flat buffer per request (see `conn.rs`).
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ProxyError::Upstream { addr: addr.to_string(), source })?;
    Ok(PooledConn {
        sender,
        driver: Some(Box::pin(conn.with_upgrades())),
        deadline: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
    })
}

/// How sending a request failed.
#[derive(Debug)]
pub enum SendError {
    /// The connection was closed before the request went out: here it is back, body
    /// untouched, to send elsewhere.
    NotSent(Box<Request<RequestBody>>, hyper::Error),
    /// The request (or part of it) was sent, or the response timed out.
    Failed(ProxyError),
}

/// Sends `req` on `conn` and waits at most `timeout` for the response head, driving the
/// connection meanwhile.
pub async fn send(
    conn: &mut PooledConn,
    req: Request<RequestBody>,
    addr: &Authority,
    timeout: Duration,
) -> Result<Response<Incoming>, SendError> {
    let mut response = std::pin::pin!(conn.sender.try_send_request(req));
    conn.deadline.as_mut().reset(Instant::now() + timeout);
    let driven = poll_fn(|cx| {
        // The connection first: it writes the request and reads the response head, which
        // the response future then finds without waiting for another wake-up. When the
        // connection ends, dropping it answers the response future (an unsent request
        // comes back).
        let _ = conn.poll_conn(cx);
        if let Poll::Ready(res) = response.as_mut().poll(cx) {
            return Poll::Ready(Some(res));
        }
        conn.deadline.as_mut().poll(cx).map(|()| None)
    });
    match driven.await {
        None => Err(SendError::Failed(ProxyError::UpstreamTimeout { addr: addr.to_string(), after: timeout })),
        Some(Ok(resp)) => Ok(resp),
        Some(Err(mut e)) => match e.take_message() {
            Some(req) => Err(SendError::NotSent(Box::new(req), e.into_error())),
            None => {
                let source = e.into_error();
                Err(SendError::Failed(match is_body_too_large(&source) {
                    Some(limit) => ProxyError::BodyTooLarge { limit },
                    None => ProxyError::Upstream { addr: addr.to_string(), source },
                }))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn the_oldest_idle_connections_are_swept_once_their_instance_closed_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: Authority = listener.local_addr().expect("addr").to_string().parse().expect("authority");
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
}
