use super::*;
use proptest::prelude::*;

fn parse(wire: &[u8], head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
    parse_response(&mut BytesMut::from(wire), head_request)
}

/// What [`ResponseHead::encode_client_head`] writes, as text.
fn client_head(h: &ResponseHead) -> String {
    let mut out = BytesMut::new();
    h.encode_client_head(&mut out);
    String::from_utf8(out.to_vec()).expect("ascii in these tests")
}

fn framing(wire: &str) -> Result<(StatusCode, BodyKind, bool), HeadError> {
    parse(wire.as_bytes(), false).map(|h| {
        let h = h.expect("complete head");
        (h.status(), h.body, h.reusable)
    })
}

#[test]
fn the_request_head_carries_method_path_headers_and_framing() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("example.com"));
    h.append("x-a", HeaderValue::from_static("1"));
    h.append("x-a", HeaderValue::from_static("2"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
    let pq = PathAndQuery::from_static("/p?q=1");
    let head = encode_request_head(&Method::PUT, &pq, &h, RequestFraming::Length(12));
    assert_eq!(
        &head[..],
        &b"PUT /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 12\r\n\r\n"[..]
    );
    let get = encode_request_head(&Method::GET, &pq, &HeaderMap::new(), RequestFraming::Empty);
    assert_eq!(&get[..], b"GET /p?q=1 HTTP/1.1\r\n\r\n");
    let post = encode_request_head(&Method::POST, &pq, &HeaderMap::new(), RequestFraming::Empty);
    assert_eq!(&post[..], b"POST /p?q=1 HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
    let chunked = encode_request_head(&Method::POST, &pq, &h, RequestFraming::Chunked);
    let text = String::from_utf8_lossy(&chunked);
    assert!(text.ends_with("x-a: 2\r\ntransfer-encoding: chunked\r\n\r\n"), "{text}");
    assert!(!text.contains("999") && !text.contains("gzip"), "{text}");
}

#[test]
fn request_framing_follows_the_body() {
    assert_eq!(request_framing(&SizeHint::with_exact(0), true), RequestFraming::Empty);
    assert_eq!(request_framing(&SizeHint::with_exact(5), false), RequestFraming::Length(5));
    assert_eq!(request_framing(&SizeHint::new(), false), RequestFraming::Chunked);
    let mut lower = SizeHint::new();
    lower.set_lower(10);
    assert_eq!(request_framing(&lower, false), RequestFraming::Chunked);
}

#[test]
fn the_response_framing_table_of_rfc_9112() {
    use BodyKind::*;
    let ok = |s: u16| StatusCode::from_u16(s).expect("status");
    let cases: &[(&str, StatusCode, BodyKind, bool)] = &[
        ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", ok(200), Length(5), true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5, 5\r\n\r\n", ok(200), Length(5), true),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", ok(200), Chunked, true),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n", ok(200), Chunked, true),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", ok(200), UntilClose, false),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n", ok(200), Chunked, false),
        ("HTTP/1.1 200 OK\r\n\r\n", ok(200), UntilClose, false),
        ("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n", ok(200), Length(1), false),
        ("HTTP/1.1 200 OK\r\nconnection: foo, Close\r\ncontent-length: 1\r\n\r\n", ok(200), Length(1), false),
        ("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n", ok(204), Empty, true),
        ("HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n", ok(304), Empty, true),
        ("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", ok(101), Empty, false),
        ("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n", ok(200), Length(2), false),
        ("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n", ok(200), Length(2), true),
        ("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\r\n", ok(200), UntilClose, false),
        ("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n", ok(200), Chunked, false),
    ];
    for (wire, status, kind, reusable) in cases {
        assert_eq!(framing(wire), Ok((*status, *kind, *reusable)), "{wire}");
    }
}

#[test]
fn a_content_length_beside_transfer_encoding_is_removed() {
    let h = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", false)
        .expect("parses")
        .expect("complete");
    assert_eq!((h.body, h.reusable), (BodyKind::Chunked, false));
    assert!(!h.forwards_content_length());
    assert_eq!(h.get("content-length"), Some(&b"3"[..]), "still in the raw head");
    let wire = client_head(&h);
    assert!(!wire.to_ascii_lowercase().contains("content-length"), "{wire}");
    assert!(!h.into_client_parts().headers.contains_key(header::CONTENT_LENGTH));
}

