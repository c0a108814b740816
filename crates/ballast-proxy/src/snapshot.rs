//! The routing snapshot of one listener: compiled routes, pools with their balancers,
//! and the per-request settings, built from the config and swapped whole on reload.
//!
//! Live per-backend stats are not part of the snapshot: they live in the
//! [`StatsRegistry`], keyed by (pool, instance address), so a reload that keeps an
//! instance keeps its in-flight count and latency estimate.
//!
//! Routes, pools and client settings are behind `Arc`s so that a membership update of
//! one pool ([`Snapshot::with_pool`]) builds only that pool and shares the rest.

use crate::error::ProxyError;
use crate::hold::{Hold, HoldRegistry};
use crate::resilience_glue::{GuardRegistry, PoolGuard, TaskSupervisor};
use crate::stats_glue::Clock;
use ballast_core::resilience::EventLog;
use crate::ratelimit::RateLimiter;
use crate::route::{Backup, HostMatch, Override, OverrideOn, Route, Split};
use crate::upstream::{ConnPool, ConnRegistry};
use ballast_core::balance::{Backend, BackendStats, BalanceOptions, Balancer, HashOn};
use ballast_core::config::{AccessLogFormat, BalancerConfig, Cidr, ClientZoneConfig, Config, ForwardingConfig, RateLimitConfig};
use http::uri::Authority;
use http::{HeaderName, HeaderValue};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Live stats of every backend of every pool, shared by all listeners and kept across
/// reloads. Only snapshot builds touch the map (never the request path).
///
/// It also holds the resilience state kept across reloads ([`GuardRegistry`]), the
/// pools' background tasks (health checks, latency probes: [`TaskSupervisor`]) and the
/// scale-from-zero hold queues ([`HoldRegistry`]).
#[derive(Debug, Default)]
pub struct StatsRegistry {
    map: Mutex<HashMap<(String, String), Arc<BackendStats>>>,
    guards: Arc<GuardRegistry>,
    tasks: TaskSupervisor,
    holds: HoldRegistry,
}

impl StatsRegistry {
    /// The stats of backend `id` of `pool`, created as "ready at `now`" when new.
    pub fn get_or_create(&self, pool: &str, id: &str, now: Duration) -> Arc<BackendStats> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((pool.to_string(), id.to_string()))
            .or_insert_with(|| Arc::new(BackendStats::ready_at(now)))
            .clone()
    }

    /// The stats of backend `id` of `pool`, if it is known.
    pub fn get(&self, pool: &str, id: &str) -> Option<Arc<BackendStats>> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(pool.to_string(), id.to_string())).cloned()
    }

    /// The shared log of health, outlier and breaker transitions.
    pub fn events(&self) -> Arc<EventLog> {
        self.guards.events()
    }

    /// Active health-check state per pool (pools with `[pool.health]` only).
    pub fn health_status(&self) -> Vec<(String, Vec<crate::health::InstanceHealth>)> {
        self.tasks.health_status()
    }

    /// Starts, updates or stops the pools' health checkers and latency probers to match
    /// `config` (call after a successful start or reload, inside a tokio runtime).
    pub fn sync_tasks(&self, config: &Config, clock: Clock) {
        let now = clock.now();
        self.tasks.sync(config, clock, &self.guards, |pool, id| self.get_or_create(pool, id, now));
    }

    /// The scale-from-zero hold state of every pool that may run at zero.
    pub fn holds(&self) -> &HoldRegistry {
        &self.holds
    }

    /// Forgets backends that no pool of `config` has any more (an address that comes
    /// back later starts with fresh stats, breaker and outlier state), forgets hold
    /// queues of pools that no longer hold, and wakes held requests to look again.
    pub fn retain_config(&self, config: &Config) {
        self.guards.retain_config(config);
        self.holds.retain_config(config);
        let keep: HashSet<(&str, &str)> = config
            .pools
            .iter()
            .flat_map(|p| p.instances.iter().map(move |i| (p.name.as_str(), i.address.as_str())))
            .collect();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|(pool, id), _| keep.contains(&(pool.as_str(), id.as_str())));
    }
}

