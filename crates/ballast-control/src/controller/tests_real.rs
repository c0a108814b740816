//! The controller with real parts: the process provider starting python3 http.server
//! replicas, HTTP probes, and a real `ProxyServer` whose membership the controller
//! changes through [`seam::ProxySeam`]. Real time, bounded polling.

use super::seam::ProxySeam;
use ballast_core::autoscale::MetricKind;
use super::tests::{scaling, ScriptedFeed};
use super::*;
use crate::provider::logs::LogPolicy;
use crate::provider::ProcessProvider;
use ballast_core::config::{ConfigDuration, PortRange, ProcessProvider as ProcessConfig};
use ballast_proxy::{AccessLog, ProxyServer};
use std::path::{Path, PathBuf};
use tokio::time::Instant;

/// A balancer in front of one python3 `process` pool; shared with `tests_rollout`.
pub(super) const CONFIG: &str = r#"
[[balancer]]
name = "front"
listen = "127.0.0.1:0"
[[balancer.route]]
path_prefix = "/"
split = [{ pool = "web" }]

[[pool]]
name = "web"
[pool.provider]
kind = "process"
command = "python3"
"#;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ballast-ctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// python3 http.server on `{port}`, its pid written to `<dir>/<port>.pid`.
/// Each test gets its own port range: tests run in parallel.
fn replica(dir: &Path, first_port: u16) -> ProcessConfig {
    ProcessConfig {
        command: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            "echo $$ > \"$PWD/$1.pid\"; exec python3 -m http.server \"$1\" --bind 127.0.0.1".into(),
            "sh".into(),
            "{port}".into(),
        ],
        env: Default::default(),
        working_dir: Some(dir.display().to_string()),
        grace_period: ConfigDuration(Duration::from_secs(5)),
        port_range: PortRange { start: first_port, end: first_port + 499 },
    }
}

async fn get(front: std::net::SocketAddr) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(front).await.map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    text.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad answer {text:?}"))
}

async fn until(handle: &PoolHandle, secs: u64, what: &str, f: impl Fn(&PoolView) -> bool) -> PoolView {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = handle.view();
        assert!((1..=4).contains(&v.target), "target {} left [1, 4]", v.target);
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs}s; {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}

fn alive(pid: i32) -> bool {
    // a zombie awaiting its reaper counts as gone
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_replicas_scale_heal_drain_and_clean_up() {
    let dir = temp("real");
    let config = ballast_core::config::parse(CONFIG).expect("config");
    let server = Arc::new(ProxyServer::start(&config, AccessLog::off()).expect("proxy"));
    let front = server.local_addr("front").expect("front");
    let seam = Arc::new(ProxySeam::new(server.clone()));
    let load = Arc::new(Mutex::new(0.0));
    let events = EventLog::new(1000);
    let settings = Settings { tick: Duration::from_millis(200), ..Settings::default() };
    let handle = PoolHandle::spawn(PoolSpec {
        name: "web".into(),
        scaling: scaling(1, 4, Duration::from_secs(1)),
        cost: None,
        provider: Arc::new(ProcessProvider::new("web", replica(&dir, 32_000), LogPolicy::in_dir(dir.join("logs")))),
        probe: Arc::new(HttpProbe::new("/", Duration::from_secs(2))),
        feed: ScriptedFeed::new(load.clone()),
        membership: seam.clone(),
        stats: Some(seam.clone()),
        settings,
        events: events.clone(),
        demand: None,
    });
    until(&handle, 30, "one ready replica", |v| v.count(Phase::Ready) == 1).await;
    assert_eq!(get(front).await, Ok(200), "served through the proxy");

    *load.lock().expect("load") = 25.0;
    let v = until(&handle, 30, "three ready", |v| v.count(Phase::Ready) == 3).await;
    let s = v.startup.expect("start-up measured");
    assert!(s.count >= 3 && s.max < Duration::from_secs(30), "{s:?}");
    for _ in 0..6 {
        assert_eq!(get(front).await, Ok(200));
    }

    // SIGKILL one replica: the exit is seen and a successor starts
    let victim = v.instances[1].clone();
    let port = victim.address.as_deref().and_then(|a| a.rsplit_once(':')).map(|(_, p)| p.to_string()).expect("port");
    let pid: i32 = std::fs::read_to_string(dir.join(format!("{port}.pid"))).expect("pid").trim().parse().expect("pid");
    // a client reads through the proxy while the replica dies; whether it sees errors
    // depends on the proxy's retries and health checks, so the count is reported, not
    // asserted here (the e2e suite owns that acceptance point)
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if get(front).await == Ok(200) { ok += 1 } else { failed += 1 }
            }
            (ok, failed)
        })
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
    until(&handle, 30, "replaced", |v| v.count(Phase::Ready) == 3 && v.instances.iter().all(|i| i.id != victim.id)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = client.await.expect("client");
    eprintln!("during SIGKILL and replacement: {ok} GETs served, {failed} failed");
    let replaced: Vec<_> = events.snapshot().into_iter().filter(|e| e.kind == EventKind::Replace).collect();
    let who = format!("{} at {} (pid {pid})", victim.id, victim.address.clone().expect("address"));
    assert_eq!(replaced[0].reason, format!("{who}: exited (signal: 9 (SIGKILL))"));

    let pids: Vec<i32> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect();
    *load.lock().expect("load") = 0.0;
    until(&handle, 30, "back to one", |v| v.instances.len() == 1 && v.target == 1).await;
    assert_eq!(get(front).await, Ok(200));
    let stopped = events.snapshot().into_iter().filter(|e| e.kind == EventKind::Stopped).count();
    assert_eq!(stopped, 2);

    handle.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "replicas outlived the controller");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The live feed over a real proxy and a real replica: request counters become rps,
