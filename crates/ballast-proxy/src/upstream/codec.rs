//! The HTTP/1.1 wire format of the upstream side, without I/O: the request head encoded
//! once per client request, the response head parsed into a raw head (its bytes and the
//! fields' offsets, hop-by-hop fields marked in the same pass) and its body framing
//! decided per RFC 9112 §6.3.
//!
//! A retry sends the same encoded head again, so nothing here runs per attempt.

use crate::forward::{hop_kind_any_case, Hop};
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

/// A parsed response head, kept raw: its bytes as received and where each field sits.
/// What goes on to the client is decided by the one parse pass (hop-by-hop fields, those
/// named in `Connection`, a `Content-Length` that does not frame the body), and comes
/// out either as bytes for an HTTP/1.1 client ([`ResponseHead::encode_client_head`]) or
/// as [`http::response::Parts`] for HTTP/2 and hyper ([`ResponseHead::into_client_parts`]);
/// both carry the same fields.
#[derive(Debug)]
pub struct ResponseHead {
    status: StatusCode,
    version: Version,
    /// The head as received, status line to the empty line (split off the connection's
    /// buffer, not copied).
    head: Bytes,
    /// The fields in order, as offsets into `head`.
    fields: Vec<FieldAt>,
    /// Bit `i` set: `fields[i]` does not go to the client.
    dropped: u128,
    /// How the body is delimited.
    pub body: BodyKind,
    /// Whether the connection may carry another request once this response is read.
    pub reusable: bool,
}

// One bit of `ResponseHead::dropped` per field.
const _: () = assert!(MAX_HEADERS <= u128::BITS as usize);

impl ResponseHead {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The upstream's HTTP version (1.0 or 1.1).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value of the first field named `name` (compared case-insensitively), forwarded
    /// or not.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|f| self.name(f).eq_ignore_ascii_case(name.as_bytes())).map(|f| self.value(f))
    }

    /// Whether the client-side head carries a `Content-Length` from the upstream: not for
    /// a chunked or close-delimited body, nor when the upstream's `Connection` named it.
    /// A server framing a [`BodyKind::Length`] body without one adds its own.
    pub fn forwards_content_length(&self) -> bool {
        self.forwarded().any(|f| f.kind == FieldKind::ContentLength)
    }

    /// The head for an HTTP/2 or hyper client: hop-by-hop fields and those named in
    /// `Connection` removed (for `101 Switching Protocols` the `Upgrade` field kept and
    /// `connection: upgrade` set), `Content-Length` removed unless it frames the body,
    /// version HTTP/1.1 (the client side's default).
    pub fn into_client_parts(self) -> http::response::Parts {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = self.status;
        let switching = self.switching();
        // Room for what the proxy adds: X-Request-Id and Set-Cookie.
        let kept = self.fields.len() - self.dropped.count_ones() as usize;
        let mut headers = HeaderMap::with_capacity(kept + 2 + usize::from(switching));
        for f in self.forwarded() {
            // Both checked at parse time (httparse admits exactly what these accept, see
            // the tests), so neither fails; nothing is forwarded that would.
            let Ok(name) = HeaderName::from_bytes(self.name(f)) else { continue };
            let Ok(value) = HeaderValue::from_maybe_shared(self.head.slice(range(f.value))) else { continue };
            headers.append(name, value);
        }
        if switching {
            headers.append(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        parts.headers = headers;
        parts
    }

    /// Appends the head for an HTTP/1.1 client: `HTTP/1.1 <code> <reason>` (the canonical
    /// reason, empty for an unknown code), then in the order received the same fields as
    /// [`ResponseHead::into_client_parts`], names and values as received. No framing field
    /// is added (a `Content-Length` that frames the body is forwarded, see
    /// [`ResponseHead::forwards_content_length`]) and no final empty line: the server
    /// appends its own fields, its framing and `\r\n`.
    pub fn encode_client_head(&self, out: &mut BytesMut) {
        out.reserve(self.head.len() + 48);
        out.put_slice(b"HTTP/1.1 ");
        out.put_slice(self.status.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.status.canonical_reason().unwrap_or("").as_bytes());
        out.put_slice(b"\r\n");
        // A line received as `name: value\r\n` goes out as it came, and a run of such
        // lines (every forwarded field of a usual head) in one copy.
        let mut run: Option<std::ops::Range<usize>> = None;
        for f in self.forwarded() {
            let (name, value) = (range(f.name), range(f.value));
            let line = name.start..value.end + 2;
            let as_is = value.start == name.end + 2
                && self.head.get(name.end..value.start) == Some(&b": "[..])
                && self.head.get(value.end..line.end) == Some(&b"\r\n"[..]);
            match (&mut run, as_is) {
                (Some(r), true) if r.end == line.start => r.end = line.end,
                (_, true) => self.put_run(run.replace(line), out),
                (_, false) => {
                    self.put_run(run.take(), out);
                    out.put_slice(self.name(f));
                    out.put_slice(b": ");
                    out.put_slice(self.value(f));
                    out.put_slice(b"\r\n");
                }
            }
        }
        self.put_run(run, out);
        if self.switching() {
            out.put_slice(b"connection: upgrade\r\n");
        }
    }

    fn put_run(&self, run: Option<std::ops::Range<usize>>, out: &mut BytesMut) {
        if let Some(bytes) = run.and_then(|r| self.head.get(r)) {
            out.put_slice(bytes);
        }
    }

    fn switching(&self) -> bool {
        self.status == StatusCode::SWITCHING_PROTOCOLS
    }

    fn forwarded(&self) -> impl Iterator<Item = &FieldAt> {
        let dropped = self.dropped;
        self.fields.iter().enumerate().filter(move |(i, _)| dropped & (1 << i) == 0).map(|(_, f)| f)
    }

    fn name(&self, f: &FieldAt) -> &[u8] {
        self.head.get(range(f.name)).unwrap_or_default()
    }

    fn value(&self, f: &FieldAt) -> &[u8] {
        self.head.get(range(f.value)).unwrap_or_default()
    }
}

fn range((a, b): (u32, u32)) -> std::ops::Range<usize> {
    a as usize..b as usize
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
        let Some(mut head) = parse_one(buf)? else { return Ok(None) };
        if head.status.is_informational() && !head.switching() {
            continue;
        }
        (head.body, head.reusable) = body_kind(head.status, head.version, &head.head, &head.fields, head_request)?;
        head.dropped = dropped(&head);
        return Ok(Some(head));
    }
}

