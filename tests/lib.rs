//! Shared helpers for ballast's end-to-end tests: start the real `ballast` binary (as a
//! proxy, a demo backend or any other subcommand) on OS-chosen loopback ports, talk to it
//! over real sockets, and stop everything when the test ends.

use ballast_control::process::{ManagedProcess, ProcessSpec};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `ballast` binary that `cargo test --workspace` built next to this test binary.
pub fn ballast_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-xxxx → target/<profile>/ballast
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("ballast");
    assert!(bin.exists(), "{} not built: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// A running `ballast` process and the address it announced. Killed on drop.
#[derive(Debug)]
pub struct Running {
    /// The process.
    pub process: ManagedProcess,
    /// The address it printed after `listening on `.
    pub addr: SocketAddr,
}

impl Running {
    /// `http://ADDR` for building URLs.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Starts `ballast ARGS...` and waits for its `listening on ADDR` line.
pub async fn start_ballast<I, S>(args: I) -> Running
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let spec = ProcessSpec { program: ballast_bin(), args: args.clone(), ..Default::default() };
    let mut process = ManagedProcess::spawn(&spec).expect("spawn ballast");
    let announced = tokio::time::timeout(Duration::from_secs(30), process.read_announcement("listening on "))
        .await
        .unwrap_or_else(|_| panic!("ballast {args:?} did not announce its address within 30s"))
        .unwrap_or_else(|e| panic!("ballast {args:?}: {e}"));
    let addr = announced.parse().unwrap_or_else(|e| panic!("bad announced address {announced:?}: {e}"));
    Running { process, addr }
}

/// Starts a demo backend named `name` with extra knobs (e.g. `["--latency", "5ms"]`).
pub async fn start_backend(name: &str, knobs: &[&str]) -> Running {
    let mut args = vec!["demo-backend", "--port", "0", "--name", name];
    args.extend_from_slice(knobs);
    start_ballast(args).await
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The demo backend that answered (`x-backend` header), if any.
    pub fn backend(&self) -> Option<String> {
        self.headers.get("x-backend").and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// A pooled HTTP/1.1 keep-alive client, like a browser or a load generator.
pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `req` with `client`, reading the whole response, within 30 s.
pub async fn send(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("request failed: {e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| format!("body failed: {e}"))?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    };
    tokio::time::timeout(Duration::from_secs(30), fut).await.map_err(|_| "timed out after 30s".to_string())?
}

/// GET `url` with a fresh client.
pub async fn get(url: &str) -> Result<Reply, String> {
    let req = Request::get(url).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    send(&client(), req).await
}

/// Sends SIGKILL to a process (not its group): a crash, not a shutdown.
pub fn sigkill(process: &ManagedProcess) {
    signal(process, nix::sys::signal::Signal::SIGKILL);
}

/// Sends `sig` to a process.
pub fn signal(process: &ManagedProcess, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(process.pid()).expect("pid fits i32"));
    nix::sys::signal::kill(pid, sig).expect("signal delivered");
}
