//! The seam between the controller and the data plane: [`ProxySeam`] turns a pool's new
//! address list into a proxy reload, and lends the proxy's live stats to the feed and
//! to draining.
//!
//! Membership changes rebuild the whole `Config` the proxy was started with, the pool's
//! `[[pool.instance]]` list replaced by the controller's ready and draining addresses,
//! and call `ProxyServer::reload`. The proxy keeps `BackendStats` by `(pool, address)`,
//! so counters, EWMA and the drain mark survive the swap. In the copy given to the
//! proxy every provider reads `static` (the proxy only balances; validation refuses
//! instances next to another provider kind).
//!
//! A config reload goes through [`ProxySeam::reload`], which keeps the controller's
//! current addresses for every pool that still has a process or exec provider.

use super::Membership;
use crate::metrics::proxy::StatsLookup;
use ballast_core::balance::BackendStats;
use ballast_core::config::{Config, InstanceConfig, ProviderConfig};
use ballast_proxy::ProxyServer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A running proxy seen by the controller.
pub struct ProxySeam {
    server: Arc<ProxyServer>,
    config: Mutex<Config>,
    /// Set once the proxy shut down: a reload then would start its listeners again.
    closed: AtomicBool,
}

impl ProxySeam {
    /// The seam over `server`, which was started with `config`.
    pub fn new(server: Arc<ProxyServer>, config: Config) -> Self {
        ProxySeam { server, config: Mutex::new(config), closed: AtomicBool::new(false) }
    }

    /// From now on membership changes no longer reach the proxy (it shut down, and the
    /// pool tasks are stopping their instances).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// The proxy's stats clock, for [`super::ProxyFeed`].
    pub fn clock(&self) -> Arc<dyn Fn() -> Duration + Send + Sync> {
        let clock = self.server.clock();
        Arc::new(move || clock.now())
    }
}

impl ProxySeam {
    /// Applies a reloaded (validated) `config` to the proxy: pools with a process or
    /// exec provider keep the addresses the controller set (none for a new pool),
    /// static pools take their `[[pool.instance]]` list from `config`. On error nothing
    /// changed.
    pub fn reload(&self, config: &Config) -> Result<ballast_proxy::ReloadSummary, String> {
        let mut current = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = config.clone();
        for p in next.pools.iter_mut().filter(|p| p.provider != ProviderConfig::Static) {
            let old = current.pools.iter().find(|o| o.name == p.name && o.provider != ProviderConfig::Static);
            p.instances = old.map(|o| o.instances.clone()).unwrap_or_default();
        }
        let summary = self.server.reload(&for_proxy(&next)).map_err(|e| e.to_string())?;
        *current = next;
        Ok(summary)
    }
}

/// The config as the proxy sees it: every provider `static`.
fn for_proxy(config: &Config) -> Config {
    let mut out = config.clone();
    for p in &mut out.pools {
        p.provider = ProviderConfig::Static;
    }
    out
}

impl Membership for ProxySeam {
    fn set(&self, pool: &str, addresses: &[String]) -> Result<(), String> {
        let mut config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let p = config.pools.iter_mut().find(|p| p.name == pool).ok_or_else(|| format!("no pool {pool:?} in the proxy config"))?;
        if p.provider == ProviderConfig::Static {
            return Err(format!("pool {pool:?} is static in the running config: its instances come from the file"));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let weight = |a: &str| p.instances.iter().find(|i| i.address == a).map_or(1, |i| i.weight);
        p.instances = addresses.iter().map(|a| InstanceConfig { address: a.clone(), weight: weight(a), zone: None }).collect();
        self.server.reload(&for_proxy(&config)).map(|_| ()).map_err(|e| format!("proxy reload for pool {pool}: {e}"))
    }
}

impl StatsLookup for ProxySeam {
    fn stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>> {
        self.server.backend_stats(pool, address)
    }
}
