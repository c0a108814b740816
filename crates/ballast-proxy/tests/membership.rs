//! `ProxyServer::set_pool_instances` over real sockets: one pool's members change
//! without a reload, stats of addresses that stay survive, addresses that come back start
//! fresh, health checks follow, bad lists change nothing, and reloads respect the rule
//! (process/exec pools keep the controller's list, static pools get the config's back).

mod common;

use ballast_core::config::InstanceConfig;
use ballast_proxy::{ProxyError, ProxyServer};
use common::*;
use http::StatusCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

fn instance(addr: SocketAddr) -> InstanceConfig {
    InstanceConfig { address: addr.to_string(), weight: 1, zone: None }
}

/// Balancer `web` → pool `app` (provider `process`, no static instances) with
/// `extra_pool` lines, and a second static pool `other` of `other` on path `/other`.
fn managed(extra_pool: &str, other: SocketAddr) -> String {
    format!(
        "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[balancer.route]]\npath_prefix = \"/other\"\nsplit = [{{ pool = \"other\" }}]\n\
         [[balancer.route]]\nsplit = [{{ pool = \"app\" }}]\n\n\
         [[pool]]\nname = \"app\"\nbalance = \"round-robin\"\n{extra_pool}\n\
         [pool.provider]\nkind = \"process\"\ncommand = \"true\"\n\n\
         [[pool]]\nname = \"other\"\n[[pool.instance]]\naddress = \"{other}\"\n"
    )
}

