//! CPU and memory of a process tree from /proc, and of its cgroup (v2) when it has one
//! of its own.
//!
//! A tree is a process group: the process provider starts every replica in its own group,
//! so the group holds the replica and everything it forked. CPU is `utime + stime` in
//! clock ticks (Linux's user-space tick rate, `USER_HZ`, is 100 on every architecture);
//! memory is the sum of `VmRSS`. Readers take a root directory so tests can feed them a
//! fake /proc; parsers refuse malformed text with an error naming the file and field.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Linux's user-visible clock tick rate (`USER_HZ`), fixed at 100 by the kernel ABI.
pub const USER_HZ: u64 = 100;

/// Errors reading /proc or a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file did not have the expected shape.
    #[error("{path}: malformed {field}")]
    Malformed {
        /// The file.
        path: String,
        /// The field that could not be parsed.
        field: &'static str,
    },
    /// No process belongs to the group.
    #[error("no process in group {0}")]
    NoSuchGroup(u32),
}

/// The fields of `/proc/<pid>/stat` the collector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group id.
    pub pgrp: u32,
    /// User-mode CPU time, clock ticks.
    pub utime: u64,
    /// Kernel-mode CPU time, clock ticks.
    pub stime: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name sits in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(path: &str, line: &str) -> Result<Stat, ProcError> {
    let bad = |field| ProcError::Malformed { path: path.to_string(), field };
    let open = line.find('(').ok_or_else(|| bad("comm"))?;
    let close = line.rfind(')').ok_or_else(|| bad("comm"))?;
    if close < open {
        return Err(bad("comm"));
    }
    let pid = line[..open].trim().parse().map_err(|_| bad("pid"))?;
    // after ")": state(3) ppid(4) pgrp(5) ... utime(14) stime(15)
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |i: usize, name| rest.get(i - 3).ok_or_else(|| bad(name))?.parse::<u64>().map_err(|_| bad(name));
    let small = |v: u64, name| u32::try_from(v).map_err(|_| bad(name));
    Ok(Stat {
        pid,
        ppid: small(field(4, "ppid")?, "ppid")?,
        pgrp: small(field(5, "pgrp")?, "pgrp")?,
        utime: field(14, "utime")?,
        stime: field(15, "stime")?,
    })
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes; `None` for kernel threads and
/// zombies, which have none.
pub fn parse_status_rss(path: &str, text: &str) -> Result<Option<u64>, ProcError> {
    let Some(line) = text.lines().find(|l| l.starts_with("VmRSS:")) else { return Ok(None) };
    let kb = line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| ProcError::Malformed { path: path.to_string(), field: "VmRSS" })?;
    Ok(Some(kb.saturating_mul(1024)))
}

/// Resource use of a process group at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeUsage {
    /// Processes in the group.
    pub processes: u32,
    /// Their CPU time so far, clock ticks ([`USER_HZ`] a second).
    pub cpu_ticks: u64,
    /// Their resident memory, bytes.
    pub rss_bytes: u64,
}

fn read(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read { path: path.to_path_buf(), source })
}

/// Sums CPU time and RSS over every process of group `pgid` under `proc_root` (`/proc`).
/// Processes that exit while being read are skipped.
pub fn read_group(proc_root: &Path, pgid: u32) -> Result<TreeUsage, ProcError> {
    let entries = std::fs::read_dir(proc_root).map_err(|source| ProcError::Read { path: proc_root.into(), source })?;
    let mut usage = TreeUsage::default();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let dir = entry.path();
        let stat_path = dir.join("stat");
        let Ok(line) = std::fs::read_to_string(&stat_path) else { continue };
        let stat = parse_stat(&stat_path.display().to_string(), &line)?;
        if stat.pgrp != pgid {
            continue;
        }
        let status_path = dir.join("status");
        let rss = match std::fs::read_to_string(&status_path) {
            Ok(text) => parse_status_rss(&format!("/proc/{pid}/status"), &text)?.unwrap_or(0),
            Err(_) => 0,
        };
        usage.processes += 1;
        usage.cpu_ticks += stat.utime + stat.stime;
        usage.rss_bytes += rss;
    }
    if usage.processes == 0 {
        return Err(ProcError::NoSuchGroup(pgid));
    }
    Ok(usage)
}

/// `MemTotal` of `/proc/meminfo`, bytes.
pub fn mem_total(proc_root: &Path) -> Result<u64, ProcError> {
    let path = proc_root.join("meminfo");
    let text = read(&path)?;
    let bad = || ProcError::Malformed { path: path.display().to_string(), field: "MemTotal" };
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).ok_or_else(bad)?;
    let kb = line["MemTotal:".len()..].trim().trim_end_matches("kB").trim().parse::<u64>().map_err(|_| bad())?;
    Ok(kb.saturating_mul(1024))
}

/// Figures of a cgroup v2 directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupUsage {
    /// `usage_usec` of `cpu.stat`: CPU time used, microseconds.
    pub cpu_usec: u64,
    /// `memory.current`, bytes.
    pub memory_bytes: u64,
    /// `memory.max`, bytes; `None` when `max` (no limit).
    pub memory_max: Option<u64>,
}

/// The cgroup v2 path of `pid` (the `0::` line of `/proc/<pid>/cgroup`), if any.
pub fn cgroup_of(proc_root: &Path, pid: u32) -> Result<Option<String>, ProcError> {
    let text = read(&proc_root.join(pid.to_string()).join("cgroup"))?;
    Ok(text.lines().find_map(|l| l.strip_prefix("0::")).map(|p| p.trim().to_string()))
}

/// Reads a cgroup v2 directory under `cgroup_root` (`/sys/fs/cgroup`).
pub fn read_cgroup(cgroup_root: &Path, cgroup: &str) -> Result<CgroupUsage, ProcError> {
    let dir = cgroup_root.join(cgroup.trim_start_matches('/'));
    let malformed = |p: &Path, field| ProcError::Malformed { path: p.display().to_string(), field };
    let cpu_path = dir.join("cpu.stat");
    let cpu = read(&cpu_path)?;
    let cpu_usec = cpu
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| malformed(&cpu_path, "usage_usec"))?;
    let cur_path = dir.join("memory.current");
    let memory_bytes = read(&cur_path)?.trim().parse().map_err(|_| malformed(&cur_path, "memory.current"))?;
    let max_path = dir.join("memory.max");
    let memory_max = match read(&max_path)?.trim() {
        "max" => None,
        v => Some(v.parse().map_err(|_| malformed(&max_path, "memory.max"))?),
    };
    Ok(CgroupUsage { cpu_usec, memory_bytes, memory_max })
}

/// Turns cumulative CPU readings into a percentage of one core over the time between
/// two readings.
#[derive(Debug, Default, Clone)]
pub struct CpuRate {
    last: Option<(f64, Duration)>,
}

impl CpuRate {
    /// Feeds cumulative CPU seconds read at `now` (any monotonic origin); returns percent
    /// of one core since the previous reading (None on the first, or when time did not
    /// advance; a counter that went backwards restarts the rate).
    pub fn update(&mut self, cpu_seconds: f64, now: Duration) -> Option<f64> {
        let prev = self.last.replace((cpu_seconds, now));
        let (c0, t0) = prev?;
        let dt = now.checked_sub(t0)?.as_secs_f64();
        (dt > 0.0 && cpu_seconds >= c0).then(|| (cpu_seconds - c0) / dt * 100.0)
    }
}

#[cfg(test)]
#[path = "procfs_tests.rs"]
mod tests;
