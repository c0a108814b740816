//! The pool task: one tick of observe → heal → decide → reconcile → publish. See the
//! parent module for the order and why.

use super::{ControlEvent, EventKind, InstanceView, PoolSpec, PoolStatus, PoolView};
use crate::lifecycle::{Event, Instance, Phase, StartupHistory};
use crate::provider::ProviderError;
use ballast_core::autoscale::{decide, EngineMemory, MetricKind, PoolState};
use chrono::{DateTime, Utc};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// An instance, when its drain began and the template version it runs.
pub(super) struct Member {
    pub(super) life: Instance,
    pub(super) drain_started: Option<Duration>,
    pub(super) version: u64,
    /// Its process id when the provider runs it as a local process group.
    pub(super) pid: Option<u32>,
}

impl Member {
    /// `web-3 at 127.0.0.1:20003 (pid 4242)`, for events.
    pub(super) fn describe(&self) -> String {
        let mut s = self.life.id.clone();
        if let Some(a) = &self.life.address {
            s.push_str(&format!(" at {a}"));
        }
        if let Some(pid) = self.pid {
            s.push_str(&format!(" (pid {pid})"));
        }
        s
    }
}

/// A rollout in progress.
#[derive(Debug, Clone)]
pub(super) struct Rolling {
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) limits: crate::rollout::RolloutLimits,
    pub(super) rolled_back: bool,
}

pub(super) struct PoolTask {
    pub(super) spec: PoolSpec,
    view: Arc<Mutex<PoolView>>,
    pub(super) members: Vec<Member>,
    pub(super) target: u32,
    /// Template version new instances get.
    pub(super) version: u64,
    pub(super) rolling: Option<Rolling>,
    memory: EngineMemory,
    startup: StartupHistory,
    /// Provider actions (create, destroy) failed in a row.
    pub(super) failures: u32,
    /// Instances in a row that ended before they were ever ready (a crash loop).
    pub(super) crashes: u32,
    pub(super) retry_at: Duration,
    pub(super) status: PoolStatus,
    last_eval: Option<Duration>,
    last_eval_concurrency: f64,
    last_decision: Option<String>,
    applied: Option<Vec<String>>,
    /// The last membership error, so a lasting one is logged once, not every tick.
    membership_error: Option<String>,
    origin: Instant,
    wall0: DateTime<Utc>,
    tally: Tally,
}

/// Running counts of the events operators chart (the admin listener's counters).
#[derive(Default)]
struct Tally {
    decisions: AtomicU64,
    provider_errors: AtomicU64,
}

impl Tally {
    fn count(&self, kind: &EventKind) {
        let counter = match kind {
            EventKind::Decision => &self.decisions,
            EventKind::ProviderError => &self.provider_errors,
            _ => return,
        };
        counter.fetch_add(1, Relaxed);
    }
}

impl PoolTask {
    pub(super) fn new(spec: PoolSpec, view: Arc<Mutex<PoolView>>) -> Self {
        let target = spec.scaling.min;
        PoolTask {
            spec,
            view,
            members: Vec::new(),
            target,
            version: 0,
            rolling: None,
            memory: EngineMemory::default(),
            startup: StartupHistory::new(50),
            failures: 0,
            crashes: 0,
            retry_at: Duration::ZERO,
            status: PoolStatus::Ok,
            last_eval: None,
            last_eval_concurrency: 0.0,
            last_decision: None,
            applied: None,
            membership_error: None,
            origin: Instant::now(),
            wall0: Utc::now(),
            tally: Tally::default(),
        }
    }

    pub(super) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn wall(&self, now: Duration) -> DateTime<Utc> {
        self.wall0 + chrono::Duration::from_std(now).unwrap_or(chrono::Duration::zero())
    }

    pub(super) fn event(&self, now: Duration, kind: EventKind, reason: String, outcome: String) {
        self.tally.count(&kind);
        let live = self.live();
        let ready = self.count(Phase::Ready);
        self.spec.events.push(ControlEvent {
            at: self.wall(now),
            pool: self.spec.name.clone(),
            kind,
            reason,
            inputs: format!("instances={live} ready={ready} target={}", self.target),
            outcome,
        });
    }

    fn count(&self, phase: Phase) -> usize {
        self.members.iter().filter(|m| m.life.phase == phase).count()
    }

