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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_start_added_pools_and_a_refused_config_changes_nothing() {
    let base = ballast_core::config::parse_and_validate(
        "[[balancer]]\nname = \"front\"\nlisten = \"127.0.0.1:0\"\n[[balancer.route]]\npath_prefix = \"/\"\n\
         split = [{ pool = \"fixed\" }]\n[[pool]]\nname = \"fixed\"\n[[pool.instance]]\naddress = \"127.0.0.1:9\"\n",
    )
    .expect("valid");
    let server = Arc::new(ProxyServer::start(&base, AccessLog::off()).expect("proxy"));
    let dir = std::env::temp_dir().join(format!("ballast-fleet-add-{}", std::process::id()));
    let wiring = Wiring { log_dir: dir.clone(), settings: Settings { tick: Duration::from_millis(100), ..Settings::default() }, events: EventLog::new(100) };
    let (mut fleet, notes) = Fleet::start(&base, Arc::new(ProxySeam::new(server.clone())), wiring);
    assert!(notes.is_empty() && fleet.names().is_empty(), "{notes:?}");

    // a reload adds an autoscaled pool (routed under /web) next to the static one
    let mut added = config("http://127.0.0.1:9", "vector(1)", 2);
    added.pools[0].scaling.as_mut().expect("scaling").prometheus = None;
    added.pools[0].scaling.as_mut().expect("scaling").policies = base_policy();
    added.balancers[0].routes[0].path_prefix = "/web".into();
    added.balancers[0].routes.push(base.balancers[0].routes[0].clone());
    added.pools.push(base.pools[0].clone());
    let errors = ballast_core::config::validate(&added);
    assert!(errors.is_empty(), "{errors:?}");
    let changes = fleet.reload(&added).await.expect("reload");
    assert_eq!(changes, ["pool web: autoscaling started"]);
    until(&fleet, 30, "the added pool ready", |v| v.count(Phase::Ready) == 1).await;

    // a balancer on an address that is taken: the proxy refuses, nothing changes
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut refused = added.clone();
    let mut second = refused.balancers[0].clone();
    second.name = "second".into();
    second.listen = taken.local_addr().expect("addr").to_string();
    refused.balancers.push(second);
    refused.pools[0].scaling.as_mut().expect("scaling").min = 2;
    let err = fleet.reload(&refused).await.expect_err("bind conflict");
    assert!(err.contains("second"), "{err}");
    let again = fleet.reload(&added).await.expect("the running config again");
    assert!(again.is_empty(), "the refused settings were never applied: {again:?}");
    assert_eq!(fleet.view("web").expect("web").target, 1);

    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Target tracking on concurrency, 10 per instance.
fn base_policy() -> Vec<ballast_core::autoscale::PolicyConfig> {
    vec![ballast_core::autoscale::PolicyConfig::Target(ballast_core::autoscale::TargetPolicy::new(
        ballast_core::autoscale::MetricKind::Concurrency,
        10.0,
    ))]
}
