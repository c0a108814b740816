//! Controller tests on a paused tokio clock with the provider double, a scripted metric
//! feed and a recording membership: scaling up and down with drains, provider failure
//! → backoff → error → recovery, and auto-healing.

use super::*;
use std::sync::atomic::Ordering::Relaxed;
use crate::metrics::PoolWindows;
use crate::provider::{BoxFuture, FakeProvider};
use ballast_core::autoscale::{MetricKind, PolicyConfig, TargetPolicy};
use ballast_core::balance::BackendStats;
use ballast_core::config::ConfigDuration;
use std::collections::{HashMap, HashSet};

/// Pushes the scripted concurrency at every refresh.
pub(super) struct ScriptedFeed {
    pub load: Arc<Mutex<f64>>,
    windows: PoolWindows,
}

impl ScriptedFeed {
    pub fn new(load: Arc<Mutex<f64>>) -> Box<Self> {
        Box::new(ScriptedFeed { load, windows: PoolWindows::new(Default::default()) })
    }
}

impl MetricFeed for ScriptedFeed {
    fn refresh(&mut self, _pool: &str, _ready: &[String], _now: Duration, wall: DateTime<Utc>) {
        let v = *self.load.lock().unwrap_or_else(PoisonError::into_inner);
        self.windows.push(MetricKind::Concurrency, wall, v);
    }
    fn source(&self) -> &dyn MetricSource {
        &self.windows
    }
}

/// Remembers the last address list per pool.
#[derive(Default)]
pub(super) struct Recorded(pub Mutex<HashMap<String, Vec<String>>>);

impl Membership for Recorded {
    fn set(&self, pool: &str, addresses: &[String]) -> Result<(), String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(pool.into(), addresses.to_vec());
        Ok(())
    }
}

impl Recorded {
    pub fn of(&self, pool: &str) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(pool).cloned().unwrap_or_default()
    }
}

/// Passes every address except those listed as failing.
#[derive(Default)]
struct Scripted(Mutex<HashSet<String>>);

impl Probe for Scripted {
    fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, bool> {
        let ok = !self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(address);
        Box::pin(async move { ok })
    }
}

/// Stats by address, for drains.
#[derive(Default)]
struct Stats(Mutex<HashMap<String, Arc<BackendStats>>>);

impl StatsLookup for Stats {
    fn stats(&self, _pool: &str, address: &str) -> Option<Arc<BackendStats>> {
        Some(self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(address.into()).or_default().clone())
    }
}

/// Target tracking on concurrency (10 per instance), quick damping for tests.
pub(super) fn scaling(min: u32, max: u32, sync: Duration) -> ScalingConfig {
    let mut target = TargetPolicy::new(MetricKind::Concurrency, 10.0);
    target.window = ConfigDuration(sync);
    ScalingConfig {
        min,
        max,
        policies: vec![PolicyConfig::Target(target)],
        scale_up_cooldown: Some(ConfigDuration(Duration::ZERO)),
        scale_down_cooldown: Some(ConfigDuration(Duration::ZERO)),
        scale_down_stabilization: Some(ConfigDuration(sync * 2)),
        sync_interval: ConfigDuration(sync),
        ..ScalingConfig::default()
    }
}

struct Rig {
    handle: PoolHandle,
    provider: Arc<FakeProvider>,
    membership: Arc<Recorded>,
    probe: Arc<Scripted>,
    stats: Arc<Stats>,
    load: Arc<Mutex<f64>>,
    events: EventLog,
}

fn rig(min: u32, max: u32, settings: Settings, failing_creates: u32) -> Rig {
    let provider = Arc::new(FakeProvider::new());
    provider.fail_creates(failing_creates);
    let (membership, probe, stats) = (Arc::new(Recorded::default()), Arc::new(Scripted::default()), Arc::new(Stats::default()));
    let load = Arc::new(Mutex::new(0.0));
    let events = EventLog::new(1000);
    let handle = PoolHandle::spawn(PoolSpec {
        name: "web".into(),
        scaling: scaling(min, max, Duration::from_secs(15)),
        cost: None,
        provider: provider.clone(),
        probe: probe.clone(),
        feed: ScriptedFeed::new(load.clone()),
        membership: membership.clone(),
        stats: Some(stats.clone()),
        settings,
        events: events.clone(),
        demand: None,
    });
    Rig { handle, provider, membership, probe, stats, load, events }
}

