//! The resilience parts of `ballast-core` wired to the proxy: per-instance state that
//! survives reloads ([`GuardRegistry`]: outlier slot, circuit breaker, in-flight count,
//! keyed by pool and address; retry budgets by pool), the per-pool view the request path
//! uses ([`PoolGuard`]: admission at pick time, outcome recording, retry budget, the
//! pending queue), and the background tasks of each pool ([`TaskSupervisor`]: the active
//! [`HealthChecker`] and, for `adaptive` pools, the latency [`Prober`]).
//!
//! The request path only touches atomics here; the registry's locks are taken when a
//! snapshot is built and by the periodic task that ends ejections of instances found healthy again and reports
//! returned ones.

use crate::health::{HealthChecker, HealthHandle, HealthTarget, InstanceHealth};
use crate::probe::{ProbeSettings, Prober, ProberHandle};
use crate::stats_glue::Clock;
use ballast_core::balance::{Algorithm, BackendStats};
use ballast_core::config::{CircuitBreakerConfig, Config, HealthCheckConfig, PoolConfig, RetryConfig};
use ballast_core::resilience::{
    try_acquire_in_flight, CircuitBreaker, EventKind, EventLog, Health, OutlierDetector, OutlierSlot,
    OutlierTransition, Outcome, PendingGate, PendingPermit, QueueFull, RetryBudget, Ticket,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// State of one instance that outlives snapshots.
#[derive(Debug, Clone)]
struct InstanceShared {
    outlier: Arc<OutlierSlot>,
    breaker: Arc<CircuitBreaker>,
    breaker_cfg: CircuitBreakerConfig,
    in_flight: Arc<AtomicU32>,
}

/// Per-instance and per-pool resilience state, shared by all listeners and kept across
/// reloads (a breaker is replaced only when its pool's breaker settings change).
#[derive(Debug)]
pub struct GuardRegistry {
    instances: Mutex<HashMap<(String, String), InstanceShared>>,
    budgets: Mutex<HashMap<String, (RetryConfig, Arc<RetryBudget>)>>,
    events: Arc<EventLog>,
}

impl Default for GuardRegistry {
    fn default() -> Self {
        GuardRegistry {
            instances: Mutex::default(),
            budgets: Mutex::default(),
            events: Arc::new(EventLog::default()),
        }
    }
}

impl GuardRegistry {
    /// The shared log of health, outlier and breaker transitions.
    pub fn events(&self) -> Arc<EventLog> {
        Arc::clone(&self.events)
    }

    fn instance(&self, pc: &PoolConfig, addr: &str) -> InstanceShared {
        let mut map = self.instances.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry((pc.name.clone(), addr.to_string())).or_insert_with(|| InstanceShared {
            outlier: Arc::default(),
            breaker: Arc::new(CircuitBreaker::new(&pc.circuit_breaker)),
            breaker_cfg: pc.circuit_breaker.clone(),
            in_flight: Arc::default(),
        });
        if entry.breaker_cfg != pc.circuit_breaker {
            entry.breaker = Arc::new(CircuitBreaker::new(&pc.circuit_breaker));
            entry.breaker_cfg = pc.circuit_breaker.clone();
        }
        entry.clone()
    }

    fn budget(&self, pc: &PoolConfig) -> Arc<RetryBudget> {
        let mut map = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&pc.name) {
            Some((cfg, b)) if *cfg == pc.retry => Arc::clone(b),
            _ => {
                let b = Arc::new(RetryBudget::new(&pc.retry));
                map.insert(pc.name.clone(), (pc.retry.clone(), Arc::clone(&b)));
                b
            }
        }
    }

    /// Builds the request-path view of pool `pc` (instances in config order).
    pub fn pool_guard(&self, pc: &PoolConfig) -> PoolGuard {
        let shared: Vec<InstanceShared> = pc.instances.iter().map(|i| self.instance(pc, &i.address)).collect();
        let outlier = pc.outlier.enabled.then(|| {
            OutlierDetector::new(&pc.outlier, shared.iter().map(|s| Arc::clone(&s.outlier)).collect())
        });
        PoolGuard {
            pool: pc.name.clone(),
            ids: pc.instances.iter().map(|i| i.address.clone()).collect(),
            outlier,
            breakers: if pc.circuit_breaker.enabled {
                shared.iter().map(|s| Arc::clone(&s.breaker)).collect()
            } else {
                Vec::new()
            },
            breaker_cfg: pc.circuit_breaker.clone(),
            in_flight: shared.iter().map(|s| Arc::clone(&s.in_flight)).collect(),
            max_in_flight: pc.limits.max_in_flight_per_instance,
            pending: Arc::new(PendingGate::new(&pc.limits)),
            room: Arc::new(Notify::new()),
            retry: self.budget(pc),
            retries: usize::try_from(pc.retry.attempts).unwrap_or(usize::MAX),
            events: self.events(),
        }
    }

    /// Forgets instances and pools that `config` no longer has.
    pub fn retain_config(&self, config: &Config) {
        let keep: HashSet<(&str, &str)> = config
            .pools
            .iter()
            .flat_map(|p| p.instances.iter().map(move |i| (p.name.as_str(), i.address.as_str())))
            .collect();
        let mut map = self.instances.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|(pool, id), _| keep.contains(&(pool.as_str(), id.as_str())));
        drop(map);
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        budgets.retain(|pool, _| config.pools.iter().any(|p| &p.name == pool));
    }

    /// The periodic chores, given the last event seen (returns the new one): an active
    /// health check that found an ejected instance healthy again ends its ejection, and
    /// every ejection that ran out is logged as `Returned`.
    pub fn tick(&self, now: Duration, seen: u64) -> u64 {
        let recent = self.events.since(seen);
        let last = recent.last().map_or(seen, |e| e.seq);
        let map = self.instances.lock().unwrap_or_else(PoisonError::into_inner);
        for e in &recent {
            if matches!(e.kind, EventKind::Health { to: Health::Healthy, .. }) {
                if let Some(s) = map.get(&(e.pool.clone(), e.instance.clone())) {
                    if s.outlier.reinstate(now) {
                        tracing::info!(pool = %e.pool, instance = %e.instance, "healthy again: ejection ended early");
                    }
                }
            }
        }
        let all: Vec<(&(String, String), Arc<OutlierSlot>)> =
            map.iter().map(|(k, v)| (k, Arc::clone(&v.outlier))).collect();
        let detector =
            OutlierDetector::new(&Default::default(), all.iter().map(|(_, s)| Arc::clone(s)).collect());
        for i in detector.returned(now) {
            let (pool, instance) = all[i].0;
            self.events.push(OutlierTransition::Returned.event(now, pool, instance));
        }
        last
    }
}

