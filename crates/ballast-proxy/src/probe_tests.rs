//! Prober tests against real hyper backends on loopback: path and headers, latency and
//! failure recording, the rate limit, skipping busy backends, updates and bad input.

use super::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a test backend saw of one request.
#[derive(Debug)]
struct Hit {
    path: String,
    user_agent: Option<String>,
}

/// A hyper backend on loopback whose answer delay and status the test controls.
struct TestBackend {
    addr: SocketAddr,
    hits: mpsc::UnboundedReceiver<Hit>,
    delay_ms: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    /// Connections accepted so far.
    accepted: Arc<AtomicU64>,
}

async fn backend() -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (tx, hits) = mpsc::unbounded_channel();
    let delay_ms = Arc::new(AtomicU64::new(0));
    let status = Arc::new(AtomicU16::new(200));
    let accepted = Arc::new(AtomicU64::new(0));
    let (delay, code, count) = (delay_ms.clone(), status.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let (tx, delay, code) = (tx.clone(), delay.clone(), code.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let (tx, delay, code) = (tx.clone(), delay.clone(), code.clone());
                async move {
                    let path = req
                        .uri()
                        .path_and_query()
                        .map_or_else(String::new, |p| p.to_string());
                    let user_agent = req
                        .headers()
                        .get(header::USER_AGENT)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let _ = tx.send(Hit { path, user_agent });
                    tokio::time::sleep(Duration::from_millis(delay.load(Ordering::Relaxed))).await;
                    let status = StatusCode::from_u16(code.load(Ordering::Relaxed))
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestBackend {
        addr,
        hits,
        delay_ms,
        status,
        accepted,
    }
}

/// Settings that probe every 20 ms whatever the traffic.
fn eager() -> ProbeSettings {
    ProbeSettings {
        policy: ProbePolicy {
            interval: Duration::from_millis(20),
            idle: Duration::ZERO,
        },
        ..ProbeSettings::default()
    }
}

/// Awaits `f` for at most 5 s: a hung prober fails the test instead of hanging it.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("timed out")
}

/// Waits (at most 5 s) until `cond` holds, checking every 5 ms.
async fn eventually(cond: impl Fn() -> bool) {
    within(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn next_hit(b: &mut TestBackend) -> Hit {
    within(b.hits.recv()).await.expect("backend task alive")
}

fn target(b: &TestBackend, stats: &Arc<BackendStats>) -> Vec<(String, Arc<BackendStats>)> {
    vec![(b.addr.to_string(), stats.clone())]
}

#[tokio::test]
async fn probes_an_idle_backend_at_the_path_and_records_its_latency() {
    let mut b = backend().await;
    b.delay_ms.store(30, Ordering::Relaxed);
    let stats = Arc::new(BackendStats::default());
    let settings = ProbeSettings {
        path: "/healthz?from=ballast".into(),
        ..ProbeSettings::default()
    };
    let origin = Instant::now();
    let _prober = Prober::spawn(target(&b, &stats), settings, origin).expect("valid");
    let hit = next_hit(&mut b).await;
    assert_eq!(hit.path, "/healthz?from=ballast");
    assert_eq!(hit.user_agent.as_deref(), Some("ballast-probe"));
    eventually(|| stats.latency_estimate(origin.elapsed()).is_some()).await;
    let estimate = stats.latency_estimate(origin.elapsed()).expect("recorded");
    assert!(
        estimate >= Duration::from_millis(30) && estimate < Duration::from_secs(1),
        "{estimate:?}"
    );
    assert_eq!(
        stats.requests.load(Ordering::Relaxed),
        0,
        "a probe is not traffic"
    );
    assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn probes_reuse_one_kept_alive_connection() {
    let mut b = backend().await;
    let stats = Arc::new(BackendStats::default());
    let origin = Instant::now();
    let _prober = Prober::spawn(target(&b, &stats), eager(), origin).expect("valid");
    for _ in 0..5 {
        assert_eq!(next_hit(&mut b).await.user_agent.as_deref(), Some("ballast-probe"));
    }
    assert_eq!(b.accepted.load(Ordering::Relaxed), 1, "one connection for five probes");
    let estimate = stats.latency_estimate(origin.elapsed()).expect("recorded");
    assert!(estimate < Duration::from_millis(500), "no failure penalty: {estimate:?}");
}

/// A backend that answers one request per connection and then closes it, without
/// saying so: every probe finds its kept-alive connection dead, and none is lost to it.
#[tokio::test]
async fn a_kept_alive_connection_the_backend_closed_costs_no_probe() {
    use tokio::io::AsyncWriteExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (hits, accepted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (h, a) = (hits.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::Relaxed);
            let h = h.clone();
            tokio::spawn(async move {
                if !crate::test_io::read_request_head(&mut stream).await {
                    return;
                }
                h.fetch_add(1, Ordering::Relaxed);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            });
        }
    });
    let stats = Arc::new(BackendStats::default());
    let targets = vec![(addr.to_string(), stats.clone())];
    let _prober = Prober::spawn(targets, eager(), Instant::now()).expect("valid");
    eventually(|| hits.load(Ordering::Relaxed) >= 4).await;
    let (sent, got) = (stats.probes_sent(), hits.load(Ordering::Relaxed));
    assert!(sent <= got + 1, "{sent} probes sent, {got} reached the backend");
    assert!(accepted.load(Ordering::Relaxed) >= got, "each probe on a new connection");
}

#[tokio::test]
async fn probes_are_rate_limited_and_skip_backends_with_traffic() {
    let mut idle = backend().await;
    let mut busy = backend().await;
    let origin = Instant::now();
    let (idle_stats, busy_stats) = (
        Arc::new(BackendStats::default()),
        Arc::new(BackendStats::default()),
    );
    busy_stats.on_request_start();
    busy_stats.on_request_end(origin.elapsed(), Duration::from_millis(1), true);
    let settings = ProbeSettings {
        policy: ProbePolicy {
            interval: Duration::from_millis(50),
            idle: Duration::from_secs(60),
        },
        ..ProbeSettings::default()
    };
    let targets = vec![
        (idle.addr.to_string(), idle_stats.clone()),
        (busy.addr.to_string(), busy_stats.clone()),
    ];
    let _prober = Prober::spawn(targets, settings, origin).expect("valid");
    next_hit(&mut idle).await;
    let first = Instant::now();
    for _ in 0..4 {
        next_hit(&mut idle).await;
    }
    let span = first.elapsed();
    assert!(
        span >= Duration::from_millis(4 * 50),
        "5 probes within {span:?}: rate limit broken"
    );
    assert!(
        busy.hits.try_recv().is_err(),
        "a backend with a recent real response is not probed"
    );
    assert_eq!(busy_stats.probes_sent(), 0);
}

#[tokio::test]
async fn a_timeout_a_5xx_and_a_refused_connection_are_failures() {
    let slow = backend().await;
    slow.delay_ms.store(2000, Ordering::Relaxed);
    let broken = backend().await;
    broken.status.store(503, Ordering::Relaxed);
    let refused = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let origin = Instant::now();
    let stats: Vec<_> = (0..3).map(|_| Arc::new(BackendStats::default())).collect();
    let settings = ProbeSettings {
        timeout: Duration::from_millis(100),
        ..eager()
    };
    let targets = vec![
        (slow.addr.to_string(), stats[0].clone()),
        (broken.addr.to_string(), stats[1].clone()),
        (refused.to_string(), stats[2].clone()),
    ];
    let _prober = Prober::spawn(targets, settings, origin).expect("valid");
    for s in &stats {
        eventually(|| s.latency_estimate(origin.elapsed()).is_some()).await;
        // A failure counts as at least twice the default 30 ms, however fast it came.
        let estimate = s.latency_estimate(origin.elapsed()).expect("recorded");
        assert!(estimate >= Duration::from_millis(60), "{estimate:?}");
    }
}

#[tokio::test]
async fn update_moves_probing_to_the_new_targets() {
    let mut a = backend().await;
    let mut b = backend().await;
    let origin = Instant::now();
    let (sa, sb) = (
        Arc::new(BackendStats::default()),
        Arc::new(BackendStats::default()),
    );
    let prober = Prober::spawn(target(&a, &sa), eager(), origin).expect("valid");
    next_hit(&mut a).await;
    prober.update(target(&b, &sb)).expect("valid");
    next_hit(&mut b).await;
    let sent_to_a = sa.probes_sent();
    for _ in 0..3 {
        next_hit(&mut b).await;
    }
    assert_eq!(
        sa.probes_sent(),
        sent_to_a,
        "a removed target is no longer probed"
    );
    let err = prober
        .update(vec![("nowhere".into(), sa.clone())])
        .expect_err("no port");
    assert_eq!(err.field, "targets[0]");
    next_hit(&mut b).await; // a rejected update changes nothing
    assert_eq!(sa.probes_sent(), sent_to_a);
}

#[tokio::test]
async fn bad_settings_and_targets_are_rejected_naming_the_field() {
    let stats = Arc::new(BackendStats::default());
    let origin = Instant::now();
    type Targets = Vec<(String, Arc<BackendStats>)>;
    let cases: Vec<(ProbeSettings, Targets, &str, &str)> = vec![
        (
            ProbeSettings {
                path: "healthz".into(),
                ..ProbeSettings::default()
            },
            vec![],
            "probe.path",
            "must start with '/'",
        ),
        (
            ProbeSettings {
                path: "/a b".into(),
                ..ProbeSettings::default()
            },
            vec![],
            "probe.path",
            "not a valid path",
        ),
        (
            ProbeSettings {
                timeout: Duration::ZERO,
                ..ProbeSettings::default()
            },
            vec![],
            "probe.timeout",
            "greater than zero",
        ),
        (
            ProbeSettings {
                policy: ProbePolicy {
                    interval: Duration::ZERO,
                    ..ProbePolicy::default()
                },
                ..ProbeSettings::default()
            },
            vec![],
            "probe.interval",
            "greater than zero",
        ),
        (
            ProbeSettings {
                tick: Duration::ZERO,
                ..ProbeSettings::default()
            },
            vec![],
            "probe.tick",
            "greater than zero",
        ),
        (
            ProbeSettings::default(),
            vec![
                ("10.0.0.1:80".into(), stats.clone()),
                ("10.0.0.2".into(), stats.clone()),
            ],
            "targets[1]",
            "has no port",
        ),
        (
            ProbeSettings::default(),
            vec![("http://x:80/".into(), stats.clone())],
            "targets[0]",
            "not host:port",
        ),
        (
            ProbeSettings::default(),
            vec![("x".repeat(70_000) + ":80", stats.clone())],
            "targets[0]",
            "longer than 259",
        ),
        (
            ProbeSettings::default(),
            vec![("x:99999".into(), stats.clone())],
            "targets[0]",
            "port must be 1-65535",
        ),
        (
            ProbeSettings::default(),
            vec![("x:0".into(), stats.clone())],
            "targets[0]",
            "port must be 1-65535",
        ),
    ];
    for (settings, targets, field, reason) in cases {
        let Err(err) = Prober::spawn(targets, settings, origin) else {
            panic!("{field}: accepted");
        };
        assert_eq!(err.field, field);
        assert!(err.reason.contains(reason), "{field}: {err}");
    }
}
