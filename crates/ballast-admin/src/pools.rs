//! `GET /api/v1/pools`: every pool of the running config (and every autoscaled pool the
//! controller reports) with its instances, their health and live counters, the replica
//! counts and last decision, and the requests held while it is at zero.

use crate::sources::AdminSources;
use ballast_control::controller::{PoolStatus, PoolView};
use ballast_control::lifecycle::Phase;
use ballast_proxy::ProxyServer;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

/// The document: `{"pools": [...]}`, pools in config order, then autoscaled pools the
/// running config does not have (e.g. mid-reload).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolsDoc {
    /// One entry per pool.
    pub pools: Vec<PoolDoc>,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolDoc {
    /// Pool name.
    pub name: String,
    /// True when the controller scales it.
    pub autoscaled: bool,
    /// Requests held now while the pool has no instance (see
    /// `ProxyServer::pending_requests`).
    pub held_requests: u32,
    /// Replica counts; None for pools the controller does not scale.
    pub replicas: Option<Replicas>,
    /// `ok`, or `error` with the provider's last failure (autoscaled pools).
    pub status: Option<PoolStatus>,
    /// The reason of the controller's last decision, when it made one.
    pub last_decision: Option<String>,
    /// True while a rollout (or its rollback) is in progress.
    pub rolling: bool,
    /// The instances: the controller's for autoscaled pools, the config's otherwise.
    pub instances: Vec<InstanceDoc>,
}

/// Replica counts of an autoscaled pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replicas {
    /// The count the controller converges on.
    pub desired: u32,
    /// Live instances, any phase.
    pub current: u32,
    /// Live instances by phase (`pending`, `starting`, `ready`, `draining`), zeros included.
    pub by_phase: BTreeMap<&'static str, u32>,
}

/// One instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceDoc {
    /// Provider id (autoscaled pools).
    pub id: Option<String>,
    /// `host:port`, once known.
    pub address: Option<String>,
    /// Lifecycle phase (autoscaled pools).
    pub phase: Option<&'static str>,
    /// `healthy` / `unhealthy` from the active health check; None without `[pool.health]`.
    pub health: Option<&'static str>,
    /// Live counters; None while the proxy does not balance over it (e.g. starting).
    pub stats: Option<InstanceStats>,
}

/// An instance's live counters in the proxy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceStats {
    /// Healthy (health check and outlier detection) and not draining.
    pub in_rotation: bool,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Requests sent since the proxy first balanced over this address.
    pub requests: u64,
    /// Of which failed (connect errors, timeouts, 5xx).
    pub failures: u64,
}

/// The phases a live instance can be in, as exported.
pub const LIVE_PHASES: [Phase; 4] = [Phase::Pending, Phase::Starting, Phase::Ready, Phase::Draining];

/// Builds the document from the live sources.
pub fn pools_doc(sources: &AdminSources) -> PoolsDoc {
    let proxy = &sources.proxy;
    let config = proxy.running_config();
    let mut views: Vec<(String, PoolView)> = sources.pools.pools();
    let live = Live::read(proxy);
    let mut pools = Vec::new();
    for pc in &config.pools {
        let view = views.iter().position(|(n, _)| *n == pc.name).map(|i| views.swap_remove(i).1);
        let mut doc = match view {
            Some(v) => live.autoscaled(&pc.name, v),
            None => PoolDoc {
                name: pc.name.clone(),
                autoscaled: false,
                held_requests: 0,
                replicas: None,
                status: None,
                last_decision: None,
                rolling: false,
                instances: pc.instances.iter().map(|i| live.instance(&pc.name, None, Some(i.address.clone()), None)).collect(),
            },
        };
        doc.held_requests = proxy.pending_requests(&pc.name);
        pools.push(doc);
    }
    pools.extend(views.into_iter().map(|(name, v)| live.autoscaled(&name, v)));
    PoolsDoc { pools }
}

/// The proxy and its health status, read once per request.
struct Live<'a> {
    proxy: &'a ProxyServer,
    /// Health by pool, then address.
    health: HashMap<String, HashMap<String, &'static str>>,
}

impl<'a> Live<'a> {
    fn read(proxy: &'a ProxyServer) -> Self {
        let health = proxy
            .health_status()
            .into_iter()
            .map(|(pool, list)| (pool, list.into_iter().map(|h| (h.addr, h.health.name())).collect()))
            .collect();
        Live { proxy, health }
    }

    fn instance(&self, pool: &str, id: Option<String>, address: Option<String>, phase: Option<Phase>) -> InstanceDoc {
        let stats = address.as_deref().and_then(|a| self.proxy.backend_stats(pool, a)).map(|s| InstanceStats {
            in_rotation: s.is_eligible(),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
        });
        let health = address.as_deref().and_then(|a| self.health.get(pool).and_then(|h| h.get(a)).copied());
        InstanceDoc { id, address, phase: phase.map(Phase::name), health, stats }
    }

    /// The entry of an autoscaled pool from its controller view.
    fn autoscaled(&self, name: &str, v: PoolView) -> PoolDoc {
        let by_phase = LIVE_PHASES.iter().map(|p| (p.name(), v.count(*p) as u32)).collect();
        PoolDoc {
            name: name.to_string(),
            autoscaled: true,
            held_requests: 0,
            replicas: Some(Replicas { desired: v.target, current: v.instances.len() as u32, by_phase }),
            status: Some(v.status),
            last_decision: v.last_decision,
            rolling: v.rolling,
            instances: v.instances.into_iter().map(|i| self.instance(name, Some(i.id), i.address, Some(i.phase))).collect(),
        }
    }
}
