use super::*;
use http_body::Body;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `body` once with a counting waker.
fn poll(body: &mut PumpedBody, wakes: &Arc<Count>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    let waker = Waker::from(wakes.clone());
    Pin::new(body).poll_frame(&mut Context::from_waker(&waker))
}

/// A body framed as `framing` that the request path has already asked for (and waits on).
fn asked(framing: BodyFraming) -> (PumpedBody, Pump, Arc<Count>) {
    let (mut body, pump) = pumped(framing);
    let wakes = Arc::new(Count::default());
    assert!(poll(&mut body, &wakes).is_pending());
    (body, pump, wakes)
}

fn data(p: Poll<Option<Result<Frame<Bytes>, BodyError>>>) -> Bytes {
    match p {
        Poll::Ready(Some(Ok(f))) => f.into_data().expect("a data frame"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_body_that_came_with_the_head_is_ready_at_the_first_ask() {
    let (mut body, mut pump) = pumped(BodyFraming::Length(5));
    let mut buf = BytesMut::from(&b"hello"[..]);
    assert_eq!(pump.feed(&mut buf), Need::Nothing);
    assert!(buf.is_empty());
    assert!(!pump.demanded(), "queued, not yet asked for");
    let wakes = Arc::new(Count::default());
    assert_eq!(data(poll(&mut body, &wakes)), "hello");
    assert!(pump.demanded());
    assert!(matches!(poll(&mut body, &wakes), Poll::Ready(None)));
    assert!(pump.is_read() && body.is_end_stream());
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "nothing waited");
}

#[test]
fn a_waiting_request_path_is_woken_when_bytes_arrive() {
    let (mut body, mut pump, wakes) = asked(BodyFraming::Length(2));
    let mut buf = BytesMut::from(&b"ok"[..]);
    assert_eq!(pump.feed(&mut buf), Need::Nothing);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(data(poll(&mut body, &wakes)), "ok");
}

#[test]
fn a_length_body_takes_only_its_bytes_over_several_reads() {
    let (mut body, mut pump, wakes) = asked(BodyFraming::Length(7));
    let mut buf = BytesMut::from(&b"abc"[..]);
    assert_eq!(pump.feed(&mut buf), Need::Bytes, "4 more to come");
    assert_eq!(data(poll(&mut body, &wakes)), "abc");
    buf.extend_from_slice(b"defgGET / HTTP/1.1\r\n");
    assert_eq!(pump.feed(&mut buf), Need::Nothing);
    assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n", "the next request stays");
    assert_eq!(data(poll(&mut body, &wakes)), "defg");
    assert!(pump.is_read());
    assert_eq!(body.size_hint().exact(), Some(7));
}

#[test]
fn a_chunked_body_is_decoded_with_its_trailers() {
    let (mut body, mut pump, wakes) = asked(BodyFraming::Chunked);
    let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\nx-sum: 3\r\n\r\nnext"[..]);
    assert_eq!(pump.feed(&mut buf), Need::Nothing);
    assert_eq!(&buf[..], b"next");
    assert_eq!(data(poll(&mut body, &wakes)), "abc");
    match poll(&mut body, &wakes) {
        Poll::Ready(Some(Ok(f))) => assert_eq!(f.trailers_ref().expect("trailers")["x-sum"], "3"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(poll(&mut body, &wakes), Poll::Ready(None)));
    assert!(pump.is_read());
}

#[test]
fn a_malformed_chunk_fails_the_body_and_the_connection_is_not_reused() {
    let (mut body, mut pump, wakes) = asked(BodyFraming::Chunked);
    let mut buf = BytesMut::from(&b"zz\r\nnope\r\n"[..]);
    assert_eq!(pump.feed(&mut buf), Need::Nothing);
    assert!(matches!(poll(&mut body, &wakes), Poll::Ready(Some(Err(BodyError::Chunked(_))))));
    assert!(!pump.is_read());
}

#[test]
fn a_full_queue_stops_the_reading_until_the_request_path_takes_some() {
    let total = QUEUE_BYTES as u64 * 2;
    let (mut body, mut pump, wakes) = asked(BodyFraming::Length(total));
    let mut buf = BytesMut::new();
    let mut queued = 0;
    while pump.feed(&mut buf) == Need::Bytes {
        buf.extend_from_slice(&[b'x'; 16 * 1024]);
        queued += 16 * 1024;
        assert!(queued <= QUEUE_BYTES + 32 * 1024, "the queue must stop growing");
    }
    assert_eq!(pump.feed(&mut buf), Need::Room);
    let taken = data(poll(&mut body, &wakes)).len();
    assert!(taken > 0);
    assert_eq!(pump.feed(&mut buf), Need::Bytes, "room again");
}

#[test]
fn a_client_gone_mid_body_fails_it() {
    let (mut body, mut pump, wakes) = asked(BodyFraming::Length(10));
    pump.cut(std::io::ErrorKind::UnexpectedEof.into());
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll(&mut body, &wakes), Poll::Ready(Some(Err(BodyError::Cut(_))))));
    assert!(!pump.is_read());
}
