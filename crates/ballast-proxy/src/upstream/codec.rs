//! The HTTP/1.1 wire format of the upstream side, without I/O: the request head encoded
//! once per client request, the response head parsed (zero-copy header values) and its
//! body framing decided per RFC 9112 §6.3.
//!
//! A retry sends the same encoded head again, so nothing here runs per attempt.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, StatusCode, Version};
use http_body::SizeHint;
use std::mem::MaybeUninit;

/// A response head (or a request's trailer section) larger than this is refused.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header fields of one response head at most.
pub const MAX_HEADERS: usize = 100;

/// How a request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body (`content-length: 0` for POST, PUT and PATCH).
    Empty,
    /// `content-length` bytes exactly.
    Length(u64),
    /// `transfer-encoding: chunked` (length unknown up front).
    Chunked,
}

/// The framing of a request body from what the client side knows of it: an ended body
/// is empty, an exact size is a `content-length`, anything else is chunked.
pub fn request_framing(hint: &SizeHint, end_stream: bool) -> RequestFraming {
    if end_stream {
        return RequestFraming::Empty;
    }
    match hint.exact() {
        Some(n) => RequestFraming::Length(n),
        None => RequestFraming::Chunked,
    }
}

/// Encodes an HTTP/1.1 request head: `method pq HTTP/1.1`, `headers` (hop-by-hop ones
/// already removed; any `content-length` or `transfer-encoding` left is replaced), and
/// the framing header for `framing`.
pub fn encode_request_head(method: &Method, pq: &PathAndQuery, headers: &HeaderMap, framing: RequestFraming) -> Bytes {
    let fields: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let mut out = BytesMut::with_capacity(method.as_str().len() + pq.as_str().len() + fields + 64);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(pq.as_str().as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    match framing {
        RequestFraming::Empty if matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            out.put_slice(b"content-length: 0\r\n");
        }
        RequestFraming::Empty => {}
        RequestFraming::Length(n) => {
            out.put_slice(b"content-length: ");
            put_decimal(&mut out, n);
            out.put_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: a response to HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and headers (values share the head's buffer).
    pub parts: http::response::Parts,
    /// How the body is delimited.
    pub body: BodyKind,
    /// Whether the connection may carry another request once this response is read.
    pub reusable: bool,
}

/// Why a response head was refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head passed [`MAX_HEAD_BYTES`].
    #[error("response head larger than 64 KiB")]
    TooLarge,
    /// The head has more than [`MAX_HEADERS`] fields.
    #[error("more than 100 response header fields")]
    TooManyHeaders,
    /// `Content-Length` is not a number, or several differ.
    #[error("invalid or conflicting Content-Length")]
    ContentLength,
    /// The head is not HTTP/1.x (the reason names the part).
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
}

impl HeadError {
    /// A short static description (for [`crate::ProxyError::UpstreamProtocol`]).
    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::TooLarge => "response head larger than 64 KiB",
            HeadError::TooManyHeaders => "more than 100 response header fields",
            HeadError::ContentLength => "invalid or conflicting Content-Length",
            HeadError::Malformed(what) => what,
        }
    }
}

fn malformed(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::HeaderName => HeadError::Malformed("invalid response header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid response header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending in the response head"),
        httparse::Error::Status => HeadError::Malformed("invalid response status"),
        httparse::Error::Token => HeadError::Malformed("invalid token in the response head"),
        httparse::Error::Version => HeadError::Malformed("invalid HTTP version in the response"),
    }
}

