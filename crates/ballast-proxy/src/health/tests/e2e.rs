//! The real checker against real sockets: probes, damping, the stats flag and events.

use super::{closed_port, eventually, Backend};
use crate::health::{icmp_available, HealthChecker, HealthError, HealthTarget};
use ballast_core::balance::BackendStats;
use ballast_core::config::{ConfigDuration, HealthCheckConfig, HealthCheckKind};
use ballast_core::resilience::{EventKind, EventLog, Health};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

fn fast(kind: HealthCheckKind) -> HealthCheckConfig {
    HealthCheckConfig {
        kind,
        interval: ConfigDuration::from_millis(40),
        timeout: ConfigDuration::from_millis(500),
        rise: 2,
        fall: 3,
        ..HealthCheckConfig::default()
    }
}

fn clock() -> impl Fn() -> Duration + Send + Sync + 'static {
    let origin = tokio::time::Instant::now();
    move || origin.elapsed()
}

#[tokio::test]
async fn a_flapping_http_backend_goes_down_and_up_with_events() {
    let b = Backend::start(None).await;
    let stats = Arc::new(BackendStats::default());
    let events = Arc::new(EventLog::default());
    let t = HealthTarget::new("i-1", b.addr.to_string(), Arc::clone(&stats));
    let h = HealthChecker::spawn("api", &fast(HealthCheckKind::Http), vec![t], Arc::clone(&events), clock())
        .expect("spawn");
    assert!(eventually(LIMIT, || h.status()[0].checks >= 2).await);
    assert!(stats.healthy.load(Ordering::SeqCst) && events.is_empty());

    b.set_status(500);
    assert!(eventually(LIMIT, || !stats.healthy.load(Ordering::SeqCst)).await, "marked down");
    let down = events.recent(1).pop().expect("event");
    assert_eq!(down.kind, EventKind::Health { from: Health::Healthy, to: Health::Unhealthy });
    assert_eq!(down.reason, "3 failed checks in a row (fall 3); last: status 500 is outside 200-399");
    assert_eq!(down.counts.consecutive_failures, 3);
    assert_eq!(h.status()[0].uptime, None);

    b.set_status(200);
    assert!(eventually(LIMIT, || stats.healthy.load(Ordering::SeqCst)).await, "marked up");
    let up = events.recent(1).pop().expect("event");
    assert_eq!(up.kind, EventKind::Health { from: Health::Unhealthy, to: Health::Healthy });
    assert_eq!(up.reason, "2 passed checks in a row (rise 2); last: status 200");
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn a_port_with_no_listener_is_unhealthy() {
    let addr = closed_port().await.to_string();
    let stats = Arc::new(BackendStats::default());
    let events = Arc::new(EventLog::default());
    let t = HealthTarget::new("i-2", addr, Arc::clone(&stats));
    let _h = HealthChecker::spawn("api", &fast(HealthCheckKind::Tcp), vec![t], Arc::clone(&events), clock())
        .expect("spawn");
    assert!(eventually(LIMIT, || !stats.healthy.load(Ordering::SeqCst)).await);
    let ev = events.recent(1).pop().expect("event");
    assert!(ev.reason.contains("connect to 127.0.0.1:") && ev.reason.contains("failed"), "{}", ev.reason);
}

#[tokio::test]
async fn icmp_checker_or_a_plain_refusal_at_start() {
    let stats = Arc::new(BackendStats::default());
    stats.healthy.store(false, Ordering::SeqCst);
    let events = Arc::new(EventLog::default());
    let t = HealthTarget::new("i-3", "127.0.0.1:0", Arc::clone(&stats));
    let spawned = HealthChecker::spawn("api", &fast(HealthCheckKind::Icmp), vec![t], Arc::clone(&events), clock());
    match icmp_available() {
        Ok(()) => {
            let _h = spawned.expect("spawn");
            assert!(eventually(LIMIT, || stats.healthy.load(Ordering::SeqCst)).await, "loopback answers");
        }
        Err(_) => assert!(matches!(spawned, Err(HealthError::IcmpNotPermitted(_)))),
    }
}

#[tokio::test]
async fn a_bad_host_setting_is_refused_at_start() {
    let mut cfg = fast(HealthCheckKind::Http);
    cfg.host = Some("bad\nhost".into());
    let e = HealthChecker::spawn("api", &cfg, vec![], Arc::new(EventLog::default()), clock()).expect_err("refused");
    assert_eq!(e.to_string(), "health.host: \"bad\\nhost\" is not a valid Host header value");
}
