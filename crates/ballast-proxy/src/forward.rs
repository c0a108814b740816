//! Request and response rewriting at the proxy boundary: hop-by-hop headers out,
//! `X-Forwarded-*`, `X-Request-Id` and W3C `traceparent` in, and the per-request keys
//! (affinity cookie, consistent-hash key) read from the request.

use ballast_core::balance::HashOn;
use ballast_core::config::TraceContext;
use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;
use std::io::Write;
use std::net::IpAddr;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `Keep-Alive` (not among `http`'s standard names).
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// A field named `close` (which `Connection: close` names for removal, like any other).
static CLOSE: HeaderName = HeaderName::from_static("close");

/// Whether `name` describes one hop and is never forwarded (RFC 9110 §7.6.1), besides
/// the headers named in `Connection`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_kind(name) != Hop::No
}

/// What a header name is to hop-by-hop stripping (RFC 9110 §7.6.1); the one list of
/// hop-by-hop names, for the request side here and the raw response head
/// ([`crate::upstream::codec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// An end-to-end field: forwarded.
    No,
    /// `Connection` (it may name more fields to drop).
    Connection,
    /// `Keep-Alive`.
    KeepAlive,
    /// `Upgrade` (kept for a protocol switch).
    Upgrade,
    /// `Transfer-Encoding` (it frames the body on this hop only).
    TransferEncoding,
    /// `TE`, `Trailer`, `Proxy-Authenticate`, `Proxy-Authorization`, `Proxy-Connection`.
    Other,
}

/// One string match (a jump on the length, then a compare) instead of nine name
/// comparisons: it runs for every header of every request and response.
fn hop_kind(name: &HeaderName) -> Hop {
    hop_kind_lowercase(name.as_str().as_bytes())
}

/// [`hop_kind`] of a name already in lowercase.
fn hop_kind_lowercase(name: &[u8]) -> Hop {
    match name {
        b"connection" => Hop::Connection,
        b"keep-alive" => Hop::KeepAlive,
        b"upgrade" => Hop::Upgrade,
        b"transfer-encoding" => Hop::TransferEncoding,
        // `Proxy-Connection` is non-standard, still sent by some clients.
        b"te" | b"trailer" | b"proxy-authenticate" | b"proxy-authorization" | b"proxy-connection" => Hop::Other,
        _ => Hop::No,
    }
}

