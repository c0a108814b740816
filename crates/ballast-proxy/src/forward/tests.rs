//! Unit tests of request rewriting.

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(HeaderName::try_from(*k).expect("name"), HeaderValue::from_str(v).expect("value"));
    }
    m
}

#[test]
fn hop_by_hop_and_connection_named_headers_are_removed() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic x"),
        ("upgrade", "websocket"),
        ("x-keep", "yes"),
    ]);
    strip_hop_by_hop(&mut h, false);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-keep"]);
}

/// A named case: request headers in, header names left after stripping.
type StripCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn plain_keep_alive_fast_path_and_its_fallbacks() {
    let cases: &[StripCase] = &[
        ("keep-alive", &[("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("x-a", "1")], &["x-a"]),
        ("close, mixed case", &[("connection", "Close"), ("x-a", "1")], &["x-a"]),
        ("two lines", &[("connection", "keep-alive"), ("connection", "x-b"), ("x-b", "1"), ("x-a", "1")], &["x-a"]),
        ("another hop-by-hop", &[("connection", "keep-alive"), ("te", "trailers"), ("x-a", "1")], &["x-a"]),
        ("a named header", &[("connection", "x-b"), ("x-b", "1"), ("x-a", "1")], &["x-a"]),
        ("close names a field", &[("connection", "close"), ("close", "1"), ("x-a", "1")], &["x-a"]),
    ];
    for (name, pairs, want) in cases {
        let mut h = map(pairs);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, *want, "{name}");
    }
}

#[test]
fn upgrade_keeps_upgrade_and_sets_connection_upgrade() {
    let mut h = map(&[("connection", "Upgrade, x-other"), ("upgrade", "websocket"), ("x-other", "1")]);
    assert!(wants_upgrade(&h));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h.get("upgrade").map(|v| v.as_bytes()), Some(&b"websocket"[..]));
    assert_eq!(h.get("connection").map(|v| v.as_bytes()), Some(&b"upgrade"[..]));
    assert!(!h.contains_key("x-other"));
    assert!(!wants_upgrade(&map(&[("upgrade", "websocket")])), "Upgrade without Connection: upgrade");
}

#[test]
fn upgrade_sets_connection_upgrade_even_with_no_hop_by_hop_field() {
    let mut h = map(&[("x-a", "1")]);
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h.get("connection").map(|v| v.as_bytes()), Some(&b"upgrade"[..]));
    assert_eq!(h.len(), 2);
}

#[test]
fn hop_kind_any_case_matches_the_lowercase_list() {
    let cases = [
        ("Connection", Hop::Connection),
        ("KEEP-ALIVE", Hop::KeepAlive),
        ("UpGrade", Hop::Upgrade),
        ("Transfer-Encoding", Hop::TransferEncoding),
        ("tE", Hop::Other),
        ("Trailer", Hop::Other),
        ("Proxy-Authenticate", Hop::Other),
        ("Proxy-Authorization", Hop::Other),
        ("Proxy-Connection", Hop::Other),
        ("Content-Length", Hop::No),
        ("Connections", Hop::No),
        ("T", Hop::No),
        ("x-proxy-authorization", Hop::No),
        ("", Hop::No),
    ];
    for (name, want) in cases {
        assert_eq!(hop_kind_any_case(name.as_bytes()), want, "{name}");
        let lower = HeaderName::try_from(name).map(|n| hop_kind(&n)).unwrap_or(Hop::No);
        assert_eq!(lower, want, "{name} as a HeaderName");
    }
}

#[test]
fn forwarded_for_appends_across_header_lines() {
    let mut h = map(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("x-forwarded-proto", "ftp")]);
    add_forwarded(&mut h, "10.0.0.9".parse().expect("ip"), true, Some(HeaderValue::from_static("api.test")));
    assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
    assert_eq!(h[&X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 10.0.0.9");
    assert_eq!(h[&X_FORWARDED_PROTO], "https");
    assert_eq!(h[&X_FORWARDED_HOST], "api.test");
    let mut fresh = HeaderMap::new();
    add_forwarded(&mut fresh, "::1".parse().expect("ip"), false, None);
    assert_eq!(fresh[&X_FORWARDED_FOR], "::1");
    assert_eq!(fresh[&X_FORWARDED_PROTO], "http");
    assert!(!fresh.contains_key(&X_FORWARDED_HOST));
    let v4 = forwarded_for_value("192.0.2.10".parse().expect("ip"));
    let mut pre = HeaderMap::new();
    add_forwarded_value(&mut pre, &v4, false, None);
    assert_eq!(pre[&X_FORWARDED_FOR], "192.0.2.10");
    let long: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".parse().expect("ip");
    assert_eq!(forwarded_for_value(long), long.to_string().as_str());
}

#[test]
fn request_id_kept_when_sane_replaced_when_hostile() {
    let mut h = map(&[("x-request-id", "abc-123")]);
    assert_eq!(ensure_request_id(&mut h), "abc-123");
    for bad in ["", "has space", &"x".repeat(201)] {
        let mut h = map(&[("x-request-id", bad)]);
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 32, "{bad:?} replaced");
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(h[&X_REQUEST_ID], id);
    }
    let (a, b) = (ensure_request_id(&mut HeaderMap::new()), ensure_request_id(&mut HeaderMap::new()));
    assert_ne!(a, b, "generated ids differ");
}

