//! Where the admin listener reads from: the running proxy and, when the binary runs a
//! controller, the views of its autoscaled pools.

use ballast_control::controller::{PoolHandle, PoolView};
use ballast_proxy::ProxyServer;
use std::sync::{Arc, Mutex, PoisonError};

/// The autoscaled pools as they are now, by pool name. Asked once per request, so an
/// implementation that follows reloads (pools started or stopped) shows them at once.
pub trait PoolSource: Send + Sync {
    /// Every autoscaled pool's name and view.
    fn pools(&self) -> Vec<(String, PoolView)>;
}

/// A closure, e.g. one reading the binary's current handles.
impl<F> PoolSource for F
where
    F: Fn() -> Vec<(String, PoolView)> + Send + Sync,
{
    fn pools(&self) -> Vec<(String, PoolView)> {
        self()
    }
}

/// The handles of `ballast_control::controller::wire::spawn_autoscaled`, behind a mutex
/// the binary swaps on reload.
impl PoolSource for Mutex<Vec<(String, PoolHandle)>> {
    fn pools(&self) -> Vec<(String, PoolView)> {
        let handles = self.lock().unwrap_or_else(PoisonError::into_inner);
        handles.iter().map(|(name, h)| (name.clone(), h.view())).collect()
    }
}

/// What the admin listener shows: cheap to clone (two `Arc`s).
#[derive(Clone)]
pub struct AdminSources {
    /// The data plane: backend stats, health, held requests, the running config.
    pub proxy: Arc<ProxyServer>,
    /// The controller's pools (none by default).
    pub pools: Arc<dyn PoolSource>,
}

impl AdminSources {
    /// The proxy only: no autoscaled pool is shown.
    pub fn new(proxy: Arc<ProxyServer>) -> Self {
        AdminSources { proxy, pools: Arc::new(Vec::<(String, PoolView)>::new) }
    }

    /// Also shows the pools of `pools`.
    pub fn with_pools(mut self, pools: Arc<dyn PoolSource>) -> Self {
        self.pools = pools;
        self
    }
}

impl std::fmt::Debug for AdminSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSources").field("proxy", &self.proxy).finish_non_exhaustive()
    }
}
