//! Scale from zero: while a pool that may run at zero instances has none, its requests
//! are held instead of answered 503, and served once the controller gives it members.
//!
//! A pool holds when its `[pool.scaling]` allows zero (`min = 0` or a `scale_to_zero`
//! section: [`ScalingConfig::may_be_at_zero`]). Per pool (shared by every listener and
//! kept across reloads) there is
//!
//! - a **held count**, a `watch` channel: [`ProxyServer::pending_requests`] reads it and
//!   [`ProxyServer::demand`] hands out receivers, so the controller wakes the moment a
//!   request arrives at a pool at zero instead of waiting for its next sample;
//! - a **membership generation**, bumped whenever the pool's instances may have changed
//!   (`set_pool_instances` on it, or any reload), which held requests wait on.
//!
//! A held request takes a slot of the bounded queue (`scale_to_zero.hold_queue`, default
//! 1000; full: 503 at once with `Retry-After: 1`), then waits up to
//! `scale_to_zero.hold_timeout` (default 30s; then 503 with `Retry-After` of the timeout,
//! at most 10 s) for its listener's snapshot to show the pool with at least one instance;
//! it then goes through the normal pick with that snapshot. Its body is not read while it
//! waits (it stays in the client's socket), so holding costs a task and a slot, not
//! memory per byte. A client that goes away drops the waiting future, which frees the slot
//! and lowers the held count. When a reload removes the pool or stops it holding, the
//! waiting requests get the ordinary "no instance" 503.
//!
//! [`ScalingConfig::may_be_at_zero`]: ballast_core::autoscale::ScalingConfig::may_be_at_zero
//! [`ProxyServer::pending_requests`]: crate::ProxyServer::pending_requests
//! [`ProxyServer::demand`]: crate::ProxyServer::demand

use crate::error::ProxyError;
use crate::snapshot::{Pool, Snapshot};
use arc_swap::ArcSwap;
use ballast_core::config::{Config, PoolConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// `Retry-After` of a refusal because the hold queue is full.
pub const QUEUE_FULL_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Upper bound of the `Retry-After` sent when a held request timed out.
pub const TIMEOUT_RETRY_AFTER_MAX: Duration = Duration::from_secs(10);

/// The per-pool state that outlives snapshots.
#[derive(Debug)]
pub struct PoolHold {
    /// Requests held now. Changed only under the channel's lock, so the bound is exact.
    held: watch::Sender<u32>,
    /// Bumped when the pool's membership may have changed.
    members: watch::Sender<u64>,
}

impl Default for PoolHold {
    fn default() -> Self {
        PoolHold { held: watch::Sender::new(0), members: watch::Sender::new(0) }
    }
}

impl PoolHold {
    /// Requests held now.
    pub fn held(&self) -> u32 {
        *self.held.borrow()
    }

    /// A receiver of the held count (marked seen: `changed()` waits for the next change).
    pub fn subscribe(&self) -> watch::Receiver<u32> {
        self.held.subscribe()
    }

    /// Wakes the requests held for this pool so they look at the snapshot again.
    pub fn membership_changed(&self) {
        self.members.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// The hold settings of one pool in one snapshot, with the shared state.
#[derive(Debug, Clone)]
pub struct Hold {
    shared: Arc<PoolHold>,
    /// Most requests held at once (over all listeners).
    pub queue: u32,
    /// Longest wait of one held request.
    pub timeout: Duration,
}

/// Every pool's [`PoolHold`], by pool name; entries exist only for pools that hold.
#[derive(Debug, Default)]
pub struct HoldRegistry {
    pools: Mutex<HashMap<String, Arc<PoolHold>>>,
}

impl HoldRegistry {
    /// The hold settings of `pc` when it may run at zero instances (creating its shared
    /// state when new), else None.
    pub fn for_pool(&self, pc: &PoolConfig) -> Option<Hold> {
        let scaling = pc.scaling.as_ref().filter(|s| s.may_be_at_zero())?;
        let (queue, timeout) = scaling.hold_limits();
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = Arc::clone(pools.entry(pc.name.clone()).or_default());
        Some(Hold { shared, queue, timeout })
    }

    /// The shared state of pool `name`, if it holds.
    pub fn get(&self, name: &str) -> Option<Arc<PoolHold>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Forgets pools that `config` no longer has or that no longer may run at zero (their
    /// `demand` receivers see the channel closed), and wakes every held request so it
    /// looks at the new snapshot. Call after the new snapshots are stored.
    pub fn retain_config(&self, config: &Config) {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        for hold in pools.values() {
            // Those of forgotten pools too: they must find out that they wait in vain.
            hold.membership_changed();
        }
        pools.retain(|name, _| {
            config.pools.iter().any(|p| &p.name == name && p.scaling.as_ref().is_some_and(|s| s.may_be_at_zero()))
        });
    }
}

/// A taken slot of the hold queue; gives it back (and lowers the held count) when dropped.
struct Slot<'a>(&'a PoolHold);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.held.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Hold {
    fn enter(&self) -> Option<Slot<'_>> {
        let max = self.queue;
        let taken = self.shared.held.send_if_modified(|n| {
            let room = *n < max;
            if room {
                *n += 1;
            }
            room
        });
        taken.then(|| Slot(&self.shared))
    }
}

/// When `pool` has no instance and holds, waits until `snapshot` shows it with at least
/// one and returns that snapshot with the pool's index in it; `Ok(None)` when there is
/// nothing to wait for (the pool has instances, or does not hold). Errors: the queue is
/// full or the wait timed out (503 with `Retry-After`), or a reload removed the pool or
/// stopped it holding (the "no instance" 503).
pub async fn hold_if_empty(snapshot: &ArcSwap<Snapshot>, pool: &Pool) -> Result<Option<(Arc<Snapshot>, usize)>, ProxyError> {
    let Some(hold) = pool.hold.as_ref().filter(|_| pool.authorities.is_empty()) else {
        return Ok(None);
    };
    let cold = |reason, retry_after| ProxyError::ColdStart { pool: pool.name.clone(), reason, retry_after };
    let Some(_slot) = hold.enter() else {
        return Err(cold("the hold queue is full", QUEUE_FULL_RETRY_AFTER));
    };
    // Subscribed before looking, so a change stored after the look still wakes us.
    let mut changes = hold.shared.members.subscribe();
    let deadline = tokio::time::Instant::now() + hold.timeout;
    loop {
        let snap = snapshot.load_full();
        let Some(i) = snap.pools.iter().position(|p| p.name == pool.name) else {
            return Err(ProxyError::NoInstance { pool: pool.name.clone() });
        };
        let now = &snap.pools[i];
        if !now.authorities.is_empty() {
            return Ok(Some((snap, i)));
        }
        if now.hold.is_none() {
            return Err(ProxyError::NoInstance { pool: pool.name.clone() });
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // The shared state is kept alive by `hold`, so the sender cannot be gone.
            Ok(Err(_)) => return Err(ProxyError::NoInstance { pool: pool.name.clone() }),
            Err(_) => {
                let after = hold.timeout.clamp(Duration::from_secs(1), TIMEOUT_RETRY_AFTER_MAX);
                return Err(cold("no instance became ready within the hold timeout", after));
            }
        }
    }
}