/// How often [`GuardRegistry::tick`] runs.
const TICK: Duration = Duration::from_millis(100);

/// `Retry-After` for an ejected instance (the slot does not expose its end time).
const EJECTED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why no instance of a pool could take a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The instance is ejected or its breaker is open; try another.
    Unavailable(Duration),
    /// The instance is at `max_in_flight_per_instance`.
    Busy,
}

/// The request-path view of one pool's resilience state; built with each snapshot.
#[derive(Debug)]
pub struct PoolGuard {
    pool: String,
    ids: Vec<String>,
    outlier: Option<OutlierDetector>,
    /// Empty when the breaker is disabled.
    breakers: Vec<Arc<CircuitBreaker>>,
    breaker_cfg: CircuitBreakerConfig,
    in_flight: Vec<Arc<AtomicU32>>,
    max_in_flight: Option<u32>,
    pending: Arc<PendingGate>,
    room: Arc<Notify>,
    retry: Arc<RetryBudget>,
    retries: usize,
    events: Arc<EventLog>,
}

/// One admitted attempt on instance `idx`; give it back with [`PoolGuard::finish`].
/// Dropping it (the client went away) releases the in-flight slot without a verdict.
#[derive(Debug)]
pub struct Admission<'a> {
    guard: &'a PoolGuard,
    idx: usize,
    ticket: Option<Ticket>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.guard.in_flight.get(self.idx) {
            c.fetch_sub(1, Ordering::AcqRel);
            if self.guard.max_in_flight.is_some() {
                self.guard.room.notify_one();
            }
        }
    }
}

