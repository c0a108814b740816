//! One upstream HTTP/1.1 connection: the socket, its read buffer, the response-head
//! deadline, and the request body still being sent (full duplex: the holder keeps
//! pumping it while it reads the response).

use super::chunked::{chunk_head, last_chunk_with, CHUNK_END, LAST_CHUNK};
use super::codec::RequestFraming;
use crate::body::{BodyError, RequestBody};
use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Read buffer growth while reading a head or a short body.
const READ_SMALL: usize = 8 * 1024;
/// Read buffer growth while a long body streams.
const READ_LARGE: usize = 64 * 1024;
/// A request body whose first frame completes it and is at most this long goes out in
/// the same write as the head.
const COALESCE_MAX: usize = 16 * 1024;

/// Why sending the request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The client's body failed (read error, or over the size cap).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Writing to the upstream failed.
    #[error("writing to the upstream failed: {0}")]
    Write(#[source] io::Error),
    /// The body's length differs from the `Content-Length` announced upstream.
    #[error("the request body does not match its Content-Length")]
    Length,
}

/// The request going out on a connection: its encoded head and the body still to send.
#[derive(Debug, Default)]
pub(super) struct Upload {
    body: Option<RequestBody>,
    chunked: bool,
    /// Bytes the body still owes under `content-length` framing.
    owed: Option<u64>,
    /// Bytes queued for the socket, in order.
    queue: Vec<Bytes>,
    /// Whether any byte was taken from the body (it can no longer be sent elsewhere).
    pub(super) body_touched: bool,
    /// Whether the socket accepted any byte of this request.
    pub(super) wrote_any: bool,
    /// The body, its one frame put back, while that frame waits in the first write.
    spare: Option<RequestBody>,
    /// Whether sending stopped short ([`PooledConn::abandon_upload`]).
    aborted: bool,
}

impl Upload {
    /// Whether nothing is left to send.
    pub(super) fn is_done(&self) -> bool {
        self.body.is_none() && self.queue.is_empty()
    }

    /// Whether the request went out whole (the connection may take the next one).
    pub(super) fn finished(&self) -> bool {
        self.is_done() && !self.aborted
    }
}

/// One upstream HTTP/1.1 connection, driven by whoever holds it: the request while it
/// waits for the response head, then the response body while it is relayed.
pub struct PooledConn {
    pub(super) io: TcpStream,
    /// Bytes read and not consumed yet (the rest of a head, body bytes).
    pub(super) buf: BytesMut,
    /// The response-head deadline, reused by every request on this connection: pushing
    /// a registered timer later is one atomic store, where a fresh `timeout()` per
    /// request would insert into and remove from the timer wheel each time.
    pub(super) deadline: Pin<Box<Sleep>>,
    pub(super) upload: Upload,
    /// Whether the connection came from the idle pool (it may have gone stale).
    pub(super) reused: bool,
    /// Whether a check found it closed (or holding stray bytes).
    closed: bool,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn").field("closed", &self.closed).field("buffered", &self.buf.len()).finish()
    }
}

impl PooledConn {
    pub(super) fn new(io: TcpStream, deadline: Pin<Box<Sleep>>) -> Self {
        PooledConn { io, buf: BytesMut::new(), deadline, upload: Upload::default(), reused: false, closed: false }
    }

