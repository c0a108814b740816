//! Running the data plane from the binary: the tokio runtimes, the listeners, and the
//! signals an operator sends (SIGHUP reloads, SIGTERM/SIGINT drain and exit). `serve`,
//! `proxy` and `demo` all end up here.
//!
//! Threading ([`run`]): one thread runs everything on a current-thread runtime (no
//! cross-thread wake-ups at all); N > 1 threads run sharded [`Workers`], one
//! current-thread runtime per thread with its own `SO_REUSEPORT` socket, so a connection
//! and its upstream connections stay on one thread, while the signals and reloads run
//! on a small control runtime of their own.

use anyhow::Context as _;
use ballast_core::config::Config;
use ballast_proxy::{AccessLog, ProxyServer, Workers};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// How long in-flight requests may take to finish after SIGTERM.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Runs the listeners of `config` on `threads` threads (default: one per core) until
/// SIGTERM or SIGINT, then drains; see the module doc for the threading and
/// [`serve_until_signal`] for `reload_from`.
pub fn run(config: &Config, threads: Option<usize>, reload_from: Option<PathBuf>) -> anyhow::Result<()> {
    let n = match threads {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    };
    anyhow::ensure!(n >= 1, "--threads must be at least 1");
    let control = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if n == 1 {
        return control.block_on(async {
            let server = start(config)?;
            serve_until_signal(&server, reload_from).await
        });
    }
    let workers = Workers::start(n).context("cannot start the worker threads")?;
    let result = control.block_on(async {
        let server = start_on(config, workers.handles())?;
        serve_until_signal(&server, reload_from).await
    });
    workers.stop();
    result
}

/// Builds the multi-threaded runtime that carries the proxy (`threads` workers; default
/// one per core).
pub fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        b.worker_threads(n);
    }
    Ok(b.enable_all().build()?)
}

/// Starts the listeners of `config` and prints `listening on ADDR` for each (stdout,
/// flushed: scripts and tests read it).
pub fn start(config: &Config) -> anyhow::Result<ProxyServer> {
    start_on(config, &[])
}

/// Like [`start`], with every listener sharded over `runtimes` (none: the current one).
fn start_on(config: &Config, runtimes: &[tokio::runtime::Handle]) -> anyhow::Result<ProxyServer> {
    let server = ProxyServer::start_on(config, AccessLog::stdout(), runtimes).context("cannot start the proxy")?;
    let mut out = std::io::stdout().lock();
    for (name, addr) in server.local_addrs() {
        tracing::info!(balancer = %name, %addr, "listening");
        writeln!(out, "listening on {addr}")?;
    }
    out.flush()?;
    Ok(server)
}

/// Serves until SIGTERM or SIGINT, then drains. With `reload_from`, SIGHUP re-reads
/// that file: a valid config is swapped in without dropping a connection; an invalid
/// one is refused with every error logged, and the running config keeps serving.
pub async fn serve_until_signal(server: &ProxyServer, reload_from: Option<PathBuf>) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match &reload_from {
                Some(path) => reload(server, path),
                None => tracing::info!("SIGHUP ignored: no config file to reload (started without --config)"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!(grace = ?DRAIN_GRACE, "draining in-flight requests");
    if server.shutdown(DRAIN_GRACE).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!("grace period over with requests still in flight; exiting");
    }
    Ok(())
}

fn reload(server: &ProxyServer, path: &std::path::Path) {
    match crate::config_file::load(path) {
        Ok(config) => match server.reload(&config) {
            Ok(summary) => tracing::info!(?summary, "config reloaded from {}", path.display()),
            Err(e) => tracing::error!("reload refused, the running config keeps serving: {e}"),
        },
        Err(errors) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!("reload refused ({} error(s)); the running config keeps serving", errors.len());
        }
    }
}