/// [`hop_kind`] of a name as received, in any case: only a name of a hop-by-hop name's
/// length is lowercased (on the stack) and matched.
pub(crate) fn hop_kind_any_case(name: &[u8]) -> Hop {
    if !matches!(name.len(), 2 | 7 | 10 | 16..=19) {
        return Hop::No;
    }
    let mut lower = [0u8; 19];
    let lower = &mut lower[..name.len()];
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    hop_kind_lowercase(lower)
}

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade` plus an
/// `Upgrade` header), e.g. a WebSocket handshake.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers and those listed in `Connection`. With `upgrade`, the
/// `Upgrade` header is kept and `Connection: upgrade` (re-)added, so the handshake
/// reaches the other side.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the (usually few) names finds the common cases: nothing to strip,
    // or only `Connection` (and `Keep-Alive`), without hashing each hop-by-hop name.
    let (mut connection, mut keep_alive, mut other) = (false, false, false);
    for name in headers.keys() {
        match hop_kind(name) {
            Hop::No => {}
            Hop::Connection => connection = true,
            Hop::KeepAlive => keep_alive = true,
            Hop::Upgrade | Hop::TransferEncoding | Hop::Other => other = true,
        }
    }
    if !(connection || keep_alive || other || upgrade) {
        return;
    }
    if !upgrade && connection && !other {
        if let Some(close) = plain_keep_alive(headers) {
            headers.remove(header::CONNECTION);
            if keep_alive {
                headers.remove(&KEEP_ALIVE);
            }
            if close {
                // `Connection: close` names a field `close` too, should one be there.
                headers.remove(&CLOSE);
            }
            return;
        }
    }
    if connection {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::try_from(t.trim()).ok())
            .collect();
        for name in named {
            if !(upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
    }
    let present: Vec<HeaderName> = headers.keys().filter(|k| is_hop_by_hop(k)).cloned().collect();
    for name in present {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The usual case: one `Connection: keep-alive` (or `close`) line, which names no
/// header to strip besides the hop-by-hop ones (and `close`). `Some(true)` for `close`.
fn plain_keep_alive(headers: &HeaderMap) -> Option<bool> {
    let mut lines = headers.get_all(header::CONNECTION).iter();
    let (Some(v), None) = (lines.next(), lines.next()) else { return None };
    let v = v.as_bytes();
    if v.eq_ignore_ascii_case(b"keep-alive") {
        Some(false)
    } else if v.eq_ignore_ascii_case(b"close") {
        Some(true)
    } else {
        None
    }
}

/// The `X-Forwarded-For` value naming `client` alone (a connection computes it once,
/// see [`crate::conn_io::ConnInfo`]).
pub fn forwarded_for_value(client: IpAddr) -> HeaderValue {
    // An IP address prints in at most 45 bytes: format it on the stack.
    let mut buf = [0u8; 64];
    let len = {
        let mut cursor = &mut buf[..];
        let _ = write!(cursor, "{client}");
        64 - cursor.len()
    };
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and (when the
/// request had a host) `X-Forwarded-Host`.
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, https: bool, host: Option<HeaderValue>) {
    add_forwarded_value(headers, &forwarded_for_value(client), https, host);
}

/// [`add_forwarded`] with the client already formatted ([`forwarded_for_value`]).
pub fn add_forwarded_value(headers: &mut HeaderMap, client: &HeaderValue, https: bool, host: Option<HeaderValue>) {
    // One hash of the name for the usual case (no earlier hop), through the entry.
    match headers.entry(&X_FORWARDED_FOR) {
        header::Entry::Vacant(e) => {
            e.insert(client.clone());
        }
        header::Entry::Occupied(mut e) => {
            let folded = match e.get().to_str() {
                Ok(first) if !first.is_empty() => {
                    // Multiple header lines fold into one list, in order.
                    let mut all: Vec<&str> = e.iter().filter_map(|v| v.to_str().ok()).collect();
                    all.push(client.to_str().unwrap_or_default());
                    HeaderValue::from_str(&all.join(", ")).ok()
                }
                _ => Some(client.clone()),
            };
            if let Some(v) = folded {
                e.insert(v);
            }
        }
    }
    let proto = if https { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = host {
        headers.insert(&X_FORWARDED_HOST, host);
    }
}

/// Keeps a sane incoming `X-Request-Id` (1–200 visible ASCII characters) or sets a new
/// random 32-hex-digit one; returns the id in use.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            let mut v = v.clone();
            v.set_sensitive(true); // see below
            return v;
        }
    }
    let mut buf = [0u8; 32];
    hex_into(&mut buf[..16], fastrand::u64(..));
    hex_into(&mut buf[16..], fastrand::u64(..));
    // Owned by one refcounted allocation: the copies in the response and the access log
    // share it (bytes copied from a slice would be promoted, a second allocation, at the
    // first clone).
    let mut id = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf)).unwrap_or(HeaderValue::from_static("-"));
    // Unique per request: HTTP/2 (HPACK) then sends it as a never-indexed literal instead
    // of inserting it into, and evicting from, the connection's header table each time.
    id.set_sensitive(true);
    headers.insert(&X_REQUEST_ID, id.clone());
    id
}

/// Applies the balancer's trace-context `mode` to a request's W3C `traceparent`:
/// continues a valid one (same trace id and flags, the proxy's own new parent id); when it
/// is absent or malformed, starts a new sampled trace (`Generate`) or leaves none
/// (`Propagate`); `Off` leaves the field as it came.
pub fn trace_context(headers: &mut HeaderMap, mode: TraceContext) {
    if mode == TraceContext::Off {
        return;
    }
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    match headers.get(&TRACEPARENT).map(HeaderValue::as_bytes).filter(|b| valid_traceparent(b)) {
        Some(b) => {
            out[3..35].copy_from_slice(&b[3..35]);
            out[53..55].copy_from_slice(&b[53..55]);
        }
        None if mode == TraceContext::Propagate => {
            headers.remove(&TRACEPARENT);
            return;
        }
        None => {
            // A trace id must not be all zeros; a random u64 pair is zero with p = 2^-128.
            hex_into(&mut out[3..19], fastrand::u64(1..));
            hex_into(&mut out[19..35], fastrand::u64(..));
        }
    }
    hex_into(&mut out[36..52], fastrand::u64(1..));
    if let Ok(v) = HeaderValue::from_bytes(&out) {
        headers.insert(TRACEPARENT.clone(), v);
    }
}

/// `version-traceid-parentid-flags`, lowercase hex, version not `ff`, ids not all zero.
fn valid_traceparent(b: &[u8]) -> bool {
    let hex = |s: &[u8]| s.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    let nonzero = |s: &[u8]| s.iter().any(|&c| c != b'0');
    // Version 00 is exactly 55 bytes; later versions may append fields after a '-'.
    b.len() >= 55
        && (b.len() == 55 || b[55] == b'-')
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(&b[0..2])
        && &b[0..2] != b"ff"
        && !(b.len() > 55 && &b[0..2] == b"00")
        && hex(&b[3..35])
        && nonzero(&b[3..35])
        && hex(&b[36..52])
        && nonzero(&b[36..52])
        && hex(&b[53..55])
}

/// Two lowercase hex digits for each byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// Writes `v` as lowercase hex, right-aligned, into `out` (an even length, at most 16:
/// the low bytes of `v`), a byte per step.
fn hex_into(out: &mut [u8], mut v: u64) {
    for pair in out.rchunks_exact_mut(2) {
        pair.copy_from_slice(&HEX_PAIRS[(v & 0xff) as usize]);
        v >>= 8;
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

/// The consistent-hash key of a request, per the pool's `hash_on`.
pub fn hash_key<'a>(hash_on: &HashOn, headers: &'a HeaderMap, path: &'a str) -> Option<&'a [u8]> {
    match hash_on {
        HashOn::Header(name) => headers.get(name.as_str()).map(HeaderValue::as_bytes),
        HashOn::Cookie(name) => cookie(headers, name).map(str::as_bytes),
        HashOn::Path => Some(path.as_bytes()),
    }
}

/// The `Set-Cookie` value pinning a client to backend `id`.
pub fn affinity_cookie(name: &str, id: &str, max_age: Option<u64>) -> Option<HeaderValue> {
    let v = match max_age {
        Some(secs) => format!("{name}={id}; Path=/; HttpOnly; Max-Age={secs}"),
        None => format!("{name}={id}; Path=/; HttpOnly"),
    };
    HeaderValue::from_str(&v).ok()
}

#[cfg(test)]
mod tests;
