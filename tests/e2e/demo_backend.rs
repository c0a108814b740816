//! `ballast demo-backend`: its knobs and its health endpoint, over real HTTP.

use ballast_tests::{get, start_backend};
use std::time::{Duration, Instant};

#[tokio::test]
async fn answers_with_its_name_and_health() {
    let b = start_backend("alpha", &[]).await;
    let r = get(&b.url("/anything?x=1")).await.expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok alpha\n");
    assert_eq!(r.backend().as_deref(), Some("alpha"));
    let h = get(&b.url("/health")).await.expect("health");
    assert_eq!((h.status.as_u16(), h.text().as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn latency_knob_delays_responses_but_not_health() {
    let b = start_backend("slow", &["--latency", "150ms"]).await;
    let t = Instant::now();
    get(&b.url("/")).await.expect("get");
    assert!(t.elapsed() >= Duration::from_millis(150), "{:?}", t.elapsed());
    let t = Instant::now();
    get(&b.url("/health")).await.expect("health");
    assert!(t.elapsed() < Duration::from_millis(150), "{:?}", t.elapsed());
}

#[tokio::test]
async fn error_rate_one_always_fails() {
    let b = start_backend("broken", &["--error-rate", "1"]).await;
    for _ in 0..5 {
        assert_eq!(get(&b.url("/")).await.expect("get").status, 500);
    }
}

#[tokio::test]
async fn bad_knobs_are_refused_naming_the_flag() {
    let out = std::process::Command::new(ballast_tests::ballast_bin())
        .args(["demo-backend", "--error-rate", "2"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--error-rate") && err.contains("out of range"), "{err}");
}

/// Polls `/stats` until `requests` reaches `want` (the counter moves when a response is
/// sent, which the client may see a moment before the server counts it).
async fn served(b: &ballast_tests::Running, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&b.url("/stats")).await.expect("stats");
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("stats is JSON");
        let n = v["requests"].as_u64().expect("requests is a count");
        if n >= want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stats_counts_served_requests_but_not_health_or_stats() {
    let b = start_backend("counted", &[]).await;
    assert_eq!(served(&b, 0).await, 0);
    for _ in 0..3 {
        get(&b.url("/work")).await.expect("get");
    }
    get(&b.url("/health")).await.expect("health");
    assert_eq!(served(&b, 3).await, 3);
    assert_eq!(served(&b, 3).await, 3, "reading /stats is not counted");
}

#[tokio::test]
async fn slow_for_ends_the_latency_after_the_window() {
    let b = start_backend("recovers", &["--latency", "300ms", "--slow-for", "2s"]).await;
    let t = Instant::now();
    get(&b.url("/")).await.expect("get");
    let first = t.elapsed();
    assert!(first >= Duration::from_millis(300), "slow at first: {first:?}");
    // Bounded wait for the recovery: once the window is over a request is fast.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = Instant::now();
        get(&b.url("/")).await.expect("get");
        if t.elapsed() < Duration::from_millis(300) {
            break;
        }
        assert!(Instant::now() < deadline, "still slow long after --slow-for 2s");
    }
}

#[tokio::test]
async fn bad_slow_for_is_refused_naming_the_flag() {
    for (knobs, expect) in [
        (&["--latency", "5ms", "--slow-for", "soon"][..], "--slow-for"),
        (&["--latency", "5ms", "--slow-for", "0s"][..], "zero"),
        (&["--slow-for", "5s"][..], "needs --latency"),
    ] {
        let out = std::process::Command::new(ballast_tests::ballast_bin())
            .arg("demo-backend")
            .args(knobs)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{knobs:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--slow-for") && err.contains(expect), "{knobs:?}: {err}");
    }
}

#[tokio::test]
async fn extra_ports_are_fast_instances_with_their_own_counters() {
    use ballast_control::process::{ManagedProcess, ProcessSpec};
    use tokio::io::AsyncBufReadExt as _;
    let args = ["demo-backend", "--port", "0", "--name", "main", "--latency", "500ms", "--extra-port", "0", "--extra-port", "0"];
    let spec = ProcessSpec {
        program: ballast_tests::ballast_bin(),
        args: args.map(Into::into).to_vec(),
        ..Default::default()
    };
    let mut process = ManagedProcess::spawn(&spec).expect("spawn");
    let mut lines = tokio::io::BufReader::new(process.take_output().0.expect("piped stdout")).lines();
    let mut urls = Vec::new();
    while urls.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("announced in time")
            .expect("readable")
            .expect("three announcements");
        if let Some(addr) = line.strip_prefix("listening on ") {
            urls.push(format!("http://{addr}"));
        }
    }
    let (main, extras) = (urls[0].clone(), &urls[1..]);
    assert_ne!(extras[0], extras[1]);
    for (k, extra) in extras.iter().enumerate() {
        let t = Instant::now();
        let r = get(&format!("{extra}/work")).await.expect("get");
        assert!(t.elapsed() < Duration::from_millis(500), "extra instances answer at once: {:?}", t.elapsed());
        assert_eq!(r.text(), format!("ok {}\n", &extra["http://".len()..]), "named after its address");
        for _ in 0..k {
            get(&format!("{extra}/work")).await.expect("get");
        }
    }
    let t = Instant::now();
    assert_eq!(get(&format!("{main}/")).await.expect("get").text(), "ok main\n");
    assert!(t.elapsed() >= Duration::from_millis(500), "the main port keeps its knobs");
    let count = |url: String| async move {
        let r = get(&format!("{url}/stats")).await.expect("stats");
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("JSON")["requests"].as_u64()
    };
    // Counted once the response is sent, so poll briefly.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = vec![count(main.clone()).await, count(extras[0].clone()).await, count(extras[1].clone()).await];
        if seen == [Some(1), Some(1), Some(2)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, [Some(1), Some(1), Some(2)], "one counter per instance");
}

#[tokio::test]
async fn bad_or_busy_extra_ports_are_refused_naming_them() {
    let run = |args: &[&str]| {
        std::process::Command::new(ballast_tests::ballast_bin())
            .arg("demo-backend")
            .args(args)
            .output()
            .expect("run")
    };
    for bad in ["70000", "nine", "-1"] {
        let out = run(&[&format!("--extra-port={bad}")]);
        assert_eq!(out.status.code(), Some(2), "--extra-port {bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--extra-port") && err.contains(bad), "{bad}: {err}");
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = run(&["--port", "0", "--extra-port", &port]);
    assert!(!out.status.success(), "a busy extra port must fail the start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
}