impl PoolGuard {
    /// Retries allowed after the first attempt (`[pool.retry] attempts`).
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// Admits an attempt on instance `idx` at `now`: refused while it is ejected, its
    /// breaker is open (or half-open with its trials taken), or it is at its in-flight
    /// limit.
    pub fn admit(&self, idx: usize, now: Duration) -> Result<Admission<'_>, Refusal> {
        if let Some(o) = &self.outlier {
            if o.is_ejected(idx, now) {
                return Err(Refusal::Unavailable(EJECTED_RETRY_AFTER));
            }
        }
        let counter = self.in_flight.get(idx).ok_or(Refusal::Unavailable(Duration::from_secs(1)))?;
        if !try_acquire_in_flight(counter, self.max_in_flight) {
            return Err(Refusal::Busy);
        }
        let mut admission = Admission { guard: self, idx, ticket: None };
        if let Some(b) = self.breakers.get(idx) {
            match b.allow(now) {
                Ok(ticket) => {
                    if let Some(t) = ticket.transition() {
                        self.events.push(t.event(now, &self.pool, &self.ids[idx], &self.breaker_cfg));
                    }
                    admission.ticket = Some(ticket);
                }
                Err(r) => return Err(Refusal::Unavailable(r.retry_after)),
            }
        }
        Ok(admission)
    }

    /// Whether instance `idx` would be admitted by outlier detection and its breaker
    /// (ignoring the in-flight limit), without taking anything.
    pub fn usable(&self, idx: usize, now: Duration) -> bool {
        let ejected = self.outlier.as_ref().is_some_and(|o| o.is_ejected(idx, now));
        let open = self.breakers.get(idx).is_some_and(|b| b.is_refusing(now));
        !ejected && !open
    }

    /// Records how an admitted attempt ended (`None`: no verdict on the instance, e.g. a
    /// pooled connection it had closed) and releases its in-flight slot.
    pub fn finish(&self, mut admission: Admission<'_>, outcome: Option<Outcome>, now: Duration) {
        let Some(outcome) = outcome else { return };
        let idx = admission.idx;
        let id = &self.ids[idx];
        if let (Some(b), Some(ticket)) = (self.breakers.get(idx), admission.ticket.take()) {
            if let Some(t) = b.record(ticket, outcome, now) {
                tracing::warn!(pool = %self.pool, instance = %id, to = %t.to, "circuit breaker");
                self.events.push(t.event(now, &self.pool, id, &self.breaker_cfg));
            }
        }
        if let Some(o) = &self.outlier {
            if let Some(t) = o.record(idx, outcome, now) {
                tracing::warn!(pool = %self.pool, instance = %id, reason = %t.reason(), "instance ejected");
                self.events.push(t.event(now, &self.pool, id));
            }
        }
    }

    /// Counts a first attempt toward the retry budget.
    pub fn first_attempt(&self, now: Duration) {
        self.retry.deposit(now);
    }

    /// Whether the budget allows one more retry now (takes it when yes).
    pub fn may_retry(&self, now: Duration) -> bool {
        self.retry.try_withdraw(now)
    }

    /// Joins the pool's pending queue (every instance is at its in-flight limit).
    pub fn enter_queue(&self) -> Result<PendingPermit, QueueFull> {
        self.pending.try_enter()
    }

    /// Longest wait in the pending queue.
    pub fn queue_timeout(&self) -> Duration {
        self.pending.queue_timeout()
    }

    /// Resolves when an in-flight slot of the pool frees up (or spuriously).
    pub async fn room(&self) {
        self.room.notified().await;
    }
}

