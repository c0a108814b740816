//! Tests of instance records: the format, every way a record file can be hostile, the
//! pure verdict, and reaping real processes.

use super::*;
use crate::process::{ManagedProcess, ProcessSpec};
use crate::provider::reap::{reap_leftovers, Outcome, ReapGate};

/// A fresh `<tmp>/ballast-records-<name>-<pid>` with a `web` pool directory in it.
fn temp(name: &str) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("ballast-records-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let pool = root.join("web");
    std::fs::create_dir_all(&pool).expect("temp dir");
    (root, pool)
}

fn sample() -> InstanceRecord {
    InstanceRecord {
        version: RECORD_VERSION,
        pool: "web".into(),
        instance: "web-3".into(),
        pid: 4242,
        pgid: 4242,
        start_time: 777,
        port: 31_000,
        command: vec!["/bin/sleep".into(), "30".into()],
        grace_ms: 2000,
        owner_pid: 99,
        owner_start_time: 55,
    }
}

fn sh(script: &str) -> ManagedProcess {
    ManagedProcess::spawn(&ProcessSpec { program: "/bin/sh".into(), args: vec!["-c".into(), script.into()], ..Default::default() })
        .expect("spawn")
}

/// The record of `child` as a previous ballast (pid 1's start time is never ours, so
/// its owner is not running) would have left it.
fn leftover(child: &ManagedProcess, instance: &str, grace_ms: u64) -> InstanceRecord {
    let id = identity(child.pid()).expect("child running");
    InstanceRecord {
        instance: instance.into(),
        pid: child.pid(),
        pgid: child.pid(),
        start_time: id.start_time,
        grace_ms,
        owner_pid: std::process::id(),
        owner_start_time: Me::now().start_time + 1,
        ..sample()
    }
}

#[test]
fn stat_lines_give_start_time_group_and_state() {
    let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 123456 1000 10";
    assert_eq!(parse_identity(line), Some(ProcIdentity { start_time: 123_456, pgrp: 4242, zombie: false }));
    let zombie = line.replace(") S ", ") Z ");
    assert!(parse_identity(&zombie).expect("zombie").zombie);
    assert_eq!(parse_identity("4242 (sh) S 1 4242"), None, "truncated");
    assert_eq!(parse_identity("garbage"), None);
    let me = identity(std::process::id()).expect("our own stat");
    assert!(me.start_time > 0 && !me.zombie);
}

