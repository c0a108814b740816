//! Reading a response body off its connection, frame by frame as the client takes it,
//! while the rest of the request body keeps going out; the connection goes back to its
//! pool the moment both are complete (for a short body, before the response is even
//! handed to the client side).

use super::chunked::{ChunkError, ChunkedDecoder, Decoded};
use super::codec::BodyKind;
use super::conn::{PooledConn, UploadError};
use super::pool::ConnPool;
use crate::body::BodyError;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Why relaying a response body stopped early (the client connection is then aborted,
/// so the client cannot take a truncated body for a whole one).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading from the upstream failed, or it closed before the end of the body.
    #[error("reading the upstream body failed: {0}")]
    Upstream(#[source] io::Error),
    /// The upstream's chunked body is malformed.
    #[error("the upstream sent a malformed chunked body: {0}")]
    Chunked(#[source] ChunkError),
    /// The request body (still being sent) failed, e.g. it passed its size cap.
    #[error("the request body failed: {0}")]
    Request(#[source] BodyError),
}

#[derive(Debug)]
enum State {
    /// The whole body, read with the head.
    Whole(Bytes),
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// An upstream response body being relayed; it drives its own connection (see the
/// module doc).
#[derive(Debug)]
pub struct UpstreamBody {
    conn: Option<Box<PooledConn>>,
    pool: Arc<ConnPool>,
    state: State,
    /// Whether the connection may take another request once this exchange is over.
    reusable: bool,
}

impl UpstreamBody {
    /// The body framed as `kind`, read from `conn`, which returns to `pool` at its end
    /// when `reusable`.
    pub fn new(mut conn: Box<PooledConn>, pool: Arc<ConnPool>, kind: BodyKind, reusable: bool) -> Self {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) if conn.buf.len() as u64 >= n => {
                State::Whole(conn.buf.split_to(usize::try_from(n).unwrap_or(usize::MAX)).freeze())
            }
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Chunked(ChunkedDecoder::default()),
            BodyKind::UntilClose => State::UntilClose,
        };
        let mut body = UpstreamBody { conn: Some(conn), pool, state, reusable };
        body.release_if_read();
        body
    }

    /// Once the whole body has been read, gives the connection back (when it is clean
    /// and the request has gone out whole) or drops it.
    fn release_if_read(&mut self) {
        if !matches!(self.state, State::Whole(_) | State::Done) {
            return;
        }
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.upload.finished() && conn.buf.is_empty() {
                self.pool.give_back(conn);
            }
        }
    }

    fn fail(&mut self, e: RelayError) -> Poll<Option<Result<Frame<Bytes>, RelayError>>> {
        self.conn = None;
        self.state = State::Done;
        Poll::Ready(Some(Err(e)))
    }

    /// The next frame (see [`http_body::Body::poll_frame`]).
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RelayError>>> {
        if let Some(conn) = self.conn.as_mut() {
            // Full duplex: the upstream may answer before it has read the whole request.
            if !conn.upload.is_done() {
                match conn.poll_upload(cx) {
                    Poll::Ready(Err(UploadError::Body(e))) => return self.fail(RelayError::Request(e)),
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "the request body stopped short; its connection is not reused");
                        conn.abandon_upload();
                    }
                    _ => {}
                }
            }
        }
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return match std::mem::replace(&mut self.state, State::Done) {
                    State::Whole(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    _ => Poll::Ready(None),
                };
            };
            let eof = match &mut self.state {
                State::Whole(_) | State::Done => {
                    self.release_if_read();
                    continue;
                }
                State::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            self.state = State::Done;
                            self.release_if_read();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let large = *left > 32 * 1024;
                    match ready!(conn.poll_fill(cx, large)) {
                        Ok(0) => true,
                        Ok(_) => continue,
                        Err(e) => return self.fail(RelayError::Upstream(e)),
                    }
                }
                State::Chunked(dec) => match dec.decode(&mut conn.buf) {
                    Err(e) => return self.fail(RelayError::Chunked(e)),
                    Ok(Decoded::Frame(f)) => {
                        if dec.is_done() {
                            self.state = State::Done;
                            self.release_if_read();
                        }
                        return Poll::Ready(Some(Ok(f)));
                    }
                    Ok(Decoded::End) => {
                        self.state = State::Done;
                        self.release_if_read();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => match ready!(conn.poll_fill(cx, true)) {
                        Ok(0) => true,
                        Ok(_) => continue,
                        Err(e) => return self.fail(RelayError::Upstream(e)),
                    },
                },
                State::UntilClose => {
                    if !conn.buf.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(conn.buf.split().freeze()))));
                    }
                    match ready!(conn.poll_fill(cx, true)) {
                        Ok(0) => {
                            // The end of a close-delimited body.
                            self.conn = None;
                            self.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Ok(_) => continue,
                        Err(e) => return self.fail(RelayError::Upstream(e)),
                    }
                }
            };
            if eof {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the upstream closed the connection mid-body");
                return self.fail(RelayError::Upstream(e));
            }
        }
    }

    /// Whether the body has been read to the end.
    pub fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Exact for a body of known length.
    pub fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Whole(b) => SizeHint::with_exact(b.len() as u64),
            State::Length(n) => SizeHint::with_exact(*n),
            State::Done => SizeHint::with_exact(0),
            State::Chunked(_) | State::UntilClose => SizeHint::default(),
        }
    }
}
