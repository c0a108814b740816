//! Reading a client's HTTP/1.1 request head for the lean path, without I/O.
//!
//! [`parse`] takes the common request (origin-form target; no body, a `Content-Length`
//! one or a `chunked` one; an upgrade without a body; no expectation but `100-continue`) into
//! `http::request::Parts` in one `httparse` pass, with header values sharing the head's
//! buffer. Anything else is [`Parsed::Handoff`]: the connection goes to hyper, which
//! serves the rest of it (other transfer codings, and the error responses for malformed,
//! oversized or smuggling-shaped heads), with the bytes read so far.

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use std::mem::MaybeUninit;

/// Header fields of one request head at most (as hyper's limit; more: handed to hyper,
/// which answers 431).
pub const MAX_FIELDS: usize = 100;

/// A request head read for the lean path.
#[derive(Debug)]
pub struct Head {
    /// Method, target, version and fields.
    pub parts: http::request::Parts,
    /// Whether the client keeps the connection open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// Whether the client accepts trailer fields (`TE: trailers`).
    pub trailers: bool,
    /// How the request's body is delimited.
    pub body: BodyFraming,
    /// The client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
    /// The client asks to switch protocols (`Connection: upgrade` and `Upgrade`, HTTP/1.1).
    pub upgrade: bool,
}

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// What [`parse`] found at the start of the buffer.
#[derive(Debug)]
pub enum Parsed {
    /// No complete head yet: read more.
    Partial,
    /// A head for the lean path, consumed from the buffer.
    Lean(Box<Head>),
    /// Not for the lean path (or not valid): hyper takes the connection, buffer untouched.
    Handoff,
    /// A complete head, consumed, whose target or a field name `http` cannot represent
    /// although `httparse` admitted it: the caller answers 400 and closes.
    Invalid,
}

/// Fields the request path may add to a request.
const ADDED_FIELDS: usize = 6;

/// Fields whose offsets are kept on the stack; a head with more spills to the heap.
/// Zeroing room for all [`MAX_FIELDS`] on every request would cost more than the parse.
const INLINE_FIELDS: usize = 24;

/// Where one field sits in the buffer (offsets: the head limit is far below 4 GiB).
#[derive(Clone, Copy, Default)]
struct FieldAt {
    name: (u32, u32),
    value: (u32, u32),
}

/// Facts about the fields that decide the path, gathered while they are walked once.
#[derive(Default)]
struct Seen {
    close: bool,
    keep_alive: bool,
    trailers: bool,
    expect_continue: bool,
    upgrade_field: bool,
    upgrade_token: bool,
    length: Option<u64>,
    chunked: bool,
}

/// Reads the request head at the start of `buf`. A complete head for the lean path is
/// split off `buf`; `Partial` and `Handoff` leave `buf` as it was. The caller bounds the
/// size of a partial head.
pub fn parse(buf: &mut BytesMut) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Handoff,
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Handoff;
    };
    let method = match Method::from_bytes(method.as_bytes()) {
        Ok(m) if m != Method::CONNECT => m,
        _ => return Parsed::Handoff,
    };
    if !target.starts_with('/') {
        return Parsed::Handoff;
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    let Ok(end) = u32::try_from(len) else { return Parsed::Handoff };
    let offsets = |s: &[u8]| {
        let (a, b) = span(s);
        // Within the head, whose length fits in u32.
        (a as u32, b.min(end as usize) as u32)
    };
    let target = span(target.as_bytes());
    let count = req.headers.len();
    let mut inline = [FieldAt::default(); INLINE_FIELDS];
    let mut spilled = Vec::new();
    let at: &mut [FieldAt] = if count <= INLINE_FIELDS {
        &mut inline[..count]
    } else {
        spilled.resize(count, FieldAt::default());
        &mut spilled
    };
    let mut seen = Seen::default();
    for (slot, f) in at.iter_mut().zip(req.headers.iter()) {
        if !lean_field(f.name.as_bytes(), f.value, &mut seen) {
            return Parsed::Handoff;
        }
        *slot = FieldAt { name: offsets(f.name.as_bytes()), value: offsets(f.value) };
    }
    // Both framings at once may be smuggling: hyper's path answers 400. So may a transfer
    // coding in HTTP/1.0, which has none (RFC 9112 §6.1): hyper's rules decide. An upgrade
    // with a body is rare enough to leave to hyper too.
    let upgrading = seen.upgrade_field && seen.upgrade_token;
    let has_body = seen.chunked || seen.length.is_some_and(|n| n > 0);
    if (seen.chunked && (seen.length.is_some() || minor == 0)) || (upgrading && has_body) {
        return Parsed::Handoff;
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target.0..target.1)) else { return Parsed::Invalid };
    // Room for the fields the proxy adds (X-Forwarded-*, X-Request-Id, traceparent): a
    // map that grows rehashes every field.
    let mut headers = HeaderMap::with_capacity(count + ADDED_FIELDS);
    let range = |(a, b): (u32, u32)| a as usize..b as usize;
    for f in at.iter() {
        // httparse admits tokens as names and the bytes `HeaderValue` takes as values.
        let name = HeaderName::from_bytes(&head[range(f.name)]);
        let value = HeaderValue::from_maybe_shared(head.slice(range(f.value)));
        let (Ok(name), Ok(value)) = (name, value) else { return Parsed::Invalid };
        headers.append(name, value);
    }
    let version = if minor == 1 { Version::HTTP_11 } else { Version::HTTP_10 };
    let keep_alive = !seen.close && (version == Version::HTTP_11 || seen.keep_alive);
    let body = match (seen.chunked, seen.length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0) | None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    // HTTP/1.0 clients do not know `100 Continue` (RFC 9110 §10.1.1): they get none.
    let expect_continue = seen.expect_continue && body != BodyFraming::None && version == Version::HTTP_11;
    // As hyper's side decides (`forward::wants_upgrade`): both fields, HTTP/1.1. An
    // `Upgrade` alone is a hop-by-hop field like any other, dropped on the way.
    let upgrade = version == Version::HTTP_11 && seen.upgrade_field && seen.upgrade_token;
    Parsed::Lean(Box::new(Head { parts, keep_alive, trailers: seen.trailers, body, expect_continue, upgrade }))
}

/// Notes what one field says about the connection and the body; false when the field
/// keeps the request off the lean path (another expectation or coding, a
/// length that is not one plain number).
fn lean_field(name: &[u8], value: &[u8], seen: &mut Seen) -> bool {
    match name.len() {
        10 if name.eq_ignore_ascii_case(b"connection") => {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    seen.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    seen.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    seen.upgrade_token = true;
                }
            }
            true
        }
        2 if name.eq_ignore_ascii_case(b"te") => {
            seen.trailers |= value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
            true
        }
        // One plain decimal; a list, a sign or a repeat is for hyper's framing rules.
        14 if name.eq_ignore_ascii_case(b"content-length") => match (seen.length, decimal(value)) {
            (None, Some(n)) => {
                seen.length = Some(n);
                true
            }
            _ => false,
        },
        // Only `chunked` alone; other codings (and repeats) are for hyper.
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
            let only_chunked = !seen.chunked && value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            seen.chunked = true;
            only_chunked
        }
        7 if name.eq_ignore_ascii_case(b"upgrade") => {
            seen.upgrade_field = true;
            true
        }
        6 if name.eq_ignore_ascii_case(b"expect") => {
            seen.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            seen.expect_continue
        }
        _ => true,
    }
}

/// A `Content-Length` value: 1 to 19 digits (no sign, no spaces, fits in u64).
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