/// The background tasks of one pool.
#[derive(Debug, Default)]
struct PoolTasks {
    health: Option<(HealthCheckConfig, HealthHandle)>,
    prober: Option<ProberHandle>,
}

/// The background tasks of every pool, started, updated and stopped with the config.
#[derive(Debug, Default)]
pub struct TaskSupervisor {
    pools: Mutex<HashMap<String, PoolTasks>>,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for TaskSupervisor {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            t.abort();
        }
    }
}

impl TaskSupervisor {
    /// The active-check state of every instance of every pool with health checks, by
    /// pool name (sorted).
    pub fn health_status(&self) -> Vec<(String, Vec<InstanceHealth>)> {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(String, Vec<InstanceHealth>)> = pools
            .iter()
            .filter_map(|(name, t)| t.health.as_ref().map(|(_, h)| (name.clone(), h.status())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Makes the running tasks match `config`: a health checker per pool with a
    /// `[pool.health]` (restarted when its settings change, else given the new instance
    /// list), a prober per `adaptive` pool; tasks of pools that went away stop. `stats`
    /// gives each instance's live stats. Must run inside a tokio runtime.
    pub fn sync(
        &self,
        config: &Config,
        clock: Clock,
        guards: &Arc<GuardRegistry>,
        stats: impl Fn(&str, &str) -> Arc<BackendStats>,
    ) {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|name, _| config.pools.iter().any(|p| &p.name == name));
        for pc in &config.pools {
            let tasks = pools.entry(pc.name.clone()).or_default();
            let targets: Vec<(String, Arc<BackendStats>)> =
                pc.instances.iter().map(|i| (i.address.clone(), stats(&pc.name, &i.address))).collect();
            sync_health(pc, tasks, &targets, clock, guards);
            sync_prober(pc, tasks, targets, clock);
        }
        drop(pools);
        let mut ticker = self.ticker.lock().unwrap_or_else(PoisonError::into_inner);
        if ticker.is_none() {
            let guards = Arc::clone(guards);
            *ticker = Some(tokio::spawn(async move {
                let mut every = tokio::time::interval(TICK);
                let mut seen = 0;
                loop {
                    every.tick().await;
                    seen = guards.tick(clock.now(), seen);
                }
            }));
        }
    }
}

fn sync_health(
    pc: &PoolConfig,
    tasks: &mut PoolTasks,
    targets: &[(String, Arc<BackendStats>)],
    clock: Clock,
    guards: &GuardRegistry,
) {
    let Some(cfg) = &pc.health else {
        if tasks.health.take().is_some() {
            // Checks turned off: nobody will flip the flag back, so trust every instance.
            for (_, s) in targets {
                s.healthy.store(true, Ordering::Release);
            }
        }
        return;
    };
    let list = || targets.iter().map(|(a, s)| HealthTarget::new(a.clone(), a.clone(), Arc::clone(s))).collect();
    match &tasks.health {
        Some((running, handle)) if running == cfg => handle.update(list()),
        _ => match HealthChecker::spawn(pc.name.clone(), cfg, list(), guards.events(), move || clock.now()) {
            Ok(handle) => tasks.health = Some((cfg.clone(), handle)),
            Err(e) => {
                tasks.health = None;
                tracing::error!(pool = %pc.name, error = %e, "health checks cannot run for this pool");
            }
        },
    }
}

fn sync_prober(pc: &PoolConfig, tasks: &mut PoolTasks, targets: Vec<(String, Arc<BackendStats>)>, clock: Clock) {
    if pc.balance != Algorithm::Adaptive {
        tasks.prober = None;
        return;
    }
    let result = match &tasks.prober {
        Some(p) => p.update(targets),
        None => Prober::spawn(targets, ProbeSettings::default(), clock.origin()).map(|p| {
            tasks.prober = Some(p);
        }),
    };
    if let Err(e) = result {
        tracing::error!(pool = %pc.name, error = %e, "latency probes cannot run for this pool");
    }
}
