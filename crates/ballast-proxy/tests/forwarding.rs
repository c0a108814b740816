//! Forwarding: methods, targets and headers reach the backend; hop-by-hop headers do
//! not; X-Forwarded-*, X-Request-Id and traceparent are added (each can be turned off);
//! routes and splits pick the right pool; sticky cookies pin a client.

mod common;

use common::*;
use http::{Method, Request, StatusCode};

#[tokio::test]
async fn methods_paths_queries_and_headers_are_forwarded() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let req = Request::builder()
            .method(method.clone())
            .uri("/some/path?x=1&y=%20z")
            .header("host", "test.local")
            .header("x-custom", "v1")
            .header("accept", "text/plain")
            .body(full("payload"))
            .expect("request");
        let got = send(addr, req).await;
        assert_eq!(got.status, StatusCode::OK, "{method}");
        let j = got.json();
        assert_eq!(j["method"], method.as_str());
        assert_eq!(j["uri"], "/some/path?x=1&y=%20z");
        assert_eq!(j["received"], 7);
        assert_eq!(got.seen_header("x-custom"), ["v1"]);
        assert_eq!(got.seen_header("host"), ["test.local"], "Host preserved");
        assert_eq!(got.headers["x-backend"], "a");
    }
    let head = send(addr, Request::head("/h").header("host", "t").body(empty()).expect("req")).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn hop_by_hop_stripped_and_forwarding_headers_added() {
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let req = Request::get("/")
        .header("host", "api.test:8080")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9v")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.7")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .body(empty())
        .expect("request");
    let got = send(addr, req).await;
    for h in ["x-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(got.seen_header(h).is_empty(), "{h} must not be forwarded");
    }
    assert_eq!(got.seen_header("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(got.seen_header("x-forwarded-proto"), ["http"]);
    assert_eq!(got.seen_header("x-forwarded-host"), ["api.test:8080"]);
    let id = got.seen_header("x-request-id");
    assert_eq!(id.len(), 1);
    assert_eq!(id[0].len(), 32);
    assert_eq!(got.headers["x-request-id"], id[0].as_str(), "the client sees the same id");
    let tp = got.seen_header("traceparent");
    assert!(tp[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp:?}");
    assert!(!tp[0].contains("00f067aa0ba902b7"), "proxy is a new parent: {tp:?}");

    let fresh = send(addr, get("/")).await;
    let tp = fresh.seen_header("traceparent");
    assert_eq!(tp[0].len(), 55, "generated: {tp:?}");
    let kept = send(addr, Request::get("/").header("x-request-id", "req-42").body(empty()).expect("req")).await;
    assert_eq!(kept.seen_header("x-request-id"), ["req-42"]);
}

#[tokio::test]
async fn forwarding_parts_can_be_turned_off() {
    let b = echo("a").await;
    let off = "[balancer.forwarding]\nx_forwarded = false\nrequest_id = false\ntrace_context = \"off\"";
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], off, "")).await;
    let bare = send(addr, get("/")).await;
    assert_eq!(bare.status, StatusCode::OK);
    for h in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "traceparent"] {
        assert!(bare.seen_header(h).is_empty(), "{h} must not be added: {:?}", bare.seen_header(h));
    }
    assert!(!bare.headers.contains_key("x-request-id"), "none returned to the client");
    let req = Request::get("/")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-request-id", "bad id with spaces")
        .header("traceparent", "junk")
        .body(empty())
        .expect("request");
    let sent = send(addr, req).await;
    assert_eq!(sent.seen_header("x-forwarded-for"), ["203.0.113.7"], "passed on as received");
    assert_eq!(sent.seen_header("x-request-id"), ["bad id with spaces"]);
    assert_eq!(sent.seen_header("traceparent"), ["junk"]);
}

#[tokio::test]
async fn propagate_mode_continues_a_trace_but_starts_none() {
    let b = echo("a").await;
    let propagate = "[balancer.forwarding]\ntrace_context = \"propagate\"";
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], propagate, "")).await;
    assert!(send(addr, get("/")).await.seen_header("traceparent").is_empty(), "no trace started");
    let traced = Request::get("/")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        .body(empty())
        .expect("request");
    let got = send(addr, traced).await;
    let tp = got.seen_header("traceparent");
    assert!(tp[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && tp[0].ends_with("-00"), "{tp:?}");
    assert!(!tp[0].contains("00f067aa0ba902b7"), "proxy is a new parent: {tp:?}");
    assert_eq!(got.seen_header("x-request-id").len(), 1, "the other parts stay on");
}

