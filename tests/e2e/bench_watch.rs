//! `bench/watch.py`, the peer benchmark's two watchers, against real processes: bad
//! arguments, the renice watcher (descendants only, stops with its root), and the memory
//! watcher (a running ballast proxy's peak, kept current in its file).

use ballast_tests::ballast_bin;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn watch_py() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/watch.py").to_string()
}

fn watch(args: &[&str]) -> Output {
    Command::new("python3").arg(watch_py()).args(args).output().expect("run python3")
}

/// Children killed (and reaped) however the test ends.
#[derive(Default)]
struct Reap(Vec<Child>);

impl Reap {
    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        let pid = child.id();
        self.0.push(child);
        pid
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The nice value of process `pid` (field 19 of its stat line).
fn nice_of(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
}

/// The first child of `parent`, looked up in /proc.
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
}

/// Polls `f` every 50 ms until it returns Some, for at most `secs`.
fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_arguments_are_refused_naming_them() {
    let cases: [(&[&str], &str); 4] = [
        (&[], "usage: watch.py rss OUT.tsv | watch.py nice ROOT NICE"),
        (&["nice", "1", "99"], "NICE must be within -20..19, got 99"),
        (&["nice", "x", "1"], "ROOT and NICE must be integers, got 'x' '1'"),
        (&["rss"], "usage:"),
    ];
    for (args, expected) in cases {
        let out = watch(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn the_renice_watcher_reaches_descendants_only_and_stops_with_its_root() {
    let mut procs = Reap::default();
    // Its own session: the watcher also sets the nice of the descendants' sessions, which
    // must not be the test runner's.
    let root = procs.spawn(Command::new("setsid").args(["bash", "-c", "sleep 60 & wait"]));
    let outsider = procs.spawn(Command::new("sleep").arg("60"));
    let descendant = poll(10, "the root's child", || child_of(root));
    let own_nice = nice_of(std::process::id()).expect("own nice");
    let target = (own_nice + 5).min(19);
    let mut watcher = Command::new("python3")
        .arg(watch_py())
        .args(["nice", &root.to_string(), &target.to_string()])
        .spawn()
        .expect("start the watcher");
    poll(10, "the descendant reniced", || (nice_of(descendant) == Some(target)).then_some(()));
    assert_eq!(nice_of(outsider), Some(own_nice), "a process outside the root's tree is left alone");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(descendant as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill the descendant");
    let _ = procs.0[0].kill();
    let _ = procs.0[0].wait();
    let status = poll(10, "the watcher to stop with its root", || watcher.try_wait().expect("try_wait"));
    assert!(status.success(), "the watcher ended with {status}");
}

#[test]
fn the_memory_watcher_keeps_a_running_proxys_peak_in_its_file() {
    let mut procs = Reap::default();
    let proxy = procs.spawn(Command::new(ballast_bin()).args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--to",
        "127.0.0.1:9",
        "--threads",
        "1",
    ]));
    let (_dir, out) = ballast_tests::temp_file("rss.tsv", "");
    procs.spawn(Command::new("python3").arg(watch_py()).arg("rss").arg(&out));
    let mib: f64 = poll(15, "ballast-t1 in the file", || {
        let text = std::fs::read_to_string(&out).ok()?;
        text.lines().find_map(|l| l.strip_prefix("ballast-t1\t")?.parse().ok())
    });
    assert!(mib > 1.0 && mib < 1024.0, "a ballast proxy's peak in MiB, got {mib}");
    assert!(nice_of(proxy).is_some(), "the proxy still runs");
}
