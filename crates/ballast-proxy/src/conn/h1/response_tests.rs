use super::*;
use tokio::io::AsyncReadExt;

fn local(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::text(text));
    *resp.status_mut() = status;
    resp
}

fn head_of(resp: &Response<ResponseBody>, ex: Exchange) -> (String, Framing, bool) {
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
    let mut resp = local(StatusCode::BAD_REQUEST, "bad");
    resp.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
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
    let mut resp = local(StatusCode::OK, "");
    resp.headers_mut().insert(header::CONTENT_LENGTH, http::HeaderValue::from_static("5"));
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

#[tokio::test]
async fn the_head_and_a_ready_body_arrive_together_and_out_is_left_empty() {
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    let resp = local(StatusCode::OK, "hello");
    let mut out = BytesMut::new();
    let (framing, _) = encode_head(&mut out, &resp, KEEP_11);
    write_body(&mut server, &mut out, resp.into_body(), framing, false).await.expect("written");
    assert!(out.is_empty());
    drop(server);
    let mut got = String::new();
    client.read_to_string(&mut got).await.expect("read");
    assert_eq!(got, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
}

#[tokio::test]
async fn no_body_bytes_follow_a_head_response() {
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    let resp = local(StatusCode::OK, "hello");
    let mut out = BytesMut::new();
    let (framing, _) = encode_head(&mut out, &resp, Exchange { head_request: true, ..KEEP_11 });
    write_body(&mut server, &mut out, resp.into_body(), framing, false).await.expect("written");
    drop(server);
    let mut got = String::new();
    client.read_to_string(&mut got).await.expect("read");
    assert_eq!(got, "HTTP/1.1 200 OK\r\n\r\n");
}

#[tokio::test]
async fn a_client_that_stopped_reading_is_a_write_error() {
    let (client, mut server) = tokio::io::duplex(16);
    drop(client);
    let resp = local(StatusCode::OK, "hello");
    let mut out = BytesMut::new();
    let (framing, _) = encode_head(&mut out, &resp, KEEP_11);
    let res = write_body(&mut server, &mut out, resp.into_body(), framing, false).await;
    assert!(matches!(res, Err(WriteError::Client(_))), "{res:?}");
}
