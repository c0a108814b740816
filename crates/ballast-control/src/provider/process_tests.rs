//! Tests of the process provider with real child processes.

use super::*;
use ballast_core::config::{ConfigDuration, PortRange};
use std::path::PathBuf;
use tokio::time::Instant;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ballast-pp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn sh(script: &str, dir: &std::path::Path) -> ProcessConfig {
    ProcessConfig {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), script.into(), "sh".into(), "{port}".into()],
        env: [("INSTANCE".to_string(), "id={instance}".to_string())].into(),
        working_dir: Some(dir.display().to_string()),
        grace_period: ConfigDuration(Duration::from_secs(5)),
        port_range: PortRange { start: 31_000, end: 31_999 },
    }
}

/// Polls `f` every 20 ms until it returns Some, failing after `secs`.
async fn until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_real_http_replica_is_created_logged_and_destroyed() {
    let dir = temp("http");
    let cfg = ProcessConfig {
        command: "python3".into(),
        args: vec!["-m".into(), "http.server".into(), "{port}".into(), "--bind".into(), "127.0.0.1".into()],
        ..sh("", &dir)
    };
    let p = ProcessProvider::new("web", cfg, LogPolicy::in_dir(dir.join("logs")));
    let a = p.create().await.expect("create");
    let b = p.create().await.expect("second");
    assert_eq!(a.id, "web-1");
    assert_ne!(a.address, b.address, "each instance gets its own port");
    let reply = until(20, "the replica to answer", || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&a.address).ok()?;
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        Some(s)
    })
    .await;
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    let log = dir.join("logs/web-1.err.log");
    until(10, "the request in the log", || std::fs::read_to_string(&log).ok().filter(|l| l.contains("GET /"))).await;
    assert_eq!(p.list().await.expect("list").len(), 2);
    p.destroy(&a.id).await.expect("destroy");
    assert!(std::net::TcpStream::connect(&a.address).is_err(), "stopped before destroy returned");
    assert_eq!(p.list().await.expect("list"), vec![b.clone()]);
    assert!(p.take_exits().is_empty(), "a destroy is not a crash");
    assert_eq!(p.destroy(&a.id).await, Err(ProviderError::UnknownInstance(a.id.clone())));
    drop(p);
    until(10, "drop to kill the second replica", || std::net::TcpStream::connect(&b.address).is_err().then_some(())).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn templates_fill_port_and_instance_in_args_and_env() {
    let dir = temp("tmpl");
    let p = ProcessProvider::new("api", sh("echo \"$INSTANCE port=$1\" > \"$PWD/out.txt\"; exec sleep 30", &dir), LogPolicy::in_dir(&dir));
    let i = p.create().await.expect("create");
    let port = i.address.rsplit_once(':').map(|(_, p)| p.to_string()).expect("port");
    let text = until(10, "out.txt", || std::fs::read_to_string(dir.join("out.txt")).ok().filter(|t| t.ends_with('\n'))).await;
    assert_eq!(text, format!("id=api-1 port={port}\n"));
    p.destroy(&i.id).await.expect("destroy");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn exits_and_sigkills_are_reported_as_crashes() {
    let dir = temp("crash");
    let p = ProcessProvider::new("w", sh("echo $$ > \"$PWD/$1.pid\"; exec sleep 30", &dir), LogPolicy::in_dir(&dir));
    let i = p.create().await.expect("create");
    let port = i.address.rsplit_once(':').map(|(_, p)| p.to_string()).expect("port");
    let pid: i32 = until(10, "the pid file", || {
        std::fs::read_to_string(dir.join(format!("{port}.pid"))).ok()?.trim().parse().ok()
    })
    .await;
    assert_eq!(p.process_group(&i.id), u32::try_from(pid).ok(), "the shell execs sleep: same pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let exits = until(10, "the exit to be seen", || Some(p.take_exits()).filter(|e| !e.is_empty())).await;
    assert_eq!(exits[0].id, i.id);
    assert!(exits[0].status.contains("signal: 9"), "{}", exits[0].status);
    assert!(p.list().await.expect("list").is_empty());

    let quitter = ProcessProvider::new("q", sh("exit 3", &dir), LogPolicy::in_dir(&dir));
    quitter.create().await.expect("create");
    let exits = until(10, "exit 3", || Some(quitter.take_exits()).filter(|e| !e.is_empty())).await;
    assert_eq!(exits[0].status, "exit status: 3");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn spawn_failures_and_full_port_ranges_are_errors() {
    let dir = temp("fail");
    let missing = ProcessConfig { command: "/nonexistent/{instance}".into(), ..sh("", &dir) };
    let err = ProcessProvider::new("m", missing, LogPolicy::in_dir(&dir)).create().await.expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/m-1"), "{err}");
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let full = ProcessConfig { port_range: PortRange { start: port, end: port }, ..sh("sleep 30", &dir) };
    let err = ProcessProvider::new("f", full, LogPolicy::in_dir(&dir)).create().await.expect_err("taken");
    assert_eq!(err, ProviderError::NoFreePort { start: port, end: port });
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn live_instances_have_records_removed_when_they_end() {
    let root = temp("records");
    let dir = root.join("rec"); // as a fleet lays it out: <log dir>/<pool>/
    let p = ProcessProvider::new("rec", sh("exec sleep 30", &root), LogPolicy::in_dir(&dir));
    let (a, b) = (p.create().await.expect("create"), p.create().await.expect("second"));
    let record = records::read(&dir.join("rec-1.pid")).expect("a valid record");
    assert_eq!((record.pool.as_str(), record.instance.as_str()), ("rec", "rec-1"));
    assert_eq!(Some(record.pid), p.process_group(&a.id));
    assert_eq!(record.pgid, record.pid, "each replica leads its group");
    assert_eq!(record.owner_pid, std::process::id());
    assert_eq!(a.address, format!("127.0.0.1:{}", record.port));
    assert_eq!(record.command[0], "/bin/sh");
    assert_eq!(record.grace_ms, 5000);
    p.destroy(&a.id).await.expect("destroy");
    assert!(!dir.join("rec-1.pid").exists(), "removed once stopped");
    let pid = p.process_group(&b.id).expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")), nix::sys::signal::Signal::SIGKILL).expect("kill");
    until(10, "the crashed instance's record to go", || (!dir.join("rec-2.pid").exists()).then_some(())).await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn an_id_whose_record_is_left_is_not_reused() {
    let dir = temp("skip");
    std::fs::write(dir.join("k-1.pid"), "a leftover that could not be stopped").expect("write");
    let p = ProcessProvider::new("k", sh("exec sleep 30", &dir), LogPolicy::in_dir(&dir));
    let i = p.create().await.expect("create");
    assert_eq!(i.id, "k-2");
    assert_eq!(std::fs::read_to_string(dir.join("k-1.pid")).expect("kept"), "a leftover that could not be stopped");
    p.destroy(&i.id).await.expect("destroy");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn no_instance_starts_before_reaping_is_done() {
    let dir = temp("gate");
    let (open, opened) = oneshot::channel::<()>();
    let gate = ReapGate::after(async move {
        let _ = opened.await;
    });
    let p = ProcessProvider::new("g", sh("exec sleep 30", &dir), LogPolicy::in_dir(&dir)).after_reaping(gate);
    assert!(tokio::time::timeout(Duration::from_millis(200), p.create()).await.is_err(), "waits while reaping");
    assert!(p.list().await.expect("list").is_empty() && !dir.join("g-1.pid").exists(), "nothing started");
    open.send(()).expect("open");
    let i = p.create().await.expect("create once reaped");
    p.destroy(&i.id).await.expect("destroy");
    let _ = std::fs::remove_dir_all(&dir);
}