/// Parses the next final response head at the start of `buf`, consuming it (and any
/// informational `1xx` head before it, except `101`). `Ok(None)`: incomplete, read more.
/// `head_request`: the request was HEAD, so the response has no body.
pub fn parse_response(buf: &mut BytesMut, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
    loop {
        let Some(head) = parse_one(buf)? else { return Ok(None) };
        let status = head.status;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let (body, reusable) = body_kind(status, head.version, &head.headers, head_request)?;
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = head.version;
        parts.headers = head.headers;
        if matches!(body, BodyKind::Chunked | BodyKind::UntilClose) {
            // Transfer-Encoding won: a Content-Length beside it must not reach the client
            // (RFC 9112 §6.3), where it would frame the relayed body wrongly.
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        return Ok(Some(ResponseHead { parts, body, reusable }));
    }
}

struct RawHead {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

/// Where one header field sits in the head buffer (offsets: a head is at most 64 KiB).
#[derive(Clone, Copy, Default)]
struct FieldAt {
    name: (u32, u32),
    value: (u32, u32),
}

fn parse_one(buf: &mut BytesMut) -> Result<Option<RawHead>, HeadError> {
    // Uninitialised slots: httparse writes those it fills, nothing zeroes 100 of them.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut at = [FieldAt::default(); MAX_HEADERS];
    let base = buf.as_ptr() as usize;
    let offset = |p: *const u8| u32::try_from(p as usize - base).unwrap_or(u32::MAX);
    let (len, code, version, count) = {
        let mut res = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => {
                let count = res.headers.len();
                for (slot, h) in at.iter_mut().zip(res.headers.iter()) {
                    let (name, value) = (offset(h.name.as_ptr()), offset(h.value.as_ptr()));
                    *slot = FieldAt {
                        name: (name, name.saturating_add(h.name.len() as u32)),
                        value: (value, value.saturating_add(h.value.len() as u32)),
                    };
                }
                (len, res.code.unwrap_or(0), res.version.unwrap_or(1), count)
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(malformed(e)),
        }
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed("invalid response status"))?;
    let version = if version == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    let range = |(a, b): (u32, u32)| a as usize..b as usize;
    for f in &at[..count] {
        let name = head
            .get(range(f.name))
            .and_then(|n| HeaderName::from_bytes(n).ok())
            .ok_or(HeadError::Malformed("invalid response header name"))?;
        if f.value.1 as usize > head.len() {
            return Err(HeadError::Malformed("invalid response header value"));
        }
        // Checked again (a byte scan, no copy): httparse admits the same bytes.
        let value = HeaderValue::from_maybe_shared(head.slice(range(f.value)))
            .map_err(|_| HeadError::Malformed("invalid response header value"))?;
        headers.append(name, value);
    }
    Ok(Some(RawHead { status, version, headers }))
}

/// Whether a comma-separated header (`Connection`) lists `token`.
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The body framing of a response and whether its connection may be reused (RFC 9112
/// §6.3 and §9.3).
pub fn body_kind(
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
    head_request: bool,
) -> Result<(BodyKind, bool), HeadError> {
    let mut reusable = if version == Version::HTTP_11 {
        !has_token(headers, &header::CONNECTION, "close")
    } else {
        has_token(headers, &header::CONNECTION, "keep-alive")
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The connection becomes the tunnel.
        return Ok((BodyKind::Empty, false));
    }
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((BodyKind::Empty, reusable));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Transfer-Encoding wins over Content-Length, but a message with both may be an
        // attempt at smuggling: never reuse its connection; nor one of an HTTP/1.0 reply.
        if headers.contains_key(header::CONTENT_LENGTH) || version != Version::HTTP_11 {
            reusable = false;
        }
        let last = headers.get_all(header::TRANSFER_ENCODING).iter().next_back();
        let last_coding = last.and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next()).map(<[u8]>::trim_ascii);
        return Ok(match last_coding {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => (BodyKind::Chunked, reusable),
            _ => (BodyKind::UntilClose, false),
        });
    }
    match content_length(headers)? {
        Some(n) => Ok((BodyKind::Length(n), reusable)),
        None => Ok((BodyKind::UntilClose, false)),
    }
}

/// The one `Content-Length` of `headers` (repeats of the same value allowed, as lines or
/// a list); several different or invalid values are an error.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut found = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for item in v.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(item.trim_ascii()).ok_or(HeadError::ContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(HeadError::ContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