#[test]
fn traceparent_propagates_trace_id_with_new_parent() {
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    for mode in [TraceContext::Generate, TraceContext::Propagate] {
        let mut h = map(&[("traceparent", incoming)]);
        trace_context(&mut h, mode);
        let out = h[&TRACEPARENT].to_str().expect("ascii").to_string();
        assert!(valid_traceparent(out.as_bytes()), "{mode:?}: {out}");
        assert_eq!(&out[..36], &incoming[..36], "{mode:?}: version and trace id kept");
        assert_ne!(&out[36..52], &incoming[36..52], "{mode:?}: new parent id");
        assert_eq!(&out[53..], "00", "{mode:?}: flags kept (not sampled stays not sampled)");
    }
}

#[test]
fn trace_context_off_leaves_the_field_as_it_came() {
    for incoming in [Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), Some("junk"), None] {
        let mut h = map(&incoming.map(|v| vec![("traceparent", v)]).unwrap_or_default());
        trace_context(&mut h, TraceContext::Off);
        assert_eq!(h.get(&TRACEPARENT).map(|v| v.to_str().expect("ascii")), incoming);
    }
}

#[test]
fn propagate_mode_starts_no_trace_and_drops_a_malformed_one() {
    let mut none = HeaderMap::new();
    trace_context(&mut none, TraceContext::Propagate);
    assert!(none.get(&TRACEPARENT).is_none(), "no trace started");
    let mut bad = map(&[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")]);
    trace_context(&mut bad, TraceContext::Propagate);
    assert!(bad.get(&TRACEPARENT).is_none(), "a malformed one is not passed on");
}

#[test]
fn traceparent_generated_when_absent_or_malformed() {
    let bad = [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ];
    for b in bad {
        let mut h = map(&[("traceparent", b)]);
        trace_context(&mut h, TraceContext::Generate);
        let out = h[&TRACEPARENT].as_bytes().to_vec();
        assert!(valid_traceparent(&out), "{b:?} → {:?}", String::from_utf8_lossy(&out));
        assert_ne!(&out[3..35], b.as_bytes().get(3..35).unwrap_or(b""), "{b:?}: new trace id");
    }
    let mut none = HeaderMap::new();
    trace_context(&mut none, TraceContext::Generate);
    assert!(valid_traceparent(none[&TRACEPARENT].as_bytes()));
    // A future version with extra fields is accepted and continued.
    assert!(valid_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
}

#[test]
fn cookie_and_hash_key_extraction() {
    let h = map(&[("cookie", "a=1; ballast_affinity=\"10.0.0.1:80\""), ("cookie", "b=2"), ("x-user", "u7")]);
    assert_eq!(cookie(&h, "ballast_affinity"), Some("10.0.0.1:80"));
    assert_eq!(cookie(&h, "b"), Some("2"));
    assert_eq!(cookie(&h, "missing"), None);
    assert_eq!(hash_key(&HashOn::Header("x-user".into()), &h, "/p"), Some(&b"u7"[..]));
    assert_eq!(hash_key(&HashOn::Cookie("a".into()), &h, "/p"), Some(&b"1"[..]));
    assert_eq!(hash_key(&HashOn::Path, &h, "/p"), Some(&b"/p"[..]));
    assert_eq!(hash_key(&HashOn::Header("x-none".into()), &h, "/p"), None);
}

#[test]
fn affinity_cookie_format() {
    assert_eq!(
        affinity_cookie("aff", "10.0.0.1:80", Some(60)).expect("valid"),
        "aff=10.0.0.1:80; Path=/; HttpOnly; Max-Age=60"
    );
    assert_eq!(affinity_cookie("aff", "x", None).expect("valid"), "aff=x; Path=/; HttpOnly");
    assert!(affinity_cookie("aff", "bad\nid", None).is_none());
}

#[test]
fn hex_digits_match_the_formatter() {
    for v in [0u64, 1, 0xf, 0x10, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef, fastrand::u64(..)] {
        let mut out = [0u8; 16];
        hex_into(&mut out, v);
        assert_eq!(std::str::from_utf8(&out).expect("ascii"), format!("{v:016x}"));
    }
}

#[test]
fn every_hop_by_hop_name_is_known_in_any_case() {
    for name in [
        "Connection",
        "keep-alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
    ] {
        assert!(is_hop_by_hop(&HeaderName::try_from(name).expect("name")), "{name}");
    }
    for name in ["host", "x-forwarded-for", "content-length", "connection-x", "t", "tea"] {
        assert!(!is_hop_by_hop(&HeaderName::try_from(name).expect("name")), "{name}");
    }
}

#[test]
fn keep_alive_alone_or_with_another_hop_header_is_stripped_too() {
    let mut h = map(&[("keep-alive", "timeout=5"), ("host", "a")]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["host"]);
    let mut h = map(&[("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("te", "trailers"), ("host", "a")]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["host"]);
}
