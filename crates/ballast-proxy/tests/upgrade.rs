//! WebSocket (HTTP/1.1 Upgrade) passes through the proxy both ways.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket echo backend built on hyper's upgrade.
async fn ws_echo() -> Backend {
    backend(|mut req| async move {
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return Response::builder().status(400).body(full("not a websocket")).expect("resp");
        };
        let forwarded_upgrade = req.headers().get("upgrade").cloned();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else { return };
            let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let mut resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", derive_accept_key(key.as_bytes()));
        if let Some(u) = forwarded_upgrade {
            resp = resp.header("x-seen-upgrade", u);
        }
        resp.body(empty()).expect("resp")
    })
    .await
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let b = ws_echo().await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], "", "")).await;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/chat"), tcp).await.expect("ws handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(resp.headers()["x-seen-upgrade"], "websocket");
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await.expect("send");
        let echoed = ws.next().await.expect("message").expect("ok");
        assert_eq!(echoed, Message::text(format!("hello {i}")));
    }
    let big = vec![42u8; 1 << 20];
    ws.send(Message::binary(big.clone())).await.expect("send big");
    assert_eq!(ws.next().await.expect("message").expect("ok").into_data(), big);
    ws.close(None).await.expect("close");
    // A plain request on the same proxy is relayed normally (the backend refuses it).
    let plain = send(addr, get("/")).await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    assert_eq!(&plain.body[..], b"not a websocket");
}