/// Cookie affinity of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// Cookie name.
    pub cookie: String,
    /// `Max-Age` in seconds; None: a session cookie.
    pub max_age: Option<u64>,
}

/// One pool as the request path sees it.
#[derive(Debug)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// The selector over the pool's instances.
    pub balancer: Balancer,
    /// `authorities[i]` is where backend `i` is reached.
    pub authorities: Vec<Authority>,
    /// `conns[i]` holds backend `i`'s idle keep-alive connections.
    pub conns: Vec<Arc<ConnPool>>,
    /// What consistent hashing hashes.
    pub hash_on: Option<HashOn>,
    /// Cookie affinity.
    pub sticky: Option<Sticky>,
    /// Outlier detection, breakers, limits and the retry budget.
    pub guard: PoolGuard,
    /// Whether picks prefer the client's zone (`zone_aware`).
    pub zone_aware: bool,
    /// Scale from zero: set when the pool may run at zero instances, so that requests
    /// wait for one instead of getting 503 ([`crate::hold`]).
    pub hold: Option<Hold>,
}

impl Pool {
    /// Instances that are healthy, not draining, not ejected and not behind an open
    /// breaker at `now`, counted up to `enough` (failover only needs to know whether the
    /// pool has enough).
    pub fn healthy_at_least(&self, enough: usize, now: Duration) -> bool {
        (0..self.authorities.len())
            .filter(|&i| self.balancer.stats(i).is_eligible() && self.guard.usable(i, now))
            .take(enough)
            .count()
            >= enough
    }
}

/// Per-request settings of a listener (reloadable).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Connect timeout to upstreams.
    pub connect: Duration,
    /// Request-head read timeout (HTTP/1).
    pub header_read: Duration,
    /// Wait for an upstream response head at most this long (then 504).
    pub upstream_response: Duration,
    /// Close client connections with no request for this long.
    pub idle: Duration,
    /// Largest request head in bytes.
    pub max_header_bytes: u64,
    /// Largest request body in bytes; 0: unlimited.
    pub max_body_bytes: u64,
    /// Access log format.
    pub access_log: AccessLogFormat,
    /// Whether the listener speaks TLS (for `X-Forwarded-Proto`).
    pub https: bool,
    /// What is added to forwarded requests.
    pub forwarding: ForwardingConfig,
}

/// Everything one listener needs to route a request, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// Listener (balancer) name.
    pub name: String,
    /// Routes in match order.
    pub routes: Arc<[Route]>,
    /// Pools that the routes split over (indexes in [`Split`]).
    pub pools: Vec<Arc<Pool>>,
    /// Timeouts and limits.
    pub settings: Settings,
    /// Client address and zone resolution, and the listener's rate limit.
    pub client: Arc<ClientSettings>,
}

/// How a listener finds out who the client is, and limits it.
#[derive(Debug)]
pub struct ClientSettings {
    /// The listener's rate limit.
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted: Vec<Cidr>,
    /// Client networks → zone.
    pub zones: Vec<ClientZoneConfig>,
    /// Header naming the client's zone.
    pub zone_header: Option<HeaderName>,
}

fn limiter(cfg: Option<&RateLimitConfig>) -> Result<Option<Arc<RateLimiter>>, String> {
    cfg.map(|c| RateLimiter::new(c).map(Arc::new)).transpose()
}

