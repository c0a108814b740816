//! Instance records: what lets a restarted ballast stop the replicas its previous life
//! left running (ballast SIGKILLed, crashed or OOM-killed: no `Drop` ran).
//!
//! The process provider writes one record per live instance, `<pool dir>/<instance>.pid`
//! (a small JSON object, [`InstanceRecord`]), next to the instance's logs; written to a
//! temporary file and renamed, so a reader never sees half a record; removed once the
//! instance is stopped or seen exiting. No fsync: a record only matters while its
//! process runs, and a machine crash that loses the page cache ends the process too.
//!
//! [`judge`] decides what [`super::reap::reap_leftovers`] does with each record found
//! at start: see there.

use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name ending of a record: `<instance>.pid`.
pub const RECORD_SUFFIX: &str = ".pid";
/// Largest record file read, bytes; anything larger is skipped unread.
pub const MAX_RECORD_BYTES: u64 = 16 * 1024;
/// Longest grace period a record may ask for (`grace_ms`), so a hostile record cannot
/// hold back a start for long.
pub const MAX_REAP_GRACE: Duration = Duration::from_secs(60);
/// The record format this build writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// One live instance as written to `<pool dir>/<instance>.pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRecord {
    /// Format version, [`RECORD_VERSION`].
    pub version: u32,
    /// The pool (must be the record's directory name).
    pub pool: String,
    /// The instance id (must be the record's file name without `.pid`).
    pub instance: String,
    /// The child's process id.
    pub pid: u32,
    /// Its process group id (the process provider makes each child a group leader, so
    /// this must equal `pid`).
    pub pgid: u32,
    /// Its start time, clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// The port it was given.
    pub port: u16,
    /// Program and arguments, for messages and the operator.
    pub command: Vec<String>,
    /// Grace period between SIGTERM and SIGKILL, ms (at most [`MAX_REAP_GRACE`]).
    pub grace_ms: u64,
    /// The ballast that started it.
    pub owner_pid: u32,
    /// That ballast's start time, clock ticks after boot.
    pub owner_start_time: u64,
}

/// Why a record could not be written, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file must not be trusted (owner, permissions, kind, size).
    #[error("{path}: {reason}")]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not a record of the expected shape.
    #[error("{path}: not an instance record: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the field).
        reason: String,
    },
    /// A field holds a value no record of ours can hold.
    #[error("{path}: field `{field}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcIdentity {
    /// Start time, clock ticks after boot (field 22).
    pub start_time: u64,
    /// Process group (field 5).
    pub pgrp: u32,
    /// Whether it is a zombie or dead (state `Z` / `X`): exited, only not yet waited for.
    pub zombie: bool,
}

/// Parses a `/proc/<pid>/stat` line. The command name in parentheses may hold spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_identity(line: &str) -> Option<ProcIdentity> {
    let close = line.rfind(')')?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): field n is rest[n - 3]
    let state = *rest.first()?;
    Some(ProcIdentity {
        zombie: state == "Z" || state == "X",
        pgrp: rest.get(2)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// Process `pid` now; None when it does not exist.
pub fn identity(pid: u32) -> Option<ProcIdentity> {
    parse_identity(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This ballast: what a record must never name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Me {
    /// Our pid.
    pub pid: u32,
    /// Our process group.
    pub pgid: u32,
    /// Our start time, clock ticks after boot.
    pub start_time: u64,
}

impl Me {
    /// The running process.
    pub fn now() -> Me {
        let pid = std::process::id();
        let id = identity(pid).unwrap_or(ProcIdentity { start_time: 0, pgrp: 0, zombie: false });
        Me { pid, pgid: id.pgrp, start_time: id.start_time }
    }
}

impl InstanceRecord {
    /// The record of child `pid` just started by this ballast; None when the child is
    /// already gone (its exit is reported anyway: nothing to record).
    pub fn of_child(pool: &str, instance: &str, pid: u32, port: u16, command: Vec<String>, grace: Duration) -> Option<Self> {
        let child = identity(pid).filter(|c| !c.zombie)?;
        let me = Me::now();
        Some(InstanceRecord {
            version: RECORD_VERSION,
            pool: pool.into(),
            instance: instance.into(),
            pid,
            pgid: child.pgrp,
            start_time: child.start_time,
            port,
            command,
            grace_ms: u64::try_from(grace.min(MAX_REAP_GRACE).as_millis()).unwrap_or(u64::MAX),
            owner_pid: me.pid,
            owner_start_time: me.start_time,
        })
    }

    /// Checks every field against the file it came from (`path`: `<pool>/<instance>.pid`).
    pub fn validate(&self, path: &Path) -> Result<(), RecordError> {
        let bad = |field, reason: String| Err(RecordError::Invalid { path: path.into(), field, reason });
        if self.version != RECORD_VERSION {
            return bad("version", format!("{} is not {RECORD_VERSION}", self.version));
        }
        if !plain_name(&self.pool) {
            return bad("pool", format!("{:?} is not a plain name (1-128 of A-Z a-z 0-9 - _ ., not starting with .)", self.pool));
        }
        if !plain_name(&self.instance) {
            return bad("instance", format!("{:?} is not a plain name (1-128 of A-Z a-z 0-9 - _ ., not starting with .)", self.instance));
        }
        let file = path.file_name().and_then(|f| f.to_str()).and_then(|f| f.strip_suffix(RECORD_SUFFIX));
        if file != Some(self.instance.as_str()) {
            return bad("instance", format!("{:?} does not match the file name", self.instance));
        }
        let dir = path.parent().and_then(Path::file_name).and_then(|d| d.to_str());
        if dir != Some(self.pool.as_str()) {
            return bad("pool", format!("{:?} does not match the directory name", self.pool));
        }
        if self.pid <= 1 || i32::try_from(self.pid).is_err() {
            return bad("pid", format!("{} is not a pid a replica can have (2..=2147483647)", self.pid));
        }
        if self.pgid != self.pid {
            return bad("pgid", format!("{} is not the pid {}: replicas lead their own process group", self.pgid, self.pid));
        }
        if self.start_time == 0 {
            return bad("start_time", "0 is not a start time".into());
        }
        if self.grace_ms > MAX_REAP_GRACE.as_millis() as u64 {
            return bad("grace_ms", format!("{} is above the limit of {}", self.grace_ms, MAX_REAP_GRACE.as_millis()));
        }
        Ok(())
    }
}

/// 1-128 bytes of `A-Z a-z 0-9 - _ .`, not starting with `.` (so never `.` or `..`).
fn plain_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Where instance `instance`'s record lives in `dir`.
pub fn record_path(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}{RECORD_SUFFIX}"))
}

/// Writes `record` to `<dir>/<instance>.pid` atomically (temporary file, then rename),
/// readable and writable by this user only.
pub fn write(dir: &Path, record: &InstanceRecord) -> Result<PathBuf, RecordError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = record_path(dir, &record.instance);
    let tmp = dir.join(format!(".{}{RECORD_SUFFIX}.tmp", record.instance));
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| RecordError::Io { path, source }
    };
    let text = serde_json::to_vec(record).map_err(|e| RecordError::Malformed { path: path.clone(), reason: e.to_string() })?;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(&text).map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// Removes the record at `path` (already gone is fine).
pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(record = %path.display(), error = %e, "cannot remove an instance record");
        }
    }
}

