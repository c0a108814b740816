//! Body types of the proxy: request bodies streamed upstream under a byte cap, and
//! response bodies that are either the upstream's stream or a short local text.
//!
//! Both stream frame by frame: nothing here buffers a whole body.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pub use crate::upstream::{RelayError, UpstreamBody};

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
    /// The client's chunked body is malformed (our HTTP/1.1 loop).
    #[error("malformed chunked request body: {0}")]
    Chunked(#[source] crate::upstream::chunked::ChunkError),
    /// The client closed or failed before the end of its body (our HTTP/1.1 loop).
    #[error("the client connection ended mid-body: {0}")]
    Cut(#[source] std::io::Error),
}

/// Where a client request body comes from: hyper (HTTP/2, or a connection handed to
/// hyper) or our own HTTP/1.1 loop, which reads it off the connection.
#[derive(Debug)]
pub enum ClientBody {
    /// Read by hyper.
    Hyper(Incoming),
    /// Read by our HTTP/1.1 loop ([`crate::conn::h1`]).
    Pumped(crate::conn::h1::body::PumpedBody),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ClientBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::Client),
            ClientBody::Pumped(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(b) => b.is_end_stream(),
            ClientBody::Pumped(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(b) => b.size_hint(),
            ClientBody::Pumped(b) => b.size_hint(),
        }
    }
}

/// A client request body on its way upstream, cut off with [`BodyError::TooLarge`] once
/// it passes `limit` bytes (0: no limit). `None` is an empty body (used for retries).
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<ClientBody>,
    /// A frame taken and put back ([`RequestBody::unread`]), returned first.
    pending: Option<Bytes>,
    seen: u64,
    limit: u64,
}

impl RequestBody {
    /// Streams `inner` with a cap of `limit` bytes (0: unlimited).
    pub fn capped(inner: ClientBody, limit: u64) -> Self {
        RequestBody { inner: Some(inner), pending: None, seen: 0, limit }
    }

    /// An empty body.
    pub fn empty() -> Self {
        RequestBody { inner: None, pending: None, seen: 0, limit: 0 }
    }

    /// Puts a data frame just taken back in front, as if it had not been read (the
    /// upstream side peeks at a small body to send it with the head).
    pub fn unread(&mut self, data: Bytes) {
        self.seen = self.seen.saturating_sub(data.len() as u64);
        self.pending = Some(data);
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
        if let Some(data) = this.pending.take() {
            this.seen += data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
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
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        if let Some(p) = &self.pending {
            let n = p.len() as u64;
            match hint.exact() {
                Some(e) => hint.set_exact(e + n),
                None => {
                    hint.set_lower(hint.lower() + n);
                    if let Some(u) = hint.upper() {
                        hint.set_upper(u + n);
                    }
                }
            }
        }
        hint
    }
}

/// A response body sent to the client.
#[derive(Debug)]
pub enum ResponseBody {
    /// The upstream's body, read off its connection as the client takes it (see
    /// [`UpstreamBody`]).
    Upstream(UpstreamBody),
    /// A short local body (error text), sent once; `None` once sent, or empty.
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A local text body.
    pub fn text(s: &'static str) -> Self {
        ResponseBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = RelayError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayError>>> {
        match self.get_mut() {
            ResponseBody::Upstream(b) => b.poll_frame(cx),
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(b) => b.is_end_stream(),
            ResponseBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(b) => b.size_hint(),
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

/// Whether `err` was caused by the request body passing its cap.
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
