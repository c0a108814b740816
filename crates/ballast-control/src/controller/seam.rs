//! The seam between the controller and the data plane: [`ProxySeam`] hands a pool's new
//! address list to the proxy, lends the proxy's live stats to the feed and to draining,
//! and tells the pool task about requests the proxy holds while the pool is at zero.
//!
//! Membership changes go through `ProxyServer::set_pool_instances`, which rebuilds only
//! that pool: addresses that stay keep their `BackendStats` (counters, EWMA, drain mark),
//! new ones start fresh. The proxy keeps the lists of process and exec pools across
//! config reloads ([`ProxySeam::reload`] passes the file's config as is), and a static
//! pool's instances belong to the file, so the seam refuses to set them.

use super::{Demand, Membership};
use crate::metrics::proxy::StatsLookup;
use ballast_core::balance::BackendStats;
use ballast_core::config::{Config, InstanceConfig, ProviderConfig};
use ballast_proxy::ProxyServer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A running proxy seen by the controller.
pub struct ProxySeam {
    server: Arc<ProxyServer>,
    /// Set once the proxy shut down: the pool tasks are stopping their instances.
    closed: AtomicBool,
}

impl ProxySeam {
    /// The seam over `server`.
    pub fn new(server: Arc<ProxyServer>) -> Self {
        ProxySeam { server, closed: AtomicBool::new(false) }
    }

    /// The proxy's stats clock, for [`super::ProxyFeed`].
    pub fn clock(&self) -> Arc<dyn Fn() -> Duration + Send + Sync> {
        let clock = self.server.clock();
        Arc::new(move || clock.now())
    }

    /// From now on membership changes no longer reach the proxy (it shut down, and the
    /// pool tasks are stopping their instances).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Applies a reloaded (validated) `config` to the proxy: process and exec pools keep
    /// the addresses the controller set (none for a new pool), static pools take their
    /// `[[pool.instance]]` list from `config`. On error nothing changed.
    pub fn reload(&self, config: &Config) -> Result<ballast_proxy::ReloadSummary, String> {
        self.server.reload(config).map_err(|e| e.to_string())
    }
}

impl Membership for ProxySeam {
    fn set(&self, pool: &str, addresses: &[String]) -> Result<(), String> {
        let running = self.server.running_config();
        let p = running.pools.iter().find(|p| p.name == pool).ok_or_else(|| format!("no pool {pool:?} in the proxy config"))?;
        if p.provider == ProviderConfig::Static {
            return Err(format!("pool {pool:?} is static in the running config: its instances come from the file"));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let instances: Vec<InstanceConfig> =
            addresses.iter().map(|a| InstanceConfig { address: a.clone(), weight: 1, zone: None }).collect();
        self.server.set_pool_instances(pool, &instances).map_err(|e| format!("proxy membership of pool {pool}: {e}"))
    }
}

impl StatsLookup for ProxySeam {
    fn stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>> {
        self.server.backend_stats(pool, address)
    }
    fn pending(&self, pool: &str) -> Option<u32> {
        Some(self.server.pending_requests(pool))
    }
}

impl Demand for ProxySeam {
    fn pending(&self, pool: &str) -> u32 {
        self.server.pending_requests(pool)
    }
    fn watch(&self, pool: &str) -> Option<watch::Receiver<u32>> {
        self.server.demand(pool)
    }
}
