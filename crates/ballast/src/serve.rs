//! Running the data plane from the binary: the tokio runtimes, the listeners, and the
//! signals an operator sends (SIGHUP reloads, SIGTERM/SIGINT drain and exit). `serve`,
//! `proxy` and `demo` all end up here.
//!
//! Threading ([`run`]): one thread runs everything on a current-thread runtime (no
//! cross-thread wake-ups at all); N > 1 threads run sharded [`Workers`], one
//! current-thread runtime per thread with its own `SO_REUSEPORT` socket, so a connection
//! and its upstream connections stay on one thread, while the signals and reloads run
//! on a small control runtime of their own, with the autoscaling controller.
//!
//! Autoscaling: every pool with `[pool.scaling]` and a process or exec provider gets a
//! pool task ([`Fleet`]) on the control runtime. Every decision and lifecycle event is
//! logged (`control event` lines with pool, kind, reason, inputs and outcome). SIGHUP
//! applies the reloaded file to the proxy and the pools (new template → rolling update,
//! new scaling settings → the running task, added/removed pools → tasks started or
//! stopped) and the admin listener (moved, started or stopped with `[admin]`, see
//! [`AdminListener::apply_reloaded`]). SIGTERM/SIGINT: the proxy drains first, then every pool task stops and
//! destroys the instances it started; the same happens when serving fails.

use crate::admin::{AdminListener, PoolDirectory};
use anyhow::Context as _;
use ballast_control::controller::seam::ProxySeam;
use ballast_control::controller::wire::Wiring;
use ballast_control::controller::{EventLog, Fleet, Settings};
use ballast_core::config::Config;
use ballast_proxy::{AccessLog, ProxyServer, Workers};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// How long in-flight requests may take to finish after SIGTERM.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Events kept in memory by the controller.
const EVENTS_KEPT: usize = 10_000;

/// Where instance logs go for `ballast proxy` (fixed backends: it starts none).
pub fn default_log_dir() -> PathBuf {
    std::env::temp_dir().join(format!("ballast-{}", std::process::id()))
}

/// Where ballast keeps state (instance logs and records) when no `--log-dir` is given:
/// `$STATE_DIRECTORY` (the first entry of systemd's `StateDirectory=`), else
/// `$XDG_STATE_HOME/ballast`, else `$HOME/.local/state/ballast`, else
/// `<tmp>/ballast-state`. Relative values are ignored (the XDG rule). `env` reads a
/// variable (`std::env::var_os` outside tests).
pub fn state_base(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    let systemd = env("STATE_DIRECTORY")
        .and_then(|v| v.to_str().and_then(|s| s.split(':').next()).map(std::ffi::OsString::from));
    absolute(systemd)
        .or_else(|| absolute(env("XDG_STATE_HOME")).map(|p| p.join("ballast")))
        .or_else(|| absolute(env("HOME")).map(|p| p.join(".local/state/ballast")))
        .unwrap_or_else(|| std::env::temp_dir().join("ballast-state"))
}

/// The default `--log-dir` of `ballast serve --config PATH`: `<state base>/<file
/// stem>-<16 hex digits of the xxh3 hash of the absolute PATH>`. The same for every run
/// of one config, so a restarted ballast finds (and stops) the instances a killed one
/// left running; different for two configs.
pub fn config_log_dir(base: &Path, config: &Path) -> PathBuf {
    let absolute = std::fs::canonicalize(config).unwrap_or_else(|_| std::path::absolute(config).unwrap_or(config.into()));
    let hash = xxhash_rust::xxh3::xxh3_64(absolute.as_os_str().as_encoded_bytes());
    let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("config");
    let stem: String = stem.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(32).collect();
    base.join(format!("{}-{hash:016x}", stem.trim_start_matches('.')))
}

/// Runs the listeners of `config` on `threads` threads (default: one per core) until
/// SIGTERM or SIGINT, then drains; see the module doc for the threading and
/// [`serve_until_signal`] for `reload_from`. Instance logs of autoscaled pools go
/// under `log_dir`.
pub fn run(config: &Config, threads: Option<usize>, reload_from: Option<PathBuf>, log_dir: &Path) -> anyhow::Result<()> {
    let n = match threads {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    };
    anyhow::ensure!(n >= 1, "--threads must be at least 1");
    let control = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let wiring = Wiring { log_dir: log_dir.to_path_buf(), settings: Settings::default(), events: EventLog::new(EVENTS_KEPT) };
    if n == 1 {
        return control.block_on(async { serve_config(Arc::new(start(config)?), config, wiring, reload_from).await });
    }
    let workers = Workers::start(n).context("cannot start the worker threads")?;
    let result = control
        .block_on(async { serve_config(Arc::new(start_on(config, workers.handles())?), config, wiring, reload_from).await });
    workers.stop();
    result
}

