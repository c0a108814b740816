//! Wiring from a validated `Config` to running pool tasks: what the binary (`ballast
//! serve`, `ballast demo`) calls once the proxy runs.
//!
//! Every pool with `[pool.scaling]` and a `process` or `exec` provider gets a task:
//! - provider from `[pool.provider]` (process logs under `<log_dir>/<pool>/`);
//! - probe from `[pool.health]`: `http` → GET of its path with its timeout; `tcp`,
//!   `https` and `icmp` → a TCP connect (the proxy's own checker still runs the real
//!   check for traffic); no health section → a TCP connect with a 2 s timeout;
//! - metrics from the proxy's live stats and the instances' process groups, keeping
//!   only the metrics the pool's policies read (all of them when a template is used);
//! - `prometheus:<name>` metrics from a poller of `[pool.scaling.prometheus]`
//!   ([`spawn_prometheus`]) feeding the pool's [`MetricInbox`];
//! - membership, and requests held while the pool is at zero, through [`ProxySeam`].
//!
//! Static pools are balanced only, and a scaling section on one is reported back as a
//! note rather than started (it has nothing to scale). [`super::fleet::Fleet`] starts
//! the tasks and keeps them in step with config reloads.

use super::seam::ProxySeam;
use super::{EventLog, HttpProbe, PoolHandle, PoolSpec, Probe, ProxyFeed, Settings, TcpProbe};
use crate::metrics::inbox::MetricInbox;
use crate::metrics::prometheus::{spawn_poller, NamedQuery, PromClient};
use crate::provider::logs::LogPolicy;
use crate::provider::{ExecProvider, ProcessProvider, Provider};
use ballast_core::autoscale::{prometheus_metrics, MetricKind, PolicyConfig, ScalingConfig};
use ballast_core::config::{HealthCheckKind, PoolConfig, ProviderConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where logs go, the timing of every pool task, and the shared event log.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Instance logs go to `<log_dir>/<pool>/<instance>.{out,err}.log`.
    pub log_dir: PathBuf,
    /// Timing of every pool task.
    pub settings: Settings,
    /// Where every pool's events go.
    pub events: EventLog,
}

