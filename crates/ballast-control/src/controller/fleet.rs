//! Every autoscaled pool of a running config, kept in step with reloads: what
//! `ballast serve` and `ballast demo` run next to the proxy.
//!
//! [`Fleet::start`] starts a pool task (and a Prometheus poller when its policies read
//! `prometheus:` metrics) for every pool with `[pool.scaling]` and a process or exec
//! provider. [`Fleet::reload`] applies a new config:
//! - the proxy first ([`ProxySeam::reload`]; when it refuses, nothing changes);
//! - a pool no longer autoscaled: its task stops and destroys its instances;
//! - a new autoscaled pool: a task starts;
//! - a changed process template (command, args, env, ...): the template is registered
//!   with the provider and a rolling update starts (one extra instance at a time, none
//!   below the target); a changed exec provider or a changed provider kind restarts
//!   the pool task (exec scripts have no templates);
//! - changed scaling, cost or health settings: sent to the running task
//!   ([`PoolHandle::update`]) and the Prometheus poller restarted.
//!
//! [`Fleet::shutdown`] stops every task, which destroys every instance it started.
//!
//! [`Fleet::start`] also reaps what a previous ballast left running under the same log
//! directory ([`reap_leftovers`]: instance records of replicas whose ballast was
//! SIGKILLed); each reaped leftover is a `stopped` event, and process pools start their
//! first instance only once the reaping is done.