/// Which backends answer `n` requests to `/`.
async fn answered_by(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let got = send(addr, get("/")).await;
        assert_eq!(got.status, StatusCode::OK);
        *seen.entry(got.json()["backend"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    seen
}

fn requests(server: &ProxyServer, pool: &str, addr: SocketAddr) -> u64 {
    server.backend_stats(pool, &addr.to_string()).map_or(0, |s| s.requests.load(Relaxed))
}

#[tokio::test]
async fn members_change_without_a_reload_and_stats_follow_the_rule() {
    let (a, b, other) = (echo("a").await, echo("b").await, echo("other").await);
    let (server, addr) = proxy(&managed("", other.addr)).await;
    assert_eq!(send(addr, get("/")).await.status, StatusCode::SERVICE_UNAVAILABLE, "no member yet");

    server.set_pool_instances("app", &[instance(a.addr)]).expect("set a");
    assert_eq!(answered_by(addr, 3).await, HashMap::from([("a".to_string(), 3)]));
    server.set_pool_instances("app", &[instance(a.addr), instance(b.addr)]).expect("add b");
    let both = answered_by(addr, 4).await;
    assert_eq!((both["a"], both["b"]), (2, 2), "round-robin over both");
    assert_eq!(requests(&server, "app", a.addr), 5, "a stayed: its counters survive");
    let a_stats = server.backend_stats("app", &a.addr.to_string()).expect("a");
    a_stats.draining.store(true, Relaxed);

    // b leaves, a stays: a keeps its stats object and its drain mark.
    server.set_pool_instances("app", &[instance(a.addr)]).expect("drop b");
    assert!(server.backend_stats("app", &b.addr.to_string()).is_none(), "b is forgotten");
    let kept = server.backend_stats("app", &a.addr.to_string()).expect("a kept");
    assert!(std::sync::Arc::ptr_eq(&kept, &a_stats), "the same stats object");
    assert!(kept.draining.load(Relaxed), "the drain mark survives");

    // a leaves and comes back (a new process on the same port): fresh stats, no mark.
    server.set_pool_instances("app", &[instance(b.addr)]).expect("swap");
    server.set_pool_instances("app", &[instance(a.addr), instance(b.addr)]).expect("a back");
    let fresh = server.backend_stats("app", &a.addr.to_string()).expect("a again");
    assert!(!std::sync::Arc::ptr_eq(&fresh, &a_stats));
    assert_eq!((fresh.requests.load(Relaxed), fresh.draining.load(Relaxed)), (0, false));

    // The other pool was never touched.
    assert_eq!(send(addr, get("/other")).await.json()["backend"], "other");
    server.set_pool_instances("app", &[]).expect("to zero");
    assert_eq!(send(addr, get("/")).await.status, StatusCode::SERVICE_UNAVAILABLE, "no member");
    assert_eq!(send(addr, get("/other")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_lists_are_refused_with_the_field_and_change_nothing() {
    let (a, other) = (echo("a").await, echo("other").await);
    let (server, addr) = proxy(&managed("", other.addr)).await;
    server.set_pool_instances("app", &[instance(a.addr)]).expect("set a");
    let good = instance(a.addr);
    let with = |address: &str, weight: u32| InstanceConfig { address: address.into(), weight, zone: None };
    let cases: Vec<(&str, Vec<InstanceConfig>, &str)> = vec![
        ("nope", vec![good.clone()], "pool \"nope\": pool: no such pool in the running config"),
        ("app", vec![good.clone(), with("not an address", 1)], "pool \"app\": instance[1].address: \"not an address\" is not host:port"),
        ("app", vec![with("localhost", 1)], "pool \"app\": instance[0].address: \"localhost\" has no port"),
        ("app", vec![good.clone(), good.clone()], "instance[1].address: \"127.0.0.1:"),
        ("app", vec![with("10.0.0.1:80", 0)], "pool \"app\": instance[0].weight: 0 is not allowed; use 1 to 10000"),
        ("app", vec![good.clone(), with("10.0.0.1:80", 10_001)], "instance[1].weight: 10001 is not allowed"),
        ("app", vec![with("", 1)], "pool \"app\": instance[0].address: \"\" is not host:port"),
    ];
    for (pool, list, want) in cases {
        let err = server.set_pool_instances(pool, &list).expect_err(want);
        assert!(matches!(err, ProxyError::Membership { .. }), "{err:?}");
        assert!(err.to_string().contains(want), "{err} lacks {want:?}");
    }
    let dup = server.set_pool_instances("app", &[good.clone(), good.clone()]).expect_err("dup");
    assert!(dup.to_string().ends_with("is already instance[0]"), "{dup}");
    assert_eq!(answered_by(addr, 2).await, HashMap::from([("a".to_string(), 2)]), "unchanged");
    assert!(server.backend_stats("app", "10.0.0.1:80").is_none(), "nothing half-built");
    assert_eq!(server.running_config().pools[0].instances, vec![good]);
}

#[tokio::test]
async fn reload_keeps_the_controller_list_of_process_pools_and_restores_static_ones() {
    let (a, b, other) = (echo("a").await, echo("b").await, echo("other").await);
    let text = managed("", other.addr);
    let (server, addr) = proxy(&text).await;
    server.set_pool_instances("app", &[instance(a.addr)]).expect("set a");
    server.set_pool_instances("other", &[instance(b.addr)]).expect("static pools may be set too");
    assert_eq!(send(addr, get("/other")).await.json()["backend"], "b");
    answered_by(addr, 2).await;

    // A settings-only reload: app keeps a (and its stats), other gets its config list back.
    let changed = text.replace("balance = \"round-robin\"", "balance = \"least-request\"");
    server.reload(&config(&changed)).expect("reload");
    assert_eq!(answered_by(addr, 2).await, HashMap::from([("a".to_string(), 2)]));
    assert_eq!(requests(&server, "app", a.addr), 4, "a kept its stats across the reload");
    assert_eq!(send(addr, get("/other")).await.json()["backend"], "other", "static: the config wins");
    assert!(server.backend_stats("other", &b.addr.to_string()).is_none());
    let running = server.running_config();
    assert_eq!(running.pools[0].instances, vec![instance(a.addr)]);
    assert_eq!(running.pools[0].balance, ballast_core::balance::Algorithm::LeastRequest);

    // The pool turns static: the controller's list is forgotten for good.
    let static_app = changed.replace("[pool.provider]\nkind = \"process\"\ncommand = \"true\"\n", "");
    server.reload(&config(&static_app)).expect("reload static");
    assert_eq!(send(addr, get("/")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(server.backend_stats("app", &a.addr.to_string()).is_none());
    server.reload(&config(&changed)).expect("back to process");
    assert_eq!(send(addr, get("/")).await.status, StatusCode::SERVICE_UNAVAILABLE, "not resurrected");
}

#[tokio::test]
async fn health_checks_follow_the_new_members() {
    let (a, b, other) = (echo("a").await, echo("b").await, echo("other").await);
    let health = "[pool.health]\nkind = \"tcp\"\ninterval = \"50ms\"\ntimeout = \"40ms\"\nrise = 1\nfall = 1\n";
    let (server, _) = proxy(&managed(health, other.addr)).await;
    let checked = |server: &ProxyServer| -> Vec<String> {
        let status = server.health_status();
        let app = status.iter().find(|(p, _)| p == "app").map(|(_, v)| v.clone()).unwrap_or_default();
        let mut addrs: Vec<String> = app.into_iter().filter(|h| h.checks > 0).map(|h| h.addr).collect();
        addrs.sort();
        addrs
    };
    server.set_pool_instances("app", &[instance(a.addr), instance(b.addr)]).expect("set");
    let mut want = vec![a.addr.to_string(), b.addr.to_string()];
    want.sort();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while checked(&server) != want {
        assert!(tokio::time::Instant::now() < deadline, "checks of {want:?}; got {:?}", checked(&server));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.set_pool_instances("app", &[instance(b.addr)]).expect("drop a");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while checked(&server) != vec![b.addr.to_string()] {
        assert!(tokio::time::Instant::now() < deadline, "a still checked: {:?}", checked(&server));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
