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

/// What a bounded load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Responses with status 200.
    pub ok: u64,
    /// Every other outcome: non-200 statuses and transport errors, described.
    pub errors: Vec<String>,
    /// 200 responses per answering backend (`x-backend`).
    pub by_backend: std::collections::BTreeMap<String, u64>,
}

/// GET load from keep-alive workers, running until [`Load::finish`] (or 60 s at most).
#[derive(Debug)]
pub struct Load {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    /// Starts `concurrency` workers sending GET `url` back to back.
    pub fn start(url: &str, concurrency: usize) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let ok = std::sync::Arc::new(AtomicU64::new(0));
        let started = std::time::Instant::now();
        let workers = (0..concurrency)
            .map(|_| {
                let (url, done, ok) = (url.to_string(), done.clone(), ok.clone());
                tokio::spawn(async move {
                    let client = client();
                    let mut report = LoadReport::default();
                    while !done.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                        let req = Request::get(url.as_str()).body(Full::new(Bytes::new())).expect("request");
                        match send(&client, req).await {
                            Ok(r) if r.status == StatusCode::OK => {
                                report.ok += 1;
                                ok.fetch_add(1, Ordering::SeqCst);
                                *report.by_backend.entry(r.backend().unwrap_or_default()).or_default() += 1;
                            }
                            Ok(r) => report.errors.push(format!("status {}: {}", r.status, r.text().trim())),
                            Err(e) => report.errors.push(e),
                        }
                    }
                    report
                })
            })
            .collect();
        Load { done, ok, workers }
    }

    /// Successful responses so far.
    pub fn ok_so_far(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (bounded by 30 s) until at least `n` more requests succeeded than now.
    pub async fn wait_for_more(&self, n: u64) {
        let target = self.ok_so_far() + n;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.ok_so_far() < target {
            assert!(std::time::Instant::now() < deadline, "load stalled at {} ok responses", self.ok_so_far());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the workers and sums what they saw.
    pub async fn finish(self) -> LoadReport {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut total = LoadReport::default();
        for w in self.workers {
            let r = w.await.expect("load worker");
            total.ok += r.ok;
            total.errors.extend(r.errors);
            for (k, v) in r.by_backend {
                *total.by_backend.entry(k).or_default() += v;
            }
        }
        total
    }
}

/// Writes `text` to a fresh file in a temporary directory that lives as long as the
/// returned guard.
pub fn temp_file(name: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new();
    let path = dir.0.join(name);
    std::fs::write(&path, text).expect("write temp file");
    (dir, path)
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ballast-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends raw bytes on a fresh TCP connection and returns everything read until the
/// server closes or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether some socket on this machine has an ESTABLISHED TCP connection to `addr`
/// (read from /proc/net/tcp): lets a test wait until a proxy has opened its upstream
/// connection instead of sleeping.
pub fn connected_to(addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else { return false };
    // /proc/net/tcp prints the IPv4 address as a little-endian hex u32 and the port in hex.
    let want = format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port());
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                cols.len() > 3 && cols[2] == want && cols[3] == "01"
            })
        })
        .unwrap_or(false)
}

/// A `ballast` process whose stdout and stderr lines are collected as they come (logs
/// without colours), for tests that follow what it prints. Killed on drop.
#[derive(Debug)]
pub struct Watched {
    /// The process.
    pub process: ManagedProcess,
    out: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>,
}

/// Which stream of a [`Watched`] process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Out,
    /// stderr (the logs).
    Err,
}

impl Watched {
    /// Starts `ballast ARGS...` with stdout and stderr captured line by line.
    pub fn start(args: &[&str]) -> Watched {
        use tokio::io::AsyncBufReadExt;
        let spec = ProcessSpec {
            program: ballast_bin(),
            args: args.iter().map(Into::into).collect(),
            env: vec![("NO_COLOR".into(), "1".into())],
            ..Default::default()
        };
        let mut process = ManagedProcess::spawn_captured(&spec).expect("spawn ballast");
        let (out, err) = process.take_output();
        let collect = |lines: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            let store = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            if let Some(r) = lines {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        store.lock().expect("lines").push((std::time::Instant::now(), line));
                    }
                });
            }
            store
        };
        let out = collect(out.map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>));
        let err = collect(err.map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>));
        Watched { process, out, err }
    }

    /// Every line of `stream` so far, with when it was read.
    pub fn lines(&self, stream: Stream) -> Vec<(std::time::Instant, String)> {
        let store = if stream == Stream::Out { &self.out } else { &self.err };
        store.lock().expect("lines").clone()
    }

    /// Waits (at most `secs`) until `stream` holds at least `n` lines matching `pred`
    /// and returns the `n`-th, with when it was read; panics naming `what` otherwise.
    pub async fn wait_for(
        &self,
        stream: Stream,
        n: usize,
        secs: u64,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> (std::time::Instant, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let lines = self.lines(stream);
            if let Some(hit) = lines.iter().filter(|(_, l)| pred(l)).nth(n.saturating_sub(1)) {
                return hit.clone();
            }
            if std::time::Instant::now() >= deadline {
                let tail: Vec<&String> = lines.iter().rev().take(30).map(|(_, l)| l).collect();
                panic!("{what}: not seen within {secs}s; last lines (newest first): {tail:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
        }
    }

    /// The address printed after `listening on ` (waits up to 30 s).
    pub async fn listening(&self) -> SocketAddr {
        let (_, line) = self.wait_for(Stream::Out, 1, 30, "listening on", |l| l.starts_with("listening on ")).await;
        line["listening on ".len()..].trim().parse().expect("announced address")
    }

    /// Sends SIGTERM and waits (at most 60 s) for the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.process, nix::sys::signal::Signal::SIGTERM);
        tokio::time::timeout(Duration::from_secs(60), self.process.wait())
            .await
            .expect("ballast exits within 60s of SIGTERM")
            .expect("wait")
    }
}

impl Drop for Watched {
    /// A test that fails midway still leaves no instance behind: ballast gets SIGTERM
    /// (it then stops the instances it started) and up to 20 s to exit, before the
    /// process's own drop kills what is left of its group.
    fn drop(&mut self) {
        if self.process.try_exit_status().is_some() {
            return;
        }
        signal(&self.process, nix::sys::signal::Signal::SIGTERM);
        let pid = i32::try_from(self.process.pid()).unwrap_or(i32::MAX);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !process_gone(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20)); // poll interval
        }
    }
}

/// The pids printed as `(pid N)` in `lines`, in order.
pub fn pids_in<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<i32> {
    lines
        .into_iter()
        .filter_map(|l| l.split("(pid ").nth(1))
        .filter_map(|p| p.split(')').next())
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Whether process `pid` is gone (no /proc entry, or a zombie waiting to be reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits (at most `secs`) until every process of `pids` is gone; panics naming the first
/// survivor otherwise.
pub async fn wait_gone(pids: &[i32], secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    for &pid in pids {
        while !process_gone(pid) {
            assert!(std::time::Instant::now() < deadline, "process {pid} is still running");
            tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
        }
    }
}