/// What a field is to framing and forwarding, found once at parse time. Flat (one byte,
/// compared as one): framing and dropping scan the fields by kind several times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// End to end, nothing to framing.
    Plain,
    /// `Content-Length`.
    ContentLength,
    /// `Connection`.
    Connection,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Upgrade` (kept in a 101).
    Upgrade,
    /// Any other hop-by-hop field.
    OtherHop,
}

/// Where one header field sits in the head buffer (offsets: a head is at most 64 KiB),
/// and what it is.
#[derive(Debug, Clone, Copy)]
struct FieldAt {
    name: (u32, u32),
    value: (u32, u32),
    kind: FieldKind,
}

fn field_kind(name: &[u8]) -> FieldKind {
    if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
        return FieldKind::ContentLength;
    }
    match hop_kind_any_case(name) {
        Hop::No => FieldKind::Plain,
        Hop::Connection => FieldKind::Connection,
        Hop::TransferEncoding => FieldKind::TransferEncoding,
        Hop::Upgrade => FieldKind::Upgrade,
        Hop::KeepAlive | Hop::Other => FieldKind::OtherHop,
    }
}

/// One head off the front of `buf`, framing not decided yet. Field names and values are
/// not checked again: httparse admits exactly the bytes `HeaderName` (after lowercasing)
/// and `HeaderValue` accept, so [`ResponseHead::into_client_parts`] cannot fail.
fn parse_one(buf: &mut BytesMut) -> Result<Option<ResponseHead>, HeadError> {
    // Uninitialised slots: httparse writes those it fills, nothing zeroes 100 of them.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let base = buf.as_ptr() as usize;
    let offset = |p: *const u8| u32::try_from(p as usize - base).unwrap_or(u32::MAX);
    let (len, code, version, fields) = {
        let mut res = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
            Ok(httparse::Status::Complete(len)) => {
                let fields: Vec<FieldAt> = res
                    .headers
                    .iter()
                    .map(|h| {
                        let (name, value) = (offset(h.name.as_ptr()), offset(h.value.as_ptr()));
                        FieldAt {
                            name: (name, name.saturating_add(h.name.len() as u32)),
                            value: (value, value.saturating_add(h.value.len() as u32)),
                            kind: field_kind(h.name.as_bytes()),
                        }
                    })
                    .collect();
                (len, res.code.unwrap_or(0), res.version.unwrap_or(1), fields)
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
    Ok(Some(ResponseHead { status, version, head, fields, dropped: 0, body: BodyKind::Empty, reusable: false }))
}

/// The values of the fields of `kind`, in order.
fn values<'a>(head: &'a [u8], fields: &'a [FieldAt], kind: FieldKind) -> impl DoubleEndedIterator<Item = &'a [u8]> {
    fields.iter().filter(move |f| f.kind == kind).map(|f| head.get(range(f.value)).unwrap_or_default())
}

/// Whether a comma-separated field of `kind` (`Connection`) lists `token`.
fn has_token(head: &[u8], fields: &[FieldAt], kind: FieldKind, token: &str) -> bool {
    values(head, fields, kind)
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The body framing of a response and whether its connection may be reused (RFC 9112
/// §6.3 and §9.3).
fn body_kind(
    status: StatusCode,
    version: Version,
    head: &[u8],
    fields: &[FieldAt],
    head_request: bool,
) -> Result<(BodyKind, bool), HeadError> {
    let mut reusable = if version == Version::HTTP_11 {
        !has_token(head, fields, FieldKind::Connection, "close")
    } else {
        has_token(head, fields, FieldKind::Connection, "keep-alive")
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
    if let Some(last) = values(head, fields, FieldKind::TransferEncoding).next_back() {
        // Transfer-Encoding wins over Content-Length, but a message with both may be an
        // attempt at smuggling: never reuse its connection; nor one of an HTTP/1.0 reply.
        if fields.iter().any(|f| f.kind == FieldKind::ContentLength) || version != Version::HTTP_11 {
            reusable = false;
        }
        let last_coding = last.rsplit(|&b| b == b',').next().map(<[u8]>::trim_ascii);
        return Ok(match last_coding {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => (BodyKind::Chunked, reusable),
            _ => (BodyKind::UntilClose, false),
        });
    }
    match content_length(values(head, fields, FieldKind::ContentLength))? {
        Some(n) => Ok((BodyKind::Length(n), reusable)),
        None => Ok((BodyKind::UntilClose, false)),
    }
}

/// The one `Content-Length` among `values` (repeats of the same value allowed, as lines
/// or a list); several different or invalid values are an error.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, HeadError> {
    let mut found = None;
    for v in values {
        for item in v.split(|&b| b == b',') {
            let n = parse_decimal(item.trim_ascii()).ok_or(HeadError::ContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(HeadError::ContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// The fields of `h` that do not go to the client, as in [`crate::forward::strip_hop_by_hop`]:
/// hop-by-hop ones (but `Upgrade` in a 101), those named in a `Connection` value of
/// visible ASCII, and a `Content-Length` beside a chunked or close-delimited body (where
/// Transfer-Encoding won, RFC 9112 §6.3: it would frame the relayed body wrongly).
fn dropped(h: &ResponseHead) -> u128 {
    let switching = h.switching();
    let unframed = matches!(h.body, BodyKind::Chunked | BodyKind::UntilClose);
    let (mut dropped, mut connection) = (0u128, false);
    for (i, f) in h.fields.iter().enumerate() {
        let drop = match f.kind {
            FieldKind::Plain => false,
            FieldKind::ContentLength => unframed,
            FieldKind::Upgrade => !switching,
            FieldKind::Connection => {
                connection = true;
                true
            }
            FieldKind::TransferEncoding | FieldKind::OtherHop => true,
        };
        dropped |= u128::from(drop) << i;
    }
    if !connection {
        return dropped;
    }
    let named = values(&h.head, &h.fields, FieldKind::Connection)
        // As `HeaderValue::to_str`: a value with other bytes names nothing.
        .filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty());
    for token in named {
        for (i, f) in h.fields.iter().enumerate() {
            let kept_upgrade = switching && f.kind == FieldKind::Upgrade;
            if !kept_upgrade && h.name(f).eq_ignore_ascii_case(token) {
                dropped |= 1 << i;
            }
        }
    }
    dropped
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