    /// Instances that count towards the target: neither draining nor gone.
    fn live(&self) -> u32 {
        let n = self.members.iter().filter(|m| matches!(m.life.phase, Phase::Pending | Phase::Starting | Phase::Ready)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub(super) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut rollouts: tokio::sync::mpsc::UnboundedReceiver<super::rolling::RolloutRequest>,
        mut updates: tokio::sync::mpsc::UnboundedReceiver<super::PoolUpdate>,
    ) {
        let mut ticker = tokio::time::interval(self.spec.settings.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut demand = self.spec.demand.as_ref().and_then(|d| d.watch(&self.spec.name));
        loop {
            let waking = self.waking();
            tokio::select! {
                _ = ticker.tick() => self.step().await,
                held = demand_changed(&mut demand) => if held > 0 { self.step().await },
                _ = tokio::time::sleep(self.spec.settings.wake_probe), if waking => self.step().await,
                Some(r) = rollouts.recv() => self.start_rollout(self.now(), r.to, r.limits),
                Some(u) = updates.recv() => self.apply_update(self.now(), u),
                _ = stop.changed() => break,
            }
        }
        self.stop_all().await;
    }

    /// New settings from a config reload: bounds apply at once (the target is clamped
    /// into them), policies at the next evaluation, which comes at the next tick.
    fn apply_update(&mut self, now: Duration, u: super::PoolUpdate) {
        self.spec.feed.keep_only(u.metrics);
        self.spec.probe = u.probe;
        self.spec.cost = u.cost;
        let (min, max) = (u.scaling.min, u.scaling.max);
        self.spec.scaling = u.scaling;
        self.last_eval = None;
        let from = self.target;
        self.target = self.target.clamp(min, max.max(min));
        let outcome = if from == self.target { format!("target stays {from}") } else { format!("target {from} → {}", self.target) };
        self.event(now, EventKind::Decision, format!("scaling settings reloaded (min {min}, max {max})"), outcome);
    }

    /// Requests are held for this pool and no instance is ready to take them.
    fn waking(&self) -> bool {
        self.count(Phase::Ready) == 0 && self.pending() > 0
    }

    fn pending(&self) -> u32 {
        self.spec.demand.as_ref().map_or(0, |d| d.pending(&self.spec.name))
    }

    async fn step(&mut self) {
        let now = self.now();
        self.observe(now).await;
        self.heal(now).await;
        let ready: Vec<String> = self.addresses(&[Phase::Ready]);
        let wall = self.wall(now);
        self.spec.feed.refresh(&self.spec.name, &ready, now, wall);
        let groups: Vec<u32> = self
            .members
            .iter()
            .filter(|m| m.life.phase == Phase::Ready)
            .filter_map(|m| self.spec.provider.process_group(&m.life.id))
            .collect();
        if !groups.is_empty() {
            self.spec.feed.refresh_resources(&groups, now, wall);
        }
        if let Some(regular) = self.evaluation_due(now, wall) {
            self.evaluate(now, regular);
        }
        self.reconcile(now).await;
        self.finish_drains(now).await;
        self.update_membership(now);
        self.publish();
    }

    fn addresses(&self, phases: &[Phase]) -> Vec<String> {
        self.members.iter().filter(|m| phases.contains(&m.life.phase)).filter_map(|m| m.life.address.clone()).collect()
    }

    /// Exits seen by the provider, then a probe of every starting and ready instance.
    async fn observe(&mut self, now: Duration) {
        for exit in self.spec.provider.take_exits() {
            if let Some(m) = self.members.iter_mut().find(|m| m.life.id == exit.id) {
                let _ = m.life.apply(Event::Exited(exit.status), now);
            }
        }
        let probe = self.spec.probe.clone();
        let checks = self.members.iter().enumerate().filter_map(|(i, m)| {
            let probed = matches!(m.life.phase, Phase::Starting | Phase::Ready);
            let addr = m.life.address.clone().filter(|_| probed)?;
            let probe = probe.clone();
            Some(async move { (i, probe.check(&addr).await) })
        });
        let results = futures_util::future::join_all(checks).await;
        for (i, passed) in results {
            let m = &mut self.members[i];
            let was = m.life.phase;
            let _ = m.life.apply(if passed { Event::HealthPassed } else { Event::HealthFailed }, now);
            if was == Phase::Starting && m.life.phase == Phase::Ready {
                let took = m.life.startup_time().unwrap_or_default();
                self.startup.record(took);
                let who = m.describe();
                self.event(now, EventKind::Ready, format!("{who} passed its first health check"), format!("ready after {took:?}"));
                self.started_fine(now);
            }
        }
    }

    /// Replaces what is broken: start timeouts, health beyond grace, exits.
    async fn heal(&mut self, now: Duration) {
        let s = self.spec.settings;
        let mut i = 0;
        while i < self.members.len() {
            let reason = self.members[i].life.replacement_reason(now, s.health_grace, s.start_timeout);
            let Some(reason) = reason else {
                i += 1;
                continue;
            };
            let m = self.members.remove(i);
            // the process may still run (start timeout, failing health): make sure it goes
            let cleanup = match self.spec.provider.destroy(&m.life.id).await {
                Ok(()) => "destroyed".to_string(),
                Err(ProviderError::UnknownInstance(_)) => "already gone".to_string(),
                Err(e) => format!("destroy failed: {e}"),
            };
            self.event(now, EventKind::Replace, format!("{}: {reason}", m.describe()), format!("{cleanup}; a replacement will be created"));
            if m.life.startup_time().is_none() {
                self.start_failed(now, &m.describe(), &reason);
            }
            self.check_rollout_failure(now, m.version, &m.life.id, &reason);
        }
        self.members.retain(|m| !m.life.phase.is_terminal());
    }

    /// Whether to evaluate now: the interval passed (`Some(true)`), or concurrency
    /// jumped to `fast_path_ratio` times what the last regular or acting evaluation saw
    /// (`Some(false)`, the fast path; repeated each tick while the jump lasts, since the
    /// engine's window mean catches up over a few samples).
    fn evaluation_due(&mut self, now: Duration, wall: DateTime<Utc>) -> Option<bool> {
        let interval = self.spec.scaling.sync_interval.0;
        let Some(last) = self.last_eval else { return Some(true) };
        if now.saturating_sub(last) >= interval {
            return Some(true);
        }
        if self.live() == 0 && self.pending() > 0 {
            return Some(false); // scale from zero: a held request must not wait for the interval
        }
        let c = self.latest_concurrency(wall);
        (c > 0.0 && c >= (self.last_eval_concurrency * self.spec.settings.fast_path_ratio).max(1.0)).then_some(false)
    }

    fn latest_concurrency(&self, wall: DateTime<Utc>) -> f64 {
        let window = chrono::Duration::from_std(self.spec.settings.tick * 2).unwrap_or(chrono::Duration::zero());
        self.spec.feed.source().summary(&MetricKind::Concurrency, wall - window, wall).map_or(0.0, |s| s.latest)
    }

    fn evaluate(&mut self, now: Duration, regular: bool) {
        let wall = self.wall(now);
        let concurrency = self.latest_concurrency(wall);
        if regular {
            self.last_eval = Some(now);
            self.last_eval_concurrency = concurrency;
        }
        let source = self.spec.feed.source();
        let state = PoolState {
            current: self.live(),
            ready: u32::try_from(self.count(Phase::Ready)).unwrap_or(u32::MAX),
            startup_time: self.startup.summary().map(|s| s.p50).unwrap_or_default(),
            pending_requests: self.pending(),
            ..PoolState::default()
        };
        let d = decide(&state, &self.spec.scaling, self.spec.cost.as_ref(), source, &mut self.memory, wall);
        // every evaluation at debug level; the ones that change the target are events
        tracing::debug!(pool = %self.spec.name, desired = d.desired, target = self.target, reason = %d.reason, "evaluation");
        self.last_decision = Some(d.reason.clone());
        if d.should_act() && d.desired != self.target {
            self.last_eval_concurrency = concurrency;
            let from = self.target;
            self.target = d.desired;
            self.event(now, EventKind::Decision, d.reason, format!("target {from} → {}", d.desired));
        }
    }

    /// Creates up to the target (with backoff) or drains the surplus; during a rollout,
    /// follows the rollout planner instead.
    async fn reconcile(&mut self, now: Duration) {
        if self.rolling.is_some() {
            self.roll(now).await;
            return;
        }
        while self.live() < self.target && now >= self.retry_at {
            let reason = format!("{} live instances, target {}", self.live(), self.target);
            if !self.create_one(now, reason).await {
                break;
            }
        }
        let surplus = self.live().saturating_sub(self.target) as usize;
        if surplus > 0 {
            // starting instances first (nobody uses them yet), then the newest ready ones
            let mut victims: Vec<usize> = (0..self.members.len())
                .filter(|i| matches!(self.members[*i].life.phase, Phase::Starting | Phase::Pending))
                .rev()
                .chain((0..self.members.len()).filter(|i| self.members[*i].life.phase == Phase::Ready).rev())
                .take(surplus)
                .collect();
            victims.sort_unstable();
            for i in victims {
                self.drain(i, now, "above target");
            }
        }
    }

    /// One create through the provider; false when it failed (backoff is set).
    pub(super) async fn create_one(&mut self, now: Duration, reason: String) -> bool {
        let mut life = Instance::pending("(pending)", now);
        match self.spec.provider.create().await {
            Ok(created) => {
                life.id = created.id.clone();
                let _ = life.apply(Event::Started(created.address.clone()), now);
                let pid = self.spec.provider.process_group(&created.id);
                let member = Member { life, drain_started: None, version: self.version, pid };
                let who = member.describe();
                self.members.push(member);
                self.created_fine(now);
                self.event(now, EventKind::Created, reason, who);
                true
            }
            Err(e) => {
                self.provider_failed(now, "create", e);
                false
            }
        }
    }

    /// Takes member `i` out of rotation; [`finish_drains`](Self::finish_drains) stops it.
    pub(super) fn drain(&mut self, i: usize, now: Duration, why: &str) {
        let m = &mut self.members[i];
        let _ = m.life.apply(Event::Drain, now);
        m.drain_started = Some(now);
        let (who, addr) = (m.describe(), m.life.address.clone().unwrap_or_default());
        if let Some(stats) = self.spec.stats.as_ref().and_then(|s| s.stats(&self.spec.name, &addr)) {
            stats.draining.store(true, Relaxed);
        }
        self.event(now, EventKind::Drain, format!("{who} {why}"), "out of rotation, waiting for in-flight".into());
    }

    /// Destroys draining instances once idle or past the drain grace.
    async fn finish_drains(&mut self, now: Duration) {
        let grace = self.spec.settings.drain_grace;
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if m.life.phase != Phase::Draining {
                continue;
            }
            let addr = m.life.address.clone().unwrap_or_default();
            let in_flight = self.spec.stats.as_ref().and_then(|s| s.stats(&self.spec.name, &addr)).map_or(0, |s| s.in_flight.load(Relaxed));
            let waited = now.saturating_sub(m.drain_started.unwrap_or(now));
            if in_flight > 0 && waited < grace {
                continue;
            }
            let (id, who) = (m.life.id.clone(), m.describe());
            match self.spec.provider.destroy(&id).await {
                Ok(()) | Err(ProviderError::UnknownInstance(_)) => {
                    let _ = self.members[i].life.apply(Event::Stopped, now);
                    let how = if in_flight == 0 { "idle".to_string() } else { format!("grace over with {in_flight} in flight") };
                    self.event(now, EventKind::Stopped, format!("{who} drained ({how})"), format!("stopped after {waited:?}"));
                }
                Err(e) => self.provider_failed(now, "destroy", e),
            }
        }
        self.members.retain(|m| !m.life.phase.is_terminal());
    }

    /// Pushes ready + draining addresses to the proxy when they changed.
    fn update_membership(&mut self, now: Duration) {
        let mut addrs = self.addresses(&[Phase::Ready, Phase::Draining]);
        addrs.sort();
        if self.applied.as_ref() == Some(&addrs) {
            return;
        }
        match self.spec.membership.set(&self.spec.name, &addrs) {
            Ok(()) => {
                // stats are kept by address: a new instance on a reused port must not
                // inherit an old drain mark
                if let Some(lookup) = &self.spec.stats {
                    for a in self.addresses(&[Phase::Ready]) {
                        if let Some(s) = lookup.stats(&self.spec.name, &a) {
                            s.draining.store(false, Relaxed);
                        }
                    }
                }
                self.applied = Some(addrs);
                self.membership_error = None;
            }
            Err(e) => {
                if self.membership_error.as_ref() != Some(&e) {
                    self.event(now, EventKind::MembershipError, e.clone(), "retrying every tick".into());
                }
                self.membership_error = Some(e);
            }
        }
    }

    fn publish(&self) {
        let view = PoolView {
            status: self.status.clone(),
            target: self.target,
            instances: self
                .members
                .iter()
                .map(|m| InstanceView { id: m.life.id.clone(), address: m.life.address.clone(), phase: m.life.phase })
                .collect(),
            startup: self.startup.summary(),
            last_decision: self.last_decision.clone(),
            version: self.version,
            rolling: self.rolling.is_some(),
            decisions: self.tally.decisions.load(Relaxed),
            provider_errors: self.tally.provider_errors.load(Relaxed),
        };
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = view;
    }

    /// On shutdown: out of the proxy, then every instance destroyed.
    async fn stop_all(&mut self) {
        let _ = self.spec.membership.set(&self.spec.name, &[]);
        let members = std::mem::take(&mut self.members);
        // all at once: each may take its grace period to exit
        let provider = &self.spec.provider;
        let results = futures_util::future::join_all(members.iter().map(|m| provider.destroy(&m.life.id))).await;
        for (m, result) in members.iter().zip(results) {
            let outcome = match result {
                Ok(()) | Err(ProviderError::UnknownInstance(_)) => "stopped".to_string(),
                Err(e) => format!("stop failed: {e}"),
            };
            self.event(self.now(), EventKind::Stopped, format!("{}: the pool is stopping", m.describe()), outcome);
        }
        self.publish();
    }
}

/// The next change of the held-request count (pending forever without a receiver, or
/// once its sender is gone).
async fn demand_changed(rx: &mut Option<watch::Receiver<u32>>) -> u32 {
    match rx.as_mut() {
        Some(r) => match r.changed().await {
            Ok(()) => *r.borrow_and_update(),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
