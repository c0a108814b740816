//! The checker's scheduling and bookkeeping on a paused clock, with a scripted probe.

use crate::health::{HealthChecker, HealthError, HealthHandle, HealthTarget, Probe, ProbeFuture};
use ballast_core::balance::BackendStats;
use ballast_core::config::{ConfigDuration, HealthCheckConfig};
use ballast_core::resilience::{EventKind, EventLog, Health};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// A probe whose answer per address is a switch; it counts probes and the most that ran
/// at once for one address.
#[derive(Default)]
struct Script {
    up: Mutex<HashMap<String, Arc<AtomicBool>>>,
    probes: Mutex<HashMap<String, usize>>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
    latency: Duration,
}

impl Script {
    fn switch(&self, addr: &str) -> Arc<AtomicBool> {
        let mut up = self.up.lock().expect("lock");
        Arc::clone(up.entry(addr.to_string()).or_insert_with(|| Arc::new(AtomicBool::new(true))))
    }

    fn set(&self, addr: &str, up: bool) {
        self.switch(addr).store(up, Ordering::SeqCst);
    }

    fn count(&self, addr: &str) -> usize {
        self.probes.lock().expect("lock").get(addr).copied().unwrap_or(0)
    }
}

impl Probe for Script {
    fn probe(&self, addr: &str) -> ProbeFuture {
        *self.probes.lock().expect("lock").entry(addr.to_string()).or_default() += 1;
        let up = self.switch(addr);
        let (running, max, latency) = (Arc::clone(&self.running), Arc::clone(&self.max_running), self.latency);
        Box::pin(async move {
            let n = running.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            sleep(latency).await;
            running.fetch_sub(1, Ordering::SeqCst);
            if up.load(Ordering::SeqCst) {
                Ok("up".to_string())
            } else {
                Err(HealthError::Http("scripted failure".to_string()))
            }
        })
    }
}

fn cfg() -> HealthCheckConfig {
    HealthCheckConfig { interval: ConfigDuration::from_secs(5), rise: 2, fall: 3, ..HealthCheckConfig::default() }
}

fn target(id: &str, healthy: bool) -> HealthTarget {
    let stats = Arc::new(BackendStats::default());
    stats.healthy.store(healthy, Ordering::SeqCst);
    HealthTarget::new(id, format!("{id}:80"), stats)
}

fn spawn(script: &Arc<Script>, targets: Vec<HealthTarget>, events: &Arc<EventLog>) -> HealthHandle {
    let origin = Instant::now();
    let probe: Arc<dyn Probe> = Arc::clone(script) as Arc<dyn Probe>;
    HealthChecker::spawn_with("api", &cfg(), probe, targets, Arc::clone(events), move || origin.elapsed())
}

#[tokio::test(start_paused = true)]
async fn flips_after_exactly_fall_failures_and_rise_successes_with_events() {
    let script = Arc::new(Script::default());
    let events = Arc::new(EventLog::default());
    let a = target("a", true);
    let _h = spawn(&script, vec![a.clone()], &events);
    script.set("a:80", false);
    // Step through time; the flag may only change on the probe that completes the run.
    let mut flipped_at = None;
    for _ in 0..60 {
        sleep(Duration::from_millis(500)).await;
        if !a.stats.healthy.load(Ordering::SeqCst) {
            flipped_at.get_or_insert(script.count("a:80"));
        }
    }
    assert_eq!(flipped_at, Some(3), "unhealthy on the third failure");
    let failures = script.count("a:80");
    script.set("a:80", true);
    let mut back_at = None;
    for _ in 0..60 {
        sleep(Duration::from_millis(500)).await;
        if a.stats.healthy.load(Ordering::SeqCst) {
            back_at.get_or_insert(script.count("a:80") - failures);
        }
    }
    assert_eq!(back_at, Some(2), "healthy on the second success");
    let log = events.recent(10);
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].kind, EventKind::Health { from: Health::Healthy, to: Health::Unhealthy });
    assert_eq!(log[0].reason, "3 failed checks in a row (fall 3); last: HTTP request failed: scripted failure");
    assert_eq!((log[0].counts.consecutive_failures, log[0].pool.as_str(), log[0].instance.as_str()), (3, "api", "a"));
    assert_eq!(log[1].kind, EventKind::Health { from: Health::Unhealthy, to: Health::Healthy });
    assert_eq!(log[1].reason, "2 passed checks in a row (rise 2); last: up");
    assert!(log[1].at > log[0].at + Duration::from_secs(9), "two probes at least 4.5 s apart: {:?}", log);
}

