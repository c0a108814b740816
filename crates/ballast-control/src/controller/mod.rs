//! The controller: one tokio task per pool that gathers metrics, asks the decision engine
//! for a target, and converges the pool on it through the provider.
//!
//! Each tick (default 1 s) the pool task, in order:
//! 1. collects exits the provider saw (crash detection) and probes starting and ready
//!    instances ([`Probe`]); the first pass makes an instance ready;
//! 2. replaces what is broken (auto-healing): an instance that exited, never became
//!    ready within the start timeout, or failed health for longer than the grace is
//!    destroyed and dropped, with a `replace` event naming why; step 4 starts its successor;
//! 3. refreshes the metric windows ([`MetricFeed`]) and, every `sync_interval` of the
//!    pool's scaling config (or at once when concurrency per instance jumps, the fast
//!    path), calls [`decide`](ballast_core::autoscale::decide) and adopts its target;
//! 4. reconciles: creates instances while fewer than the target exist, with exponential
//!    backoff after failures (the pool shows `error` with the cause after
//!    `error_after` failed creates, or instances that never became ready, in a row, and
//!    recovers on the next success; see `failures.rs`); drains surplus
//!    instances (marks their `BackendStats::draining`, waits for in-flight to reach 0 or
//!    the drain grace, then destroys them);
//!    During a rollout ([`PoolHandle::roll_out`]) the [`rollout`](crate::rollout)
//!    planner decides what to create and drain instead, and a failing instance of the
//!    new template switches the provider back (rollback);
//! 5. pushes the ready and draining addresses to the proxy ([`Membership`]) when they
//!    changed.
//!
//! # The proxy seam
//! The controller never touches routing directly: [`Membership::set`] receives the full
//! address list of a pool. [`seam::ProxySeam`] implements it with
//! `ProxyServer::set_pool_instances`, which rebuilds that one pool and keeps live stats
//! by `(pool, address)`; it also implements [`Demand`] from the requests the proxy holds
//! for a pool at zero (`pending_requests`, `demand`).
//!
//! # In the binary
//! [`Fleet`] runs every autoscaled pool of a config (`ballast serve`, `ballast demo`):
//! started with the proxy, kept in step with SIGHUP reloads ([`PoolHandle::update`] for
//! settings, [`PoolHandle::roll_out`] for new templates), stopped after the proxy drained.

pub mod events;
mod failures;
pub mod fleet;
mod pool;
pub mod probe;
mod rolling;
pub mod seam;
pub mod wire;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_real;
#[cfg(test)]
mod tests_fleet;
#[cfg(test)]
mod tests_rollout;

pub use events::{ControlEvent, EventKind, EventLog};
pub use fleet::Fleet;
pub use probe::{HttpProbe, Probe, TcpProbe};
pub use rolling::RolloutRequest;

use crate::lifecycle::{Phase, StartupSummary};
use crate::metrics::proxy::{ProxySampler, StatsLookup};
use crate::metrics::inbox::MetricInbox;
use crate::metrics::resources::ResourceSampler;
use crate::metrics::PoolWindows;
use crate::provider::Provider;
use ballast_core::autoscale::{CostConfig, MetricKind, MetricSource, ScalingConfig};
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Sets the addresses the proxy balances a pool over.
pub trait Membership: Send + Sync {
    /// Replaces pool `pool`'s instance list with `addresses`.
    fn set(&self, pool: &str, addresses: &[String]) -> Result<(), String>;
}

/// Requests the proxy holds for a pool while it has no ready instance (scale from
/// zero): the count feeds the engine's `PoolState::pending_requests`, and a change
/// wakes the pool task at once instead of at its next tick.
pub trait Demand: Send + Sync {
    /// Requests held for `pool` now.
    fn pending(&self, pool: &str) -> u32;
    /// A receiver of the held count of `pool` (None: the proxy does not hold for it).
    fn watch(&self, pool: &str) -> Option<watch::Receiver<u32>>;
}

/// Where a pool's metrics come from.
pub trait MetricFeed: Send {
    /// Takes a sample now; `ready` lists the ready instances' addresses, `now` is the
    /// controller's monotonic time and `wall` the matching UTC time.
    fn refresh(&mut self, pool: &str, ready: &[String], now: Duration, wall: DateTime<Utc>);
    /// Samples CPU and memory of the ready instances' process groups (local process
    /// trees only); default: nothing.
    fn refresh_resources(&mut self, _groups: &[u32], _now: Duration, _wall: DateTime<Utc>) {}
    /// The windows the engine reads.
    fn source(&self) -> &dyn MetricSource;
    /// Records only `metrics` from now on (None: every metric); default: ignored.
    fn keep_only(&mut self, _metrics: Option<Vec<MetricKind>>) {}
}

