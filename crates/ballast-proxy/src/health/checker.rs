//! The per-pool health-check task: when to probe (every `interval`, jittered), and what
//! to do with each result (damp it through `HealthState`, flip `BackendStats::healthy`,
//! log the transition). Probing itself is behind the [`Probe`] seam.

use super::error::HealthError;
use super::probe::{Probe, Prober};
use ballast_core::balance::BackendStats;
use ballast_core::config::HealthCheckConfig;
use ballast_core::resilience::{EventCounts, EventKind, EventLog, Health, HealthCounts, HealthEvent, HealthState};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One instance to check.
#[derive(Debug, Clone)]
pub struct HealthTarget {
    /// Instance id (events and status name it).
    pub instance: String,
    /// Where to probe, `host:port` (the port is ignored by ICMP).
    pub addr: String,
    /// Its live stats; the checker writes `healthy`. A new target starts from the value
    /// `healthy` has when it is added (so the controller decides whether a fresh instance
    /// must pass `rise` checks before it gets traffic).
    pub stats: Arc<BackendStats>,
}

impl HealthTarget {
    /// A target.
    pub fn new(instance: impl Into<String>, addr: impl Into<String>, stats: Arc<BackendStats>) -> Self {
        HealthTarget { instance: instance.into(), addr: addr.into(), stats }
    }
}

/// What the checker knows about one instance, for the API and dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    /// Instance id.
    pub instance: String,
    /// Address probed.
    pub addr: String,
    /// Current state.
    pub health: Health,
    /// Consecutive counters and thresholds.
    pub counts: HealthCounts,
    /// Time healthy without interruption; `None` while unhealthy.
    pub uptime: Option<Duration>,
    /// Probes finished.
    pub checks: u64,
    /// The last probe's result: `Ok("status 200")` or `Err("connect to ... failed: ...")`.
    pub last: Option<Result<String, String>>,
}

/// Runs active health checks for one pool. Create with [`HealthChecker::spawn`].
pub struct HealthChecker {
    pool: String,
    interval: Duration,
    rise: u32,
    fall: u32,
    probe: Arc<dyn Probe>,
    events: Arc<EventLog>,
    now: Arc<dyn Fn() -> Duration + Send + Sync>,
    targets: watch::Receiver<Vec<HealthTarget>>,
    shared: Arc<Mutex<Vec<Entry>>>,
    rng: fastrand::Rng,
    next_gen: u64,
}

/// The running checker of one pool. Dropping it stops the task.
pub struct HealthHandle {
    targets: watch::Sender<Vec<HealthTarget>>,
    shared: Arc<Mutex<Vec<Entry>>>,
    now: Arc<dyn Fn() -> Duration + Send + Sync>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone)]
struct Entry {
    target: HealthTarget,
    state: HealthState,
    gen: u64,
    next_due: Instant,
    probing: bool,
    checks: u64,
    last: Option<Result<String, String>>,
}

type Finished = Pin<Box<dyn Future<Output = (String, u64, Result<String, HealthError>)> + Send>>;

