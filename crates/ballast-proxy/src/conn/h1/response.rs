//! Writing a response to an HTTP/1.1 client on the lean path: the head encoded from the
//! proxy's response, the body framed (RFC 9112 §6) and written frame by frame.
//!
//! A short body that is ready with the head goes out in the same write as the head.

use crate::body::ResponseBody;
use crate::upstream::chunked::{last_chunk_with, CHUNK_END, LAST_CHUNK};
use bytes::{BufMut, Bytes, BytesMut};
use crate::forward;
use crate::reply::Reply;
use http::header::{self, HeaderValue};
use http::StatusCode;
use http_body::Body;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncWrite, AsyncWriteExt};

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
            put_field(out, forward::X_REQUEST_ID.as_str(), &added.request_id);
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
    if !keep && !says_close {
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
pub async fn write_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut BytesMut,
    mut body: ResponseBody,
    framing: Framing,
    trailers: bool,
) -> Result<(), WriteError> {
    if framing == Framing::None {
        return flush(io, out).await.map_err(WriteError::from);
    }
    let mut ended_chunks = false;
    loop {
        // Take what the body has ready; write what is queued only when it has nothing.
        let polled = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        let frame = match polled {
            None => {
                flush(io, out).await?;
                continue;
            }
            Some(None) => break,
            Some(Some(Err(e))) => return Err(WriteError::Body(Box::new(e))),
            Some(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) => put_data(io, out, data, framing).await?,
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
    flush(io, out).await.map_err(WriteError::from)
}

/// Queues (or, when large, writes) one data frame in `framing`.
async fn put_data<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut BytesMut,
    data: Bytes,
    framing: Framing,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let chunked = framing == Framing::Chunked;
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
    }
    if data.len() <= COPY_UP_TO {
        out.put_slice(&data);
    } else {
        flush(io, out).await?;
        io.write_all(&data).await?;
    }
    if chunked {
        out.put_slice(CHUNK_END);
    }
    Ok(())
}

/// Writes what `out` holds and empties it.
async fn flush<W: AsyncWrite + Unpin>(io: &mut W, out: &mut BytesMut) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.flush().await
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
