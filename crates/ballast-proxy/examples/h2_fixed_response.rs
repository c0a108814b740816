//! hyper's HTTP/2 server alone, answering every request with a fixed 200, for
//! `bench/h2-server-cost.sh`: `h2_fixed_response PORT`. It measures what the HTTP/2
//! server side costs before any proxying (HAProxy's counterpart: `http-request return`).
//! Built as ballast builds its HTTP/2 server: one current-thread runtime, mimalloc,
//! hyper's `http2::Builder` and a task per stream; no `Date` header added (ballast
//! forwards the upstream's).

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The body; HAProxy's `http-request return` in the same script sends the same.
const BODY: &str = "ok";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: h2_fixed_response PORT")?
        .parse()
        .map_err(|e| format!("PORT must be a port number: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            tokio::spawn(async move {
                let answer = service_fn(|_req| async {
                    let resp = hyper::Response::builder()
                        .header(hyper::header::CONTENT_TYPE, "text/plain")
                        .header(hyper::header::CONTENT_LENGTH, BODY.len())
                        .body(Full::new(Bytes::from_static(BODY.as_bytes())));
                    Ok::<_, Infallible>(resp.expect("a fixed, valid response"))
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder.auto_date_header(false);
                // A client that goes away ends its connection; nothing to report.
                let _ = builder.serve_connection(TokioIo::new(socket), answer).await;
            });
        }
    })
}