use super::seam::ProxySeam;
use super::wire::{new_inbox, not_autoscaled, policy_metrics, probe_for, provider_for, spawn_pool, spawn_prometheus, Wiring};
use super::{ControlEvent, EventKind, EventLog, PoolHandle, PoolUpdate, PoolView, RolloutRequest};
use crate::metrics::inbox::MetricInbox;
use crate::provider::logs::LogPolicy;
use crate::provider::reap::{reap_leftovers, Outcome, ReapGate};
use crate::provider::{ProcessProvider, Provider};
use crate::rollout::RolloutLimits;
use ballast_core::config::{Config, PoolConfig, ProviderConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Rolling updates started by a reload: one extra instance at a time, none missing.
pub const RELOAD_ROLLOUT: RolloutLimits = RolloutLimits { max_surge: 1, max_unavailable: 0 };

/// One running autoscaled pool.
struct Entry {
    /// The pool as last applied.
    config: PoolConfig,
    handle: PoolHandle,
    /// The concrete provider of a process pool (templates are registered on it).
    process: Option<Arc<ProcessProvider>>,
    /// The template version new instances get.
    version: u64,
    inbox: MetricInbox,
    poller: Option<JoinHandle<()>>,
}

/// The running autoscaled pools. See the module documentation.
pub struct Fleet {
    seam: Arc<ProxySeam>,
    wiring: Wiring,
    pools: BTreeMap<String, Entry>,
    /// Opens once the previous run's leftovers are reaped.
    reaped: ReapGate,
}

impl Fleet {
    /// Starts every autoscaled pool of `config` (the proxy behind `seam` runs it).
    /// Returns the fleet and one note per pool that has a scaling section or a provider
    /// but is not autoscaled, or whose Prometheus poller cannot start.
    pub fn start(config: &Config, seam: Arc<ProxySeam>, wiring: Wiring) -> (Fleet, Vec<String>) {
        let (dir, events) = (wiring.log_dir.clone(), wiring.events.clone());
        let reaped = ReapGate::after(async move { reaped_events(&reap_leftovers(&dir).await, &events) });
        let mut fleet = Fleet { seam, wiring, pools: BTreeMap::new(), reaped };
        let mut notes = Vec::new();
        for pool in &config.pools {
            match not_autoscaled(pool) {
                Some(note) => notes.extend(Some(note).filter(|n| !n.is_empty())),
                None => notes.extend(fleet.spawn(pool)),
            }
        }
        (fleet, notes)
    }

    /// Starts pool `pool`'s task; a note when its poller cannot start.
    fn spawn(&mut self, pool: &PoolConfig) -> Option<String> {
        let process = match &pool.provider {
            ProviderConfig::Process(p) => Some(Arc::new(ProcessProvider::new(
                &pool.name,
                p.clone(),
                LogPolicy::in_dir(self.wiring.log_dir.join(&pool.name)),
            )
            .after_reaping(self.reaped.clone()))),
            _ => None,
        };
        let provider: Arc<dyn Provider> = match &process {
            Some(p) => p.clone(),
            None => provider_for(pool, &self.wiring.log_dir)?,
        };
        let inbox = new_inbox();
        let handle = spawn_pool(pool, provider, inbox.clone(), &self.seam, &self.wiring);
        let (poller, note) = self.poller(pool, &inbox);
        tracing::info!(pool = %pool.name, provider = ?pool.provider.kind(), "autoscaling started");
        let entry = Entry { config: pool.clone(), handle, process, version: 0, inbox, poller };
        self.pools.insert(pool.name.clone(), entry);
        note
    }

    fn poller(&self, pool: &PoolConfig, inbox: &MetricInbox) -> (Option<JoinHandle<()>>, Option<String>) {
        match pool.scaling.as_ref().map(|s| spawn_prometheus(s, inbox)) {
            Some(Ok(poller)) => (poller, None),
            Some(Err(e)) => (None, Some(format!("pool {}: prometheus metrics not polled: {e}", pool.name))),
            None => (None, None),
        }
    }

    /// Applies a reloaded (validated) `config`: see the module documentation. Returns
    /// one line per change made, or the proxy's error (then nothing changed).
    pub async fn reload(&mut self, config: &Config) -> Result<Vec<String>, String> {
        self.seam.reload(config)?;
        let mut changes = Vec::new();
        let wanted: BTreeMap<&str, &PoolConfig> =
            config.pools.iter().filter(|p| not_autoscaled(p).is_none()).map(|p| (p.name.as_str(), p)).collect();
        let gone: Vec<String> = self.pools.keys().filter(|n| !wanted.contains_key(n.as_str())).cloned().collect();
        for name in gone {
            if let Some(e) = self.pools.remove(&name) {
                stop(e).await;
                changes.push(format!("pool {name}: autoscaling stopped (no longer an autoscaled pool)"));
            }
        }
        for (name, pool) in wanted {
            let Some(entry) = self.pools.get_mut(name) else {
                changes.extend(self.spawn(pool));
                changes.push(format!("pool {name}: autoscaling started"));
                continue;
            };
            if entry.config == *pool {
                continue;
            }
            match (&entry.process, &pool.provider) {
                (Some(process), ProviderConfig::Process(template)) if entry.config.provider != pool.provider => {
                    entry.version += 1;
                    process.add_template(entry.version, template.clone());
                    entry.handle.roll_out(RolloutRequest { to: entry.version, limits: RELOAD_ROLLOUT });
                    changes.push(format!("pool {name}: instance template changed: rolling update to template {}", entry.version));
                }
                _ if entry.config.provider != pool.provider => {
                    if let Some(e) = self.pools.remove(name) {
                        stop(e).await;
                    }
                    changes.extend(self.spawn(pool));
                    changes.push(format!("pool {name}: provider changed: pool task restarted with new instances"));
                    continue;
                }
                _ => {}
            }
            let scaling = pool.scaling.clone().unwrap_or_default();
            if entry.config.scaling != pool.scaling || entry.config.cost != pool.cost || entry.config.health != pool.health {
                let metrics = policy_metrics(&scaling);
                entry.handle.update(PoolUpdate { scaling, cost: pool.cost.clone(), probe: probe_for(pool), metrics });
                changes.push(format!("pool {name}: scaling, cost and health settings applied to the running pool"));
                if let Some(p) = entry.poller.take() {
                    p.abort();
                }
                let inbox = entry.inbox.clone();
                let (poller, note) = self.poller(pool, &inbox);
                changes.extend(note);
                if let Some(entry) = self.pools.get_mut(name) {
                    entry.poller = poller;
                }
            }
            if let Some(entry) = self.pools.get_mut(name) {
                entry.config = pool.clone();
            }
        }
        for c in &changes {
            tracing::info!("{c}");
        }
        Ok(changes)
    }

    /// The names of the running autoscaled pools.
    pub fn names(&self) -> Vec<String> {
        self.pools.keys().cloned().collect()
    }

    /// Pool `name` now.
    pub fn view(&self, name: &str) -> Option<PoolView> {
        self.pools.get(name).map(|e| e.handle.view())
    }

    /// Every running pool's view cell ([`PoolHandle::shared_view`]), by name.
    pub fn shared_views(&self) -> Vec<(String, Arc<Mutex<PoolView>>)> {
        self.pools.iter().map(|(name, e)| (name.clone(), e.handle.shared_view())).collect()
    }

    /// Stops every pool task (each destroys every instance it started). Call it after
    /// the proxy shut down: membership changes no longer reach it.
    pub async fn shutdown(self) {
        self.seam.close();
        futures_util::future::join_all(self.pools.into_values().map(stop)).await;
    }
}

/// One `stopped` event per reaped leftover (failures too: the operator must know).
fn reaped_events(outcomes: &[Outcome], events: &EventLog) {
    for o in outcomes {
        let (r, outcome) = match o {
            Outcome::Reaped { record, how } => (record, how.clone()),
            Outcome::Failed { record, reason } => (record, format!("not stopped: {reason}")),
            Outcome::Gone { .. } | Outcome::Skipped { .. } => continue,
        };
        events.push(ControlEvent {
            at: chrono::Utc::now(),
            pool: r.pool.clone(),
            kind: EventKind::Stopped,
            reason: format!("reaped leftover instance {} (pid {}) from a previous run", r.instance, r.pid),
            inputs: format!("port {}, started by ballast pid {}, command {:?}", r.port, r.owner_pid, r.command.join(" ")),
            outcome,
        });
    }
}

async fn stop(e: Entry) {
    if let Some(p) = e.poller {
        p.abort();
    }
    e.handle.shutdown().await;
    tracing::info!(pool = %e.config.name, "autoscaling stopped; every instance it started is stopped");
}
