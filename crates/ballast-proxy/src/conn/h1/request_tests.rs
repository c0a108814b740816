use super::*;
use proptest::prelude::*;

fn parse_all(wire: &[u8]) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(wire);
    let parsed = parse(&mut buf);
    (parsed, buf)
}

fn lean(wire: &[u8]) -> Head {
    match parse_all(wire).0 {
        Parsed::Lean(h) => *h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(wire)),
    }
}

#[test]
fn a_bodyless_get_is_read_whole_and_a_pipelined_one_stays() {
    let wire = b"GET /a/b?c=d HTTP/1.1\r\nHost: api.test\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next HTTP/1.1\r\n";
    let mut buf = BytesMut::from(&wire[..]);
    let Parsed::Lean(head) = parse(&mut buf) else { panic!("not lean") };
    assert_eq!(head.parts.method, Method::GET);
    assert_eq!(head.parts.uri, "/a/b?c=d");
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.parts.headers["host"], "api.test");
    let twos: Vec<_> = head.parts.headers.get_all("x-two").iter().collect();
    assert_eq!(twos, ["1", "2"], "repeats kept in order");
    assert!(head.keep_alive && !head.trailers);
    assert_eq!(&buf[..], b"GET /next HTTP/1.1\r\n", "only the first head is consumed");
}

#[test]
fn every_cut_of_a_head_is_partial_and_leaves_the_buffer() {
    let wire = b"DELETE /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    for cut in 0..wire.len() {
        let (parsed, buf) = parse_all(&wire[..cut]);
        assert!(matches!(parsed, Parsed::Partial), "cut at {cut}: {parsed:?}");
        assert_eq!(&buf[..], &wire[..cut]);
    }
    assert_eq!(lean(wire).parts.method, Method::DELETE, "a zero Content-Length is no body");
}

