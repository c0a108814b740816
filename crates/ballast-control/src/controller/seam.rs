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

use super::Membership;
use crate::metrics::proxy::StatsLookup;
use ballast_core::balance::BackendStats;
use ballast_core::config::{Config, InstanceConfig, ProviderConfig};
use ballast_proxy::ProxyServer;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A running proxy seen by the controller.
pub struct ProxySeam {
    server: Arc<ProxyServer>,
    config: Mutex<Config>,
}

impl ProxySeam {
    /// The seam over `server`, which was started with `config`.
    pub fn new(server: Arc<ProxyServer>, config: Config) -> Self {
        ProxySeam { server, config: Mutex::new(config) }
    }

    /// The proxy's stats clock, for [`super::ProxyFeed`].
    pub fn clock(&self) -> Arc<dyn Fn() -> Duration + Send + Sync> {
        let clock = self.server.clock();
        Arc::new(move || clock.now())
    }
}

impl Membership for ProxySeam {
    fn set(&self, pool: &str, addresses: &[String]) -> Result<(), String> {
        let mut config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let p = config.pools.iter_mut().find(|p| p.name == pool).ok_or_else(|| format!("no pool {pool:?} in the proxy config"))?;
        let weight = |a: &str| p.instances.iter().find(|i| i.address == a).map_or(1, |i| i.weight);
        p.instances = addresses.iter().map(|a| InstanceConfig { address: a.clone(), weight: weight(a), zone: None }).collect();
        let mut for_proxy = config.clone();
        for p in &mut for_proxy.pools {
            p.provider = ProviderConfig::Static;
        }
        self.server.reload(&for_proxy).map(|_| ()).map_err(|e| format!("proxy reload for pool {pool}: {e}"))
    }
}

impl StatsLookup for ProxySeam {
    fn stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>> {
        self.server.backend_stats(pool, address)
    }
}
