//! Rolling updates with real replicas behind a real proxy: 4 python3 http.server
//! instances roll to a new template while a client keeps reading through the proxy
//! (zero errors allowed), then a broken template is rolled back.

use super::seam::ProxySeam;
use super::tests::{scaling, ScriptedFeed};
use super::*;
use crate::provider::logs::LogPolicy;
use crate::provider::ProcessProvider;
use crate::rollout::RolloutLimits;
use ballast_core::config::{ConfigDuration, PortRange, ProcessProvider as ProcessConfig};
use ballast_proxy::{AccessLog, ProxyServer};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use tokio::time::Instant;

use super::tests_real::CONFIG;

/// python3 http.server serving `dir` (which holds `version.txt`).
fn serving(dir: &std::path::Path) -> ProcessConfig {
    ProcessConfig {
        command: "python3".into(),
        args: ["-m", "http.server", "{port}", "--bind", "127.0.0.1", "--directory"]
            .into_iter()
            .map(String::from)
            .chain([dir.display().to_string()])
            .collect(),
        env: Default::default(),
        working_dir: None,
        grace_period: ConfigDuration(Duration::from_secs(5)),
        port_range: PortRange { start: 33_000, end: 33_499 },
    }
}

async fn get(front: std::net::SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(front).await.map_err(|e| e.to_string())?;
    s.write_all(b"GET /version.txt HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).to_string();
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
        return Err(text.lines().next().unwrap_or_default().to_string());
    }
    Ok(text.rsplit("\r\n\r\n").next().unwrap_or_default().trim().to_string())
}

async fn until(handle: &PoolHandle, events: &EventLog, secs: u64, what: &str, f: impl Fn(&PoolView) -> bool) -> PoolView {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = handle.view();
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs}s; {v:?}; {:#?}", events.snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_keeps_serving_and_a_broken_template_rolls_back() {
    let root = std::env::temp_dir().join(format!("ballast-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for v in ["v0", "v1"] {
        std::fs::create_dir_all(root.join(v)).expect("dir");
        std::fs::write(root.join(v).join("version.txt"), v).expect("file");
    }
    let config = ballast_core::config::parse(CONFIG).expect("config");
    let server = Arc::new(ProxyServer::start(&config, AccessLog::off()).expect("proxy"));
    let front = server.local_addr("front").expect("front");
    let seam = Arc::new(ProxySeam::new(server.clone()));
    let provider = Arc::new(ProcessProvider::new("web", serving(&root.join("v0")), LogPolicy::in_dir(root.join("logs"))));
    provider.add_template(1, serving(&root.join("v1")));
    provider.add_template(2, ProcessConfig { command: "/bin/sh".into(), args: vec!["-c".into(), "exit 1".into(), "{port}".into()], ..serving(&root) });
    let events = EventLog::new(1000);
    let handle = PoolHandle::spawn(PoolSpec {
        name: "web".into(),
        scaling: scaling(4, 4, Duration::from_secs(15)),
        cost: None,
        provider: provider.clone(),
        probe: Arc::new(HttpProbe::new("/version.txt", Duration::from_secs(2))),
        feed: ScriptedFeed::new(Arc::new(Mutex::new(0.0))),
        membership: seam.clone(),
        stats: Some(seam.clone()),
        settings: Settings { tick: Duration::from_millis(100), ..Settings::default() },
        events: events.clone(),
        demand: None,
    });
    until(&handle, &events, 30, "4 ready", |v| v.count(Phase::Ready) == 4).await;
    assert_eq!(get(front).await.as_deref(), Ok("v0"));

    // a client reads through the proxy for the whole test
    let (stop, errors, served) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicU32::new(0)));
    let client = {
        let (stop, errors, served) = (stop.clone(), errors.clone(), served.clone());
        tokio::spawn(async move {
            while !stop.load(Relaxed) {
                match get(front).await {
                    Ok(_) => served.fetch_add(1, Relaxed),
                    Err(e) => {
                        errors.lock().expect("errors").push(e);
                        0
                    }
                };
            }
        })
    };
    let limits = RolloutLimits { max_surge: 1, max_unavailable: 0 };
    handle.roll_out(RolloutRequest { to: 1, limits });
    until(&handle, &events, 60, "rolled to template 1", |v| {
        v.version == 1 && !v.rolling && v.count(Phase::Ready) == 4 && v.instances.len() == 4
    })
    .await;
    assert_eq!(get(front).await.as_deref(), Ok("v1"));
    let done = events.snapshot().into_iter().filter(|e| e.kind == EventKind::Rollout).map(|e| e.outcome).collect::<Vec<_>>();
    assert_eq!(done.last().map(String::as_str), Some("done: every instance runs template 1"), "{done:?}");

    handle.roll_out(RolloutRequest { to: 2, limits });
    let rolled_back = || events.snapshot().iter().any(|e| e.kind == EventKind::Rollout && e.outcome == "done: rolled back to template 1");
    until(&handle, &events, 60, "rolled back", |v| rolled_back() && v.version == 1 && v.count(Phase::Ready) == 4).await;
    let back: Vec<ControlEvent> = events.snapshot().into_iter().filter(|e| e.kind == EventKind::RolledBack).collect();
    assert_eq!(back.len(), 1, "{back:#?}");
    assert!(back[0].reason.starts_with("template 2: web-") && back[0].reason.contains("exited (exit status: 1)"), "{}", back[0].reason);
    assert_eq!(back[0].outcome, "rolling back to template 1");
    stop.store(true, Relaxed);
    client.await.expect("client");
    let errors = errors.lock().expect("errors").clone();
    assert!(errors.is_empty(), "client saw errors: {errors:?}");
    assert!(served.load(Relaxed) > 20, "the client kept reading: {}", served.load(Relaxed));
    eprintln!("rollout + rollback: {} requests served, 0 errors", served.load(Relaxed));
    for _ in 0..8 {
        assert_eq!(get(front).await.as_deref(), Ok("v1"), "every instance runs template 1");
    }
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}
