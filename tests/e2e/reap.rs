//! No orphaned replicas (issue #5, hardening): a `ballast serve` killed with SIGKILL
//! leaves its replicas running (nothing of it runs any more); the next `ballast serve`
//! with the same log directory stops them from their instance records before starting
//! its own. Real processes, bounded waits; every process the test started is killed
//! even when it fails.

use ballast_tests::{get, pids_in, process_gone, sigkill, temp_file, wait_gone, Stream, Watched};
use crate::autoscale::serve_config;
use std::time::{Duration, Instant};

/// One autoscaled pool `app` of two demo backends.
fn config() -> String {
    serve_config(2, (31_700, 31_799), r#""demo-backend", "--port", "{port}", "--name", "{instance}""#)
}

/// Process groups killed (SIGKILL) on drop when still running: the replicas a failing
/// test would otherwise leave behind, orphaned like the bug this test is about.
struct Groups(Vec<i32>);

impl Drop for Groups {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !process_gone(pid) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// The pids in `kind` control events (`(pid N)` in their outcome or reason).
fn event_pids(serve: &Watched, kind: &str, also: &str) -> Vec<i32> {
    let lines = serve.lines(Stream::Err);
    let needle = format!("kind={kind} ");
    pids_in(lines.iter().map(|(_, l)| l.as_str()).filter(|l| l.contains("control event") && l.contains(&needle) && l.contains(also)))
}

fn sorted(mut v: Vec<i32>) -> Vec<i32> {
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_serve_stops_the_replicas_a_sigkilled_one_left() {
    let (dir, path) = temp_file("ballast.toml", &config());
    let logs = dir.0.join("logs");
    let args = ["serve", "--config", path.to_str().expect("utf-8"), "--log-dir", logs.to_str().expect("utf-8"), "--threads", "1"];
    let ready = |l: &str| l.contains("control event") && l.contains("kind=Ready");

    let mut first = Watched::start(&args);
    first.listening().await;
    first.wait_for(Stream::Err, 2, 60, "two ready replicas", ready).await;
    let old = sorted(event_pids(&first, "Created", ""));
    let mut started = Groups(old.clone());
    assert_eq!(old.len(), 2, "two replicas started: {old:?}");
    assert!(logs.join("app").join("app-1.pid").exists() && logs.join("app").join("app-2.pid").exists(), "one record per replica");

    sigkill(&first.process);
    tokio::time::timeout(Duration::from_secs(10), first.process.wait()).await.expect("ballast dies of SIGKILL").expect("wait");
    for &pid in &old {
        assert!(!process_gone(pid), "replica {pid} outlives a SIGKILLed ballast (nothing of ballast runs to stop it)");
    }

    let mut second = Watched::start(&args);
    let addr = second.listening().await;
    let began = Instant::now();
    second.wait_for(Stream::Err, 2, 60, "two leftovers reaped", |l| l.contains("kind=Stopped") && l.contains("reaped leftover instance")).await;
    wait_gone(&old, 10).await;
    let reaped_at = began.elapsed();
    assert_eq!(sorted(event_pids(&second, "Stopped", "reaped leftover")), old, "exactly the previous run's replicas were reaped");
    second.wait_for(Stream::Err, 2, 60, "two new ready replicas", ready).await;
    let new = sorted(event_pids(&second, "Created", ""));
    started.0.extend(&new);
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|p| !old.contains(p)), "new replicas, not the old ones: {new:?} vs {old:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(&format!("http://{addr}/")).await {
            Ok(r) if r.status == 200 && r.backend().is_some_and(|b| b.starts_with("app-")) => break,
            other => assert!(Instant::now() < deadline, "the new replicas never served: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    println!("reap: 2 leftovers of a SIGKILLed ballast stopped {reaped_at:.1?} after the restart; 2 new replicas serving");

    let status = second.terminate().await;
    assert!(status.success(), "{status}");
    wait_gone(&new, 10).await;
    let left: Vec<_> = std::fs::read_dir(logs.join("app")).expect("pool dir").flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().ends_with(".pid")).collect();
    assert!(left.is_empty(), "a clean stop removes every record: {left:?}");
}