impl Snapshot {
    /// Compiles `balancer` of `config`, taking live stats and connection pools of the
    /// instances from the registries (created when new).
    pub fn build(
        config: &Config,
        balancer: &BalancerConfig,
        registry: &StatsRegistry,
        conns: &ConnRegistry,
        now: Duration,
    ) -> Result<Snapshot, ProxyError> {
        let err = |field: String, reason: String| ProxyError::Route {
            balancer: balancer.name.clone(),
            field,
            reason,
        };
        let mut pool_index: HashMap<&str, usize> = HashMap::new();
        let mut pools = Vec::new();
        // The snapshot index of pool `name`, building it on first use.
        let mut pool_idx = |name: &str, field: String| -> Result<usize, ProxyError> {
            if let Some(&i) = pool_index.get(name) {
                return Ok(i);
            }
            let pc = config
                .pools
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| err(field, format!("unknown pool {name:?}")))?;
            let pool = build_pool(pc, registry, conns, now).map_err(|(f, r)| err(format!("pool {:?}.{f}", pc.name), r))?;
            pools.push(Arc::new(pool));
            pool_index.insert(pc.name.as_str(), pools.len() - 1);
            Ok(pools.len() - 1)
        };
        let mut routes = Vec::with_capacity(balancer.routes.len());
        for (ri, rc) in balancer.routes.iter().enumerate() {
            let mut arms = Vec::with_capacity(rc.split.len());
            for (si, arm) in rc.split.iter().enumerate() {
                arms.push((pool_idx(&arm.pool, format!("route[{ri}].split[{si}].pool"))?, arm.weight));
            }
            let mut overrides = Vec::with_capacity(rc.overrides.len());
            for (oi, o) in rc.overrides.iter().enumerate() {
                let on = match (&o.header, &o.cookie) {
                    (Some(h), None) => OverrideOn::Header(HeaderName::try_from(h.as_str()).map_err(|e| {
                        err(format!("route[{ri}].override[{oi}].header"), format!("invalid header name: {e}"))
                    })?),
                    (None, Some(c)) => OverrideOn::Cookie(c.clone()),
                    _ => return Err(err(format!("route[{ri}].override[{oi}]"), "give exactly one of header or cookie".into())),
                };
                let pool = pool_idx(&o.pool, format!("route[{ri}].override[{oi}].pool"))?;
                overrides.push(Override { on, value: o.value.clone(), pool });
            }
            let backup = match &rc.backup {
                Some(b) => Some(Backup {
                    pool: pool_idx(&b.pool, format!("route[{ri}].backup.pool"))?,
                    min_healthy: usize::try_from(b.min_healthy).unwrap_or(usize::MAX),
                }),
                None => None,
            };
            let mut headers = Vec::with_capacity(rc.headers.len());
            for (name, value) in &rc.headers {
                let field = || format!("route[{ri}].headers.{name}");
                let n = HeaderName::try_from(name.as_str())
                    .map_err(|e| err(field(), format!("invalid header name: {e}")))?;
                let v = HeaderValue::try_from(value.as_str())
                    .map_err(|e| err(field(), format!("invalid header value: {e}")))?;
                headers.push((n, v));
            }
            let rate_limit = limiter(rc.rate_limit.as_ref()).map_err(|r| err(format!("route[{ri}].rate_limit"), r))?;
            routes.push(Route {
                host: HostMatch::parse(rc.host.as_deref()),
                path_prefix: rc.path_prefix.clone(),
                headers,
                split: Split::new(arms),
                overrides,
                backup,
                rate_limit,
            });
        }
        let zone_header = match &balancer.zone_header {
            Some(h) => Some(
                HeaderName::try_from(h.as_str()).map_err(|e| err("zone_header".into(), format!("invalid header name: {e}")))?,
            ),
            None => None,
        };
        let client = ClientSettings {
            rate_limit: limiter(balancer.rate_limit.as_ref()).map_err(|r| err("rate_limit".into(), r))?,
            trusted: balancer.trusted_proxies.clone(),
            zones: balancer.client_zones.clone(),
            zone_header,
        };
        let t = &balancer.timeouts;
        let settings = Settings {
            connect: t.connect.0,
            header_read: t.header_read.0,
            upstream_response: t.upstream_response.0,
            idle: t.idle.0,
            max_header_bytes: balancer.limits.max_header_bytes,
            max_body_bytes: balancer.limits.max_body_bytes,
            access_log: balancer.access_log,
            https: !balancer.tls.is_empty(),
            forwarding: balancer.forwarding,
        };
        Ok(Snapshot { name: balancer.name.clone(), routes: routes.into(), pools, settings, client: Arc::new(client) })
    }

    /// This snapshot with its pool of the same name replaced by `pool` (routes, other
    /// pools and settings shared), or None when this listener does not route to it.
    pub fn with_pool(&self, pool: &Arc<Pool>) -> Option<Snapshot> {
        let i = self.pools.iter().position(|p| p.name == pool.name)?;
        let mut pools = self.pools.clone();
        pools[i] = Arc::clone(pool);
        Some(Snapshot {
            name: self.name.clone(),
            routes: Arc::clone(&self.routes),
            pools,
            settings: self.settings.clone(),
            client: Arc::clone(&self.client),
        })
    }
}