/// Reads and validates the record at `path`: a regular file (not a symlink, FIFO or
/// device: it is opened with `O_NOFOLLOW | O_NONBLOCK` and checked on the open file, so
/// it cannot be swapped between check and read) owned by this user, writable by nobody
/// else, at most [`MAX_RECORD_BYTES`].
pub fn read(path: &Path) -> Result<InstanceRecord, RecordError> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let untrusted = |reason: String| RecordError::Untrusted { path: path.into(), reason };
    let io = |source| RecordError::Io { path: path.into(), source };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => untrusted("not a regular file (a symlink)".into()),
            _ => io(e),
        })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(untrusted("not a regular file".into()));
    }
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).map_err(|source| RecordError::Io { path: "/proc/self".into(), source })?;
    if meta.uid() != me {
        return Err(untrusted(format!("owned by uid {}, not by this user (uid {me})", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(format!("writable by group or others (mode {:o})", meta.mode() & 0o777)));
    }
    if meta.len() > MAX_RECORD_BYTES {
        return Err(untrusted(format!("{} bytes, above the limit of {MAX_RECORD_BYTES}", meta.len())));
    }
    let mut text = Vec::new();
    file.take(MAX_RECORD_BYTES + 1).read_to_end(&mut text).map_err(io)?;
    if text.len() as u64 > MAX_RECORD_BYTES {
        return Err(untrusted(format!("more than {MAX_RECORD_BYTES} bytes")));
    }
    let malformed = |reason: String| RecordError::Malformed { path: path.into(), reason };
    let mut de = serde_json::Deserializer::from_slice(&text);
    let record: InstanceRecord = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| malformed(format!("field `{}`: {}", e.path(), e.inner())))?;
    de.end().map_err(|e| malformed(e.to_string()))?;
    record.validate(path)?;
    Ok(record)
}

/// What to do with a valid record, given the process it names and its owner now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A leftover of a previous run: stop it (its whole group when it still leads it).
    Reap {
        /// Whether it still leads its process group (else only the pid is signalled).
        group: bool,
    },
    /// Its process is gone: remove the record, signal nothing.
    Gone(String),
    /// Leave record and process alone.
    Skip(String),
}

/// Judges `record` (already validated) with the process it names (`process`) and its
/// owner (`owner`) as /proc shows them now, None when absent. Pure.
pub fn judge(record: &InstanceRecord, me: &Me, process: Option<ProcIdentity>, owner: Option<ProcIdentity>) -> Verdict {
    if record.pid == me.pid || record.pgid == me.pgid {
        return Verdict::Skip(format!("pid {} is this ballast or its process group: not touched", record.pid));
    }
    if record.owner_pid == me.pid && record.owner_start_time == me.start_time {
        return Verdict::Skip("the instance belongs to this ballast: not touched".into());
    }
    if owner.is_some_and(|o| !o.zombie && o.start_time == record.owner_start_time) {
        return Verdict::Skip(format!(
            "the ballast that started it (pid {}) is still running: the directory is shared with it; not touched",
            record.owner_pid
        ));
    }
    match process {
        None => Verdict::Gone(format!("process {} is gone", record.pid)),
        Some(p) if p.zombie => Verdict::Gone(format!("process {} has exited", record.pid)),
        Some(p) if p.start_time != record.start_time => Verdict::Gone(format!(
            "pid {} now belongs to another process (started at tick {}, the record says {}): not touched",
            record.pid, p.start_time, record.start_time
        )),
        Some(p) => Verdict::Reap { group: p.pgrp == record.pgid },
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
