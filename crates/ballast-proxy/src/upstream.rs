//! Upstream connections: a small keep-alive pool per instance, connecting with a
//! timeout, and sending one request with the outcome classified for retries.
//!
//! Connecting is a separate step from sending, so a connect failure leaves the request
//! (and its body) with the caller, who may send it to another instance. A pooled
//! connection that turns out to be closed hands the request back unsent too
//! (`try_send_request`). A connection goes back to its pool only once its response body
//! has been read to the end ([`crate::body::ResponseBody`] does that), so every pooled
//! connection is ready for the next request and no task is spawned per request.

use crate::body::{is_body_too_large, RequestBody};
use crate::error::ProxyError;
use crate::workers::current_worker;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpStream;

/// Idle connections kept per instance. Large, so that a burst's connections are reused
/// rather than re-opened (each re-open costs a handshake and a TIME_WAIT socket).
const MAX_IDLE_PER_INSTANCE: usize = 1024;
/// TCP keep-alive probe interval on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A sender on one upstream HTTP/1.1 connection.
pub type Sender = SendRequest<RequestBody>;

/// The idle keep-alive connections of one instance, one shard per worker thread (see
/// [`crate::workers`]) so a connection is reused on the thread that drives it.
#[derive(Debug)]
pub struct ConnPool {
    shards: Vec<Mutex<Vec<Sender>>>,
}

impl ConnPool {
    /// An empty pool with `shards` shards (at least 1).
    pub fn new(shards: usize) -> Self {
        ConnPool { shards: (0..shards.max(1)).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self) -> &Mutex<Vec<Sender>> {
        &self.shards[current_worker() % self.shards.len()]
    }

    /// An idle connection ready for a request, if any; closed ones are dropped.
    pub fn checkout(&self) -> Option<Sender> {
        let mut idle = self.shard().lock().unwrap_or_else(PoisonError::into_inner);
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].is_ready() {
                return Some(idle.swap_remove(i));
            }
            if idle[i].is_closed() {
                idle.swap_remove(i);
            }
            // Open but not yet ready (its connection task has not caught up with the
            // end of the last response): leave it for a later request.
        }
        None
    }

    /// Returns a connection whose response has been read to the end.
    pub fn give_back(&self, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.shard().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_PER_INSTANCE {
            idle.push(s);
        }
    }

    /// Idle connections held, over all shards (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
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
/// and starts its connection task.
pub async fn connect(addr: &Authority, timeout: Duration) -> Result<Sender, ProxyError> {
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
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
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

/// Sends `req` on `sender` and waits at most `timeout` for the response head.
pub async fn send(
    sender: &mut Sender,
    req: Request<RequestBody>,
    addr: &Authority,
    timeout: Duration,
) -> Result<Response<Incoming>, SendError> {
    match tokio::time::timeout(timeout, sender.try_send_request(req)).await {
        Err(_) => Err(SendError::Failed(ProxyError::UpstreamTimeout { addr: addr.to_string(), after: timeout })),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(mut e)) => match e.take_message() {
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
