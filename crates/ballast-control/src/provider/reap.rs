//! Reaping what a previous ballast left running: the replicas of a ballast that was
//! SIGKILLed, crashed or OOM-killed, found through their instance records
//! ([`super::records`]).
//!
//! [`reap_leftovers`] runs before a fleet starts any instance. Each record under
//! `<log dir>/<pool>/` is read and judged ([`judge`]):
//! - its process is alive *and* `/proc/<pid>/stat` field 22 (start time, clock ticks
//!   since boot) equals the recorded one → the leftover's process group gets SIGTERM,
//!   then SIGKILL after its grace period; the identity is checked again before each
//!   signal, so a pid recycled by an unrelated process is never signalled;
//! - its process is gone, a zombie, or the pid now names another process → the record
//!   is removed, nothing is signalled;
//! - the record belongs to a ballast that is still running (its owner pid and start
//!   time match a live process: two ballasts share a directory) → left alone;
//! - the record is not a regular file owned by this user and writable only by it,
//!   larger than 16 KiB, not JSON of the expected shape, or names pid 0/1, a pid beyond
//!   `i32`, a group other than its pid, this ballast or its process group, a name that
//!   is not a plain file name or does not match the file's place → skipped with a
//!   warning naming the file and the field, nothing signalled ([`read`]).
//!
//! [`ReapGate`] lets providers wait for the reaping (a leftover still holds its port)
//! without blocking the fleet's start.

use super::records::{identity, judge, read, remove, InstanceRecord, Me, Verdict, MAX_REAP_GRACE, RECORD_SUFFIX};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a leftover may take to disappear after SIGKILL before reaping gives up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Interval of polling /proc while waiting for a leftover to exit.
const POLL: Duration = Duration::from_millis(20);

/// What reaping did with one record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A leftover was stopped; `how` says how; the record is removed.
    Reaped {
        /// The record.
        record: InstanceRecord,
        /// How it ended.
        how: String,
    },
    /// A leftover could not be stopped; the record is kept for the next start.
    Failed {
        /// The record.
        record: InstanceRecord,
        /// Why.
        reason: String,
    },
    /// The recorded process no longer runs; the record is removed.
    Gone {
        /// The record.
        record: InstanceRecord,
        /// Why it counts as gone.
        reason: String,
    },
    /// The file was left alone and nothing was signalled.
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Every `<dir>/<pool>/*.pid` file (directories and files that are symlinks are not
/// followed).
fn record_files(dir: &Path) -> Vec<PathBuf> {
    let real_dirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|it| it.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let mut files: Vec<PathBuf> = real_dirs(dir)
        .into_iter()
        .flat_map(|pool| std::fs::read_dir(pool).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(RECORD_SUFFIX) && !n.starts_with('.')))
        .collect();
    files.sort();
    files
}

/// Reaps what a previous run left under `dir` (a fleet's log directory, one
/// subdirectory per pool): see the module documentation. Leftovers are stopped
/// concurrently; every outcome is logged and returned.
pub async fn reap_leftovers(dir: &Path) -> Vec<Outcome> {
    let me = Me::now();
    let stops = record_files(dir).into_iter().map(|path| async move {
        let outcome = reap_one(&path, &me).await;
        log(&path, &outcome);
        outcome
    });
    futures_util::future::join_all(stops).await
}

async fn reap_one(path: &Path, me: &Me) -> Outcome {
    let record = match read(path) {
        Ok(r) => r,
        Err(e) => return Outcome::Skipped { path: path.into(), reason: e.to_string() },
    };
    match judge(&record, me, identity(record.pid), identity(record.owner_pid)) {
        Verdict::Skip(reason) => Outcome::Skipped { path: path.into(), reason },
        Verdict::Gone(reason) => {
            remove(path);
            Outcome::Gone { record, reason }
        }
        Verdict::Reap { group } => match stop_leftover(&record, group).await {
            Ok(how) => {
                remove(path);
                Outcome::Reaped { record, how }
            }
            Err(reason) => Outcome::Failed { record, reason },
        },
    }
}

fn log(path: &Path, outcome: &Outcome) {
    let file = path.display();
    match outcome {
        Outcome::Reaped { record: r, how } => {
            tracing::warn!(record = %file, "reaped leftover instance {} (pid {}) from a previous run: {how}", r.instance, r.pid)
        }
        Outcome::Failed { record: r, reason } => {
            tracing::error!(record = %file, "leftover instance {} (pid {}) from a previous run not stopped: {reason}", r.instance, r.pid)
        }
        Outcome::Gone { record: r, reason } => tracing::info!(record = %file, "stale record of instance {} removed: {reason}", r.instance),
        Outcome::Skipped { reason, .. } => tracing::warn!(record = %file, "instance record skipped, nothing signalled: {reason}"),
    }
}

/// Whether the recorded process still runs as itself (same start time, not a zombie).
fn still_ours(record: &InstanceRecord) -> bool {
    identity(record.pid).is_some_and(|p| !p.zombie && p.start_time == record.start_time)
}

/// Sends `sig` to the leftover (its group when `group`) if it still runs as itself;
/// Ok(false) when it is gone.
fn send(record: &InstanceRecord, group: bool, sig: nix::sys::signal::Signal) -> Result<bool, String> {
    use nix::sys::signal::{kill, killpg};
    if !still_ours(record) {
        return Ok(false);
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(record.pid).map_err(|_| "pid beyond i32".to_string())?);
    let sent = if group { killpg(pid, sig) } else { kill(pid, sig) };
    match sent {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(format!("{sig} to pid {}: {e}", record.pid)),
    }
}

/// Polls until the leftover is gone or `within` passes; whether it is gone.
async fn exited_within(record: &InstanceRecord, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while still_ours(record) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// SIGTERM, the record's grace period, SIGKILL; how it ended.
async fn stop_leftover(record: &InstanceRecord, group: bool) -> Result<String, String> {
    use nix::sys::signal::Signal;
    let grace = Duration::from_millis(record.grace_ms).min(MAX_REAP_GRACE);
    if !send(record, group, Signal::SIGTERM)? {
        return Ok("exited before SIGTERM".into());
    }
    if exited_within(record, grace).await {
        return Ok("stopped by SIGTERM".into());
    }
    send(record, group, Signal::SIGKILL)?;
    if exited_within(record, KILL_WAIT).await {
        return Ok(format!("killed with SIGKILL after a {grace:?} grace period"));
    }
    Err(format!("still running {KILL_WAIT:?} after SIGKILL"))
}

/// Opens once reaping is done: process providers wait for it before their first
/// instance (a leftover may still hold a port of the range). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReapGate(tokio::sync::watch::Receiver<bool>);

impl ReapGate {
    /// Runs `reaping` as a task (inside a tokio runtime); the gate opens when it ends
    /// (or panics).
    pub fn after(reaping: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            reaping.await;
            let _ = tx.send(true);
        });
        ReapGate(rx)
    }

    /// A gate that is already open (nothing to reap).
    pub fn open() -> Self {
        ReapGate(tokio::sync::watch::channel(true).1)
    }

    /// Waits until the gate opens.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // Err: the task ended without sending (it panicked): open as well
        let _ = rx.wait_for(|done| *done).await;
    }
}
