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