#[tokio::test(start_paused = true)]
async fn probes_follow_the_interval_with_jitter() {
    let script = Arc::new(Script::default());
    let events = Arc::new(EventLog::default());
    let h = spawn(&script, vec![target("a", true), target("b", true)], &events);
    sleep(Duration::from_millis(500)).await;
    assert_eq!((script.count("a:80"), script.count("b:80")), (1, 1), "first probe within a tenth of the interval");
    sleep(Duration::from_secs(100)).await;
    for addr in ["a:80", "b:80"] {
        let n = script.count(addr);
        // 100 s at 5 s ± 10%: between 100/5.5 and 100/4.5 more probes.
        assert!((19..=24).contains(&n), "{addr}: {n} probes");
    }
    let st = h.status();
    assert_eq!(st[0].last, Some(Ok("up".to_string())));
    assert_eq!(st[0].uptime, Some(Duration::from_millis(100_500)));
    assert!(events.is_empty(), "no transition, no event");
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_is_never_overlapped() {
    let script = Arc::new(Script { latency: Duration::from_secs(12), ..Script::default() });
    let events = Arc::new(EventLog::default());
    let _h = spawn(&script, vec![target("a", true)], &events);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(script.max_running.load(Ordering::SeqCst), 1);
    let n = script.count("a:80");
    assert!((4..=6).contains(&n), "one probe per 12 s: {n}");
}

#[tokio::test(start_paused = true)]
async fn update_keeps_known_instances_and_starts_new_ones_from_their_flag() {
    let script = Arc::new(Script::default());
    let events = Arc::new(EventLog::default());
    let (a, b) = (target("a", true), target("b", true));
    let h = spawn(&script, vec![a.clone(), b.clone()], &events);
    script.set("a:80", false);
    sleep(Duration::from_secs(16)).await;
    assert!(!a.stats.healthy.load(Ordering::SeqCst));
    let c = target("c", false);
    h.update(vec![a.clone(), c.clone()]);
    sleep(Duration::from_secs(1)).await;
    let st = h.status();
    let ids: Vec<_> = st.iter().map(|s| s.instance.as_str()).collect();
    assert_eq!(ids, vec!["a", "c"]);
    assert_eq!(st[0].health, Health::Unhealthy, "a keeps its state");
    assert!(st[0].counts.consecutive_failures >= 3, "and its counters: {:?}", st[0].counts);
    assert_eq!(st[1].health, Health::Unhealthy, "c starts from its flag");
    let b_probes = script.count("b:80");
    sleep(Duration::from_secs(10)).await;
    assert_eq!(script.count("b:80"), b_probes, "b is no longer probed");
    assert!(c.stats.healthy.load(Ordering::SeqCst), "c passed rise checks");
    let last = events.recent(1).pop().expect("event");
    assert_eq!((last.instance.as_str(), last.kind), ("c", EventKind::Health { from: Health::Unhealthy, to: Health::Healthy }));
    // Fresh stats for a known instance get its checked state.
    let a_new = HealthTarget::new("a", "a:80", Arc::new(BackendStats::default()));
    h.update(vec![a_new.clone(), c.clone()]);
    sleep(Duration::from_millis(10)).await;
    assert!(!a_new.stats.healthy.load(Ordering::SeqCst), "a is still unhealthy");
    // A changed address is a new instance: state starts over from the flag.
    h.update(vec![HealthTarget::new("a", "a2:80", Arc::clone(&a.stats))]);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.status()[0].checks, 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_probing() {
    let script = Arc::new(Script::default());
    let events = Arc::new(EventLog::default());
    let h = spawn(&script, vec![target("a", true)], &events);
    sleep(Duration::from_secs(11)).await;
    let n = script.count("a:80");
    assert!(n >= 2);
    drop(h);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(script.count("a:80"), n);
}