/// Advances the paused clock a second at a time until `f` holds, checking `always` on
/// every view; fails after `secs` virtual seconds.
async fn until(rig: &Rig, secs: u64, what: &str, always: impl Fn(&PoolView), f: impl Fn(&PoolView) -> bool) -> PoolView {
    for _ in 0..secs {
        let v = rig.handle.view();
        always(&v);
        if f(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{what}: not within {secs}s; view {:?}; events {:#?}", rig.handle.view(), rig.events.snapshot());
}

fn kinds(log: &EventLog, kind: EventKind) -> Vec<ControlEvent> {
    log.snapshot().into_iter().filter(|e| e.kind == kind).collect()
}

#[tokio::test(start_paused = true)]
async fn scales_up_with_load_and_down_with_drains_within_bounds() {
    let r = rig(1, 8, Settings::default(), 0);
    let bounds = |v: &PoolView| assert!((1..=8).contains(&v.target), "target {} left [1, 8]", v.target);
    until(&r, 5, "one ready instance", bounds, |v| v.count(Phase::Ready) == 1).await;
    *r.load.lock().expect("load") = 35.0;
    // 35 in flight at 10 per instance: 4 instances within two evaluation intervals
    let v = until(&r, 31, "4 ready", bounds, |v| v.count(Phase::Ready) == 4).await;
    assert_eq!(v.target, 4);
    assert_eq!(r.membership.of("web").len(), 4);
    // the window mean still holds idle samples at first, so the fast path may go via 2
    let decisions = kinds(&r.events, EventKind::Decision);
    let decision = decisions.last().expect("a decision");
    assert!(decision.outcome.ends_with("→ 4"), "{decisions:#?}");
    assert!(decision.reason.contains("concurrency"), "{}", decision.reason);
    assert_eq!(r.handle.view().decisions, decisions.len() as u64, "the view counts every decision");
    assert!(v.startup.is_some());

    // keep one request in flight on every instance: drains must wait for it
    for a in r.membership.of("web") {
        r.stats.stats("web", &a).expect("stats").in_flight.store(1, Relaxed);
    }
    *r.load.lock().expect("load") = 5.0;
    let v = until(&r, 60, "target back to 1", bounds, |v| v.target == 1).await;
    let draining = v.count(Phase::Draining);
    assert_eq!(draining, 3, "{v:?}");
    for i in v.instances.iter().filter(|i| i.phase == Phase::Draining) {
        let s = r.stats.stats("web", i.address.as_deref().expect("addr")).expect("stats");
        assert!(s.draining.load(Relaxed), "out of rotation while draining");
    }
    assert_eq!(r.membership.of("web").len(), 4, "draining instances stay until stopped");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.handle.view().count(Phase::Draining), 3, "still in flight: still draining");
    for a in r.membership.of("web") {
        r.stats.stats("web", &a).expect("stats").in_flight.store(0, Relaxed);
    }
    until(&r, 5, "drained", bounds, |v| v.instances.len() == 1).await;
    assert_eq!(r.membership.of("web").len(), 1);
    assert_eq!(kinds(&r.events, EventKind::Stopped).len(), 3);
    assert!(kinds(&r.events, EventKind::Stopped)[0].reason.ends_with("drained (idle)"));
    r.handle.shutdown().await;
    assert!(r.provider.list().await.expect("list").is_empty(), "shutdown destroys every instance");
    assert!(r.membership.of("web").is_empty());
}

#[tokio::test(start_paused = true)]
async fn drains_end_at_the_grace_even_with_requests_in_flight() {
    let settings = Settings { drain_grace: Duration::from_secs(10), ..Settings::default() };
    let r = rig(1, 8, settings, 0);
    *r.load.lock().expect("load") = 25.0;
    until(&r, 20, "3 ready", |_| {}, |v| v.count(Phase::Ready) == 3).await;
    for a in r.membership.of("web") {
        r.stats.stats("web", &a).expect("stats").in_flight.store(7, Relaxed);
    }
    *r.load.lock().expect("load") = 0.0;
    until(&r, 60, "drains begin", |_| {}, |v| v.count(Phase::Draining) > 0).await;
    until(&r, 12, "grace over", |_| {}, |v| v.count(Phase::Draining) == 0).await;
    let stopped = kinds(&r.events, EventKind::Stopped);
    assert!(stopped[0].reason.contains("grace over with 7 in flight"), "{}", stopped[0].reason);
    r.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn provider_failures_back_off_exponentially_then_error_then_recover() {
    let r = rig(2, 4, Settings::default(), 5);
    let v = until(&r, 30, "error state", |_| {}, |v| matches!(v.status, PoolStatus::Error { .. })).await;
    let PoolStatus::Error { cause } = v.status else { unreachable!() };
    assert_eq!(cause, "create failed 3 times in a row: create failed: scripted failure");
    until(&r, 60, "recovery with 2 ready", |_| {}, |v| v.status == PoolStatus::Ok && v.count(Phase::Ready) == 2).await;
    let retries: Vec<String> = kinds(&r.events, EventKind::ProviderError).into_iter().map(|e| e.outcome).collect();
    assert_eq!(
        retries,
        ["attempt 1, retry in 1s", "attempt 2, retry in 2s", "attempt 3, retry in 4s", "attempt 4, retry in 8s", "attempt 5, retry in 16s"]
    );
    assert_eq!(kinds(&r.events, EventKind::PoolError).len(), 1, "entered once");
    assert_eq!(r.handle.view().provider_errors, 5, "the view counts every provider error");
    let rec = kinds(&r.events, EventKind::Recovered);
    assert_eq!(rec.len(), 1);
    assert!(rec[0].reason.contains("scripted failure"), "{}", rec[0].reason);
    // the gaps between attempts grew: 1+2+4+8+16 = 31 s before the first success
    let first_ok = kinds(&r.events, EventKind::Created)[0].at;
    let first_fail = kinds(&r.events, EventKind::ProviderError)[0].at;
    assert_eq!((first_ok - first_fail).num_seconds(), 31);
    r.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exited_and_unhealthy_instances_are_replaced_with_a_reason() {
    let settings = Settings { health_grace: Duration::from_secs(5), ..Settings::default() };
    let r = rig(2, 4, settings, 0);
    let v = until(&r, 5, "2 ready", |_| {}, |v| v.count(Phase::Ready) == 2).await;
    let (a, b) = (v.instances[0].clone(), v.instances[1].clone());
    r.provider.crash(&a.id, "signal: 9");
    until(&r, 5, "replaced", |_| {}, |v| v.count(Phase::Ready) == 2 && v.instances.iter().all(|i| i.id != a.id)).await;
    let replace = &kinds(&r.events, EventKind::Replace)[0];
    let who = format!("{} at {}", a.id, a.address.clone().expect("addr"));
    assert_eq!(replace.reason, format!("{who}: exited (signal: 9)"));

    r.probe.0.lock().expect("probe").insert(b.address.clone().expect("addr"));
    until(&r, 10, "unhealthy replaced", |_| {}, |v| v.count(Phase::Ready) == 2 && v.instances.iter().all(|i| i.id != b.id)).await;
    let replace = &kinds(&r.events, EventKind::Replace)[1];
    let who = format!("{} at {}", b.id, b.address.clone().expect("addr"));
    assert!(replace.reason.starts_with(&format!("{who}: failing health checks for 5s")), "{}", replace.reason);
    assert!(replace.outcome.starts_with("destroyed"), "{}", replace.outcome);
    assert!(r.provider.calls().contains(&format!("destroy {}", b.id)));
    r.handle.shutdown().await;
}

/// Refuses every membership change.
struct Refusing;

impl Membership for Refusing {
    fn set(&self, pool: &str, _addresses: &[String]) -> Result<(), String> {
        Err(format!("proxy reload for pool {pool}: refused"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_lasting_membership_error_is_logged_once_and_instances_still_start() {
    let events = EventLog::new(100);
    let handle = PoolHandle::spawn(PoolSpec {
        name: "web".into(),
        scaling: scaling(1, 2, Duration::from_secs(15)),
        cost: None,
        provider: Arc::new(FakeProvider::new()),
        probe: Arc::new(Scripted::default()),
        feed: ScriptedFeed::new(Arc::new(Mutex::new(0.0))),
        membership: Arc::new(Refusing),
        stats: None,
        settings: Settings::default(),
        events: events.clone(),
        demand: None,
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(handle.view().count(Phase::Ready), 1);
    let errors = kinds(&events, EventKind::MembershipError);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].reason, "proxy reload for pool web: refused");
    let created = &kinds(&events, EventKind::Created)[0];
    assert_eq!(created.reason, "0 live instances, target 1");
    handle.shutdown().await;
}

/// With a 60 s evaluation interval, a jump in concurrency is acted on at the next tick
/// (the fast path), not a minute later.
#[tokio::test(start_paused = true)]
async fn a_concurrency_jump_takes_the_fast_path() {
    let provider = Arc::new(FakeProvider::new());
    let load = Arc::new(Mutex::new(5.0));
    let events = EventLog::new(100);
    let handle = PoolHandle::spawn(PoolSpec {
        name: "web".into(),
        scaling: scaling(1, 8, Duration::from_secs(60)),
        cost: None,
        provider,
        probe: Arc::new(Scripted::default()),
        feed: ScriptedFeed::new(load.clone()),
        membership: Arc::new(Recorded::default()),
        stats: None,
        settings: Settings::default(),
        events: events.clone(),
        demand: None,
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(kinds(&events, EventKind::Decision).is_empty(), "5 in flight on 1 instance: no change");
    let jumped_at = tokio::time::Instant::now();
    *load.lock().expect("load") = 40.0;
    while kinds(&events, EventKind::Decision).is_empty() {
        assert!(jumped_at.elapsed() < Duration::from_secs(3), "no fast-path decision: {:?}", handle.view().last_decision);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(handle.view().target > 1);
    handle.shutdown().await;
}

/// Requests "held by the proxy", set by the test.
struct Held {
    count: std::sync::atomic::AtomicU32,
    tx: watch::Sender<u32>,
}

impl Demand for Held {
    fn pending(&self, _pool: &str) -> u32 {
        self.count.load(Relaxed)
    }
    fn watch(&self, _pool: &str) -> Option<watch::Receiver<u32>> {
        Some(self.tx.subscribe())
    }
}

#[tokio::test(start_paused = true)]
async fn held_requests_wake_a_pool_at_zero_without_waiting_for_the_interval() {
    let held = Arc::new(Held { count: 0.into(), tx: watch::channel(0).0 });
    let provider = Arc::new(FakeProvider::new());
    let events = EventLog::new(1000);
    let mut config = scaling(0, 3, Duration::from_secs(60));
    config.scale_to_zero = Some(serde_json::from_value(serde_json::json!({ "idle_after": "10m" })).expect("scale_to_zero"));
    let handle = PoolHandle::spawn(PoolSpec {
        name: "web".into(),
        scaling: config,
        cost: None,
        provider: provider.clone(),
        probe: Arc::new(Scripted::default()),
        feed: ScriptedFeed::new(Arc::new(Mutex::new(0.0))),
        membership: Arc::new(Recorded::default()),
        stats: None,
        settings: Settings::default(),
        events: events.clone(),
        demand: Some(held.clone()),
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(handle.view().instances.len(), 0, "no demand: stays at zero");

    // two requests are held: the task wakes on the watch, not at its next evaluation
    // (60 s away), and probes at the wake cadence until the instance is ready
    held.count.store(2, Relaxed);
    held.tx.send_replace(2);
    let woke = tokio::time::Instant::now();
    while handle.view().count(Phase::Ready) == 0 {
        assert!(woke.elapsed() < Duration::from_secs(1), "not ready within a second: {:?}", events.snapshot());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let decision = events.snapshot().into_iter().find(|e| e.kind == EventKind::Decision).expect("a decision");
    assert!(decision.reason.contains("waking"), "{}", decision.reason);
    assert_eq!(decision.outcome, "target 0 → 1");
    handle.shutdown().await;
}
