//! Traffic shaping on the request path: weighted splits and their overrides, blue-green
//! by reload, failover to a backup pool, zone-aware picks and rate limits.

mod common;

use common::*;
use http::{Request, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, TestBody>;

/// GETs `/` with `headers`; returns the status and the answering backend's name.
async fn hit(client: &Client, addr: SocketAddr, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::get(format!("http://{addr}/"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(empty()).expect("request")).await.expect("response");
    let got = collect(resp).await;
    let backend = got.headers.get("x-backend").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (got.status, backend)
}

/// Counts answering backends over `n` requests.
async fn tally(client: &Client, addr: SocketAddr, n: usize, headers: &[(&str, &str)]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let (status, backend) = hit(client, addr, headers).await;
        assert_eq!(status, StatusCode::OK);
        *counts.entry(backend).or_default() += 1;
    }
    counts
}

fn two_pools(route: &str, stable: SocketAddr, canary: SocketAddr, extra: &str) -> String {
    format!(
        "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n{extra}\n[[balancer.route]]\n{route}\n\
         [[pool]]\nname = \"stable\"\n[[pool.instance]]\naddress = \"{stable}\"\n\
         [[pool]]\nname = \"canary\"\n[[pool.instance]]\naddress = \"{canary}\"\n"
    )
}

#[tokio::test]
async fn a_90_10_split_lands_within_two_points_and_the_override_always_wins() {
    let (stable, canary) = (echo("stable").await, echo("canary").await);
    let route = "split = [{ pool = \"stable\", weight = 90 }, { pool = \"canary\", weight = 10 }]\n\
                 override = [{ header = \"x-canary\", value = \"1\", pool = \"canary\" }]";
    let (_proxy, addr) = proxy(&two_pools(route, stable.addr, canary.addr, "")).await;
    let client = pooled_client();
    let n = 10_000;
    let counts = tally(&client, addr, n, &[]).await;
    let canary_pct = 100.0 * counts.get("canary").copied().unwrap_or(0) as f64 / n as f64;
    println!("90/10 split over {n}: canary {canary_pct:.2}%");
    assert!((8.0..=12.0).contains(&canary_pct), "canary got {canary_pct}%");
    let forced = tally(&client, addr, 500, &[("x-canary", "1")]).await;
    assert_eq!(forced.get("canary"), Some(&500), "{forced:?}");
    let other = tally(&client, addr, 200, &[("x-canary", "0")]).await;
    assert!(other.get("stable").copied().unwrap_or(0) > 150, "another value does not force: {other:?}");
}

#[tokio::test]
async fn blue_green_is_one_atomic_weight_change() {
    let (blue, green) = (echo("blue").await, echo("green").await);
    let cfg = |b: u32, g: u32| {
        two_pools(
            &format!("split = [{{ pool = \"stable\", weight = {b} }}, {{ pool = \"canary\", weight = {g} }}]"),
            blue.addr,
            green.addr,
            "",
        )
    };
    let (proxy, addr) = proxy(&cfg(100, 0)).await;
    let client = pooled_client();
    assert_eq!(tally(&client, addr, 50, &[]).await.get("blue"), Some(&50));
    proxy.reload(&config(&cfg(0, 100))).expect("reload");
    assert_eq!(tally(&client, addr, 50, &[]).await.get("green"), Some(&50), "every request after the swap is green");
}

#[tokio::test]
async fn the_backup_pool_takes_traffic_only_while_the_primary_is_down() {
    let primary = echo("primary").await;
    let primary_addr = primary.addr;
    let backup = echo("backup").await;
    let route = "split = [{ pool = \"stable\" }]\nbackup = { pool = \"canary\", min_healthy = 1 }";
    let text = two_pools(route, primary.addr, backup.addr, "").replace(
        "name = \"stable\"\n",
        "name = \"stable\"\n[pool.health]\nkind = \"tcp\"\ninterval = \"50ms\"\ntimeout = \"40ms\"\nrise = 2\nfall = 1\n\
         [pool.circuit_breaker]\nrecovery_timeout = \"300ms\"\n",
    );
    let (_proxy, addr) = proxy(&text).await;
    let client = pooled_client();
    assert_eq!(tally(&client, addr, 20, &[]).await.get("primary"), Some(&20));
    primary.kill();
    drop(primary);
    // Until the health check notices, retries cannot help (one instance): wait for failover.
    let start = Instant::now();
    loop {
        let (status, backend) = hit(&client, addr, &[]).await;
        if status == StatusCode::OK && backend == "backup" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "no failover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tally(&client, addr, 20, &[]).await.get("backup"), Some(&20));
    // The primary comes back on its address: traffic returns after `rise` checks.
    let _revived = echo_on("primary", primary_addr).await;
    let start = Instant::now();
    loop {
        let (_, backend) = hit(&client, addr, &[]).await;
        if backend == "primary" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "traffic did not return");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn zone_aware_pools_keep_clients_in_their_zone() {
    let (a, b) = (echo("a").await, echo("b").await);
    let text = format!(
        "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nzone_header = \"x-zone\"\n\
         [[balancer.client_zone]]\ncidr = \"127.0.0.0/8\"\nzone = \"za\"\n\
         [[balancer.route]]\nsplit = [{{ pool = \"app\" }}]\n\
         [[pool]]\nname = \"app\"\nbalance = \"round-robin\"\nzone_aware = true\n\
         [[pool.instance]]\naddress = \"{}\"\nzone = \"za\"\n[[pool.instance]]\naddress = \"{}\"\nzone = \"zb\"\n",
        a.addr, b.addr
    );
    let (_proxy, addr) = proxy(&text).await;
    let client = pooled_client();
    assert_eq!(tally(&client, addr, 50, &[]).await.get("a"), Some(&50), "loopback clients are in za");
    assert_eq!(tally(&client, addr, 50, &[("x-zone", "zb")]).await.get("b"), Some(&50), "the header wins");
    let plain = text.replace("zone_aware = true\n", "");
    let (_p2, addr2) = proxy(&plain).await;
    assert_eq!(tally(&client, addr2, 50, &[]).await.len(), 2, "without zone_aware both zones serve");
}

#[tokio::test]
async fn rate_limits_refuse_with_429_and_headers_per_key() {
    let app = echo("app").await;
    let extra = "trusted_proxies = [\"127.0.0.0/8\"]\nrate_limit = { key = \"client-ip\", rate = 1, burst = 3 }\n";
    let (_proxy, addr) = proxy(&simple_config(&[app.addr], extra, "")).await;
    let client = pooled_client();
    for _ in 0..3 {
        assert_eq!(hit(&client, addr, &[("x-forwarded-for", "203.0.113.1")]).await.0, StatusCode::OK);
    }
    let resp = client
        .request(Request::get(format!("http://{addr}/")).header("x-forwarded-for", "203.0.113.1").body(empty()).expect("req"))
        .await
        .expect("response");
    let got = collect(resp).await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(got.headers["retry-after"], "1");
    assert_eq!(got.headers["ratelimit-limit"], "3");
    assert_eq!(got.headers["ratelimit-remaining"], "0");
    assert_eq!(got.headers["ratelimit-reset"], "3");
    // Another client behind the same trusted proxy has its own bucket.
    assert_eq!(hit(&client, addr, &[("x-forwarded-for", "203.0.113.2")]).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_limit_by_header_holds_its_rate_and_other_keys_are_unaffected() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let app = echo("app").await;
    let text = simple_config(&[app.addr], "", "").replace(
        "split = [{ pool = \"app\" }]",
        "split = [{ pool = \"app\" }]\nrate_limit = { key = \"header:x-api-key\", rate = 100, burst = 10 }",
    );
    let (_proxy, addr) = proxy(&text).await;
    let (stop, ok_a) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU32::new(0)));
    // Key a: four clients back to back, far above the limit.
    let hammer: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok_a, client) = (stop.clone(), ok_a.clone(), pooled_client());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if hit(&client, addr, &[("x-api-key", "a")]).await.0 == StatusCode::OK {
                        ok_a.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // Past the burst, measure a 3 s window.
    let counter = ok_a.clone();
    let start = Instant::now();
    while counter.load(Ordering::SeqCst) < 20 {
        assert!(start.elapsed() < Duration::from_secs(5), "key a got nothing through");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (start, base) = (Instant::now(), ok_a.load(Ordering::SeqCst));
    let client = pooled_client();
    let mut b_refused = 0;
    let mut b_sent = 0;
    while start.elapsed() < Duration::from_secs(3) {
        // Key b at ~20/s, under its own limit: never refused.
        b_sent += 1;
        if hit(&client, addr, &[("x-api-key", "b")]).await.0 != StatusCode::OK {
            b_refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let allowed = ok_a.load(Ordering::SeqCst) - base;
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    for h in hammer {
        h.await.expect("hammer");
    }
    let rate = f64::from(allowed) / secs;
    println!("key a: {allowed} allowed in {secs:.2}s = {rate:.1}/s (limit 100/s); key b: {b_refused} of {b_sent} refused");
    assert!((95.0..=105.0).contains(&rate), "rate {rate}");
    assert_eq!(b_refused, 0, "another key is unaffected");
}
