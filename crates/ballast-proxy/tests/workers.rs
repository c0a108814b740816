//! The sharded mode: worker threads with their own runtimes and `SO_REUSEPORT` sockets.

mod common;

use ballast_proxy::{AccessLog, ProxyServer, Workers};
use common::*;
use http::{Request, StatusCode};
use std::time::Duration;

/// Two worker threads and a proxy sharded over them, balancing over `backend`.
fn sharded_proxy(backend: std::net::SocketAddr) -> (Workers, ProxyServer, std::net::SocketAddr) {
    let workers = Workers::start(2).expect("workers");
    let proxy = ProxyServer::start_on(&config(&simple_config(&[backend], "", "")), AccessLog::off(), workers.handles())
        .expect("start");
    let addr = proxy.local_addr("web").expect("addr");
    (workers, proxy, addr)
}

#[tokio::test]
async fn sharded_workers_serve_reload_and_drain() {
    let (a, b) = (echo("a").await, echo("b").await);
    let (workers, proxy, addr) = sharded_proxy(a.addr);
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

#[tokio::test]
async fn connections_spread_evenly_over_the_workers() {
    let a = echo("a").await;
    let (workers, proxy, addr) = sharded_proxy(a.addr);
    // 16 keep-alive connections, opened one after another and kept open: the kernel's
    // address hash alone would split them unevenly more often than not.
    let mut open = Vec::new();
    for _ in 0..16 {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
        let driver = tokio::spawn(conn);
        let resp = sender.send_request(get("/")).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        open.push((sender, driver));
    }
    assert_eq!(proxy.open_connections(), vec![8, 8], "every worker serves its share");
    drop(open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while proxy.open_connections().iter().sum::<usize>() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "closed connections are uncounted: {:?}", proxy.open_connections());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(proxy.shutdown(Duration::from_secs(5)).await);
    workers.stop();
}
