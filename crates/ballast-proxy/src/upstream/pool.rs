//! The idle keep-alive connections of each instance, sharded per worker thread, and the
//! registry of those pools by instance address.

use super::conn::PooledConn;
use crate::workers::current_worker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Idle connections kept per instance. Large, so that a burst's connections are reused
/// rather than re-opened (each re-open costs a handshake and a TIME_WAIT socket).
const MAX_IDLE_PER_INSTANCE: usize = 1024;
/// Every this many returns to a shard, its oldest idle connections are checked.
const SWEEP_EVERY: u32 = 64;
/// How many of the oldest idle connections one sweep checks.
const SWEEP_OLDEST: usize = 4;

/// The idle keep-alive connections of one instance, one shard per worker thread (see
/// [`crate::workers`]) so a connection is reused on the thread that drives it.
#[derive(Debug)]
pub struct ConnPool {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    /// Oldest first; requests take from the end. Boxed, as they move out whole.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<PooledConn>>,
    returns: u32,
}

impl Shard {
    /// Drops the oldest idle connections that have ended. Checkout takes the newest and
    /// never reaches the oldest while those are usable, and a connection nobody polls
    /// does not close its socket when the instance closes its end: without this, an
    /// instance's keep-alive timeout would leave them half-closed in the pool.
    fn sweep_oldest(&mut self) {
        let mut i = self.idle.len().min(SWEEP_OLDEST);
        while i > 0 {
            i -= 1;
            if !self.idle[i].idle_usable() {
                self.idle.remove(i);
            }
        }
    }
}

impl ConnPool {
    /// An empty pool with `shards` shards (at least 1).
    pub fn new(shards: usize) -> Self {
        ConnPool { shards: (0..shards.max(1)).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[current_worker() % self.shards.len()].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection ready for a request, if any; closed ones are dropped.
    pub fn checkout(&self) -> Option<Box<PooledConn>> {
        let idle = &mut self.shard().idle;
        while let Some(mut conn) = idle.pop() {
            if conn.idle_usable() {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose exchange is complete.
    pub fn give_back(&self, conn: Box<PooledConn>) {
        if conn.is_closed() {
            return;
        }
        let mut shard = self.shard();
        shard.returns = shard.returns.wrapping_add(1);
        if shard.returns % SWEEP_EVERY == 0 {
            shard.sweep_oldest();
        }
        if shard.idle.len() < MAX_IDLE_PER_INSTANCE {
            shard.idle.push(conn);
        }
    }

    /// Idle connections held, over all shards (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).idle.len()).sum()
    }
}

/// Connection pools by instance address, shared by every listener and kept across
/// reloads (only snapshot builds touch the map).
#[derive(Debug)]
pub struct ConnRegistry {
    shards: usize,
    map: Mutex<HashMap<String, Arc<ConnPool>>>,
}

impl ConnRegistry {
    /// A registry whose pools have `shards` shards (the number of worker threads).
    pub fn new(shards: usize) -> Self {
        ConnRegistry { shards, map: Mutex::default() }
    }

    /// The pool of `addr`, created when new.
    pub fn get_or_create(&self, addr: &str) -> Arc<ConnPool> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(addr.to_string()).or_insert_with(|| Arc::new(ConnPool::new(self.shards))).clone()
    }

    /// Drops the pools (and so the idle connections) of addresses not in `keep`.
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|addr, _| keep(addr));
    }
}