/// Everything `serve` runs beside the listeners: the admin listener (with `[admin]`),
/// the autoscaling controller, the signals; then the drain, the instances stopped,
/// the admin listener closed.
async fn serve_config(server: Arc<ProxyServer>, config: &Config, wiring: Wiring, reload_from: Option<PathBuf>) -> anyhow::Result<()> {
    let pools = Arc::new(PoolDirectory::default());
    let mut admin = AdminListener::start(config.admin.as_ref(), &server, pools.clone())?;
    let mut fleet = start_fleet(&server, config, wiring);
    pools.refresh(&fleet);
    let reload = reload_from.as_deref().map(|path| Reload { path, admin: &mut admin });
    let served = serve_until_signal(&server, reload, &mut fleet, &pools).await;
    stop_fleet(fleet).await;
    admin.stop().await;
    served
}

/// Prints one line to stdout and flushes it (scripts and tests read stdout).
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Starts the autoscaling controller for `config`'s pools behind `server` (inside a
/// tokio runtime), logging a warning for each pool that is not autoscaled.
pub fn start_fleet(server: &Arc<ProxyServer>, config: &Config, wiring: Wiring) -> Fleet {
    let seam = Arc::new(ProxySeam::new(server.clone()));
    let log_dir = wiring.log_dir.clone();
    let (fleet, notes) = Fleet::start(config, seam, wiring);
    for note in notes {
        tracing::warn!("{note}");
    }
    if !fleet.names().is_empty() {
        tracing::info!(pools = ?fleet.names(), log_dir = %log_dir.display(), "autoscaling controller started");
    }
    fleet
}

/// Stops every pool task; each destroys the instances it started.
pub async fn stop_fleet(fleet: Fleet) {
    if fleet.names().is_empty() {
        return;
    }
    tracing::info!("stopping the autoscaled instances");
    fleet.shutdown().await;
    tracing::info!("every autoscaled instance stopped");
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

/// What SIGHUP reloads: the config file, and the admin listener that follows its
/// `[admin]` section.
pub struct Reload<'a> {
    /// The config file, re-read on every SIGHUP.
    pub path: &'a Path,
    /// The admin listener (running or not), changed when a reload changes `[admin]`.
    pub admin: &'a mut AdminListener,
}

/// Serves until SIGTERM or SIGINT, then drains. With `reload`, SIGHUP re-reads its
/// file: a valid config is swapped in without dropping a connection and applied to
/// `fleet` and the admin listener; an invalid one is refused with every error logged,
/// and the running config keeps serving; `pools` follows the fleet's pools. The caller
/// stops `fleet` and the admin listener afterwards.
pub async fn serve_until_signal(
    server: &ProxyServer,
    mut reload: Option<Reload<'_>>,
    fleet: &mut Fleet,
    pools: &PoolDirectory,
) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match reload.as_mut() {
                Some(Reload { path, admin }) => {
                    if let Some(config) = reload_config(fleet, path).await {
                        admin.apply_reloaded(config.admin.as_ref()).await;
                    }
                    pools.refresh(fleet);
                }
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

/// Re-reads `path` and applies it to the proxy and `fleet`; the config when it was
/// applied, None when it was refused (every reason logged, nothing changed).
async fn reload_config(fleet: &mut Fleet, path: &Path) -> Option<Config> {
    match crate::config_file::load(path) {
        Ok(config) => match fleet.reload(&config).await {
            Ok(changes) => {
                tracing::info!(pools_changed = changes.len(), "config reloaded from {}", path.display());
                Some(config)
            }
            Err(e) => {
                tracing::error!("reload refused, the running config keeps serving: {e}");
                None
            }
        },
        Err(errors) => {
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!("reload refused ({} error(s)); the running config keeps serving", errors.len());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_base_follows_systemd_then_xdg_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into());
        const ALL: &[(&str, &str)] = &[("STATE_DIRECTORY", "/var/lib/ballast:/var/lib/other"), ("XDG_STATE_HOME", "/x/state"), ("HOME", "/home/op")];
        assert_eq!(state_base(env(ALL)), PathBuf::from("/var/lib/ballast"));
        assert_eq!(state_base(env(&ALL[1..])), PathBuf::from("/x/state/ballast"));
        assert_eq!(state_base(env(&[("XDG_STATE_HOME", "relative/dir"), ("HOME", "/home/op")])), PathBuf::from("/home/op/.local/state/ballast"));
        assert_eq!(state_base(env(&[("STATE_DIRECTORY", "")])), std::env::temp_dir().join("ballast-state"));
        assert_eq!(state_base(env(&[])), std::env::temp_dir().join("ballast-state"));
    }

    #[test]
    fn a_config_keeps_its_log_dir_across_runs_and_another_gets_its_own() {
        let base = Path::new("/state");
        let a = config_log_dir(base, Path::new("/etc/ballast/web.toml"));
        assert_eq!(a, config_log_dir(base, Path::new("/etc/ballast/web.toml")), "stable");
        assert_eq!(a.parent(), Some(base));
        let name = a.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.starts_with("web-") && name.len() == "web-".len() + 16, "{name}");
        assert_ne!(a, config_log_dir(base, Path::new("/etc/other/web.toml")), "same stem, other file");
        let odd = config_log_dir(base, Path::new("/x/.. we!rd/$name.toml"));
        assert_eq!(odd.parent(), Some(base), "one component: {odd:?}");
        assert!(odd.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("name-")), "plain characters only: {odd:?}");
    }
}