/// The metrics `scaling`'s policies read; None when a template adds policies (then
/// every metric is kept).
pub fn policy_metrics(scaling: &ScalingConfig) -> Option<Vec<MetricKind>> {
    if scaling.template.is_some() {
        return None;
    }
    let mut out: Vec<MetricKind> = Vec::new();
    for p in &scaling.policies {
        match p {
            PolicyConfig::Target(t) => out.push(t.metric.clone()),
            PolicyConfig::Step(s) => out.push(s.metric.clone()),
            PolicyConfig::Score(s) => out.extend(s.weights.keys().cloned()),
            PolicyConfig::Predictive(p) => out.push(p.metric.clone()),
            PolicyConfig::Schedule(_) => {}
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// The provider of `pool`; None for `static` (nothing to create).
pub fn provider_for(pool: &PoolConfig, log_dir: &std::path::Path) -> Option<Arc<dyn Provider>> {
    match &pool.provider {
        ProviderConfig::Static => None,
        ProviderConfig::Process(p) => {
            Some(Arc::new(ProcessProvider::new(&pool.name, p.clone(), LogPolicy::in_dir(log_dir.join(&pool.name)))))
        }
        ProviderConfig::Exec(e) => Some(Arc::new(ExecProvider::new(&pool.name, e.clone()))),
    }
}

/// The readiness probe of `pool` (see the module documentation).
pub fn probe_for(pool: &PoolConfig) -> Arc<dyn Probe> {
    match &pool.health {
        Some(h) if h.kind == HealthCheckKind::Http => Arc::new(HttpProbe::new(&h.path, h.timeout.0)),
        Some(h) => Arc::new(TcpProbe { timeout: h.timeout.0 }),
        None => Arc::new(TcpProbe { timeout: Duration::from_secs(2) }),
    }
}

/// Samples a Prometheus poller may queue between two ticks of its pool.
const INBOX_CAP: usize = 1024;

/// Why `pool` is not autoscaled, when it is not (None: it is).
pub fn not_autoscaled(pool: &PoolConfig) -> Option<String> {
    match (&pool.scaling, &pool.provider) {
        (Some(_), ProviderConfig::Static) => {
            Some(format!("pool {}: [pool.scaling] ignored: a static pool has nothing to scale", pool.name))
        }
        (Some(_), _) => None,
        (None, ProviderConfig::Static) => Some(String::new()),
        (None, p) => Some(format!(
            "pool {}: provider {} without [pool.scaling]: nothing starts its instances; add [pool.scaling] (min = max for a fixed count)",
            pool.name,
            format!("{:?}", p.kind()).to_lowercase()
        )),
    }
}

/// Starts the task of autoscaled `pool` with `provider`; its feed also drains `inbox`.
pub fn spawn_pool(pool: &PoolConfig, provider: Arc<dyn Provider>, inbox: MetricInbox, seam: &Arc<ProxySeam>, wiring: &Wiring) -> PoolHandle {
    let scaling = pool.scaling.clone().unwrap_or_default();
    let mut feed = ProxyFeed::new(seam.clone(), seam.clock()).with_inbox(inbox);
    if let Some(metrics) = policy_metrics(&scaling) {
        feed = feed.only(metrics);
    }
    PoolHandle::spawn(PoolSpec {
        name: pool.name.clone(),
        scaling,
        cost: pool.cost.clone(),
        provider,
        probe: probe_for(pool),
        feed: Box::new(feed),
        membership: seam.clone(),
        stats: Some(seam.clone()),
        settings: wiring.settings,
        events: wiring.events.clone(),
        demand: Some(seam.clone()),
    })
}

/// Starts polling the `prometheus:<name>` metrics `scaling`'s policies read from its
/// `[pool.scaling.prometheus]` server into `inbox`. None when no policy reads one.
pub fn spawn_prometheus(scaling: &ScalingConfig, inbox: &MetricInbox) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let names = prometheus_metrics(&scaling.effective_policies());
    if names.is_empty() {
        return Ok(None);
    }
    let source = scaling.prometheus.as_ref().ok_or("prometheus metrics without [pool.scaling.prometheus]")?;
    let client = PromClient::new(&source.url, source.timeout.0).map_err(|e| e.to_string())?;
    let queries = names.into_iter().map(|(name, _)| NamedQuery { promql: source.promql(&name).to_string(), name }).collect();
    Ok(Some(spawn_poller(client, queries, source.interval.0, inbox.clone())))
}

/// A fresh inbox for a pool's pushed and polled samples.
pub fn new_inbox() -> MetricInbox {
    MetricInbox::new(INBOX_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Phase;
    use ballast_proxy::{AccessLog, ProxyServer};
    use tokio::time::Instant;

    /// The shared python3 pool ([`super::super::tests_real::CONFIG`]) made autoscaled,
    /// and a static pool with a scaling section.
    fn config() -> ballast_core::config::Config {
        let text = format!("{}{AUTOSCALED}", super::super::tests_real::CONFIG);
        ballast_core::config::parse(&text).expect("config")
    }

    const AUTOSCALED: &str = r#"args = ["-m", "http.server", "{port}", "--bind", "127.0.0.1"]
port_range = { start = 33600, end = 33699 }
[pool.health]
path = "/"
[pool.scaling]
min = 2
max = 4
[[pool.scaling.policy]]
kind = "target"
metric = "concurrency"
target = 10.0

[[pool]]
name = "fixed"
[[pool.instance]]
address = "127.0.0.1:9"
[pool.scaling]
min = 1
max = 2
"#;

    #[test]
    fn policy_metrics_are_collected_from_every_kind() {
        let config = config();
        let scaling = config.pools[0].scaling.clone().expect("scaling");
        assert_eq!(policy_metrics(&scaling), Some(vec![MetricKind::Concurrency]));
        let templated = ScalingConfig { template: Some("web-balanced".into()), ..scaling };
        assert_eq!(policy_metrics(&templated), None);
    }

    #[test]
    fn pools_that_are_not_autoscaled_say_why() {
        let config = config();
        assert_eq!(not_autoscaled(&config.pools[0]), None, "process + scaling");
        assert_eq!(
            not_autoscaled(&config.pools[1]).as_deref(),
            Some("pool fixed: [pool.scaling] ignored: a static pool has nothing to scale")
        );
        let plain = PoolConfig { scaling: None, ..config.pools[1].clone() };
        assert_eq!(not_autoscaled(&plain).as_deref(), Some(""), "a plain static pool needs no note");
        let unscaled = PoolConfig { scaling: None, ..config.pools[0].clone() };
        let note = not_autoscaled(&unscaled).expect("a note");
        assert!(note.starts_with("pool web: provider process without [pool.scaling]: nothing starts its instances"), "{note}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_config_starts_its_autoscaled_pools_behind_the_proxy() {
        let config = config();
        let server = Arc::new(ProxyServer::start(&config, AccessLog::off()).expect("proxy"));
        let seam = Arc::new(ProxySeam::new(server.clone()));
        let log_dir = std::env::temp_dir().join(format!("ballast-wire-{}", std::process::id()));
        let wiring = Wiring { log_dir: log_dir.clone(), settings: Settings { tick: Duration::from_millis(100), ..Settings::default() }, events: EventLog::new(100) };
        let (fleet, notes) = super::super::Fleet::start(&config, seam, wiring);
        assert_eq!(notes, ["pool fixed: [pool.scaling] ignored: a static pool has nothing to scale"]);
        assert_eq!(fleet.names(), ["web"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while fleet.view("web").expect("web").count(Phase::Ready) < 2 {
            assert!(Instant::now() < deadline, "two replicas never became ready: {:?}", fleet.view("web"));
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
        }
        let front = server.local_addr("front").expect("front");
        let reply = get(front).await;
        assert!(reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"), "{reply}");
        fleet.shutdown().await;
        assert!(log_dir.join("web").join("web-1.err.log").exists(), "logs under <log_dir>/<pool>/");
        let _ = std::fs::remove_dir_all(&log_dir);
    }

    async fn get(front: std::net::SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(front).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        String::from_utf8_lossy(&out).to_string()
    }
}
