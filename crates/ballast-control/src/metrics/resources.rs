//! CPU and memory of a pool's ready instances, from their process groups: the figures
//! `cpu` and `memory` policies scale on.
//!
//! For each group: when its leader sits in a cgroup v2 of its own (not ballast's), the
//! cgroup's `cpu.stat` and `memory.current` / `memory.max` are used (they count every
//! process the replica started, even outside its group); otherwise the group's /proc
//! figures. CPU is percent of one core; memory is percent of the cgroup's limit, or of
//! the machine's `MemTotal` without one.

use super::procfs::{cgroup_of, mem_total, read_cgroup, read_group, CpuRate, ProcError, USER_HZ};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Turns process groups into mean CPU and memory percentages.
#[derive(Debug)]
pub struct ResourceSampler {
    proc_root: PathBuf,
    cgroup_root: PathBuf,
    own_cgroup: Option<String>,
    rates: HashMap<u32, CpuRate>,
}

/// Mean figures over the groups that could be read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    /// Mean CPU, percent of one core; None until two readings exist.
    pub cpu_percent: Option<f64>,
    /// Mean memory, percent of the limit.
    pub memory_percent: f64,
}

impl ResourceSampler {
    /// Reads the real `/proc` and `/sys/fs/cgroup`.
    pub fn new() -> Self {
        Self::with_roots("/proc".into(), "/sys/fs/cgroup".into())
    }

    /// Reads fake roots (tests).
    pub fn with_roots(proc_root: PathBuf, cgroup_root: PathBuf) -> Self {
        let own_cgroup = cgroup_of(&proc_root, std::process::id()).ok().flatten();
        ResourceSampler { proc_root, cgroup_root, own_cgroup, rates: HashMap::new() }
    }

    /// One group's cumulative CPU seconds and memory percent.
    fn read_one(&self, pgid: u32, total: u64) -> Result<(f64, f64), ProcError> {
        let cg = cgroup_of(&self.proc_root, pgid).ok().flatten().filter(|c| Some(c) != self.own_cgroup.as_ref() && c != "/");
        if let Some(cg) = cg {
            if let Ok(u) = read_cgroup(&self.cgroup_root, &cg) {
                let limit = u.memory_max.unwrap_or(total).max(1);
                return Ok((u.cpu_usec as f64 / 1e6, u.memory_bytes as f64 * 100.0 / limit as f64));
            }
        }
        let u = read_group(&self.proc_root, pgid)?;
        Ok((u.cpu_ticks as f64 / USER_HZ as f64, u.rss_bytes as f64 * 100.0 / total.max(1) as f64))
    }

    /// Samples `pgids` at `now` (monotonic). Groups that vanished are skipped and
    /// forgotten; None when none could be read.
    pub fn sample(&mut self, pgids: &[u32], now: Duration) -> Option<Resources> {
        self.rates.retain(|g, _| pgids.contains(g));
        let total = mem_total(&self.proc_root).unwrap_or(0);
        let (mut cpu_sum, mut cpu_n, mut mem_sum, mut n) = (0.0, 0u32, 0.0, 0u32);
        for &g in pgids {
            let Ok((cpu_s, mem_pct)) = self.read_one(g, total) else { continue };
            n += 1;
            mem_sum += mem_pct;
            if let Some(p) = self.rates.entry(g).or_default().update(cpu_s, now) {
                cpu_sum += p;
                cpu_n += 1;
            }
        }
        (n > 0).then(|| Resources {
            cpu_percent: (cpu_n > 0).then(|| cpu_sum / f64::from(cpu_n)),
            memory_percent: mem_sum / f64::from(n),
        })
    }
}

impl Default for ResourceSampler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: PathBuf, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn cgroup_figures_win_when_the_group_has_its_own_cgroup() {
        let root = std::env::temp_dir().join(format!("ballast-res-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (proc_root, cg_root) = (root.join("proc"), root.join("cg"));
        write(proc_root.join("meminfo"), "MemTotal: 1000 kB\n");
        // group 10 in its own cgroup with a 4 MiB limit; group 20 in /proc only
        write(proc_root.join("10/cgroup"), "0::/ballast/web-1\n");
        write(cg_root.join("ballast/web-1/cpu.stat"), "usage_usec 2000000\n");
        write(cg_root.join("ballast/web-1/memory.current"), "1048576\n");
        write(cg_root.join("ballast/web-1/memory.max"), "4194304\n");
        write(proc_root.join("20/cgroup"), "0::/\n");
        write(proc_root.join("20/stat"), "20 (py) S 1 20 20 0 -1 0 0 0 0 0 100 0 0 0 20 0 1 0 1 1 1");
        write(proc_root.join("20/status"), "VmRSS: 500 kB\n");
        let mut s = ResourceSampler::with_roots(proc_root.clone(), cg_root.clone());
        let first = s.sample(&[10, 20, 99], Duration::from_secs(10)).expect("two groups");
        assert_eq!(first, Resources { cpu_percent: None, memory_percent: (25.0 + 50.0) / 2.0 });
        write(cg_root.join("ballast/web-1/cpu.stat"), "usage_usec 2500000\n");
        write(proc_root.join("20/stat"), "20 (py) S 1 20 20 0 -1 0 0 0 0 0 200 0 0 0 20 0 1 0 1 1 1");
        let next = s.sample(&[10, 20], Duration::from_secs(11)).expect("two groups");
        // 0.5 s over 1 s = 50%; 100 ticks = 1 s over 1 s = 100%
        assert_eq!(next.cpu_percent, Some(75.0));
        assert!(s.sample(&[99], Duration::from_secs(12)).is_none());
        let _ = std::fs::remove_dir_all(&root);
    }
}