#[test]
fn a_response_to_head_has_no_body_whatever_it_declares() {
    let h = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", true).expect("parses").expect("complete");
    assert_eq!((h.body, h.reusable), (BodyKind::Empty, true));
    assert_eq!(h.get("Content-Length"), Some(&b"10"[..]));
    assert!(h.forwards_content_length());
    assert_eq!(client_head(&h), "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n");
    assert_eq!(h.into_client_parts().headers[header::CONTENT_LENGTH], "10");
}

#[test]
fn bad_content_lengths_are_refused() {
    for wire in [
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
    ] {
        assert_eq!(framing(wire).err(), Some(HeadError::ContentLength), "{wire}");
    }
}

#[test]
fn informational_heads_are_skipped_but_101_is_final() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nhi"[..],
    );
    let h = parse_response(&mut buf, false).expect("parses").expect("complete");
    assert_eq!((h.status(), h.body), (StatusCode::CREATED, BodyKind::Length(2)));
    assert!(h.get("link").is_none(), "the 103's fields are not the final head's");
    assert_eq!(client_head(&h), "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n");
    assert_eq!(&buf[..], b"hi", "the body stays in the buffer");
    // A 100 alone: consumed, and the final head is awaited.
    let mut only_continue = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2"[..]);
    assert!(parse_response(&mut only_continue, false).expect("parses").is_none());
    assert_eq!(&only_continue[..], b"HTTP/1.1 2");
}

#[test]
fn oversized_heads_and_too_many_headers_are_refused() {
    let mut big = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
    assert_eq!(parse(&big, false).err(), Some(HeadError::TooLarge), "incomplete and too large");
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse(&big, false).err(), Some(HeadError::TooLarge), "complete and too large");
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many, false).err(), Some(HeadError::TooManyHeaders));
    assert_eq!(HeadError::TooManyHeaders.reason(), "more than 100 response header fields");
}

#[test]
fn malformed_heads_name_what_is_wrong() {
    let cases: &[(&[u8], &str)] = &[
        (b"HTTP/2.0 200 OK\r\n\r\n", "invalid HTTP version in the response"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "invalid response status"),
        (b"HTTP/1.1 099 Low\r\n\r\n", "invalid response status"),
        (b"HTTP/1.1 200 OK\r\nbad name: v\r\n\r\n", "invalid response header name"),
        (b"HTTP/1.1 200 OK\r\nx: a\x01b\r\n\r\n", "invalid response header value"),
        (b"HTTP/1.1 200 OK\r\nx: v\r\n folded\r\n\r\n", "invalid response header name"),
    ];
    for (wire, reason) in cases {
        let err = parse(wire, false).expect_err("malformed");
        assert_eq!(err.reason(), *reason, "{:?}", String::from_utf8_lossy(wire));
    }
}

#[test]
fn header_values_share_the_head_buffer_and_the_rest_stays() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\ncontent-length: 3\r\n\r\nabcNEXT"[..]);
    let h = parse_response(&mut buf, false).expect("parses").expect("complete");
    assert_eq!(h.get("x-name"), Some("café".as_bytes()));
    assert_eq!(h.version(), Version::HTTP_11);
    assert_eq!(&buf[..], b"abcNEXT");
    let parts = h.into_client_parts();
    assert_eq!(parts.headers["x-name"].as_bytes(), "café".as_bytes());
    assert_eq!(parts.version, Version::HTTP_11);
}

fn complete(wire: &[u8]) -> ResponseHead {
    parse(wire, false).expect("parses").expect("complete")
}

/// The client-side fields as a sorted multiset of (lowercase name, value).
fn parts_fields(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = map.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect();
    v.sort();
    v
}

/// The fields [`ResponseHead::encode_client_head`] wrote, read back with httparse.
fn encoded_fields(h: &ResponseHead) -> Vec<(String, Vec<u8>)> {
    let mut out = BytesMut::new();
    h.encode_client_head(&mut out);
    out.extend_from_slice(b"\r\n");
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    let mut res = httparse::Response::new(&mut slots);
    assert!(res.parse(&out).expect("the client head parses").is_complete());
    assert_eq!((res.version, res.code), (Some(1), Some(h.status().as_u16())));
    let mut v: Vec<_> = res.headers.iter().map(|f| (f.name.to_ascii_lowercase(), f.value.to_vec())).collect();
    v.sort();
    v
}

