//! [`ProxyServer`]: the listeners of every `[[balancer]]`, their accept loops and
//! connection limits, hot reload, membership updates and graceful shutdown.
//!
//! How the config's and the controller's instance lists combine is in [`crate::membership`].

use crate::access_log::AccessLog;
use crate::error::ProxyError;
use crate::proxy::ListenerState;
use crate::membership::{check_instances, Applied};
use crate::snapshot::{build_pool, Pool, Snapshot, StatsRegistry};
use crate::stats_glue::Clock;
use crate::upstream::ConnRegistry;
use crate::{conn, tls};
use arc_swap::{ArcSwap, ArcSwapOption};
use ballast_core::balance::BackendStats;
use ballast_core::config::{BalancerConfig, Config, InstanceConfig};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// The running data plane: one listener per `[[balancer]]` of the config.
#[derive(Debug)]
pub struct ProxyServer {
    registry: Arc<StatsRegistry>,
    conns: ConnRegistry,
    clock: Clock,
    access: AccessLog,
    listeners: Mutex<Vec<Listener>>,
    retired: Mutex<Vec<JoinHandle<()>>>,
    /// Runtimes that accept: one per worker in the sharded mode, else the caller's.
    runtimes: Arc<[Handle]>,
    /// Open client connections per runtime, so accepts keep the workers even.
    spread: Arc<Spread>,
    /// The config in force (controller lists applied) and the controller's lists.
    applied: Mutex<Applied>,
}

/// `ProxyServer` is shared between the serving code and signal handlers.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<ProxyServer>();
};

#[derive(Debug)]
struct Listener {
    name: String,
    listen: String,
    local_addr: SocketAddr,
    state: Arc<ListenerState>,
    tls: Arc<ArcSwapOption<rustls::ServerConfig>>,
    limit: Arc<Semaphore>,
    max_connections: usize,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What a reload changed, by balancer name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Listeners whose routes, pools, timeouts, limits or certificates were swapped.
    pub updated: Vec<String>,
    /// Listeners started (new balancer, or a changed listen address).
    pub started: Vec<String>,
    /// Listeners stopped; their in-flight requests finish first.
    pub stopped: Vec<String>,
}

/// A listener bound and built but not yet serving (so a failing reload changes nothing).
struct Prepared {
    name: String,
    listen: String,
    /// One socket per accepting runtime.
    sockets: Vec<std::net::TcpListener>,
    snapshot: Snapshot,
    tls: Option<rustls::ServerConfig>,
    max_connections: usize,
}

impl ProxyServer {
    /// Binds and starts a listener for every balancer of `config` (already validated
    /// with `ballast_core::config::validate`). Must run inside a tokio runtime; access
    /// lines go to `access` for listeners whose `access_log` is not `off`.
    pub fn start(config: &Config, access: AccessLog) -> Result<ProxyServer, ProxyError> {
        Self::start_on(config, access, &[Handle::current()])
    }

    /// Like [`ProxyServer::start`], in the sharded mode: every listener gets one
    /// `SO_REUSEPORT` socket per runtime in `runtimes` (e.g. [`crate::Workers`]'
    /// handles), whose accept loop and connections stay on that runtime. Must run
    /// inside a tokio runtime (any).
    pub fn start_on(config: &Config, access: AccessLog, runtimes: &[Handle]) -> Result<ProxyServer, ProxyError> {
        let runtimes: Arc<[Handle]> = if runtimes.is_empty() { Arc::new([Handle::current()]) } else { runtimes.into() };
        let server = ProxyServer {
            spread: Arc::new(Spread::new(runtimes.len())),
            registry: Arc::new(StatsRegistry::default()),
            conns: ConnRegistry::new(runtimes.len()),
            clock: Clock::start(),
            access,
            listeners: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
            runtimes,
            applied: Mutex::new(Applied { config: config.clone(), managed: HashMap::new() }),
        };
        let prepared = config
            .balancers
            .iter()
            .map(|b| server.prepare(config, b))
            .collect::<Result<Vec<_>, _>>()?;
        let running = prepared.into_iter().map(|p| server.spawn(p)).collect();
        *server.listeners.lock().unwrap_or_else(PoisonError::into_inner) = running;
        server.registry.sync_tasks(config, server.clock);
        Ok(server)
    }