#[test]
fn a_record_round_trips_atomically_and_privately() {
    use std::os::unix::fs::PermissionsExt as _;
    let (root, pool) = temp("round");
    let path = write(&pool, &sample()).expect("write");
    assert_eq!(path, pool.join("web-3.pid"));
    assert_eq!(read(&path).expect("read"), sample());
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<_> = std::fs::read_dir(&pool).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, ["web-3.pid"], "no temporary file left behind");
    remove(&path);
    remove(&path); // already gone is fine
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn hostile_record_files_are_refused_naming_the_problem() {
    let (root, pool) = temp("hostile");
    let json = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = serde_json::to_value(sample()).expect("json");
        f(&mut v);
        v.to_string()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "\u{0}\u{1}not json at all".into(), "not an instance record"),
        ("truncated", json(&|_| {})[..40].to_string(), "not an instance record"),
        ("empty", String::new(), "not an instance record"),
        ("trailing", json(&|_| {}) + " {}", "trailing characters"),
        ("huge", format!("{:width$}", json(&|_| {}), width = MAX_RECORD_BYTES as usize + 1), "above the limit"),
        ("pid zero", json(&|v| v["pid"] = 0.into()), "field `pid`"),
        ("pid one", json(&|v| v["pid"] = 1.into()), "field `pid`"),
        ("pid negative", json(&|v| v["pid"] = (-5).into()), "field `pid`"),
        ("pid beyond i32", json(&|v| v["pid"] = 3_000_000_000u64.into()), "field `pid`"),
        ("pid as text", json(&|v| v["pid"] = "4242".into()), "field `pid`"),
        ("other group", json(&|v| v["pgid"] = 1.into()), "field `pgid`"),
        ("no start time", json(&|v| v["start_time"] = 0.into()), "field `start_time`"),
        ("missing field", json(&|v| drop(v.as_object_mut().map(|o| o.remove("start_time")))), "start_time"),
        ("unknown field", json(&|v| v["kill"] = "everything".into()), "unknown field `kill`"),
        ("newer version", json(&|v| v["version"] = 2.into()), "field `version`"),
        ("endless grace", json(&|v| v["grace_ms"] = 86_400_000.into()), "field `grace_ms`"),
        ("traversal", json(&|v| v["instance"] = "../../etc/passwd".into()), "field `instance`"),
        ("dot name", json(&|v| v["instance"] = "..".into()), "field `instance`"),
        ("other file", json(&|v| v["instance"] = "web-4".into()), "does not match the file name"),
        ("other pool", json(&|v| v["pool"] = "api".into()), "does not match the directory name"),
        ("pool traversal", json(&|v| v["pool"] = "../web".into()), "field `pool`"),
    ];
    for (what, text, expect) in cases {
        let path = pool.join("web-3.pid");
        std::fs::write(&path, &text).expect("write");
        let err = read(&path).expect_err(what).to_string();
        assert!(err.contains(expect), "{what}: {err}");
        assert!(err.starts_with(&path.display().to_string()), "{what}: names the file: {err}");
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn records_that_are_not_plain_private_files_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let (root, pool) = temp("files");
    let real = write(&pool, &sample()).expect("write");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    assert!(read(&real).expect_err("world-writable").to_string().contains("writable by group or others"));
    let other = root.join("elsewhere");
    std::fs::create_dir_all(&other).expect("dir");
    let target = write(&other, &InstanceRecord { pool: "elsewhere".into(), ..sample() }).expect("write");
    std::fs::remove_file(&real).expect("rm");
    std::os::unix::fs::symlink(&target, &real).expect("symlink");
    assert!(read(&real).expect_err("symlink").to_string().contains("not a regular file"));
    std::fs::remove_file(&real).expect("rm");
    let made = std::process::Command::new("mkfifo").args(["-m", "600"]).arg(&real).status().expect("mkfifo");
    assert!(made.success());
    assert!(read(&real).expect_err("a FIFO is not opened for a blocking read").to_string().contains("not a regular file"));
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn the_verdict_kills_only_a_provable_leftover() {
    let me = Me { pid: 100, pgid: 100, start_time: 5000 };
    let rec = sample(); // pid 4242 started at 777, by ballast 99 started at 55
    let alive = |start_time, pgrp| Some(ProcIdentity { start_time, pgrp, zombie: false });
    let zombie = Some(ProcIdentity { start_time: 777, pgrp: 4242, zombie: true });
    type Case = (&'static str, InstanceRecord, Option<ProcIdentity>, Option<ProcIdentity>, &'static str);
    let cases: Vec<Case> = vec![
        ("a leftover leading its group", rec.clone(), alive(777, 4242), None, "reap group"),
        ("a leftover that left its group", rec.clone(), alive(777, 1), None, "reap pid"),
        ("owner pid recycled by another process", rec.clone(), alive(777, 4242), alive(56, 1), "reap group"),
        ("owner a zombie", rec.clone(), alive(777, 4242), Some(ProcIdentity { start_time: 55, pgrp: 1, zombie: true }), "reap group"),
        ("process gone", rec.clone(), None, None, "gone"),
        ("process a zombie", rec.clone(), zombie, None, "gone"),
        ("pid recycled", rec.clone(), alive(778, 4242), None, "gone"),
        ("owner still running", rec.clone(), alive(777, 4242), alive(55, 1), "skip"),
        ("ours, this run", InstanceRecord { owner_pid: 100, owner_start_time: 5000, ..rec.clone() }, alive(777, 4242), None, "skip"),
        ("ballast itself", InstanceRecord { pid: 100, pgid: 100, ..rec.clone() }, alive(777, 100), None, "skip"),
        ("ballast's group", InstanceRecord { pid: 4242, pgid: 100, ..rec.clone() }, alive(777, 100), None, "skip"),
    ];
    for (what, record, process, owner, want) in cases {
        let got = match judge(&record, &me, process, owner) {
            Verdict::Reap { group: true } => "reap group",
            Verdict::Reap { group: false } => "reap pid",
            Verdict::Gone(_) => "gone",
            Verdict::Skip(_) => "skip",
        };
        assert_eq!(got, want, "{what}");
    }
}

#[tokio::test]
async fn a_leftover_is_stopped_and_its_record_removed() {
    let (root, pool) = temp("reap");
    let mut child = sh("exec sleep 30");
    let mut parent = sh("sleep 30 & echo \"listening on $!\"; wait");
    let gc: u32 = parent.read_announcement("listening on ").await.expect("grandchild").parse().expect("pid");
    write(&pool, &leftover(&child, "web-1", 5000)).expect("record");
    write(&pool, &leftover(&parent, "web-2", 5000)).expect("record");
    let outcomes = reap_leftovers(&root).await;
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    for o in &outcomes {
        assert!(matches!(o, Outcome::Reaped { how, .. } if how == "stopped by SIGTERM"), "{o:?}");
    }
    assert!(child.wait().await.is_ok_and(|s| !s.success()), "the leftover was signalled");
    assert!(parent.wait().await.is_ok_and(|s| !s.success()));
    assert!(identity(gc).is_none_or(|p| p.zombie), "its whole process group is stopped");
    assert!(!pool.join("web-1.pid").exists() && !pool.join("web-2.pid").exists(), "records removed");
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_leftover_ignoring_sigterm_gets_sigkill_after_its_grace() {
    use std::os::unix::process::ExitStatusExt as _;
    let (root, pool) = temp("stubborn");
    let mut child = sh("trap '' TERM; echo 'listening on x'; while true; do sleep 0.05; done");
    child.read_announcement("listening on ").await.expect("trap set");
    write(&pool, &leftover(&child, "web-1", 200)).expect("record");
    let outcomes = reap_leftovers(&root).await;
    assert!(matches!(&outcomes[..], [Outcome::Reaped { how, .. }] if how.starts_with("killed with SIGKILL")), "{outcomes:?}");
    assert_eq!(child.wait().await.expect("wait").signal(), Some(9));
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn records_naming_other_processes_never_signal_them() {
    let (root, pool) = temp("innocent");
    let mut innocent = sh("exec sleep 30");
    let mut owner = sh("exec sleep 30");
    let owner_start = identity(owner.pid()).expect("owner").start_time;
    let me = identity(std::process::id()).expect("me");
    // a recycled pid: alive, but started at another time than recorded
    let recycled = InstanceRecord { start_time: leftover(&innocent, "web-1", 100).start_time + 1, ..leftover(&innocent, "web-1", 100) };
    write(&pool, &recycled).expect("record");
    // the live instance of another ballast still running in the same directory
    let shared = InstanceRecord { owner_pid: owner.pid(), owner_start_time: owner_start, ..leftover(&innocent, "web-2", 100) };
    write(&pool, &shared).expect("record");
    // this very process (whose stat is real, so only the self check protects it)
    let itself = InstanceRecord { pid: std::process::id(), pgid: std::process::id(), start_time: me.start_time, ..leftover(&innocent, "web-3", 100) };
    write(&pool, &itself).expect("record");
    // garbage next to them
    std::fs::write(pool.join("web-4.pid"), b"{\"pid\": 1}").expect("garbage");
    let outcomes = reap_leftovers(&root).await;
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(matches!(&outcomes[0], Outcome::Gone { reason, .. } if reason.contains("now belongs to another process")), "{outcomes:?}");
    assert!(matches!(&outcomes[1], Outcome::Skipped { reason, .. } if reason.contains("still running")), "{outcomes:?}");
    assert!(matches!(&outcomes[2], Outcome::Skipped { reason, .. } if reason.contains("this ballast")), "{outcomes:?}");
    assert!(matches!(&outcomes[3], Outcome::Skipped { reason, .. } if reason.contains("not an instance record")), "{outcomes:?}");
    assert!(innocent.try_exit_status().is_none() && owner.try_exit_status().is_none(), "nothing was signalled");
    assert!(!pool.join("web-1.pid").exists(), "the stale record is removed");
    assert!(pool.join("web-2.pid").exists() && pool.join("web-4.pid").exists(), "skipped records are kept");
    innocent.stop(Duration::from_secs(5)).await.expect("stop");
    owner.stop(Duration::from_secs(5)).await.expect("stop");
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_record_of_an_exited_process_is_removed() {
    let (root, pool) = temp("gone");
    let child = sh("exec sleep 30");
    let record = leftover(&child, "web-1", 100);
    child.stop(Duration::from_secs(5)).await.expect("stopped and waited for");
    write(&pool, &record).expect("record");
    let outcomes = reap_leftovers(&root).await;
    assert!(matches!(&outcomes[..], [Outcome::Gone { .. }]), "{outcomes:?}");
    assert!(!pool.join("web-1.pid").exists());
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn the_gate_opens_when_reaping_ends() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let gate = ReapGate::after(async move {
        let _ = rx.await;
    });
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move { gate.wait().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "closed while reaping");
    tx.send(()).expect("send");
    waiting.await.expect("opened");
    ReapGate::open().wait().await;
}