#[test]
fn hop_by_hop_fields_and_those_connection_names_are_dropped_in_both_outputs() {
    let h = complete(
        b"HTTP/1.1 200 OK\r\nServer: s\r\nCONNECTION: Keep-Alive, X-Secret\r\nKeep-Alive: timeout=5\r\nx-secret: 1\r\n\
          X-SECRET: 2\r\nTE: trailers\r\nTrailer: x-t\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\n\
          Proxy-Authorization: Basic x\r\nProxy-Connection: keep-alive\r\nconnection: close\r\nclose: c\r\n\
          Content-Length: 2\r\nX-Keep: yes\r\n\r\n",
    );
    assert_eq!((h.body, h.reusable), (BodyKind::Length(2), false));
    assert!(h.forwards_content_length());
    assert_eq!(client_head(&h), "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nX-Keep: yes\r\n");
    assert_eq!(h.get("x-secret"), Some(&b"1"[..]), "the raw head keeps every field");
    let parts = h.into_client_parts();
    let names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["server", "content-length", "x-keep"]);
    assert_eq!(parts.version, Version::HTTP_11);
}

#[test]
fn a_101_keeps_upgrade_and_says_connection_upgrade() {
    let h = complete(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Other\r\nX-Other: 1\r\n\
          Keep-Alive: timeout=5\r\nSec-WebSocket-Accept: abc\r\n\r\n",
    );
    assert_eq!(
        client_head(&h),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc\r\nconnection: upgrade\r\n"
    );
    let parts = h.into_client_parts();
    assert_eq!(parts.headers.len(), 3);
    assert_eq!(parts.headers["upgrade"], "websocket");
    assert_eq!(parts.headers["connection"], "upgrade");
    assert_eq!(parts.headers["sec-websocket-accept"], "abc");
    // Without any hop-by-hop field (a broken 101), the client still gets the option.
    let bare = complete(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!(client_head(&bare), "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n");
    // Anywhere but a 101, Upgrade is hop-by-hop.
    let ok = complete(b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nConnection: upgrade\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(client_head(&ok), "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n");
}

#[test]
fn hostile_connection_values_drop_only_what_they_name() {
    // A name nothing carries, empty items, and the framing field itself.
    let h =
        complete(b"HTTP/1.1 200 OK\r\nconnection: x-none, , ,content-length,\r\ncontent-length: 3\r\nx-a: 1\r\n\r\n");
    assert_eq!(h.body, BodyKind::Length(3), "framing reads the raw head");
    assert!(!h.forwards_content_length(), "the server must frame it itself");
    assert_eq!(client_head(&h), "HTTP/1.1 200 OK\r\nx-a: 1\r\n");
    // A Connection value that is not visible ASCII names nothing (as `to_str` fails).
    let h = complete(b"HTTP/1.1 200 OK\r\nconnection: x-a, caf\xc3\xa9\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(client_head(&h), "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\n");
    // `Connection: connection` and a name with inner space.
    let h = complete(b"HTTP/1.1 200 OK\r\nconnection: connection, x a\r\nx-a: 1\r\n\r\n");
    assert_eq!(client_head(&h), "HTTP/1.1 200 OK\r\nx-a: 1\r\n");
}

#[test]
fn a_hundred_fields_empty_values_and_obs_text_pass_through_untouched() {
    let mut wire = b"HTTP/1.1 404 Not Found\r\n".to_vec();
    let mut want = String::from("HTTP/1.1 404 Not Found\r\n");
    for i in 0..MAX_HEADERS - 2 {
        wire.extend_from_slice(format!("X-F{i}: v{i}\r\n").as_bytes());
        want.push_str(&format!("X-F{i}: v{i}\r\n"));
    }
    wire.extend_from_slice(b"x-empty:\r\nx-obs: \x80caf\xc3\xa9\xff\t!\r\n\r\n");
    let h = complete(&wire);
    let mut out = BytesMut::new();
    h.encode_client_head(&mut out);
    let mut want = want.into_bytes();
    want.extend_from_slice(b"x-empty: \r\nx-obs: \x80caf\xc3\xa9\xff\t!\r\n");
    assert_eq!(&out[..], &want[..]);
    assert_eq!(h.get("X-OBS"), Some(&b"\x80caf\xc3\xa9\xff\t!"[..]));
    let parts = h.into_client_parts();
    assert_eq!(parts.headers.len(), MAX_HEADERS);
    assert_eq!(parts.headers["x-empty"], "");
    assert_eq!(parts.headers["x-obs"].as_bytes(), b"\x80caf\xc3\xa9\xff\t!");
    let unknown = complete(b"HTTP/1.1 599 Whatever\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(client_head(&unknown), "HTTP/1.1 599 \r\ncontent-length: 0\r\n");
}

#[test]
fn lines_not_received_as_name_colon_space_value_are_rewritten_and_runs_copied_whole() {
    let h = complete(
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC: 3\r\nConnection: x\r\nD:  4  \r\nE: 5\nF: 6\r\nG: 7\r\n\
          Content-Length: 0\r\n\r\n",
    );
    let want = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nContent-Length: 0\r\n";
    assert_eq!(client_head(&h), want);
}

/// The raw head skips building `HeaderName`s and `HeaderValue`s at parse time: that is
/// only sound while httparse refuses every byte those refuse (and admits no more).
#[test]
fn httparse_admits_exactly_what_header_name_and_value_accept() {
    for b in 0..=255u8 {
        if b == b':' {
            continue;
        }
        let mut wire = b"HTTP/1.1 200 OK\r\nx".to_vec();
        wire.extend_from_slice(&[b, b'y']);
        wire.extend_from_slice(b": v\r\n\r\n");
        let accepted = HeaderName::from_bytes(&[b'x', b, b'y']).is_ok();
        match parse(&wire, false) {
            Ok(h) => assert!(accepted && h.is_some(), "name byte {b:#04x}"),
            Err(e) => assert!(!accepted, "name byte {b:#04x}: {e}"),
        }
        // Short values and long ones (the SIMD paths of httparse).
        for at in [0, 1, 40] {
            let mut value = vec![b'a'; at + 2];
            value[at] = b;
            let mut wire = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
            wire.extend_from_slice(&value);
            wire.extend_from_slice(b"\r\n\r\n");
            let accepted = HeaderValue::from_bytes(&value).is_ok();
            match parse(&wire, false) {
                Ok(h) => assert!(accepted && h.is_some(), "value byte {b:#04x} at {at}"),
                Err(e) if b == b'\n' => assert!(!accepted, "value byte {b:#04x} at {at}: {e}"),
                Err(e) => {
                    assert!(!accepted, "value byte {b:#04x} at {at}");
                    assert_eq!(e.reason(), "invalid response header value", "value byte {b:#04x} at {at}");
                }
            }
        }
    }
    let empty_name = parse(b"HTTP/1.1 200 OK\r\n: v\r\n\r\n", false).err();
    assert_eq!(empty_name, Some(HeadError::Malformed("invalid response header name")));
}

/// A field name from the hop-by-hop list and others, in a random case.
fn field_name() -> impl Strategy<Value = String> {
    const NAMES: &[&str] = &[
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "content-length",
        "close",
        "x-a",
        "x-b",
        "server",
        "set-cookie",
    ];
    (prop::sample::select(NAMES), any::<u32>()).prop_map(|(n, case)| {
        n.chars().enumerate().map(|(i, c)| if case >> (i % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect()
    })
}

/// A field value: a list of names (as in `Connection`), a coding, or any allowed bytes.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(field_name(), 0..4).prop_map(|v| v.join(" ,").into_bytes()),
        Just(b"chunked".to_vec()),
        Just(b"gzip, chunked".to_vec()),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..12),
    ]
}

/// A field of a generated head: name, value, and how its line is written (0 and 1:
/// `name: value\r\n`, 2: no space, 3: extra spaces, 4: a bare LF).
type GenField = (String, Vec<u8>, u8);

/// A complete head of `fields` (every Content-Length the same, so it parses).
fn head_wire(status: u16, http10: bool, fields: &[GenField]) -> Vec<u8> {
    let mut wire = format!("HTTP/1.{} {status} X\r\n", u8::from(!http10)).into_bytes();
    for (name, value, style) in fields {
        wire.extend_from_slice(name.as_bytes());
        wire.extend_from_slice(if *style == 2 { b":" } else if *style == 3 { b":  " } else { b": " });
        if name.eq_ignore_ascii_case("content-length") {
            wire.extend_from_slice(b"5");
        } else {
            wire.extend_from_slice(value);
        }
        wire.extend_from_slice(if *style == 3 { b" \r\n" } else if *style == 4 { b"\n" } else { b"\r\n" });
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

/// The fields of `wire` in order, as (lowercase name, value).
fn wire_fields(wire: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    assert!(res.parse(wire).expect("parses").is_complete());
    res.headers.iter().map(|f| (f.name.to_ascii_lowercase(), f.value.to_vec())).collect()
}

/// The client-side fields the way they were made before the raw head: a `HeaderMap` of
/// the parsed fields, `forward::strip_hop_by_hop`, then Content-Length out unless it
/// frames the body.
fn stripped_the_old_way(wire: &[u8], h: &ResponseHead) -> Vec<(String, Vec<u8>)> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    assert!(res.parse(wire).expect("parses").is_complete());
    let mut map = HeaderMap::new();
    for f in res.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes()).expect("name");
        map.append(name, HeaderValue::from_bytes(f.value).expect("value"));
    }
    if matches!(h.body, BodyKind::Chunked | BodyKind::UntilClose) {
        map.remove(header::CONTENT_LENGTH);
    }
    crate::forward::strip_hop_by_hop(&mut map, h.status() == StatusCode::SWITCHING_PROTOCOLS);
    parts_fields(&map)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Both client-side outputs carry the same fields, and the ones the HeaderMap path
    /// (`strip_hop_by_hop`) forwarded.
    #[test]
    fn both_client_heads_carry_the_same_fields_as_stripping_a_header_map(
        status in prop::sample::select(&[200u16, 101, 204, 304, 404, 502][..]),
        http10 in any::<bool>(),
        head_request in any::<bool>(),
        fields in prop::collection::vec((field_name(), field_value(), 0u8..5), 0..12),
    ) {
        let wire = head_wire(status, http10, &fields);
        let h = parse(&wire, head_request).expect("parses").expect("complete");
        // In the order received: what went out is a subsequence of what came in.
        let mut out = BytesMut::new();
        h.encode_client_head(&mut out);
        out.extend_from_slice(b"\r\n");
        let mut received = wire_fields(&wire).into_iter();
        for sent in wire_fields(&out) {
            let upgrade_option = status == 101 && sent == ("connection".to_owned(), b"upgrade".to_vec());
            prop_assert!(upgrade_option || received.any(|r| r == sent), "{:?} out of order", sent);
        }
        let encoded = encoded_fields(&h);
        let old = stripped_the_old_way(&wire, &h);
        let forwards_length = h.forwards_content_length();
        let parts = h.into_client_parts();
        prop_assert_eq!(forwards_length, parts.headers.contains_key(header::CONTENT_LENGTH));
        let from_parts = parts_fields(&parts.headers);
        prop_assert_eq!(&encoded, &from_parts);
        prop_assert_eq!(&old, &from_parts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However the head arrives, it parses to the same thing once complete, and never
    /// before.
    #[test]
    fn a_head_split_anywhere_parses_once_complete(cut in 1usize..80) {
        let wire = b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 4\r\nx-b: two words\r\n\r\nbody";
        let head_len = wire.len() - 4;
        let cut = cut.min(wire.len());
        let mut buf = BytesMut::from(&wire[..cut]);
        let first = parse_response(&mut buf, false).expect("valid prefix");
        prop_assert_eq!(first.is_some(), cut >= head_len);
        if first.is_none() {
            buf.extend_from_slice(&wire[cut..]);
            let h = parse_response(&mut buf, false).expect("valid").expect("complete");
            prop_assert_eq!(h.get("x-b"), Some(&b"two words"[..]));
            prop_assert_eq!(&buf[..], b"body");
        }
    }

    /// Any value that fits a u64 is a valid Content-Length, and its repeat too.
    #[test]
    fn content_length_round_trips(n in any::<u64>(), repeat in any::<bool>()) {
        let wire = if repeat {
            format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\ncontent-length: {n}\r\n\r\n")
        } else {
            format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n")
        };
        prop_assert_eq!(framing(&wire), Ok((StatusCode::OK, BodyKind::Length(n), true)));
    }
}