/// Builds the request-path view of pool `pc`, taking live stats, guards, connection pools
/// and hold state from the registries. Errors name the failing field relative to the pool
/// (`instance[1].address`) with the reason.
pub(crate) fn build_pool(
    pc: &ballast_core::config::PoolConfig,
    registry: &StatsRegistry,
    conns: &ConnRegistry,
    now: Duration,
) -> Result<Pool, (String, String)> {
    let mut backends = Vec::with_capacity(pc.instances.len());
    let mut stats = Vec::with_capacity(pc.instances.len());
    let mut authorities = Vec::with_capacity(pc.instances.len());
    let mut pools = Vec::with_capacity(pc.instances.len());
    for (i, inst) in pc.instances.iter().enumerate() {
        let authority = Authority::try_from(inst.address.as_str()).map_err(|e| {
            (format!("instance[{i}].address"), format!("{:?} is not host:port ({e})", inst.address))
        })?;
        if authority.port_u16().is_none() {
            return Err((format!("instance[{i}].address"), format!("{:?} has no port", inst.address)));
        }
        authorities.push(authority);
        pools.push(conns.get_or_create(&inst.address));
        stats.push(registry.get_or_create(&pc.name, &inst.address, now));
        backends.push(Backend {
            id: inst.address.clone(),
            addr: inst.address.clone(),
            weight: inst.weight.max(1),
            zone: inst.zone.clone(),
        });
    }
    let options = BalanceOptions {
        slow_start: pc.slow_start.map(|d| d.0),
        panic_threshold: pc.panic_threshold,
        zone_aware: pc.zone_aware,
        ..BalanceOptions::default()
    };
    Ok(Pool {
        name: pc.name.clone(),
        balancer: Balancer::new(pc.balance, backends, stats, options),
        guard: registry.guards.pool_guard(pc),
        zone_aware: pc.zone_aware,
        hold: registry.holds.for_pool(pc),
        authorities,
        conns: pools,
        hash_on: pc.hash_on.clone(),
        sticky: pc.sticky.as_ref().map(|s| Sticky {
            cookie: s.cookie.clone(),
            max_age: s.ttl.map(|t| t.0.as_secs()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Config {
        toml::from_str(toml_text).expect("test config parses")
    }

    const BASE: &str = r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:0"
[[balancer.route]]
headers = { x-tier = "gold" }
split = [{ pool = "app", weight = 3 }, { pool = "app", weight = 1 }]
[[pool]]
name = "app"
sticky = { cookie = "aff", ttl = "10m" }
[[pool.instance]]
address = "127.0.0.1:9001"
weight = 5
[[pool.instance]]
address = "localhost:9002"
"#;

    fn build(cfg: &Config, registry: &StatsRegistry) -> Result<Snapshot, ProxyError> {
        Snapshot::build(cfg, &cfg.balancers[0], registry, &ConnRegistry::new(1), Duration::from_secs(1))
    }

    #[test]
    fn builds_pools_once_and_shares_stats_across_builds() {
        let cfg = parse(BASE);
        let registry = StatsRegistry::default();
        let snap = build(&cfg, &registry).expect("builds");
        assert_eq!(snap.pools.len(), 1, "a pool named twice is built once");
        let pool = &snap.pools[0];
        assert_eq!(pool.balancer.backends()[0].weight, 5);
        assert_eq!(pool.authorities[1].as_str(), "localhost:9002");
        assert_eq!(pool.sticky, Some(Sticky { cookie: "aff".into(), max_age: Some(600) }));
        assert_eq!(snap.routes[0].headers.len(), 1);
        let again = build(&cfg, &registry).expect("builds");
        assert!(Arc::ptr_eq(pool.balancer.stats(0), again.pools[0].balancer.stats(0)));
        assert_eq!(snap.settings.upstream_response, Duration::from_secs(60), "default");
        assert!(!snap.settings.https);
    }

    #[test]
    fn with_pool_replaces_one_pool_and_shares_the_rest() {
        let two = format!("{BASE}[[balancer.route]]\npath_prefix = \"/b\"\nsplit = [{{ pool = \"b\" }}]\n\
             [[pool]]\nname = \"b\"\n[[pool.instance]]\naddress = \"127.0.0.1:9003\"\n");
        let cfg = parse(&two);
        let registry = StatsRegistry::default();
        let snap = build(&cfg, &registry).expect("builds");
        let mut pc = cfg.pools[0].clone();
        pc.instances.truncate(1);
        let conns = ConnRegistry::new(1);
        let app = Arc::new(build_pool(&pc, &registry, &conns, Duration::from_secs(2)).expect("pool builds"));
        let next = snap.with_pool(&app).expect("the listener routes to app");
        assert_eq!(next.pools[0].authorities.len(), 1);
        assert!(Arc::ptr_eq(&next.pools[0], &app));
        assert!(Arc::ptr_eq(&next.pools[1], &snap.pools[1]), "the other pool is not rebuilt");
        assert!(Arc::ptr_eq(&next.routes, &snap.routes) && Arc::ptr_eq(&next.client, &snap.client));
        assert!(Arc::ptr_eq(next.pools[0].balancer.stats(0), snap.pools[0].balancer.stats(0)), "stats kept");
        pc.name = "elsewhere".into();
        let foreign = Arc::new(build_pool(&pc, &registry, &conns, Duration::ZERO).expect("builds"));
        assert!(snap.with_pool(&foreign).is_none(), "a pool this listener does not route to");
    }

    #[test]
    fn registry_forgets_removed_instances() {
        let registry = StatsRegistry::default();
        build(&parse(BASE), &registry).expect("builds");
        assert!(registry.get("app", "localhost:9002").is_some());
        registry.retain_config(&parse(&BASE.replace("localhost:9002", "localhost:9003")));
        assert!(registry.get("app", "localhost:9002").is_none());
        assert!(registry.get("app", "127.0.0.1:9001").is_some());
    }

    #[test]
    fn build_errors_name_the_field() {
        let cases = [
            ("pool = \"app\", weight = 3", "pool = \"nope\", weight = 3", "route[0].split[0].pool: unknown pool \"nope\""),
            ("x-tier = \"gold\"", "\"bad header\" = \"gold\"", "route[0].headers.bad header: invalid header name"),
            ("x-tier = \"gold\"", "x-tier = \"a\\nb\"", "route[0].headers.x-tier: invalid header value"),
            ("127.0.0.1:9001", "not an address", "pool \"app\".instance[0].address: \"not an address\" is not host:port"),
            ("localhost:9002", "localhost", "pool \"app\".instance[1].address: \"localhost\" has no port"),
        ];
        for (from, to, want) in cases {
            let err = build(&parse(&BASE.replace(from, to)), &StatsRegistry::default()).expect_err(to);
            let msg = err.to_string();
            assert!(msg.starts_with("balancer \"web\": ") && msg.contains(want), "{to}: {msg}");
        }
    }
}
