//! The client side of a protocol switch (`101 Switching Protocols`, e.g. WebSocket),
//! whichever server holds the client connection: hyper's upgrade handle, or our own
//! HTTP/1.1 loop ([`crate::conn::h1`]), which hands its connection over once the `101` is
//! written.

use hyper_util::rt::TokioIo;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// A byte stream both ways, boxed: the client connection after the switch.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Where the client connection of an upgrade request comes from.
pub enum ClientUpgrade {
    /// hyper's handle (HTTP/1.1 connections hyper serves).
    Hyper(hyper::upgrade::OnUpgrade),
    /// Our own loop sends the connection, with any bytes read past the request, once it
    /// has written the `101`.
    Lean(oneshot::Receiver<Box<dyn Stream>>),
}

impl std::fmt::Debug for ClientUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientUpgrade::Hyper(_) => "ClientUpgrade::Hyper",
            ClientUpgrade::Lean(_) => "ClientUpgrade::Lean",
        })
    }
}

impl ClientUpgrade {
    /// Waits for the client connection (after the `101` has reached it).
    pub async fn connection(self) -> io::Result<Box<dyn Stream>> {
        match self {
            ClientUpgrade::Hyper(on) => match on.await {
                Ok(upgraded) => Ok(Box::new(TokioIo::new(upgraded))),
                Err(e) => Err(io::Error::other(e)),
            },
            ClientUpgrade::Lean(rx) => rx.await.map_err(|_| io::Error::other("the client connection was not handed over")),
        }
    }
}
