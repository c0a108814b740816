use super::*;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

fn local(status: StatusCode, text: &'static str) -> Reply {
    let mut resp = http::Response::new(ResponseBody::text(text));
    *resp.status_mut() = status;
    Reply::Local(resp)
}

fn head_of(resp: &Reply, ex: Exchange) -> (String, Framing, bool) {
    let mut out = BytesMut::new();
    let (framing, keep) = encode_head(&mut out, resp, ex);
    (String::from_utf8(out.to_vec()).expect("utf-8"), framing, keep)
}

const KEEP_11: Exchange = Exchange { head_request: false, http11: true, keep_alive: true };

#[test]
fn a_local_body_gets_its_length_and_the_connection_stays() {
    let (head, framing, keep) = head_of(&local(StatusCode::SERVICE_UNAVAILABLE, "no instance"), KEEP_11);
    assert_eq!(head, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 11\r\n\r\n");
    assert_eq!((framing, keep), (Framing::Length, true));
}

#[test]
fn a_response_that_says_close_closes_without_a_second_close_field() {
    let mut resp = http::Response::new(ResponseBody::text("bad"));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    let resp = Reply::Local(resp);
    let (head, _, keep) = head_of(&resp, KEEP_11);
    assert!(!keep);
    assert_eq!(head.matches("connection").count(), 1, "{head}");
}

#[test]
fn bodyless_statuses_and_head_requests_get_no_framing() {
    for (status, head_request) in
        [(StatusCode::NO_CONTENT, false), (StatusCode::NOT_MODIFIED, false), (StatusCode::OK, true)]
    {
        let ex = Exchange { head_request, ..KEEP_11 };
        let (head, framing, keep) = head_of(&local(status, "x"), ex);
        assert_eq!(framing, Framing::None, "{status}");
        assert!(keep);
        assert!(!head.contains("content-length") && !head.contains("transfer-encoding"), "{head}");
    }
}

#[test]
fn an_upstream_length_is_kept_as_sent() {
    let mut resp = http::Response::new(ResponseBody::Full(None));
    resp.headers_mut().insert(header::CONTENT_LENGTH, http::HeaderValue::from_static("5"));
    let resp = Reply::Local(resp);
    let (head, framing, _) = head_of(&resp, KEEP_11);
    assert_eq!(framing, Framing::Length);
    assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", "no second length");
}

#[test]
fn http_1_0_clients_get_keep_alive_only_when_they_asked_and_close_otherwise() {
    let kept = Exchange { head_request: false, http11: false, keep_alive: true };
    let (head, _, keep) = head_of(&local(StatusCode::OK, "hi"), kept);
    assert!(keep && head.contains("connection: keep-alive\r\n"), "{head}");
    let (head, _, keep) = head_of(&local(StatusCode::OK, "hi"), Exchange { keep_alive: false, ..kept });
    assert!(!keep && head.contains("connection: close\r\n"), "{head}");
}

#[test]
fn an_unusual_status_keeps_its_code_with_an_empty_reason() {
    let (head, _, _) = head_of(&local(StatusCode::from_u16(599).expect("status"), ""), KEEP_11);
    assert!(head.starts_with("HTTP/1.1 599 \r\n"), "{head}");
}

/// What a client reads when `reply` is written whole for `ex`; `out` must be left empty.
async fn written(reply: Reply, ex: Exchange) -> String {
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    let mut out = BytesMut::new();
    let (framing, _) = encode_head(&mut out, &reply, ex);
    write_body(&mut server, &mut out, reply.into_body(), framing, false, |_, _| Poll::Pending).await.expect("written");
    assert!(out.is_empty());
    drop(server);
    let mut got = String::new();
    client.read_to_string(&mut got).await.expect("read");
    got
}

#[tokio::test]
async fn the_head_and_a_ready_body_arrive_together_and_out_is_left_empty() {
    let got = written(local(StatusCode::OK, "hello"), KEEP_11).await;
    assert_eq!(got, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
}

#[tokio::test]
async fn no_body_bytes_follow_a_head_response() {
    let got = written(local(StatusCode::OK, "hello"), Exchange { head_request: true, ..KEEP_11 }).await;
    assert_eq!(got, "HTTP/1.1 200 OK\r\n\r\n");
}

#[tokio::test]
async fn a_client_that_stopped_reading_is_a_write_error() {
    let (client, mut server) = tokio::io::duplex(16);
    drop(client);
    let resp = local(StatusCode::OK, "hello");
    let mut out = BytesMut::new();
    let (framing, _) = encode_head(&mut out, &resp, KEEP_11);
    let res = write_body(&mut server, &mut out, resp.into_body(), framing, false, |_, _| Poll::Pending).await;
    assert!(matches!(res, Err(WriteError::Client(_))), "{res:?}");
}

fn relayed(wire: &[u8], body: &'static [u8], set_cookie: Option<&'static str>) -> Reply {
    let mut buf = BytesMut::from(wire);
    let head = crate::upstream::codec::parse_response(&mut buf, false).expect("valid").expect("complete");
    let added = crate::reply::Added {
        request_id: Some(HeaderValue::from_static("abc123")),
        set_cookie: set_cookie.map(HeaderValue::from_static),
    };
    Reply::Relayed { head, added, body: ResponseBody::Full(Some(Bytes::from_static(body))) }
}

#[test]
fn a_relayed_head_goes_out_without_its_hop_fields_and_with_ours() {
    let reply = relayed(
        b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\ncontent-length: 2\r\n\r\n",
        b"ok",
        Some("lb=web-1; Path=/; HttpOnly"),
    );
    let (head, framing, keep) = head_of(&reply, KEEP_11);
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nServer: up\r\ncontent-length: 2\r\nx-request-id: abc123\r\nset-cookie: lb=web-1; Path=/; HttpOnly\r\n\r\n"
    );
    assert_eq!((framing, keep), (Framing::Length, true));
}

#[test]
fn a_length_the_upstream_named_in_connection_is_written_by_us() {
    // `Connection: content-length` makes the upstream's own length hop-by-hop.
    let reply = relayed(b"HTTP/1.1 200 OK\r\nConnection: content-length\r\ncontent-length: 2\r\n\r\n", b"ok", None);
    let (head, framing, _) = head_of(&reply, KEEP_11);
    assert_eq!(head, "HTTP/1.1 200 OK\r\nx-request-id: abc123\r\ncontent-length: 2\r\n\r\n");
    assert_eq!(framing, Framing::Length);
}

#[tokio::test]
async fn a_relayed_upstream_close_does_not_close_the_client_connection() {
    let reply = relayed(b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\n", b"ok", None);
    let (_, _, keep) = head_of(&reply, KEEP_11);
    assert!(keep, "the upstream's Connection is its own hop");
    let got = written(reply, KEEP_11).await;
    assert_eq!(got, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: abc123\r\n\r\nok");
}