/// The live feed: samples the proxy's backend stats (rps, concurrency, error rate,
/// EWMA latency) and the CPU and memory of local process instances into bounded windows.
pub struct ProxyFeed {
    lookup: Arc<dyn StatsLookup>,
    clock: Arc<dyn Fn() -> Duration + Send + Sync>,
    sampler: ProxySampler,
    windows: PoolWindows,
    keep: Option<Vec<MetricKind>>,
    resources: ResourceSampler,
    inbox: Option<MetricInbox>,
}

impl ProxyFeed {
    /// Samples through `lookup`; `clock` gives the time base the stats' EWMA is kept on
    /// (the proxy's `clock().now()`). Records every proxy metric.
    pub fn new(lookup: Arc<dyn StatsLookup>, clock: Arc<dyn Fn() -> Duration + Send + Sync>) -> Self {
        ProxyFeed { lookup, clock, sampler: ProxySampler::new(), windows: PoolWindows::new(Default::default()), keep: None, resources: ResourceSampler::new(), inbox: None }
    }

    /// Also drains `inbox` (Prometheus pollers, pushed metrics) at every refresh.
    pub fn with_inbox(mut self, inbox: MetricInbox) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Records only `metrics` (those the pool's policies read), to keep windows small.
    pub fn only(mut self, metrics: Vec<MetricKind>) -> Self {
        self.keep = Some(metrics);
        self
    }
}

impl MetricFeed for ProxyFeed {
    fn refresh(&mut self, pool: &str, ready: &[String], _now: Duration, wall: DateTime<Utc>) {
        let sample = self.sampler.sample(self.lookup.as_ref(), pool, ready, (self.clock)());
        let keep = &self.keep;
        sample.record_only(&mut self.windows, wall, |m| keep.as_ref().is_none_or(|k| k.contains(m)));
        if let Some(inbox) = &self.inbox {
            inbox.drain_into(&mut self.windows);
        }
    }
    fn refresh_resources(&mut self, groups: &[u32], now: Duration, wall: DateTime<Utc>) {
        let Some(r) = self.resources.sample(groups, now) else { return };
        let kept = |m: &MetricKind| self.keep.as_ref().is_none_or(|k| k.contains(m));
        if let Some(cpu) = r.cpu_percent.filter(|_| kept(&MetricKind::Cpu)) {
            self.windows.push(MetricKind::Cpu, wall, cpu);
        }
        if kept(&MetricKind::Memory) {
            self.windows.push(MetricKind::Memory, wall, r.memory_percent);
        }
    }
    fn source(&self) -> &dyn MetricSource {
        &self.windows
    }
    fn keep_only(&mut self, metrics: Option<Vec<MetricKind>>) {
        self.keep = metrics;
    }
}

/// Timing of the pool task. Defaults in parentheses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Probe, heal and reconcile cadence (default 1 s).
    pub tick: Duration,
    /// A ready instance failing health this long is replaced (default 30 s).
    pub health_grace: Duration,
    /// An instance not ready this long after creation is replaced (default 60 s).
    pub start_timeout: Duration,
    /// Longest wait for a draining instance's in-flight requests (default 30 s).
    pub drain_grace: Duration,
    /// First retry delay after a provider failure; doubles each time (default 1 s).
    pub retry_initial: Duration,
    /// Longest retry delay (default 60 s).
    pub retry_max: Duration,
    /// Failures in a row that put the pool in `error` (default 3).
    pub error_after: u32,
    /// Evaluate before the interval when concurrency is this many times what the last
    /// evaluation saw (default 1.5).
    pub fast_path_ratio: f64,
    /// Probe cadence while requests are held and no instance is ready yet, so a held
    /// request waits about the start-up time, not a tick more (default 50 ms).
    pub wake_probe: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick: Duration::from_secs(1),
            health_grace: Duration::from_secs(30),
            start_timeout: Duration::from_secs(60),
            drain_grace: Duration::from_secs(30),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            error_after: 3,
            fast_path_ratio: 1.5,
            wake_probe: Duration::from_millis(50),
        }
    }
}