    /// Open client connections per worker runtime, in worker order (one entry outside
    /// the sharded mode). Accepts keep these within one of each other (see [`Spread`]).
    pub fn open_connections(&self) -> Vec<usize> {
        self.spread.open.iter().map(|n| n.load(Ordering::Relaxed)).collect()
    }

    /// The bound address of each listener, by balancer name (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        let listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        listeners.iter().map(|l| (l.name.clone(), l.local_addr)).collect()
    }

    /// The bound address of balancer `name`.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        let listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        listeners.iter().find(|l| l.name == name).map(|l| l.local_addr)
    }

    /// Live stats of instance `address` of `pool` (shared by all listeners).
    pub fn backend_stats(&self, pool: &str, address: &str) -> Option<Arc<BackendStats>> {
        self.registry.get(pool, address)
    }

    /// Health, outlier and circuit-breaker transitions of every pool, newest last.
    pub fn events(&self) -> Arc<ballast_core::resilience::EventLog> {
        self.registry.events()
    }

    /// Active health-check state of every instance, per pool with `[pool.health]`.
    pub fn health_status(&self) -> Vec<(String, Vec<crate::health::InstanceHealth>)> {
        self.registry.health_status()
    }

    /// The time base of the backend stats.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The config in force: the last one loaded, with the instance lists of
    /// [`set_pool_instances`](Self::set_pool_instances) applied to its process/exec pools.
    pub fn running_config(&self) -> Config {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner).config.clone()
    }

    /// Replaces the instances of `pool` in every listener that routes to it, without
    /// rebuilding anything else: only this pool's balancer and guard are built, and the
    /// listeners' snapshots are swapped (in-flight requests finish on the old one).
    ///
    /// Addresses that stay keep their [`BackendStats`] (counters, EWMA, histogram, drain
    /// mark), breaker and outlier state; new ones (including ones that were removed
    /// earlier and come back) start fresh, ready now (slow start ramps from here); removed
    /// ones are forgotten with their idle connections. The pool's health checker and
    /// latency prober follow the new list. Requests held while the pool was at zero are
    /// woken and go through the normal pick. The list may be empty (the pool goes to zero).
    ///
    /// How this interacts with [`reload`](Self::reload) is in [`crate::membership`]: for
    /// process/exec pools the list survives reloads, for static pools the next reload
    /// restores the config's list.
    ///
    /// Errors, changing nothing: [`ProxyError::Membership`] naming `pool` when the running
    /// config has no such pool, or `instance[i].address` / `instance[i].weight` for an
    /// address that is not `host:port` or repeats an earlier one, or a weight outside
    /// 1–10,000.
    pub fn set_pool_instances(&self, pool: &str, instances: &[InstanceConfig]) -> Result<(), ProxyError> {
        let listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let fail = |field: String, reason: String| ProxyError::Membership { pool: pool.to_string(), field, reason };
        let Some(idx) = applied.config.pools.iter().position(|p| p.name == pool) else {
            return Err(fail("pool".into(), "no such pool in the running config".into()));
        };
        check_instances(instances).map_err(|(field, reason)| fail(field, reason))?;
        let mut pc = applied.config.pools[idx].clone();
        pc.instances = instances.to_vec();
        let built: Arc<Pool> =
            Arc::new(build_pool(&pc, &self.registry, &self.conns, self.clock.now()).map_err(|(f, r)| fail(f, r))?);
        for l in listeners.iter() {
            if let Some(next) = l.state.snapshot.load().with_pool(&built) {
                l.state.snapshot.store(Arc::new(next));
            }
        }
        applied.config.pools[idx] = pc;
        applied.managed.insert(pool.to_string(), instances.to_vec());
        self.forget_and_sync(&applied.config);
        Ok(())
    }

    /// Requests held now for `pool` while it has no instance (0 when it holds none, or
    /// does not hold: unknown, routed by no listener, or its scaling never goes to zero).
    pub fn pending_requests(&self, pool: &str) -> u32 {
        self.registry.holds().get(pool).map_or(0, |h| h.held())
    }

    /// The number of requests held for `pool`, as a watch channel, so a controller can
    /// wake the moment a pool at zero gets a request. The contract:
    ///
    /// - `None` when the pool does not hold: unknown, routed by no listener, or its
    ///   `[pool.scaling]` has neither `min = 0` nor a `scale_to_zero` section.
    /// - The receiver starts with the current count marked seen: read it with
    ///   `borrow_and_update()` right away (requests may already be waiting), then await
    ///   `changed()`, which resolves on every later change (increments and decrements;
    ///   changes in quick succession coalesce into one wake, the value is always the
    ///   latest). A value above 0 means requests wait for an instance: the pool should
    ///   get one now. The count is exact: it equals [`pending_requests`](Self::pending_requests).
    /// - `changed()` returning `Err` means the pool stopped holding (a reload removed it
    ///   or its scaling no longer allows zero); call `demand` again after the next reload.
    pub fn demand(&self, pool: &str) -> Option<watch::Receiver<u32>> {
        self.registry.holds().get(pool).map(|h| h.subscribe())
    }

    /// After a membership change or reload: forget what `config` no longer has (stats,
    /// guards, holds, idle connections), wake held requests, and sync the pools' tasks.
    fn forget_and_sync(&self, config: &Config) {
        self.registry.retain_config(config);
        self.registry.sync_tasks(config, self.clock);
        let keep: HashSet<&str> =
            config.pools.iter().flat_map(|p| p.instances.iter().map(|i| i.address.as_str())).collect();
        self.conns.retain(&|addr| keep.contains(addr));
    }

    /// Applies a new (validated) config without dropping a connection: every listener
    /// that keeps its name and address swaps in new routes, pools, timeouts, limits and
    /// certificates (new connections use the new limits); new balancers start listening;
    /// removed ones stop accepting and drain. All-or-nothing: when any listener cannot
    /// be built or bound, nothing changes and the error is returned.
    ///
    /// Pools whose provider is `process` or `exec` keep the instances set by
    /// [`set_pool_instances`](Self::set_pool_instances) (see [`crate::membership`]).
    pub fn reload(&self, config: &Config) -> Result<ReloadSummary, ProxyError> {
        let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let (merged, managed) = applied.merge(config);
        let config = &merged;
        enum Plan {
            Update(usize, Snapshot, Option<rustls::ServerConfig>, usize),
            Start(Prepared),
        }
        let mut plans = Vec::with_capacity(config.balancers.len());
        for b in &config.balancers {
            match listeners.iter().position(|l| l.name == b.name && l.listen == b.listen) {
                Some(i) => {
                    let snap = Snapshot::build(config, b, &self.registry, &self.conns, self.clock.now())?;
                    let tls = tls_config(b)?;
                    plans.push(Plan::Update(i, snap, tls, max_connections(b)));
                }
                None => plans.push(Plan::Start(self.prepare(config, b)?)),
            }
        }
        let mut summary = ReloadSummary::default();
        let mut keep = vec![false; listeners.len()];
        let mut started = Vec::new();
        for plan in plans {
            match plan {
                Plan::Update(i, snap, tls, max) => {
                    let l = &mut listeners[i];
                    l.state.snapshot.store(Arc::new(snap));
                    l.tls.store(tls.map(Arc::new));
                    if max > l.max_connections {
                        l.limit.add_permits(max - l.max_connections);
                    } else {
                        // Only idle permits can be taken back; busy ones return later.
                        l.limit.forget_permits(l.max_connections - max);
                    }
                    l.max_connections = max;
                    keep[i] = true;
                    summary.updated.push(l.name.clone());
                }
                Plan::Start(p) => {
                    summary.started.push(p.name.clone());
                    started.push(self.spawn(p));
                }
            }
        }
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::take(&mut *listeners);
        for (l, keep) in old.into_iter().zip(keep) {
            if keep {
                listeners.push(l);
            } else {
                summary.stopped.push(l.name.clone());
                let _ = l.stop.send(true);
                retired.extend(l.tasks);
            }
        }
        listeners.extend(started);
        drop(retired);
        self.forget_and_sync(config);
        applied.managed = managed;
        applied.config = merged;
        Ok(summary)
    }

    /// Stops accepting on every listener, lets in-flight requests finish (requests held
    /// for a pool at zero get 503 at once), and returns
    /// once every connection closed or `grace` passed. Returns whether everything
    /// drained in time. Takes `&self` so the server can live in an `Arc` shared with
    /// a signal task; afterwards it has no listeners.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let listeners = std::mem::take(&mut *self.listeners.lock().unwrap_or_else(PoisonError::into_inner));
        let mut tasks = std::mem::take(&mut *self.retired.lock().unwrap_or_else(PoisonError::into_inner));
        for l in listeners {
            let _ = l.stop.send(true);
            tasks.extend(l.tasks);
        }
        // No instance is coming for a pool at zero: answer its held requests now.
        self.registry.holds().release_all();
        tokio::time::timeout(grace, futures_util::future::join_all(tasks)).await.is_ok()
    }

    fn prepare(&self, config: &Config, b: &BalancerConfig) -> Result<Prepared, ProxyError> {
        let addr: SocketAddr = b
            .listen
            .parse()
            .map_err(|_| ProxyError::ListenAddr { balancer: b.name.clone(), addr: b.listen.clone() })?;
        let sockets = bind(addr, self.runtimes.len())
            .map_err(|source| ProxyError::Bind { balancer: b.name.clone(), addr: b.listen.clone(), source })?;
        let snapshot = Snapshot::build(config, b, &self.registry, &self.conns, self.clock.now())?;
        Ok(Prepared {
            name: b.name.clone(),
            listen: b.listen.clone(),
            sockets,
            snapshot,
            tls: tls_config(b)?,
            max_connections: max_connections(b),
        })
    }

    fn spawn(&self, p: Prepared) -> Listener {
        let local_addr = p.sockets.first().and_then(|l| l.local_addr().ok()).unwrap_or_else(unspecified);
        let state = Arc::new(ListenerState {
            snapshot: ArcSwap::from_pointee(p.snapshot),
            clock: self.clock,
            access: self.access.clone(),
        });
        let tls = Arc::new(ArcSwapOption::new(p.tls.map(Arc::new)));
        let limit = Arc::new(Semaphore::new(p.max_connections));
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::with_capacity(p.sockets.len());
        for (worker, (socket, runtime)) in p.sockets.into_iter().zip(self.runtimes.iter()).enumerate() {
            // Registering the socket with a runtime's reactor needs that runtime entered.
            let _entered = runtime.enter();
            match TcpListener::from_std(socket) {
                Ok(listener) => tasks.push(runtime.spawn(accept_loop(
                    listener,
                    Serving {
                        state: state.clone(),
                        tls: tls.clone(),
                        stop: stop_rx.clone(),
                        worker,
                        runtimes: self.runtimes.clone(),
                        spread: self.spread.clone(),
                    },
                    limit.clone(),
                ))),
                Err(e) => tracing::error!(balancer = %p.name, error = %e, "cannot register a listening socket"),
            }
        }
        tracing::info!(balancer = %p.name, addr = %local_addr, sockets = tasks.len(), "listening");
        Listener {
            name: p.name,
            listen: p.listen,
            local_addr,
            state,
            tls,
            limit,
            max_connections: p.max_connections,
            stop,
            tasks,
        }
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

fn tls_config(b: &BalancerConfig) -> Result<Option<rustls::ServerConfig>, ProxyError> {
    if b.tls.is_empty() {
        Ok(None)
    } else {
        tls::server_config(&b.name, &b.tls).map(Some)
    }
}

fn max_connections(b: &BalancerConfig) -> usize {
    usize::try_from(b.limits.max_connections).unwrap_or(usize::MAX).clamp(1, Semaphore::MAX_PERMITS)
}

/// `n` non-blocking listening sockets on `addr` with `SO_REUSEADDR` (restarts do not
/// wait out TIME_WAIT) and, when `n > 1`, `SO_REUSEPORT` so the kernel spreads new
/// connections over them. Port 0 resolves once; the others bind the chosen port.
fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if n > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A dropped sender also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// What an accept loop hands every connection it serves.
struct Serving {
    state: Arc<ListenerState>,
    tls: Arc<ArcSwapOption<rustls::ServerConfig>>,
    stop: watch::Receiver<bool>,
    /// The runtime this loop accepts on (its index in `runtimes`).
    worker: usize,
    runtimes: Arc<[Handle]>,
    spread: Arc<Spread>,
}

async fn accept_loop(listener: TcpListener, serving: Serving, limit: Arc<Semaphore>) {
    let mut stop = serving.stop.clone();
    // Every connection task holds a sender; `recv` returns None once all are gone.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        // Waiting for a permit before accepting leaves excess clients in the backlog.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let target = serving.spread.target(serving.worker);
        let open = OpenConn::count(&serving.spread, target);
        let (state, tls, stop, alive) = (serving.state.clone(), serving.tls.clone(), serving.stop.clone(), alive.clone());
        let serve = move |stream| async move {
            conn::serve(stream, peer, state, tls, stop).await;
            drop((permit, open, alive));
        };
        if target == serving.worker {
            tokio::spawn(serve(stream));
            continue;
        }
        // Another worker has fewer connections: it takes this one. The socket leaves
        // this runtime's reactor and joins that one's.
        match stream.into_std() {
            Ok(std_stream) => {
                serving.runtimes[target].spawn(async move {
                    match TcpStream::from_std(std_stream) {
                        Ok(stream) => serve(stream).await,
                        Err(e) => tracing::warn!(%peer, error = %e, "cannot move a connection to another worker"),
                    }
                });
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot move a connection to another worker"),
        }
    }
    drop(listener);
    drop(alive);
    let _ = all_closed.recv().await;
}

/// Open client connections per worker runtime, over every listener. With `SO_REUSEPORT`
/// the kernel spreads connections by a hash of their addresses: 64 keep-alive clients
/// easily land 28 on one worker and 36 on the other, and the busier one sets the tail
/// latency. An accept loop therefore hands a new connection to the worker with the
/// fewest open ones when its own has more, so the counts stay within one of each other.
#[derive(Debug)]
struct Spread {
    open: Vec<AtomicUsize>,
}

impl Spread {
    fn new(workers: usize) -> Self {
        Spread { open: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect() }
    }

    /// The worker that should serve a connection accepted on `me`: `me` unless another
    /// has fewer open connections (then the one with the fewest).
    fn target(&self, me: usize) -> usize {
        let count = |i: usize| self.open[i].load(Ordering::Relaxed);
        let (least, fewest) = (0..self.open.len()).map(|i| (i, count(i))).min_by_key(|&(_, n)| n).unwrap_or((me, 0));
        if count(me) > fewest {
            least
        } else {
            me
        }
    }
}

/// One open connection counted on its worker for as long as it lives.
struct OpenConn {
    spread: Arc<Spread>,
    worker: usize,
}

impl OpenConn {
    fn count(spread: &Arc<Spread>, worker: usize) -> Self {
        spread.open[worker].fetch_add(1, Ordering::Relaxed);
        OpenConn { spread: spread.clone(), worker }
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.spread.open[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_goes_to_the_worker_with_the_fewest() {
        let spread = Arc::new(Spread::new(3));
        assert_eq!(spread.target(1), 1, "all even: stay");
        let _a = OpenConn::count(&spread, 1);
        assert_eq!(spread.target(1), 0, "busier than the others: the first with the fewest");
        assert_eq!(spread.target(2), 2, "as few as any: stay");
        let _b = OpenConn::count(&spread, 0);
        assert_eq!(spread.target(1), 2);
        {
            let _c = OpenConn::count(&spread, 2);
            assert_eq!(spread.target(1), 1, "even again");
        }
        assert_eq!(spread.open.iter().map(|n| n.load(Ordering::Relaxed)).sum::<usize>(), 2, "closing uncounts");
    }
}