fn lock(m: &Mutex<Vec<Entry>>) -> MutexGuard<'_, Vec<Entry>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HealthChecker {
    /// Starts checking `targets` of pool `pool` as `cfg` says, on the current tokio
    /// runtime. `now` is the proxy's monotonic clock (event times and uptime use it).
    /// Fails when the probe cannot be set up ([`Prober::new`]), notably
    /// [`HealthError::IcmpNotPermitted`].
    pub fn spawn(
        pool: impl Into<String>,
        cfg: &HealthCheckConfig,
        targets: Vec<HealthTarget>,
        events: Arc<EventLog>,
        now: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Result<HealthHandle, HealthError> {
        let prober = Prober::new(cfg)?;
        Ok(HealthChecker::spawn_with(pool, cfg, Arc::new(prober), targets, events, now))
    }

    /// [`HealthChecker::spawn`] with any [`Probe`].
    pub fn spawn_with(
        pool: impl Into<String>,
        cfg: &HealthCheckConfig,
        probe: Arc<dyn Probe>,
        targets: Vec<HealthTarget>,
        events: Arc<EventLog>,
        now: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> HealthHandle {
        let (tx, rx) = watch::channel(targets);
        let shared = Arc::new(Mutex::new(Vec::new()));
        let now: Arc<dyn Fn() -> Duration + Send + Sync> = Arc::new(now);
        let mut checker = HealthChecker {
            pool: pool.into(),
            interval: cfg.interval.0.max(Duration::from_millis(1)),
            rise: cfg.rise,
            fall: cfg.fall,
            probe,
            events,
            now: Arc::clone(&now),
            targets: rx,
            shared: Arc::clone(&shared),
            rng: fastrand::Rng::new(),
            next_gen: 0,
        };
        // Entries exist (and show in `status`) before the task first runs.
        let initial = checker.targets.borrow_and_update().clone();
        let mut entries = Vec::new();
        checker.apply_targets(&mut entries, initial);
        *lock(&checker.shared) = entries.clone();
        let task = tokio::spawn(checker.run(entries));
        HealthHandle { targets: tx, shared, now, task }
    }

    async fn run(mut self, mut entries: Vec<Entry>) {
        let mut running: FuturesUnordered<Finished> = FuturesUnordered::new();
        loop {
            let next = entries.iter().filter(|e| !e.probing).map(|e| e.next_due).min();
            let wake = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                changed = self.targets.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let targets = self.targets.borrow_and_update().clone();
                    self.apply_targets(&mut entries, targets);
                }
                Some((instance, gen, result)) = running.next(), if !running.is_empty() => {
                    self.on_result(&mut entries, &instance, gen, result);
                }
                _ = tokio::time::sleep_until(wake), if next.is_some() => {
                    let now = Instant::now();
                    for e in entries.iter_mut().filter(|e| !e.probing && e.next_due <= now) {
                        e.probing = true;
                        e.next_due = now + self.jittered(0.9, 0.2);
                        let (instance, gen, fut) = (e.target.instance.clone(), e.gen, self.probe.probe(&e.target.addr));
                        running.push(Box::pin(async move { (instance, gen, fut.await) }));
                    }
                }
            }
            *lock(&self.shared) = entries.clone();
        }
    }

    /// `interval × (base + spread × random)`.
    fn jittered(&mut self, base: f64, spread: f64) -> Duration {
        self.interval.mul_f64(base + spread * self.rng.f64())
    }

    /// Keeps the state of instances still present (same id and address), starts new ones
    /// from their `healthy` flag, forgets removed ones (their probes' results are ignored).
    fn apply_targets(&mut self, entries: &mut Vec<Entry>, targets: Vec<HealthTarget>) {
        let now = (self.now)();
        let mut old = std::mem::take(entries);
        for target in targets {
            match old.iter().position(|e| e.target.instance == target.instance && e.target.addr == target.addr) {
                Some(i) => {
                    let mut e = old.swap_remove(i);
                    e.state.set_thresholds(self.rise, self.fall);
                    if !Arc::ptr_eq(&e.target.stats, &target.stats) {
                        // New stats for a known instance: carry the checked state over.
                        target.stats.healthy.store(e.state.health() == Health::Healthy, Ordering::Release);
                    }
                    e.target = target;
                    entries.push(e);
                }
                None => {
                    let initial =
                        if target.stats.healthy.load(Ordering::Acquire) { Health::Healthy } else { Health::Unhealthy };
                    self.next_gen += 1;
                    // First probe soon (within a tenth of the interval), spread out.
                    let next_due = Instant::now() + self.jittered(0.0, 0.1);
                    entries.push(Entry {
                        state: HealthState::new(initial, self.rise, self.fall, now),
                        target,
                        gen: self.next_gen,
                        next_due,
                        probing: false,
                        checks: 0,
                        last: None,
                    });
                }
            }
        }
    }

    fn on_result(&self, entries: &mut [Entry], instance: &str, gen: u64, result: Result<String, HealthError>) {
        let Some(e) = entries.iter_mut().find(|e| e.target.instance == instance && e.gen == gen) else {
            return;
        };
        e.probing = false;
        e.checks += 1;
        e.next_due = e.next_due.max(Instant::now());
        let now = (self.now)();
        let ok = result.is_ok();
        let detail = match &result {
            Ok(s) => s.clone(),
            Err(err) => err.to_string(),
        };
        e.last = Some(result.map_err(|err| err.to_string()));
        let Some(t) = e.state.record(ok, now) else { return };
        e.target.stats.healthy.store(t.to == Health::Healthy, Ordering::Release);
        let reason = t.reason(&detail);
        match t.to {
            Health::Unhealthy => tracing::warn!(pool = %self.pool, instance, %reason, "instance unhealthy"),
            Health::Healthy => tracing::info!(pool = %self.pool, instance, %reason, "instance healthy"),
        }
        let counts = EventCounts {
            consecutive_successes: t.counts.consecutive_successes,
            consecutive_failures: t.counts.consecutive_failures,
        };
        let kind = EventKind::Health { from: t.from, to: t.to };
        self.events.push(HealthEvent::new(now, self.pool.clone(), instance, kind, reason, counts));
    }
}

impl HealthHandle {
    /// Replaces the set of instances (membership changed). Instances kept with the same
    /// address keep their state and counters.
    pub fn update(&self, targets: Vec<HealthTarget>) {
        // Fails only when the task has ended, and then there is nothing to update.
        let _ = self.targets.send(targets);
    }

    /// Current state of every instance, in target order.
    pub fn status(&self) -> Vec<InstanceHealth> {
        let now = (self.now)();
        lock(&self.shared)
            .iter()
            .map(|e| InstanceHealth {
                instance: e.target.instance.clone(),
                addr: e.target.addr.clone(),
                health: e.state.health(),
                counts: e.state.counts(),
                uptime: e.state.uptime(now),
                checks: e.checks,
                last: e.last.clone(),
            })
            .collect()
    }

    /// Whether the task has ended (it only ends when the handle is dropped or panics).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl std::fmt::Debug for HealthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthHandle").field("finished", &self.task.is_finished()).finish()
    }
}

impl Drop for HealthHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthChecker").field("pool", &self.pool).field("interval", &self.interval).finish()
    }
}
