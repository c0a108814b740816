//! `/api/v1/pools` over real sockets: a static pool behind a real proxy, and an
//! autoscaled pool whose real controller starts python3 `http.server` replicas.

mod common;

use ballast_admin::AdminSources;
use ballast_control::controller::seam::ProxySeam;
use ballast_control::controller::wire::Wiring;
use ballast_control::controller::{EventLog, Fleet, PoolView, Settings};
use ballast_control::lifecycle::Phase;
use common::*;
use serde_json::Value;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

async fn pools_json(admin: std::net::SocketAddr) -> Value {
    let answer = get(admin, "/api/v1/pools?verbose=1&x=%zz").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    serde_json::from_str(&answer.body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pool_shows_its_instances_health_and_counters() {
    let (a, b) = (backend().await, backend().await);
    let config = format!(
        r#"
[[balancer]]
name = "front"
listen = "127.0.0.1:0"
[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "app" }}]

[[pool]]
name = "app"
instance = [{{ address = "{}" }}, {{ address = "{}" }}]
[pool.retry]
attempts = 0
[pool.health]
kind = "tcp"
interval = "50ms"
timeout = "40ms"
"#,
        a.addr, b.addr
    );
    let proxy = proxy(&config);
    let front = proxy.local_addr("front").expect("front");
    for _ in 0..6 {
        assert_eq!(get(front, "/").await.status, 200);
    }
    let admin = admin(AdminSources::new(proxy.clone()));
    let checked = || proxy.health_status().iter().all(|(_, l)| l.len() == 2 && l.iter().all(|h| h.checks > 0));
    eventually(Duration::from_secs(5), "both instances checked", checked).await;
    let stats = [a.addr, b.addr].map(|x| proxy.backend_stats("app", &x.to_string()).expect("stats"));
    let ended = || stats.iter().map(|s| s.latency.snapshot().count()).sum::<u64>() == 6;
    eventually(Duration::from_secs(5), "requests ended", ended).await;

    let doc = pools_json(admin.local_addr()).await;
    let pools = doc["pools"].as_array().expect("pools");
    assert_eq!(pools.len(), 1, "{doc:#}");
    let app = &pools[0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["autoscaled"], false);
    assert_eq!(app["held_requests"], 0);
    assert_eq!(app["replicas"], Value::Null);
    let instances = app["instances"].as_array().expect("instances");
    let addrs: Vec<&str> = instances.iter().map(|i| i["address"].as_str().expect("address")).collect();
    assert_eq!(addrs, [a.addr.to_string(), b.addr.to_string()]);
    for i in instances {
        assert_eq!(i["health"], "healthy", "{i}");
        assert_eq!(i["phase"], Value::Null);
        assert_eq!(i["stats"]["in_rotation"], true);
        assert_eq!(i["stats"]["in_flight"], 0);
        assert_eq!(i["stats"]["failures"], 0);
    }
    let total: u64 = instances.iter().map(|i| i["stats"]["requests"].as_u64().expect("requests")).sum();
    assert_eq!(total, 6, "every request sent shows on one instance");
    assert!(admin.shutdown(Duration::from_secs(5)).await);
}

const AUTOSCALED: &str = r#"
[[balancer]]
name = "front"
listen = "127.0.0.1:0"
[[balancer.route]]
path_prefix = "/"
split = [{ pool = "web" }]

[[pool]]
name = "web"
[pool.provider]
kind = "process"
command = "python3"
args = ["-m", "http.server", "{port}", "--bind", "127.0.0.1"]
port_range = { start = 34700, end = 34799 }
[pool.health]
path = "/"
[pool.scaling]
min = 1
max = 3
[[pool.scaling.policy]]
kind = "target"
metric = "concurrency"
target = 10.0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_pool_shows_replicas_phases_and_metrics() {
    let config = ballast_core::config::parse(AUTOSCALED).expect("config");
    let proxy = proxy(AUTOSCALED);
    let seam = Arc::new(ProxySeam::new(proxy.clone()));
    let log_dir = std::env::temp_dir().join(format!("ballast-admin-pools-{}", std::process::id()));
    let wiring = Wiring {
        log_dir: log_dir.clone(),
        settings: Settings { tick: Duration::from_millis(100), ..Settings::default() },
        events: EventLog::new(100),
    };
    let (fleet, notes) = Fleet::start(&config, seam, wiring);
    assert!(notes.is_empty(), "{notes:?}");
    let cells = fleet.shared_views();
    assert_eq!(cells.len(), 1);
    let view = |cell: &Mutex<PoolView>| cell.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let pools = move || cells.iter().map(|(name, cell)| (name.clone(), view(cell))).collect::<Vec<_>>();
    let admin = admin(AdminSources::new(proxy.clone()).with_pools(Arc::new(pools)));
    let ready = || fleet.view("web").is_some_and(|v| v.count(Phase::Ready) == 1);
    eventually(Duration::from_secs(30), "one replica ready", ready).await;
    let address = fleet.view("web").expect("web").instances[0].address.clone().expect("address");
    let served = || proxy.running_config().pools[0].instances.iter().any(|i| i.address == address);
    eventually(Duration::from_secs(10), "the proxy balances over the replica", served).await;
    let front = proxy.local_addr("front").expect("front");
    assert_eq!(get(front, "/").await.status, 200);

    let doc = pools_json(admin.local_addr()).await;
    let web = &doc["pools"][0];
    assert_eq!(web["name"], "web", "{doc:#}");
    assert_eq!(web["autoscaled"], true);
    assert_eq!(web["status"]["state"], "ok");
    assert_eq!(web["replicas"]["desired"], 1);
    assert_eq!(web["replicas"]["current"], 1);
    assert_eq!(web["replicas"]["by_phase"]["ready"], 1);
    assert_eq!(web["replicas"]["by_phase"]["starting"], 0);
    let inst = &web["instances"][0];
    assert_eq!(inst["id"], "web-1");
    assert_eq!(inst["address"], address.as_str());
    assert_eq!(inst["phase"], "ready");
    assert!(inst["stats"]["requests"].as_u64().expect("stats") >= 1, "{inst}");

    let metrics = samples(&get_accept(admin.local_addr(), "/metrics", PROMETHEUS_ACCEPT).await.body);
    assert_eq!(sample(&metrics, "ballast_pool_replicas_desired{pool=\"web\"}"), 1.0);
    assert_eq!(sample(&metrics, "ballast_pool_replicas{pool=\"web\",phase=\"ready\"}"), 1.0);
    assert_eq!(sample(&metrics, "ballast_pool_replicas{pool=\"web\",phase=\"draining\"}"), 0.0);
    assert_eq!(sample(&metrics, "ballast_pool_provider_error{pool=\"web\"}"), 0.0);
    assert_eq!(sample(&metrics, "ballast_pool_rolling{pool=\"web\"}"), 0.0);
    assert_eq!(sample(&metrics, "ballast_pool_provider_errors_total{pool=\"web\"}"), 0.0);
    let decisions = sample(&metrics, "ballast_pool_decisions_total{pool=\"web\"}");
    let seen = fleet.view("web").expect("web").decisions;
    assert_eq!(decisions, seen as f64, "the counter is the view's");
    let requests = sample(&metrics, &format!("ballast_backend_requests_total{{pool=\"web\",backend=\"{address}\"}}"));
    assert!(requests >= 1.0);

    assert!(admin.shutdown(Duration::from_secs(5)).await);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&log_dir);
}
