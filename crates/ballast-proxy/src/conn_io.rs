//! Per-connection state and the I/O wrapper that watches request heads for smuggling.
//!
//! hyper resolves a head that carries both `Content-Length` and `Transfer-Encoding` by
//! dropping the length (RFC 9112 §6.3) before the service sees it, so the service
//! cannot tell. [`SniffIo`] scans the bytes it reads for a head with both fields and
//! raises [`ConnInfo::smuggle_suspect`]; the handler rejects the next chunked request
//! with 400 when the flag is up. Only what hyper reads is scanned: our own HTTP/1.1 loop
//! ([`crate::conn::h1`]) hands every head with `Transfer-Encoding` to hyper, bytes and all.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the request path knows about its client connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as an `X-Forwarded-For` value, formatted once per connection.
    pub forwarded_for: http::HeaderValue,
    /// A head with both `Content-Length` and `Transfer-Encoding` was read.
    pub smuggle_suspect: AtomicBool,
    /// Requests started on this connection (the idle watchdog compares it).
    pub requests: AtomicU64,
    /// Requests whose response head is not yet sent.
    pub in_flight: AtomicU32,
}

impl ConnInfo {
    /// A fresh connection from `peer`.
    pub fn new(peer: SocketAddr) -> Self {
        ConnInfo {
            peer,
            forwarded_for: crate::forward::forwarded_for_value(peer.ip()),
            smuggle_suspect: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        }
    }
}

/// An I/O stream whose reads are scanned by [`head_has_cl_and_te`].
#[derive(Debug)]
pub struct SniffIo<T> {
    inner: T,
    info: Arc<ConnInfo>,
}

impl<T> SniffIo<T> {
    /// Wraps `inner`, reporting into `info`.
    pub fn new(inner: T, info: Arc<ConnInfo>) -> Self {
        SniffIo { inner, info }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SniffIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if head_has_cl_and_te(&buf.filled()[before..]) {
                this.info.smuggle_suspect.store(true, Ordering::Relaxed);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SniffIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether `buf` holds a block of header lines (lines up to an empty line) with both a
/// `Content-Length:` and a `Transfer-Encoding:` line, names compared case-insensitively.
///
/// Runs on every read: only line starts are looked at (found with `memchr`), and only
/// those beginning with `c`, `t` or an end of line are compared further.
pub fn head_has_cl_and_te(buf: &[u8]) -> bool {
    let (mut cl, mut te) = (false, false);
    let line_starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', buf).map(|i| i + 1));
    for start in line_starts {
        let line = &buf[start..];
        match line.first() {
            // An empty line ends a head (a bare "\r" line counts, as CRLF does).
            None | Some(b'\n') => (cl, te) = (false, false),
            Some(b'\r') if matches!(line.get(1), None | Some(b'\n')) => (cl, te) = (false, false),
            Some(b'c' | b'C') => cl |= starts_with_ci(line, b"content-length:"),
            Some(b't' | b'T') => te |= starts_with_ci(line, b"transfer-encoding:"),
            Some(_) => {}
        }
        if cl && te {
            return true;
        }
    }
    false
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::head_has_cl_and_te;

    #[test]
    fn conflict_detection_table() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("both", b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true),
            ("te first, mixed case", b"POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\nCONTENT-length: 5\r\n\r\n", true),
            ("cl only", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", false),
            ("te only", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false),
            (
                "in different heads",
                b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            ("bare LF lines", b"POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n", true),
            ("name only as value", b"GET / HTTP/1.1\r\nX-Note: content-length: 1 transfer-encoding: x\r\n\r\n", false),
            ("empty", b"", false),
            ("cut by a bare CR line", b"Content-Length: 1\r\n\r\nTransfer-Encoding: x\r\n", false),
            ("CR then text is no empty line", b"Content-Length: 1\r\n\rX\r\nTransfer-Encoding: x\r\n", true),
            ("a read starting mid-head", b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", true),
            ("names without a colon", b"Content-Lengthy: 1\r\nTransfer-Encodings: x\r\n", false),
        ];
        for (name, buf, want) in cases {
            assert_eq!(head_has_cl_and_te(buf), *want, "{name}");
        }
    }

    /// The line-by-line definition the scanner must agree with.
    fn reference(buf: &[u8]) -> bool {
        let (mut cl, mut te) = (false, false);
        for line in buf.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                (cl, te) = (false, false);
                continue;
            }
            cl |= line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"content-length:");
            te |= line.len() >= 18 && line[..18].eq_ignore_ascii_case(b"transfer-encoding:");
            if cl && te {
                return true;
            }
        }
        false
    }

    #[test]
    fn agrees_with_the_line_by_line_definition_on_shuffled_heads() {
        let pieces: [&[u8]; 10] = [
            b"Content-Length: 5",
            b"content-LENGTH:",
            b"Transfer-Encoding: chunked",
            b"TRANSFER-encoding:",
            b"Host: t",
            b"",
            b"\r",
            b"X-A: content-length: 1",
            b"Content-Lengt",
            b"tRansfer-Encoding:x",
        ];
        let seps: [&[u8]; 3] = [b"\r\n", b"\n", b"\r"];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5000 {
            let mut buf = Vec::new();
            for _ in 0..rng.usize(0..8) {
                buf.extend_from_slice(pieces[rng.usize(..pieces.len())]);
                buf.extend_from_slice(seps[rng.usize(..seps.len())]);
            }
            // Reads end anywhere, also inside a line.
            buf.truncate(rng.usize(0..=buf.len()));
            assert_eq!(head_has_cl_and_te(&buf), reference(&buf), "{:?}", String::from_utf8_lossy(&buf));
        }
    }
}
