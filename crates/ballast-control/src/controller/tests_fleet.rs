//! The fleet as the binary runs it: a config's autoscaled pools started behind a real
//! proxy, scaled on a `prometheus:` metric from a real Prometheus, and reloaded.

use super::fleet::Fleet;
use super::seam::ProxySeam;
use super::wire::Wiring;
use super::{EventKind, EventLog, Settings};
use crate::lifecycle::Phase;
use crate::metrics::prometheus::tests::RealPrometheus;
use ballast_proxy::{AccessLog, ProxyServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn config(prometheus_url: &str, query: &str, max: u32) -> ballast_core::config::Config {
    let text = format!(
        r#"
[[balancer]]
name = "front"
listen = "127.0.0.1:0"
[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "web" }}]

[[pool]]
name = "web"
[pool.provider]
kind = "process"
command = "python3"
args = ["-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
port_range = {{ start = 33700, end = 33799 }}
[pool.health]
path = "/"
[pool.scaling]
min = 1
max = {max}
sync_interval = "1s"
scale_up_cooldown = "1s"
[pool.scaling.prometheus]
url = "{prometheus_url}"
interval = "1s"
timeout = "1s"
queries = {{ wanted = "{query}" }}
[[pool.scaling.policy]]
kind = "target"
metric = "prometheus:wanted"
target = 1
window = "2s"
"#
    );
    ballast_core::config::parse_and_validate(&text).expect("valid config")
}

async fn until(fleet: &Fleet, secs: u64, what: &str, f: impl Fn(&super::PoolView) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = fleet.view("web").expect("pool web runs");
        if f(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_scales_on_a_real_prometheus_query_and_follows_reloads() {
    let (prom, _, _) = RealPrometheus::start("fleet").await;
    // the pool wants 3 instances: the query answers 3 with a target of 1 per instance
    let first = config(&prom.url, "vector(3)", 3);
    let server = Arc::new(ProxyServer::start(&first, AccessLog::off()).expect("proxy"));
    let seam = Arc::new(ProxySeam::new(server.clone()));
    let dir = std::env::temp_dir().join(format!("ballast-fleet-{}", std::process::id()));
    let events = EventLog::new(1000);
    let wiring = Wiring { log_dir: dir.clone(), settings: Settings { tick: Duration::from_millis(100), ..Settings::default() }, events: events.clone() };
    let (mut fleet, notes) = Fleet::start(&first, seam, wiring);
    assert!(notes.is_empty(), "{notes:?}");
    until(&fleet, 60, "three ready from the prometheus metric", |v| v.count(Phase::Ready) == 3).await;
    let decision = events.snapshot().into_iter().find(|e| e.kind == EventKind::Decision).expect("a decision");
    assert!(decision.reason.contains("prometheus:wanted"), "the reason names the metric: {}", decision.reason);

    // a reload lowers max: the running task clamps its target at once
    let lower = config(&prom.url, "vector(3)", 2);
    let changes = fleet.reload(&lower).await.expect("reload");
    assert_eq!(changes, ["pool web: scaling, cost and health settings applied to the running pool"]);
    until(&fleet, 30, "down to two", |v| v.target == 2 && v.count(Phase::Ready) == 2 && v.instances.len() == 2).await;

    fleet.shutdown().await;
    prom.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
