//! Tests of the /proc and cgroup readers: parsers on hostile text, a fake /proc, and a
//! real busy process group.

use super::*;

const STAT: &str = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    let s = parse_stat("stat", STAT).expect("valid");
    assert_eq!(s, Stat { pid: 4242, ppid: 1, pgrp: 4242, utime: 250, stime: 50 });
}

#[test]
fn malformed_stat_names_the_field() {
    for (line, field) in [
        ("", "comm"),
        ("12 (x", "comm"),
        (") 12 (x", "comm"),
        ("ab (x) S 1 2", "pid"),
        ("1 (x) S", "ppid"),
        ("1 (x) S 1 2 3", "utime"),
        ("1 (x) S -1 2 3 4 5 6 7 8 9 10 11 12", "ppid"),
        ("1 (x) S 1 99999999999 3 4 5 6 7 8 9 10 11 12", "pgrp"),
    ] {
        let err = parse_stat("/proc/1/stat", line).expect_err(line);
        assert!(err.to_string().contains(field), "{line:?}: {err}");
    }
}

#[test]
fn rss_parses_kilobytes_and_refuses_garbage() {
    assert_eq!(parse_status_rss("s", "Name: x\nVmRSS:\t  1024 kB\n").expect("ok"), Some(1024 * 1024));
    assert_eq!(parse_status_rss("s", "Name: kthread\n").expect("ok"), None);
    let err = parse_status_rss("/proc/9/status", "VmRSS: lots\n").expect_err("garbage");
    assert_eq!(err.to_string(), "/proc/9/status: malformed VmRSS");
}

fn fake_root(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("ballast-procfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("temp dir");
    root
}

#[test]
fn a_fake_proc_group_is_summed() {
    let root = fake_root("group");
    for (pid, pgrp, ut, rss) in [(10, 10, 100, 2048), (11, 10, 50, 1024), (12, 99, 999, 1)] {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).expect("dir");
        let line = format!("{pid} (sh) S 1 {pgrp} {pgrp} 0 -1 0 0 0 0 0 {ut} 5 0 0 20 0 1 0 1 1 1");
        std::fs::write(dir.join("stat"), line).expect("stat");
        std::fs::write(dir.join("status"), format!("VmRSS:\t{rss} kB\n")).expect("status");
    }
    std::fs::create_dir_all(root.join("self")).expect("non-numeric entries are skipped");
    std::fs::write(root.join("meminfo"), "MemTotal:  8000 kB\nMemFree: 1 kB\n").expect("meminfo");
    let u = read_group(&root, 10).expect("group 10");
    assert_eq!(u, TreeUsage { processes: 2, cpu_ticks: 160, rss_bytes: 3072 * 1024 });
    assert!(matches!(read_group(&root, 7), Err(ProcError::NoSuchGroup(7))));
    assert_eq!(mem_total(&root).expect("meminfo"), 8000 * 1024);
    std::fs::write(root.join("meminfo"), "MemFree: 1 kB\n").expect("meminfo");
    assert!(mem_total(&root).expect_err("no total").to_string().contains("MemTotal"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_fake_cgroup_is_read_and_malformed_files_are_named() {
    let root = fake_root("cgroup");
    let dir = root.join("ballast/web-1");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("cpu.stat"), "usage_usec 1500000\nuser_usec 1\n").expect("cpu");
    std::fs::write(dir.join("memory.current"), "4096\n").expect("mem");
    std::fs::write(dir.join("memory.max"), "max\n").expect("max");
    let u = read_cgroup(&root, "/ballast/web-1").expect("cgroup");
    assert_eq!(u, CgroupUsage { cpu_usec: 1_500_000, memory_bytes: 4096, memory_max: None });
    std::fs::write(dir.join("memory.max"), "lots\n").expect("max");
    let err = read_cgroup(&root, "/ballast/web-1").expect_err("bad max");
    assert!(err.to_string().ends_with("malformed memory.max"), "{err}");
    std::fs::write(dir.join("cpu.stat"), "user_usec 1\n").expect("cpu");
    let err = read_cgroup(&root, "/ballast/web-1").expect_err("no usage");
    assert!(err.to_string().contains("usage_usec"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn cpu_rate_needs_two_readings_and_forward_time() {
    let mut r = CpuRate::default();
    assert_eq!(r.update(1.0, Duration::from_secs(10)), None);
    assert_eq!(r.update(1.5, Duration::from_secs(11)), Some(50.0));
    assert_eq!(r.update(1.6, Duration::from_secs(11)), None, "no time passed");
    assert_eq!(r.update(0.1, Duration::from_secs(12)), None, "counter went back");
}

/// A real busy-looping process group shows CPU use and memory on the real /proc.
#[tokio::test]
async fn a_real_busy_group_uses_cpu() {
    use crate::process::{ManagedProcess, ProcessSpec};
    let spec = ProcessSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "echo 'listening on x'; while :; do :; done".into()],
        ..Default::default()
    };
    let mut p = ManagedProcess::spawn(&spec).expect("spawn");
    p.read_announcement("listening on ").await.expect("started");
    let proc_root = Path::new("/proc");
    let mut rate = CpuRate::default();
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(20);
    let mut seen = None;
    while tokio::time::Instant::now() < deadline {
        let u = read_group(proc_root, p.pid()).expect("group exists");
        assert!(u.rss_bytes > 0 && u.processes >= 1, "{u:?}");
        let secs = u.cpu_ticks as f64 / USER_HZ as f64;
        if let Some(pct) = rate.update(secs, start.elapsed()) {
            if pct > 20.0 {
                seen = Some(pct);
                break;
            }
        }
        // the measurement interval, not synchronisation: CPU % is a rate over time
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.stop(Duration::from_secs(2)).await.expect("stop");
    assert!(seen.is_some(), "a busy loop never showed > 20% CPU");
}
