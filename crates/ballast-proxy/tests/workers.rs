//! The sharded mode: worker threads with their own runtimes and `SO_REUSEPORT` sockets.

mod common;

use ballast_proxy::{AccessLog, ProxyServer, Workers};
use common::*;
use http::{Request, StatusCode};
use std::time::Duration;

#[tokio::test]
async fn sharded_workers_serve_reload_and_drain() {
    let (a, b) = (echo("a").await, echo("b").await);
    let workers = Workers::start(2).expect("workers");
    let proxy = ProxyServer::start_on(&config(&simple_config(&[a.addr], "", "")), AccessLog::off(), workers.handles())
        .expect("start");
    let addr = proxy.local_addr("web").expect("addr");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        tasks.push(tokio::spawn(async move {
            let client = pooled_client();
            for _ in 0..5 {
                let resp = client.request(Request::get(format!("http://{addr}/")).body(empty()).expect("req")).await;
                assert_eq!(collect(resp.expect("response")).await.status, StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    proxy.reload(&config(&simple_config(&[b.addr], "", ""))).expect("reload");
    assert_eq!(send(addr, get("/")).await.headers["x-backend"], "b");
    assert!(proxy.shutdown(Duration::from_secs(5)).await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "every worker's socket is closed");
    workers.stop();
}
