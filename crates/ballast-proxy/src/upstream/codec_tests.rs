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