    /// Whether an idle connection is still usable, checked without a waker: readable
    /// means the instance closed it (EOF) or sent bytes nobody asked for, either way it
    /// is done. Costs no system call unless the socket was reported readable.
    pub(super) fn idle_usable(&mut self) -> bool {
        if self.closed || !self.buf.is_empty() {
            self.closed = true;
            return false;
        }
        let mut probe = [0u8; 1];
        match self.io.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            _ => {
                self.closed = true;
                false
            }
        }
    }

    /// Whether a check found the connection closed.
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Queues `head` and sets `body` up to follow it with `framing`.
    pub(super) fn start(&mut self, head: Bytes, body: RequestBody, framing: RequestFraming) {
        self.upload.queue.clear();
        self.upload.queue.push(head);
        self.upload.chunked = framing == RequestFraming::Chunked;
        self.upload.owed = match framing {
            RequestFraming::Length(n) => Some(n),
            _ => None,
        };
        self.upload.body = (framing != RequestFraming::Empty).then_some(body);
        self.upload.body_touched = false;
        self.upload.wrote_any = false;
        self.upload.spare = None;
        self.upload.aborted = false;
    }

    /// Takes back the body of a request none of whose body was read (to send elsewhere).
    pub(super) fn take_untouched_body(&mut self) -> Option<RequestBody> {
        if self.upload.body_touched {
            return None;
        }
        self.upload.queue.clear();
        let body = self.upload.spare.take().or_else(|| self.upload.body.take());
        Some(body.unwrap_or_else(RequestBody::empty))
    }

    /// Stops sending the request body (the upstream no longer reads it).
    pub(super) fn abandon_upload(&mut self) {
        self.upload.aborted = true;
        self.upload.body = None;
        self.upload.spare = None;
        self.upload.queue.clear();
    }

    /// Sends what is queued and what the body yields, until the body has ended or
    /// either side has nothing more right now.
    pub(super) fn poll_upload(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UploadError>> {
        loop {
            // Before the head goes out, a small body may join it in the same write.
            let peek = !self.upload.wrote_any
                && self.upload.queue.len() == 1
                && self.upload.body.as_ref().is_some_and(|b| {
                    b.size_hint().exact().is_some_and(|n| n > 0 && n <= COALESCE_MAX as u64)
                });
            if !peek {
                ready!(self.poll_write_queue(cx)).map_err(UploadError::Write)?;
            }
            let up = &mut self.upload;
            let Some(body) = up.body.as_mut() else { return Poll::Ready(Ok(())) };
            let frame = match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending if peek => {
                    ready!(self.poll_write_queue(cx)).map_err(UploadError::Write)?;
                    continue;
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    up.body = None;
                    if up.chunked {
                        up.queue.push(Bytes::from_static(LAST_CHUNK));
                    }
                    if up.owed.is_some_and(|n| n > 0) {
                        return Poll::Ready(Err(UploadError::Length));
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => {
                    up.body = None;
                    up.body_touched = true;
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if peek => {
                    let whole = body.is_end_stream() && (up.chunked || up.owed == Some(data.len() as u64));
                    // Put back, so a connection dead before the first write can still
                    // hand the request back whole.
                    body.unread(data.clone());
                    if whole {
                        up.coalesce(data);
                    } else {
                        ready!(self.poll_write_queue(cx)).map_err(UploadError::Write)?;
                    }
                }
                Ok(data) => {
                    up.body_touched = true;
                    up.queue_data(data)?;
                }
                Err(frame) => {
                    up.body_touched = true;
                    if let (true, Ok(trailers)) = (up.chunked, frame.into_trailers()) {
                        up.body = None;
                        up.queue.push(last_chunk_with(&trailers));
                    }
                }
            }
        }
    }

    fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let up = &mut self.upload;
        while !up.queue.is_empty() {
            let n = if up.queue.len() == 1 {
                ready!(Pin::new(&mut self.io).poll_write(cx, &up.queue[0]))?
            } else {
                let mut slices = [IoSlice::new(&[]); 4];
                for (s, b) in slices.iter_mut().zip(&up.queue) {
                    *s = IoSlice::new(b);
                }
                let k = up.queue.len().min(4);
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if !up.wrote_any {
                up.wrote_any = true;
                if up.spare.take().is_some() {
                    up.body_touched = true;
                }
            }
            let mut left = n;
            let mut done = 0;
            for b in &mut up.queue {
                if left >= b.len() {
                    left -= b.len();
                    done += 1;
                } else {
                    b.advance(left);
                    break;
                }
            }
            up.queue.drain(..done);
        }
        Poll::Ready(Ok(()))
    }

    /// Reads more bytes into the buffer: `Ok(0)` at end of stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>, large: bool) -> Poll<io::Result<usize>> {
        let want = if large { READ_LARGE } else { READ_SMALL };
        if self.buf.capacity() - self.buf.len() < want / 4 {
            self.buf.reserve(want);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// The upstream side of a tunnel after a `101 Switching Protocols`: the socket, with
    /// the bytes already read past the response head served first.
    pub fn into_tunnel(self: Box<Self>) -> super::tunnel::Rewind {
        let this = *self;
        super::tunnel::Rewind::new(this.buf.freeze(), this.io)
    }
}

impl Upload {
    /// Makes the queued head and `data`, the whole body (still held, put back, in
    /// `body`), one buffer for one write; the body waits aside until that write succeeds.
    fn coalesce(&mut self, data: Bytes) {
        let mut one = BytesMut::with_capacity(self.queue[0].len() + data.len() + 16);
        one.extend_from_slice(&self.queue[0]);
        if self.chunked {
            one.extend_from_slice(&chunk_head(data.len()));
            one.extend_from_slice(&data);
            one.extend_from_slice(CHUNK_END);
            one.extend_from_slice(LAST_CHUNK);
        } else {
            one.extend_from_slice(&data);
        }
        self.queue[0] = one.freeze();
        self.owed = self.owed.map(|_| 0);
        self.spare = self.body.take();
    }

    fn queue_data(&mut self, data: Bytes) -> Result<(), UploadError> {
        if data.is_empty() {
            return Ok(());
        }
        if let Some(owed) = self.owed.as_mut() {
            *owed = owed.checked_sub(data.len() as u64).ok_or(UploadError::Length)?;
        }
        if self.chunked {
            self.queue.push(chunk_head(data.len()));
            self.queue.push(data);
            self.queue.push(Bytes::from_static(CHUNK_END));
        } else {
            self.queue.push(data);
        }
        Ok(())
    }
}
