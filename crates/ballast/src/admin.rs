//! The admin listener from the binary: `ballast serve` starts it when the config has an
//! `[admin]` section, `ballast demo` always (flag `--admin`). It shows the proxy's live
//! stats and the autoscaled pools ([`PoolDirectory`]), which change on reload.

use anyhow::Context as _;
use ballast_admin::{AdminServer, AdminSources, PoolSource};
use ballast_control::controller::{Fleet, PoolView};
use ballast_proxy::ProxyServer;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long admin connections get to finish after the proxy drained.
pub const ADMIN_GRACE: Duration = Duration::from_secs(5);

/// The autoscaled pools the admin listener shows: each pool task's view cell, re-read
/// from the fleet after every reload (pools may have started or stopped).
#[derive(Default)]
pub struct PoolDirectory {
    cells: Mutex<Vec<(String, Arc<Mutex<PoolView>>)>>,
}

impl PoolDirectory {
    /// Takes the fleet's current pools.
    pub fn refresh(&self, fleet: &Fleet) {
        *self.cells.lock().unwrap_or_else(PoisonError::into_inner) = fleet.shared_views();
    }
}

impl PoolSource for PoolDirectory {
    fn pools(&self) -> Vec<(String, PoolView)> {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells.iter().map(|(name, cell)| (name.clone(), cell.lock().unwrap_or_else(PoisonError::into_inner).clone())).collect()
    }
}

/// Starts the admin listener on `addr` over `server` and `pools`, and prints
/// `admin on ADDR` (stdout, for scripts and tests).
pub fn start(addr: SocketAddr, server: &Arc<ProxyServer>, pools: Arc<PoolDirectory>) -> anyhow::Result<AdminServer> {
    let sources = AdminSources::new(server.clone()).with_pools(pools);
    let admin = AdminServer::start(addr, sources).with_context(|| format!("cannot start the admin listener on {addr}"))?;
    crate::serve::print_line(&format!("admin on {} (/metrics, /healthz, /api/v1/pools)", admin.local_addr()));
    Ok(admin)
}

/// Stops the admin listener, if one runs, after the proxy drained.
pub async fn stop(admin: Option<AdminServer>) {
    if let Some(admin) = admin {
        if !admin.shutdown(ADMIN_GRACE).await {
            tracing::warn!("admin connections cut after {ADMIN_GRACE:?}");
        }
    }
}