#[tokio::test]
async fn routes_match_host_path_and_headers_and_split_by_weight() {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let toml = format!(
        r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:0"
[[balancer.route]]
host = "*.canary.test"
split = [{{ pool = "b" }}]
[[balancer.route]]
path_prefix = "/api"
headers = {{ x-tier = "gold" }}
split = [{{ pool = "c" }}]
[[balancer.route]]
path_prefix = "/split"
split = [{{ pool = "a", weight = 50 }}, {{ pool = "b", weight = 50 }}]
[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "a" }}]
[[pool]]
name = "a"
[[pool.instance]]
address = "{}"
[[pool]]
name = "b"
[[pool.instance]]
address = "{}"
[[pool]]
name = "c"
[[pool.instance]]
address = "{}"
"#,
        a.addr, b.addr, c.addr
    );
    let (_proxy, addr) = proxy(&toml).await;
    let backend_of = |host: &'static str, path: &'static str, tier: Option<&'static str>| async move {
        let mut req = Request::get(path).header("host", host);
        if let Some(t) = tier {
            req = req.header("x-tier", t);
        }
        send(addr, req.body(empty()).expect("req")).await.headers["x-backend"].to_str().expect("ascii").to_string()
    };
    assert_eq!(backend_of("x.canary.test", "/api", Some("gold")).await, "b", "first match wins");
    assert_eq!(backend_of("canary.test", "/api", Some("gold")).await, "c", "bare suffix is not a subdomain");
    assert_eq!(backend_of("www.test", "/api/x", Some("silver")).await, "a", "header value differs");
    assert_eq!(backend_of("www.test", "/other", None).await, "a");
    let client = pooled_client();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..200 {
        let uri = format!("http://{addr}/split");
        let resp = client.request(Request::get(uri).body(empty()).expect("req")).await.expect("resp");
        let got = collect(resp).await;
        *seen.entry(got.headers["x-backend"].to_str().expect("ascii").to_string()).or_insert(0) += 1;
    }
    // 50/50 over 200 picks: both arms well represented (p of < 60 is ~1e-9).
    assert!(seen["a"] >= 60 && seen["b"] >= 60, "{seen:?}");
}

#[tokio::test]
async fn no_matching_route_is_404() {
    let b = echo("a").await;
    let toml = simple_config(&[b.addr], "", "").replace("split = [", "host = \"only.test\"\nsplit = [");
    let (_proxy, addr) = proxy(&toml).await;
    let got = send(addr, get("/")).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(&got.body[..], b"no route\n");
}

#[tokio::test]
async fn sticky_pool_issues_an_affinity_cookie_naming_the_instance() {
    let (a, b) = (echo("a").await, echo("b").await);
    let (_proxy, addr) =
        proxy(&simple_config(&[a.addr, b.addr], "", "sticky = { cookie = \"aff\", ttl = \"1h\" }")).await;
    let first = send(addr, get("/")).await;
    let set = first.headers["set-cookie"].to_str().expect("ascii").to_string();
    let backend = if first.headers["x-backend"] == "a" { a.addr } else { b.addr };
    assert_eq!(set, format!("aff={backend}; Path=/; HttpOnly; Max-Age=3600"));
    let stale = send(addr, Request::get("/").header("cookie", "aff=10.9.9.9:1").body(empty()).expect("req")).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert!(stale.headers.contains_key("set-cookie"), "a pin to an unknown instance is replaced");
    let plain = send(addr, get("/")).await;
    assert!(plain.headers.contains_key("set-cookie"));
    let (_p2, addr2) = proxy(&simple_config(&[a.addr], "", "")).await;
    assert!(!send(addr2, get("/")).await.headers.contains_key("set-cookie"), "no cookie without sticky");
}

#[tokio::test]
async fn sticky_cookie_pins_the_client() {
    let (a, b) = (echo("a").await, echo("b").await);
    let (_proxy, addr) = proxy(&simple_config(&[a.addr, b.addr], "", "sticky = { cookie = \"aff\" }")).await;
    let first = send(addr, get("/")).await;
    let set = first.headers["set-cookie"].to_str().expect("ascii").to_string();
    let cookie = set.split(';').next().expect("pair").to_string();
    let pinned_to = first.headers["x-backend"].clone();
    for _ in 0..6 {
        let got = send(addr, Request::get("/").header("cookie", &cookie).body(empty()).expect("req")).await;
        assert_eq!(got.headers["x-backend"], pinned_to, "round-robin would alternate; the cookie pins");
        assert!(!got.headers.contains_key("set-cookie"), "no new cookie while the pin holds");
    }
}
