//! Body types of the proxy: request bodies streamed upstream under a byte cap, and
//! response bodies that are either the upstream's stream or a short local text.
//!
//! Both stream frame by frame: nothing here buffers a whole body.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use crate::upstream::{ConnPool, PooledConn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Why a request body stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than `limit` bytes arrived (`limits.max_body_bytes`).
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// Reading from the client failed.
    #[error("reading the client body failed: {0}")]
    Client(#[from] hyper::Error),
}

/// A client request body on its way upstream, cut off with [`BodyError::TooLarge`] once
/// it passes `limit` bytes (0: no limit). `None` is an empty body (used for retries).
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    seen: u64,
    limit: u64,
}

impl RequestBody {
    /// Streams `inner` with a cap of `limit` bytes (0: unlimited).
    pub fn capped(inner: Incoming, limit: u64) -> Self {
        RequestBody { inner: Some(inner), seen: 0, limit }
    }

    /// An empty body.
    pub fn empty() -> Self {
        RequestBody { inner: None, seen: 0, limit: 0 }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.limit > 0 && this.seen > this.limit {
                        this.inner = None;
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(BodyError::Client(e)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// A response body sent to the client.
#[derive(Debug)]
pub enum ResponseBody {
    /// The upstream's body, relayed as it arrives, driving its connection (which feeds
    /// it) meanwhile; once it has been read to the end the connection goes back to the
    /// instance's pool.
    Upstream(Incoming, Option<(PooledConn, Arc<ConnPool>)>),
    /// A short local body (error text), sent once.
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A local text body.
    pub fn text(s: &'static str) -> Self {
        ResponseBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }

    /// The upstream body `body`, whose connection `conn` returns to `pool` at its end.
    pub fn upstream(body: Incoming, conn: Option<(PooledConn, Arc<ConnPool>)>) -> Self {
        let mut b = ResponseBody::Upstream(body, conn);
        b.release_if_done();
        b
    }

    fn release_if_done(&mut self) {
        if let ResponseBody::Upstream(body, conn) = self {
            if body.is_end_stream() {
                if let Some((c, pool)) = conn.take() {
                    pool.give_back(c);
                }
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match this {
            ResponseBody::Upstream(b, conn) => {
                if let Some((c, _)) = conn.as_mut() {
                    // Reads what the body needs (and sends what is left of the request).
                    let _ = c.poll_conn(cx);
                }
                let res = ready!(Pin::new(b).poll_frame(cx));
                match &res {
                    None => {
                        if let Some((c, pool)) = conn.take() {
                            pool.give_back(c);
                        }
                    }
                    Some(Ok(_)) => this.release_if_done(),
                    // A broken body leaves the connection unusable: drop it.
                    Some(Err(_)) => *conn = None,
                }
                Poll::Ready(res)
            }
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(b, _) => b.is_end_stream(),
            ResponseBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(b, _) => b.size_hint(),
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

/// Whether `err` (a client error) was caused by the request body passing its cap.
pub fn is_body_too_large(err: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(BodyError::TooLarge { limit }) = e.downcast_ref::<BodyError>() {
            return Some(*limit);
        }
        cur = e.source();
    }
    None
}
