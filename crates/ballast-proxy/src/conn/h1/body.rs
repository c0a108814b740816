//! Request bodies on our HTTP/1.1 loop: the loop reads them off the connection (it owns
//! the socket) and queues their frames for the request path, which streams them upstream.
//!
//! Both ends run in the connection's task: the request path takes frames from a
//! [`PumpedBody`] while the loop, between polls of the request, reads the socket and
//! refills the queue through the [`Pump`]. The queue is bounded ([`QUEUE_BYTES`]), so a
//! slow upstream slows the client down instead of filling memory. What arrived with the
//! head is queued at once, so a small body is ready when the request goes upstream (and
//! goes out in the same write as the head). A client that sent `Expect: 100-continue` is
//! told to go on when the request path first asks for the body ([`Pump::demanded`]).

use super::request::BodyFraming;
use crate::body::BodyError;
use crate::upstream::chunked::{ChunkedDecoder, Decoded};
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Bytes queued between the loop and the request path at most; the loop stops reading
/// the body while the queue holds this much.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// What the two ends share.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Frame<Bytes>>,
    bytes: usize,
    /// The whole body has been queued (or a failure below).
    ended: bool,
    failed: Option<BodyError>,
    /// The request path has asked for the body.
    demanded: bool,
    /// The request path waits for a frame.
    waiting: Option<Waker>,
}

/// The request path's end: a body whose frames the loop queues.
#[derive(Debug)]
pub struct PumpedBody {
    queue: Arc<Mutex<Queue>>,
    hint: SizeHint,
}

/// The loop's end: decodes the body's framing out of the connection's read buffer.
#[derive(Debug)]
pub struct Pump {
    queue: Arc<Mutex<Queue>>,
    framing: Framing,
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

/// What the loop should do next for the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read more bytes from the client.
    Bytes,
    /// The queue is full: wait for the request path.
    Room,
    /// The whole body has been queued (or it failed).
    Nothing,
}

/// A body framed as `framing` (not [`BodyFraming::None`]): the request path's end and
/// the loop's.
pub fn pumped(framing: BodyFraming) -> (PumpedBody, Pump) {
    let queue = Arc::new(Mutex::new(Queue::default()));
    let (hint, framing) = match framing {
        BodyFraming::None | BodyFraming::Length(0) => (SizeHint::with_exact(0), Framing::Done),
        BodyFraming::Length(n) => (SizeHint::with_exact(n), Framing::Length(n)),
        BodyFraming::Chunked => (SizeHint::default(), Framing::Chunked(ChunkedDecoder::default())),
    };
    if matches!(framing, Framing::Done) {
        lock(&queue).ended = true;
    }
    (PumpedBody { queue: queue.clone(), hint }, Pump { queue, framing })
}

fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pump {
    /// Moves what `buf` holds of the body into the queue, and says what is needed next.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Need {
        let mut q = lock(&self.queue);
        while q.bytes < QUEUE_BYTES && !q.ended {
            let frame = match &mut self.framing {
                Framing::Done => {
                    q.ended = true;
                    break;
                }
                Framing::Length(left) => {
                    if buf.is_empty() {
                        break;
                    }
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    *left -= take as u64;
                    if *left == 0 {
                        self.framing = Framing::Done;
                    }
                    Frame::data(buf.split_to(take).freeze())
                }
                Framing::Chunked(dec) => match dec.decode(buf) {
                    Ok(Decoded::Frame(f)) => f,
                    Ok(Decoded::End) => {
                        self.framing = Framing::Done;
                        continue;
                    }
                    Ok(Decoded::NeedMore) => break,
                    Err(e) => {
                        q.failed = Some(BodyError::Chunked(e));
                        q.ended = true;
                        break;
                    }
                },
            };
            q.bytes += frame.data_ref().map_or(0, Bytes::len);
            q.frames.push_back(frame);
        }
        if let Some(w) = q.waiting.take() {
            if !q.frames.is_empty() || q.ended {
                w.wake();
            } else {
                q.waiting = Some(w);
            }
        }
        if q.ended {
            Need::Nothing
        } else if q.bytes >= QUEUE_BYTES {
            Need::Room
        } else {
            Need::Bytes
        }
    }

    /// The client closed or failed before the end of the body.
    pub fn cut(&mut self, error: std::io::Error) {
        let mut q = lock(&self.queue);
        if !q.ended {
            q.failed = Some(BodyError::Cut(error));
            q.ended = true;
            if let Some(w) = q.waiting.take() {
                w.wake();
            }
        }
    }

    /// Whether the whole body has been read off the connection (what follows it is the
    /// next request).
    pub fn is_read(&self) -> bool {
        matches!(self.framing, Framing::Done) && lock(&self.queue).failed.is_none()
    }

    /// Whether the request path has asked for the body.
    pub fn demanded(&self) -> bool {
        lock(&self.queue).demanded
    }
}

impl http_body::Body for PumpedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut q = lock(&self.queue);
        q.demanded = true;
        if let Some(frame) = q.frames.pop_front() {
            q.bytes -= frame.data_ref().map_or(0, Bytes::len);
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = q.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        q.waiting = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let q = lock(&self.queue);
        q.ended && q.frames.is_empty() && q.failed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
