//! Writing a response to an HTTP/1.1 client on the lean path: the head encoded from the
//! proxy's response, the body framed (RFC 9112 §6) and written frame by frame.
//!
//! A short body that is ready with the head goes out in the same write as the head.

use crate::body::ResponseBody;
use crate::upstream::chunked::{last_chunk_with, CHUNK_END, LAST_CHUNK};
use bytes::{BufMut, BytesMut};
use crate::forward;
use crate::reply::Reply;
use http::header::{self, HeaderValue};
use http::StatusCode;
use http_body::Body;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Data up to this size is copied next to what is already queued; a larger frame is
/// written on its own (after the queue) instead of copied.
const COPY_UP_TO: usize = 16 * 1024;

/// How a response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the response to HEAD, a 1xx, 204 or 304.
    None,
    /// The `Content-Length` in the head says how long it is.
    Length,
    /// Chunked transfer coding (length unknown, HTTP/1.1 client).
    Chunked,
    /// Delimited by closing the connection (length unknown, HTTP/1.0 client).
    Close,
}

/// What the client side knows when it frames a response.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The request was HEAD.
    pub head_request: bool,
    /// The client speaks HTTP/1.1 (not 1.0).
    pub http11: bool,
    /// The connection stays open after this response, as far as the client and the
    /// listener are concerned.
    pub keep_alive: bool,
}

/// Encodes the head of `reply` into `out`: status line, fields, the framing header and,
/// when the connection is to close, `connection: close`. Returns the framing of the
/// body and whether the connection stays open after it.
pub fn encode_head(out: &mut BytesMut, reply: &Reply, ex: Exchange) -> (Framing, bool) {
    let status = reply.status();
    let exact = reply.body().size_hint().exact();
    let (has_length, says_close) = match reply {
        // A relayed head's own `Connection` is hop-by-hop: never forwarded.
        Reply::Relayed { head, .. } => (head.forwards_content_length(), false),
        Reply::Local(resp) => {
            let h = resp.headers();
            let close = h.get_all(header::CONNECTION).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            (h.contains_key(header::CONTENT_LENGTH), close)
        }
    };
    let framing = if ex.head_request || status.is_informational() || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::None
    } else if has_length || exact.is_some() {
        Framing::Length
    } else if ex.http11 {
        Framing::Chunked
    } else {
        Framing::Close
    };
    let keep = ex.keep_alive && framing != Framing::Close && !says_close;
    match reply {
        Reply::Relayed { head, added, .. } => {
            head.encode_client_head(out);
            if let Some(id) = &added.request_id {
                put_field(out, forward::X_REQUEST_ID.as_str(), id);
            }
            if let Some(cookie) = &added.set_cookie {
                put_field(out, header::SET_COOKIE.as_str(), cookie);
            }
        }
        Reply::Local(resp) => {
            put_status_line(out, status);
            for (name, value) in resp.headers() {
                put_field(out, name.as_str(), value);
            }
        }
    }
    match framing {
        Framing::Length if !has_length => {
            let _ = write!(out, "content-length: {}\r\n", exact.unwrap_or(0));
        }
        Framing::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // Its own `Connection: upgrade` says what happens next.
    } else if !keep && !says_close {
        out.put_slice(b"connection: close\r\n");
    } else if keep && !ex.http11 {
        out.put_slice(b"connection: keep-alive\r\n");
    }
    out.put_slice(b"\r\n");
    (framing, keep)
}

/// `HTTP/1.1 <code> <reason>` and its line end.
pub fn put_status_line(out: &mut BytesMut, status: StatusCode) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
}

fn put_field(out: &mut BytesMut, name: &str, value: &HeaderValue) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// Why writing a response stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Writing to the client failed.
    #[error("writing to the client failed: {0}")]
    Client(#[from] io::Error),
    /// The body failed mid-way (the client must not take it for whole).
    #[error("the response body failed: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Writes `out` (the encoded head) and then `body` framed as `framing`, coalescing what
/// is ready into as few writes as possible. `trailers`: the client accepts trailer
/// fields (they are dropped otherwise). `out` is left empty.
///
/// Whenever the writing waits (for the body or for the client), `client` is polled with
/// the connection: it keeps reading the request body meanwhile (the upstream may answer
/// before it has all of it). Its `Ready` means the client is gone.
pub async fn write_body<W, C>(
    io: &mut W,
    out: &mut BytesMut,
    mut body: ResponseBody,
    framing: Framing,
    trailers: bool,
    mut client: C,
) -> Result<(), WriteError>
where
    W: AsyncWrite + Unpin,
    C: FnMut(&mut W, &mut Context<'_>) -> Poll<()>,
{
    let mut ended_chunks = false;
    let mut ended = framing == Framing::None;
    while !ended {
        // Take what the body has ready; write what is queued only when it has nothing.
        let polled = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(None),
            Poll::Pending => client(io, cx).map(|()| Some(Some(Err(WriteError::Client(gone()))))),
            Poll::Ready(frame) => Poll::Ready(Some(frame.map(|f| f.map_err(|e| WriteError::Body(Box::new(e)))))),
        })
        .await;
        let frame = match polled {
            None => {
                flush(io, out, &mut client).await?;
                continue;
            }
            Some(None) => {
                ended = true;
                continue;
            }
            Some(Some(Err(e))) => return Err(e),
            Some(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) if !data.is_empty() => {
                let chunked = framing == Framing::Chunked;
                if chunked {
                    let _ = write!(out, "{:x}\r\n", data.len());
                }
                if data.len() <= COPY_UP_TO {
                    out.put_slice(&data);
                } else {
                    // Large: written on its own after what is queued, not copied.
                    flush(io, out, &mut client).await?;
                    write_all(io, &data, &mut client).await?;
                }
                if chunked {
                    out.put_slice(CHUNK_END);
                }
            }
            Ok(_) => {}
            Err(frame) => {
                if let (Framing::Chunked, Some(fields), true) = (framing, frame.trailers_ref(), trailers) {
                    out.put_slice(&last_chunk_with(fields));
                    ended_chunks = true;
                }
            }
        }
    }
    if framing == Framing::Chunked && !ended_chunks {
        out.put_slice(LAST_CHUNK);
    }
    flush(io, out, &mut client).await
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the client went away")
}

/// Writes what `out` holds, empties it, and flushes the connection (TLS buffers).
async fn flush<W, C>(io: &mut W, out: &mut BytesMut, client: &mut C) -> Result<(), WriteError>
where
    W: AsyncWrite + Unpin,
    C: FnMut(&mut W, &mut Context<'_>) -> Poll<()>,
{
    write_all(io, out, client).await?;
    out.clear();
    poll_fn(|cx| match Pin::new(&mut *io).poll_flush(cx) {
        Poll::Pending => client(io, cx).map(|()| Err(gone())),
        done => done,
    })
    .await
    .map_err(WriteError::from)
}

/// `write_all`, polling `client` while the connection takes no more.
async fn write_all<W, C>(io: &mut W, mut data: &[u8], client: &mut C) -> Result<(), WriteError>
where
    W: AsyncWrite + Unpin,
    C: FnMut(&mut W, &mut Context<'_>) -> Poll<()>,
{
    poll_fn(|cx| {
        while !data.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, data) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero))),
                Poll::Ready(Ok(n)) => data = &data[n..],
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return client(io, cx).map(|()| Err(gone())),
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
    .map_err(WriteError::from)
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
