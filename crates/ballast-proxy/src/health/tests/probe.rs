use super::{closed_port, self_signed_acceptor, Backend};
use crate::health::{icmp_available, HealthError, Probe, Prober};
use ballast_core::config::{ConfigDuration, HealthCheckConfig, HealthCheckKind, StatusRange};
use tokio::net::TcpListener;

fn cfg(kind: HealthCheckKind) -> HealthCheckConfig {
    HealthCheckConfig { kind, timeout: ConfigDuration::from_millis(1000), ..HealthCheckConfig::default() }
}

async fn probe(cfg: &HealthCheckConfig, addr: &str) -> Result<String, HealthError> {
    Prober::new(cfg).expect("prober").probe(addr).await
}

#[tokio::test]
async fn http_status_in_range_passes_and_outside_fails() {
    let b = Backend::start(None).await;
    let addr = b.addr.to_string();
    let c = cfg(HealthCheckKind::Http);
    assert_eq!(probe(&c, &addr).await.expect("200 passes"), "status 200");
    b.set_status(503);
    match probe(&c, &addr).await {
        Err(e @ HealthError::Status { status: 503, .. }) => assert_eq!(e.to_string(), "status 503 is outside 200-399"),
        other => panic!("expected a status failure, got {other:?}"),
    }
    b.set_status(204);
    let only_204 = HealthCheckConfig { expected_status: StatusRange { min: 204, max: 204 }, ..c.clone() };
    assert!(probe(&only_204, &addr).await.is_ok());
    b.set_status(200);
    assert!(matches!(probe(&only_204, &addr).await, Err(HealthError::Status { status: 200, .. })));
}

#[tokio::test]
async fn body_match_and_host_header() {
    let b = Backend::start(None).await;
    let addr = b.addr.to_string();
    let mut c = cfg(HealthCheckKind::Http);
    c.body_contains = Some(format!("host={addr}"));
    assert_eq!(probe(&c, &addr).await.expect("Host defaults to the address"), "status 200, body matched");
    c.host = Some("api.example".into());
    match probe(&c, &addr).await {
        Err(HealthError::BodyMismatch { read, .. }) => assert_eq!(read, "ok host=api.example".len()),
        other => panic!("expected a body mismatch, got {other:?}"),
    }
    c.body_contains = Some("host=api.example".into());
    assert!(probe(&c, &addr).await.is_ok(), "the configured Host is sent");
}