/// the replica's process group gives memory (and CPU once two readings exist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_reads_proxy_stats_and_process_resources() {
    use crate::provider::Provider;
    let dir = temp("feed");
    let config = ballast_core::config::parse(CONFIG).expect("config");
    let server = Arc::new(ProxyServer::start(&config, AccessLog::off()).expect("proxy"));
    let front = server.local_addr("front").expect("front");
    let seam = Arc::new(ProxySeam::new(server.clone()));
    let provider = ProcessProvider::new("web", replica(&dir, 32_500), LogPolicy::in_dir(dir.join("logs")));
    let i = provider.create().await.expect("create");
    let probe = HttpProbe::new("/", Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe.check(&i.address).await {
        assert!(Instant::now() < deadline, "replica never answered");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    seam.set("web", std::slice::from_ref(&i.address)).expect("membership");
    let mut feed = ProxyFeed::new(seam.clone(), seam.clock());
    let origin = Instant::now();
    let group = provider.process_group(&i.id).expect("a local process");
    let tick = |feed: &mut ProxyFeed| {
        let now = origin.elapsed();
        let wall = Utc::now();
        feed.refresh("web", std::slice::from_ref(&i.address), now, wall);
        feed.refresh_resources(&[group], now, wall);
        wall
    };
    tick(&mut feed);
    for _ in 0..5 {
        assert_eq!(get(front).await, Ok(200));
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // let time pass between two counter readings
    let wall = tick(&mut feed);
    let from = wall - chrono::Duration::seconds(60);
    let rps = feed.source().summary(&MetricKind::Rps, from, wall).expect("rps");
    assert!(rps.latest > 0.0, "{rps:?}");
    let mem = feed.source().summary(&MetricKind::Memory, from, wall).expect("memory");
    assert!(mem.latest > 0.0 && mem.latest < 100.0, "{mem:?}");
    assert!(feed.source().summary(&MetricKind::Cpu, from, wall).is_some(), "two readings give a CPU rate");
    provider.destroy(&i.id).await.expect("destroy");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The acceptance case with a real command: the exec provider's create script exits 1
/// (its "broken" switch), the controller backs off exponentially, shows `error` with the
/// script's message, and recovers once the script is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_create_script_backs_off_errors_and_recovers_when_fixed() {
    use crate::provider::ExecProvider;
    use ballast_core::config::ExecProvider as ExecConfig;
    let state = temp("exec-ctl");
    std::fs::write(state.join("broken"), "").expect("break the script");
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let env = format!("STATE={}", state.display());
    let provider = ExecProvider::new("api", ExecConfig {
        create: format!("{env} {}", scripts.join("exec-create.sh").display()),
        destroy: format!("{env} {}", scripts.join("exec-destroy.sh").display()),
        list: None,
        timeout: ConfigDuration(Duration::from_secs(30)),
    });
    let events = EventLog::new(1000);
    let membership = Arc::new(super::tests::Recorded::default());
    let settings = Settings { tick: Duration::from_millis(50), retry_initial: Duration::from_millis(100), ..Settings::default() };
    let handle = PoolHandle::spawn(PoolSpec {
        name: "api".into(),
        scaling: scaling(1, 4, Duration::from_secs(15)),
        cost: None,
        provider: Arc::new(provider),
        probe: Arc::new(HttpProbe::new("/", Duration::from_secs(2))),
        feed: ScriptedFeed::new(Arc::new(Mutex::new(0.0))),
        membership: membership.clone(),
        stats: None,
        settings,
        events: events.clone(),
        demand: None,
    });
    let v = until(&handle, 30, "error state", |v| matches!(v.status, PoolStatus::Error { .. })).await;
    let PoolStatus::Error { cause } = v.status else { unreachable!() };
    assert!(cause.starts_with("create failed 3 times in a row: create failed:"), "{cause}");
    let message = format!("exit status: 1: quota exceeded (test: {} exists)", state.join("broken").display());
    assert!(cause.ends_with(&message), "{cause}");
    let retries: Vec<String> = events.snapshot().into_iter().filter(|e| e.kind == EventKind::ProviderError).map(|e| e.outcome).take(3).collect();
    assert_eq!(retries, ["attempt 1, retry in 100ms", "attempt 2, retry in 200ms", "attempt 3, retry in 400ms"]);

    std::fs::remove_file(state.join("broken")).expect("fix the script");
    let v = until(&handle, 30, "recovered and ready", |v| v.status == PoolStatus::Ok && v.count(Phase::Ready) == 1).await;
    assert_eq!(membership.of("api"), vec![v.instances[0].address.clone().expect("address")]);
    assert_eq!(events.snapshot().iter().filter(|e| e.kind == EventKind::Recovered).count(), 1);
    let address = v.instances[0].address.clone().expect("address");
    handle.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(Instant::now() < deadline, "the destroy script did not stop the replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&state);
}
