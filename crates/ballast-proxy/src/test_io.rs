//! Helpers for tests that play a raw TCP peer.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads from `stream` until a whole request head (up to the blank line) has arrived.
/// False when the peer closed or the read failed first.
pub(crate) async fn read_request_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}