#[tokio::test]
async fn nothing_listening_fails_to_connect() {
    let addr = closed_port().await.to_string();
    for kind in [HealthCheckKind::Tcp, HealthCheckKind::Http, HealthCheckKind::Https] {
        match probe(&cfg(kind), &addr).await {
            Err(HealthError::Connect { .. }) => {}
            other => panic!("{kind:?}: expected a connect failure, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tcp_connect_passes_with_a_listener() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    assert_eq!(probe(&cfg(HealthCheckKind::Tcp), &addr).await.expect("connects"), "connected");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts (the kernel does, from the backlog) but never answers.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let c = HealthCheckConfig { timeout: ConfigDuration::from_millis(150), ..cfg(HealthCheckKind::Http) };
    match probe(&c, &addr).await {
        Err(e @ HealthError::Timeout { .. }) => assert_eq!(e.to_string(), "no answer within 150ms"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_non_http_answer_is_an_http_failure() {
    use tokio::io::AsyncWriteExt;
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        }
    });
    assert!(matches!(probe(&cfg(HealthCheckKind::Http), &addr).await, Err(HealthError::Http(_))));
}

#[tokio::test]
async fn https_probe_accepts_a_self_signed_instance() {
    let b = Backend::start(Some(self_signed_acceptor())).await;
    let addr = b.addr.to_string();
    let mut c = cfg(HealthCheckKind::Https);
    c.body_contains = Some("ok".into());
    assert_eq!(probe(&c, &addr).await.expect("self-signed is fine for probes"), "status 200, body matched");
    b.set_status(500);
    assert!(matches!(probe(&c, &addr).await, Err(HealthError::Status { status: 500, .. })));
    // Plain HTTP to a TLS port fails at the HTTP layer, TLS to a plain port at TLS.
    assert!(probe(&cfg(HealthCheckKind::Http), &addr).await.is_err());
    let plain = Backend::start(None).await;
    assert!(matches!(probe(&cfg(HealthCheckKind::Https), &plain.addr.to_string()).await, Err(HealthError::Tls(_))));
}

#[tokio::test]
async fn unresolvable_names_fail_clearly() {
    let e = probe(&cfg(HealthCheckKind::Tcp), "no-such-host.invalid:80").await.expect_err("does not resolve");
    assert!(matches!(e, HealthError::Resolve { .. } | HealthError::Timeout { .. }), "{e}");
    let e = probe(&cfg(HealthCheckKind::Tcp), "missing-port").await.expect_err("no port");
    assert!(matches!(e, HealthError::Resolve { .. }), "{e}");
}

#[tokio::test]
async fn icmp_echo_to_loopback_or_a_clear_refusal() {
    let c = cfg(HealthCheckKind::Icmp);
    match icmp_available() {
        Ok(()) => {
            let ok = probe(&c, "127.0.0.1:0").await.expect("loopback answers pings");
            assert!(ok.starts_with("echo reply in "), "{ok}");
            // A second ping uses a new sequence number and still matches its own reply.
            assert!(probe(&c, "127.0.0.1:0").await.is_ok());
        }
        Err(msg) => {
            let e = Prober::new(&c).expect_err("refused up front");
            assert!(matches!(e, HealthError::IcmpNotPermitted(_)));
            assert!(e.to_string().contains(&msg) && msg.contains("ping_group_range"), "{e}");
        }
    }
}

/// A raw TCP server that reads a request head, then answers with `head` and `chunk`
/// repeated until the client goes away. (Answering before the request arrives would be
/// an unsolicited response, which the client rightly drops.)
async fn raw_server(head: Vec<u8>, chunk: Vec<u8>) -> String {
    use tokio::io::AsyncWriteExt;
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (head, chunk) = (head.clone(), chunk.clone());
            tokio::spawn(async move {
                if !crate::test_io::read_request_head(&mut s).await {
                    return;
                }
                if s.write_all(&head).await.is_err() {
                    return;
                }
                while !chunk.is_empty() && s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_cap() {
    let chunk = format!("400\r\n{}\r\n", ".".repeat(1024)).into_bytes();
    let addr = raw_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), chunk).await;
    let mut c = cfg(HealthCheckKind::Http);
    c.body_contains = Some("never there".into());
    match probe(&c, &addr).await {
        Err(HealthError::BodyMismatch { read, .. }) => assert_eq!(read, crate::health::MAX_BODY_BYTES),
        other => panic!("expected a capped body mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_match_split_across_chunks_is_found() {
    let addr = raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsta\r\n5\r\ntus=u\r\n1\r\np\r\n0\r\n\r\n".to_vec(),
        Vec::new(),
    )
    .await;
    let mut c = cfg(HealthCheckKind::Http);
    c.body_contains = Some("status=up".into());
    assert_eq!(probe(&c, &addr).await.expect("found across chunks"), "status 200, body matched");
}

#[tokio::test]
async fn hostile_response_heads_fail_as_http_errors() {
    let huge = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-Pad: aaaaaaaaaaaaaaaa\r\n".repeat(5000)).into_bytes();
    let heads = [
        huge,
        b"HTTP/1.1 999999 Nope\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n".to_vec(),
    ];
    for head in heads {
        let addr = raw_server(head.clone(), Vec::new()).await;
        match probe(&cfg(HealthCheckKind::Http), &addr).await {
            Err(HealthError::Http(_)) => {}
            other => panic!("expected an HTTP failure for {:?}, got {other:?}", String::from_utf8_lossy(&head[..40.min(head.len())])),
        }
    }
}