/// Everything a pool task needs.
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// `[pool.scaling]`.
    pub scaling: ScalingConfig,
    /// `[pool.cost]`.
    pub cost: Option<CostConfig>,
    /// Creates and destroys instances.
    pub provider: Arc<dyn Provider>,
    /// Readiness and health of instances.
    pub probe: Arc<dyn Probe>,
    /// Metrics for the engine.
    pub feed: Box<dyn MetricFeed>,
    /// The proxy's membership.
    pub membership: Arc<dyn Membership>,
    /// Live stats, for draining (None: instances are stopped without waiting).
    pub stats: Option<Arc<dyn StatsLookup>>,
    /// Timing.
    pub settings: Settings,
    /// Where events go.
    pub events: EventLog,
    /// Requests held by the proxy (scale from zero); None: nothing is held.
    pub demand: Option<Arc<dyn Demand>>,
}

/// Health of the pool's control loop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum PoolStatus {
    /// Working.
    Ok,
    /// The provider keeps failing.
    Error {
        /// The last failure.
        cause: String,
    },
}

/// One instance as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceView {
    /// Provider id.
    pub id: String,
    /// Address.
    pub address: Option<String>,
    /// Phase.
    pub phase: Phase,
}

/// What the pool looks like now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolView {
    /// `ok` or `error` with its cause.
    pub status: PoolStatus,
    /// The count the controller converges on.
    pub target: u32,
    /// Live instances (terminal ones are dropped).
    pub instances: Vec<InstanceView>,
    /// Start-up times of recent instances.
    pub startup: Option<StartupSummary>,
    /// The last decision's reason.
    pub last_decision: Option<String>,
    /// The template version new instances get.
    pub version: u64,
    /// True while a rollout (or its rollback) is in progress.
    pub rolling: bool,
    /// Decisions that changed the target or the settings, since the task started.
    pub decisions: u64,
    /// Provider calls that failed (create, destroy, list), since the task started.
    pub provider_errors: u64,
}

impl PoolView {
    /// Instances in `phase`.
    pub fn count(&self, phase: Phase) -> usize {
        self.instances.iter().filter(|i| i.phase == phase).count()
    }
}

/// New settings for a running pool task (a config reload).
pub struct PoolUpdate {
    /// The new `[pool.scaling]`.
    pub scaling: ScalingConfig,
    /// The new `[pool.cost]`.
    pub cost: Option<CostConfig>,
    /// The readiness probe for `[pool.health]`.
    pub probe: Arc<dyn Probe>,
    /// The metrics to record (None: all), as [`wire::policy_metrics`] gives them.
    pub metrics: Option<Vec<MetricKind>>,
}

/// A running pool task.
pub struct PoolHandle {
    view: Arc<Mutex<PoolView>>,
    stop: watch::Sender<bool>,
    rollouts: tokio::sync::mpsc::UnboundedSender<RolloutRequest>,
    updates: tokio::sync::mpsc::UnboundedSender<PoolUpdate>,
    task: JoinHandle<()>,
}

impl PoolHandle {
    /// Starts the task for `spec` (inside a tokio runtime).
    pub fn spawn(spec: PoolSpec) -> Self {
        let view = Arc::new(Mutex::new(PoolView {
            status: PoolStatus::Ok,
            target: spec.scaling.min,
            instances: Vec::new(),
            startup: None,
            last_decision: None,
            version: 0,
            rolling: false,
            decisions: 0,
            provider_errors: 0,
        }));
        let (stop, stop_rx) = watch::channel(false);
        let (rollouts, rollouts_rx) = tokio::sync::mpsc::unbounded_channel();
        let (updates, updates_rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(pool::PoolTask::new(spec, view.clone()).run(stop_rx, rollouts_rx, updates_rx));
        PoolHandle { view, stop, rollouts, updates, task }
    }

    /// Applies new scaling, cost and health settings to the running task: the bounds
    /// at once, the policies from the next evaluation (at the next tick).
    pub fn update(&self, update: PoolUpdate) {
        let _ = self.updates.send(update);
    }

    /// Rolls every instance to template version `to` (registered with the provider)
    /// within `limits`; a failing new instance rolls back. Progress shows as `rollout`
    /// and `rolled-back` events and in [`PoolView::rolling`].
    pub fn roll_out(&self, request: RolloutRequest) {
        let _ = self.rollouts.send(request);
    }

    /// The pool now.
    pub fn view(&self) -> PoolView {
        self.view.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The cell the task publishes its view into: readers (the admin listener) keep it
    /// and see every later update without holding the handle.
    pub fn shared_view(&self) -> Arc<Mutex<PoolView>> {
        self.view.clone()
    }

    /// Stops the task and destroys every instance it owns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
