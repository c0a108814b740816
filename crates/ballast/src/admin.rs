//! The admin listener from the binary: `ballast serve` starts it when the config has an
//! `[admin]` section, `ballast demo` always (flag `--admin`). It shows the proxy's live
//! stats and the autoscaled pools ([`PoolDirectory`]), which change on reload. Under
//! `serve` the listener itself follows the file's `[admin]` across reloads
//! ([`AdminListener`]): moved, added or removed.

use anyhow::Context as _;
use ballast_admin::{AdminServer, AdminSources, PoolSource};
use ballast_control::controller::{Fleet, PoolView};
use ballast_core::config::AdminConfig;
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

/// The admin listener of `ballast serve`, which follows the config's `[admin]` across
/// reloads: the running listener (if any) with the address its section asked for, and
/// what starting another one takes.
pub struct AdminListener {
    server: Arc<ProxyServer>,
    pools: Arc<PoolDirectory>,
    /// The address `[admin] listen` asked for (port 0 included) and the listener on it.
    running: Option<(SocketAddr, AdminServer)>,
}

impl AdminListener {
    /// Starts the listener `section` asks for through [`start`] (which prints
    /// `admin on ADDR`), or none without a section.
    ///
    /// Errors: `admin.listen` is not an `IP:port`, or the address cannot be bound.
    pub fn start(section: Option<&AdminConfig>, server: &Arc<ProxyServer>, pools: Arc<PoolDirectory>) -> anyhow::Result<Self> {
        let mut admin = AdminListener { server: server.clone(), pools, running: None };
        if let Some(section) = section {
            let addr = listen_addr(section)?;
            admin.running = Some((addr, start(addr, server, admin.pools.clone())?));
        }
        Ok(admin)
    }

    /// Applies the `[admin]` section of a reloaded config, once the rest of it was
    /// validated and applied (a refused reload never gets here):
    /// - the same address as before (as written, or the one the listener is bound to,
    ///   e.g. the port the OS chose for port 0): nothing happens;
    /// - a new address, or a section that was not there: the new address is bound
    ///   first; when that fails the running listener (if any) stays and the error is
    ///   logged naming `admin.listen`, the address and the OS error; when it works the
    ///   old listener stops and `admin on ADDR` is printed, as at startup;
    /// - no section any more: the listener stops.
    pub async fn apply_reloaded(&mut self, section: Option<&AdminConfig>) {
        let Some(section) = section else {
            if let Some((_, old)) = self.running.take() {
                tracing::info!(addr = %old.local_addr(), "admin listener stopped: [admin] is no longer in the config");
                stop(Some(old)).await;
            }
            return;
        };
        let addr = match listen_addr(section) {
            Ok(addr) => addr,
            Err(e) => {
                tracing::error!("{e:#}; the admin listener is unchanged (the rest of the reload is applied)");
                return;
            }
        };
        if self.running.as_ref().is_some_and(|(asked, now)| addr == *asked || addr == now.local_addr()) {
            return;
        }
        match start(addr, &self.server, self.pools.clone()) {
            Ok(new) => {
                let to = new.local_addr();
                match self.running.replace((addr, new)) {
                    Some((_, old)) => {
                        tracing::info!(from = %old.local_addr(), %to, "admin listener moved");
                        stop(Some(old)).await;
                    }
                    None => tracing::info!(addr = %to, "admin listener started: [admin] added to the config"),
                }
            }
            Err(e) => {
                let kept = match &self.running {
                    Some((_, old)) => format!("the admin listener stays on {}", old.local_addr()),
                    None => "no admin listener runs".to_string(),
                };
                tracing::error!("admin.listen: cannot bind {addr}: {}; {kept} (the rest of the reload is applied)", e.root_cause());
            }
        }
    }

    /// Stops the listener, if one runs (see [`stop`]).
    pub async fn stop(self) {
        stop(self.running.map(|(_, admin)| admin)).await;
    }
}

/// The address of an `[admin]` section (validated configs always have one).
fn listen_addr(section: &AdminConfig) -> anyhow::Result<SocketAddr> {
    section.listen.parse().with_context(|| format!("admin.listen: {:?} is not an IP:port", section.listen))
}
