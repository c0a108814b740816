//! What the upstream client puts on the wire: a raw-TCP backend answers with the exact
//! bytes it received, so the tests see the request head and body framing as sent.

mod common;

use bytes::Bytes;
use common::{proxy, send, simple_config, TestBody};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one request (head, then a body framed by content-length or chunked, the
/// latter up to the end of its trailer section); `None` when the peer closed.
async fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let complete = |buf: &[u8]| -> bool {
        if let Some(cl) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
            buf.len() >= head_end + cl.trim().parse::<usize>().unwrap_or(0)
        } else if head.contains("transfer-encoding: chunked") {
            // The last chunk, then an empty line (after any trailer fields).
            let body = &buf[head_end..];
            body.starts_with(b"0\r\n\r\n") || body.windows(4).any(|w| w == b"\n0\r\n") && body.ends_with(b"\r\n\r\n")
        } else {
            true
        }
    };
    while !complete(&buf) {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(buf)
}

/// A backend whose response body is the request it received, byte for byte.
async fn mirror() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(req) = read_request(&mut s).await {
                    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", req.len()).into_bytes();
                    out.extend_from_slice(&req);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

async fn wire_of(req: Request<TestBody>) -> String {
    let (backend, task) = mirror().await;
    let (_p, addr) = proxy(&simple_config(&[backend], "", "")).await;
    let got = send(addr, req).await;
    task.abort();
    assert_eq!(got.status, StatusCode::OK);
    String::from_utf8_lossy(&got.body).into_owned()
}

#[tokio::test]
async fn a_small_body_of_known_length_goes_with_content_length() {
    let req = Request::post("/p?x=1").header("host", "test.local").body(common::full("hello")).expect("request");
    let wire = wire_of(req).await;
    assert!(wire.starts_with("POST /p?x=1 HTTP/1.1\r\n"), "{wire}");
    assert!(wire.ends_with("content-length: 5\r\n\r\nhello"), "{wire}");
    assert!(!wire.contains("transfer-encoding"), "{wire}");
}

#[tokio::test]
async fn bodyless_requests_announce_a_length_only_where_a_body_is_expected() {
    let get = Request::get("/g").header("host", "test.local").body(common::empty()).expect("request");
    let wire = wire_of(get).await;
    assert!(wire.starts_with("GET /g HTTP/1.1\r\n"), "{wire}");
    assert!(!wire.contains("content-length") && !wire.contains("transfer-encoding"), "{wire}");
    let post = Request::post("/e").header("host", "test.local").body(common::empty()).expect("request");
    let wire = wire_of(post).await;
    assert!(wire.ends_with("content-length: 0\r\n\r\n"), "{wire}");
}

#[tokio::test]
async fn a_body_of_unknown_length_is_chunked_with_its_trailers() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "42".parse().expect("value"));
    let frames = vec![
        http_body::Frame::data(Bytes::from_static(b"hello")),
        http_body::Frame::data(Bytes::from_static(b" world")),
        http_body::Frame::trailers(trailers),
    ];
    let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<_, Box<dyn std::error::Error + Send + Sync>>));
    let body: TestBody = http_body_util::StreamBody::new(stream).boxed();
    let req = Request::put("/c").header("host", "test.local").header("trailer", "x-sum").body(body).expect("request");
    let wire = wire_of(req).await;
    let (head, body) = wire.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    // Decode the chunks: the data comes back whole, then the trailer section.
    let mut rest = body;
    let mut data = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a size line");
        let n = usize::from_str_radix(size, 16).expect("hex size");
        if n == 0 {
            assert_eq!(after, "x-sum: 42\r\n\r\n");
            break;
        }
        data.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").expect("CRLF after the data");
    }
    assert_eq!(data, "hello world");
}