#[test]
fn what_the_lean_path_does_not_take_goes_to_hyper_untouched() {
    let cases: &[(&str, &[u8])] = &[
        ("CL and TE", b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("TE then CL", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        ("two lengths", b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n"),
        ("the same length twice", b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"),
        ("a signed length", b"GET / HTTP/1.1\r\nContent-Length: +0\r\n\r\n"),
        ("a length list", b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\na"),
        ("a length past u64", b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        ("another coding", b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        ("chunked in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("chunked twice", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("an upgrade with a body", b"POST /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 1\r\n\r\na"),
        ("another expectation", b"PUT / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n"),
        ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ("absolute form", b"GET http://example.com/ HTTP/1.1\r\n\r\n"),
        ("asterisk form", b"OPTIONS * HTTP/1.1\r\n\r\n"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("garbage", b"GARBAGE\r\n\r\n"),
        ("a control byte in the target", b"GET /\x01 HTTP/1.1\r\n\r\n"),
        ("an unknown version", b"GET / HTTP/9.9\r\nHost: t\r\n\r\n"),
        ("a space before the colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n"),
    ];
    for (name, wire) in cases {
        let (parsed, buf) = parse_all(wire);
        assert!(matches!(parsed, Parsed::Handoff), "{name}: {parsed:?}");
        assert_eq!(&buf[..], *wire, "{name}: the buffer must be untouched");
    }
}

#[test]
fn bodies_are_framed_and_left_in_the_buffer() {
    let cases: &[(&[u8], BodyFraming, bool, &[u8])] = &[
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", BodyFraming::Length(5), false, b"hello"),
        (b"POST / HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n0\r\n\r\n", BodyFraming::Chunked, false, b"0\r\n\r\n"),
        (b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n", BodyFraming::Length(2), true, b""),
        (b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", BodyFraming::None, false, b""),
        (b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", BodyFraming::None, false, b""),
        (b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", BodyFraming::Length(1), false, b"x"),
    ];
    for (wire, framing, expect, rest) in cases {
        let (parsed, buf) = parse_all(wire);
        let Parsed::Lean(h) = parsed else { panic!("{:?}: {parsed:?}", String::from_utf8_lossy(wire)) };
        assert_eq!((h.body, h.expect_continue), (*framing, *expect), "{:?}", String::from_utf8_lossy(wire));
        assert_eq!(&buf[..], *rest, "the body stays for the pump");
    }
}

#[test]
fn an_upgrade_needs_both_fields_and_http_1_1() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true),
        (b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nconnection: keep-alive, UPGRADE\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nUPGRADE: h2c\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive, upgrade\r\n\r\n", false),
        (b"GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false),
    ];
    for (wire, want) in cases {
        assert_eq!(lean(wire).upgrade, *want, "{:?}", String::from_utf8_lossy(wire));
    }
}

#[test]
fn more_fields_than_the_limit_go_to_hyper() {
    let mut wire = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_FIELDS {
        wire.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    assert!(matches!(parse_all(&wire).0, Parsed::Handoff));
}

#[test]
fn keep_alive_and_trailers_follow_the_client() {
    let cases: &[(&[u8], bool, bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", true, false),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, false),
        (b"GET / HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", false, false),
        (b"GET / HTTP/1.0\r\n\r\n", false, false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false),
        (b"GET / HTTP/1.1\r\nTE: deflate, trailers\r\n\r\n", true, true),
        (b"GET / HTTP/1.1\r\nTE: trailersx\r\n\r\n", true, false),
    ];
    for (wire, keep, trailers) in cases {
        let h = lean(wire);
        assert_eq!((h.keep_alive, h.trailers), (*keep, *trailers), "{:?}", String::from_utf8_lossy(wire));
    }
    assert_eq!(lean(b"GET / HTTP/1.0\r\n\r\n").parts.version, Version::HTTP_10);
}

#[test]
fn a_target_httparse_takes_but_http_cannot_hold_is_consumed_as_invalid() {
    // httparse admits `<` and backquote in a target; `http`'s URI refuses them.
    for target in [&b"/a<b"[..], b"/`"] {
        let mut wire = b"GET ".to_vec();
        wire.extend_from_slice(target);
        wire.extend_from_slice(b" HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        let (parsed, buf) = parse_all(&wire);
        assert!(matches!(parsed, Parsed::Invalid), "{target:?}: {parsed:?}");
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n\r\n", "only the bad head is consumed");
    }
    assert_eq!(lean(b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n").parts.uri.path(), "/café", "UTF-8 is taken");
}

#[test]
fn obs_text_values_are_kept_byte_for_byte() {
    let h = lean(b"GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\nX-Empty:\r\n\r\n");
    assert_eq!(h.parts.headers["x-name"].as_bytes(), "café".as_bytes());
    assert_eq!(h.parts.headers["x-empty"], "");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hostile bytes never panic; only a complete head is ever consumed, and what is
    /// consumed is exactly the head httparse finds.
    #[test]
    fn hostile_bytes_never_panic_and_consume_only_a_head(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (parsed, buf) = parse_all(&bytes);
        match parsed {
            Parsed::Partial | Parsed::Handoff => prop_assert_eq!(&buf[..], &bytes[..]),
            Parsed::Lean(_) | Parsed::Invalid => prop_assert!(bytes.ends_with(&buf[..]) && buf.len() < bytes.len()),
        }
    }

    /// Generated heads split anywhere: partial before the end, the same request after.
    #[test]
    fn generated_heads_parse_the_same_after_any_split(
        path in "/[a-z0-9/._~-]{0,30}(\\?[a-z0-9=&]{0,20})?",
        fields in proptest::collection::vec(("x-[a-z]{1,10}", "[ -~]{0,40}"), 0..12),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut wire = format!("GET {path} HTTP/1.1\r\n");
        for (n, v) in &fields {
            wire.push_str(&format!("{n}: {v}\r\n"));
        }
        wire.push_str("\r\n");
        let wire = wire.into_bytes();
        let at = cut.index(wire.len());
        prop_assert!(matches!(parse_all(&wire[..at]).0, Parsed::Partial));
        let h = lean(&wire);
        prop_assert_eq!(h.parts.uri.to_string(), path);
        prop_assert_eq!(h.parts.headers.len(), fields.len());
        for (n, v) in &fields {
            // Values are trimmed of surrounding whitespace by httparse.
            prop_assert!(h.parts.headers.get_all(n.as_str()).iter().any(|got| got.as_bytes() == v.trim_matches(' ').as_bytes()));
        }
    }
}
