//! `ballast demo-backend`: a synthetic service with tunable latency, jitter, CPU cost and
//! error rate, so the quick start, the tests and the benchmarks need nothing else.
//!
//! `GET /health` answers `200 ok` at once. `GET /stats` answers at once with
//! `{"requests": N}`: how many requests it has served (health and stats excluded), so a
//! benchmark can see where a balancer sends traffic. Every other request waits
//! `latency + jitter`, burns `cpu` of CPU time, drains the request body, then answers
//! `200 ok <name>` (or `500` with probability `error_rate`). With `--slow-for D` the
//! latency and jitter apply only during the first `D` after start; then it answers fast
//! (a backend that recovers). It prints `listening on ADDR` once bound, so a parent that
//! asked for port 0 learns the real port.
//!
//! `--extra-port P` (repeatable) serves more instances from the same process, each with
//! its own name and counter, answering at once. Why: instances that are separate
//! processes on one saturated core do not behave like separate hosts. An idle one waits
//! for the core behind the busy ones, so it answers several times slower *because* it is
//! idle, and a latency-aware balancer rightly keeps avoiding it. Instances sharing one
//! event loop, like nginx's `server` blocks in the peer harness, share that wait.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Knobs of the synthetic workload.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoBackendArgs {
    /// Port to listen on (0: let the OS choose; the chosen address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Base response latency, e.g. "5ms".
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Uniform jitter added to the latency, from 0 up to this, e.g. "2ms".
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub jitter: Duration,
    /// CPU time burned per request, e.g. "1ms" (the worker is single-threaded, so this
    /// sets the instance's capacity: 1ms ≈ 1,000 req/s).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub cpu: Duration,
    /// Apply `--latency` and `--jitter` only for this long after start, e.g. "10s"; then
    /// answer without them (a slow backend that recovers). Default: always.
    #[arg(long, value_parser = parse_positive_duration)]
    pub slow_for: Option<Duration>,
    /// Fraction of requests answered with 500, from 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,
    /// Name shown in responses and the `x-backend` header (default: the bound address).
    #[arg(long)]
    pub name: Option<String>,
    /// Also serve this port (repeatable; 0: OS-chosen) as another instance of this
    /// process that answers at once, named after its address (see the module doc).
    #[arg(long = "extra-port", value_name = "PORT")]
    pub extra_ports: Vec<u16>,
}

/// Parses "250ms", "2s", "1m" (the same syntax as the config file).
fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<ballast_core::config::ConfigDuration>().map(|d| d.0)
}

/// Like [`parse_duration`], refusing zero (a window of nothing is a mistake).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} is zero; use a positive duration such as \"10s\"")),
        d => Ok(d),
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number; use 0.0 to 1.0"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range; use 0.0 to 1.0"))
    }
}

struct Workload {
    args: DemoBackendArgs,
    name: String,
    /// When it started: `--slow-for` counts from here.
    started: Instant,
    /// Requests served (health and stats excluded).
    served: AtomicU64,
}

impl Workload {
    /// The delay of a request arriving at `at`: `latency + jitter × u` (u uniform in
    /// [0, 1)) while slow, nothing after `--slow-for` has passed.
    fn delay(&self, at: Instant, u: f64) -> Duration {
        let a = &self.args;
        let slow = a.slow_for.is_none_or(|d| at.saturating_duration_since(self.started) < d);
        if slow {
            a.latency + a.jitter.mul_f64(u)
        } else {
            Duration::ZERO
        }
    }
}

/// Checks the combinations clap cannot: `--slow-for` needs something to stop.
fn validate(args: &DemoBackendArgs) -> anyhow::Result<()> {
    if args.slow_for.is_some() && args.latency.is_zero() && args.jitter.is_zero() {
        anyhow::bail!("--slow-for needs --latency or --jitter: without them there is nothing to stop");
    }
    Ok(())
}

/// Runs the demo backend until the process is killed.
pub async fn run(args: DemoBackendArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let mut listeners = vec![(bind(args.host, args.port).await?, args.clone())];
    let fast = DemoBackendArgs {
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        cpu: Duration::ZERO,
        slow_for: None,
        error_rate: 0.0,
        name: None,
        extra_ports: Vec::new(),
        ..args.clone()
    };
    for &port in &args.extra_ports {
        listeners.push((bind(args.host, port).await?, fast.clone()));
    }
    let started = Instant::now();
    let mut instances = tokio::task::JoinSet::new();
    for (listener, args) in listeners {
        let addr = listener.local_addr()?;
        let name = args.name.clone().unwrap_or_else(|| addr.to_string());
        println!("listening on {addr}");
        let workload = Arc::new(Workload { args, name, started, served: AtomicU64::new(0) });
        instances.spawn(serve(listener, workload));
    }
    while instances.join_next().await.is_some() {}
    Ok(())
}

/// Binds one instance's listener, naming the address on failure.
async fn bind(host: std::net::IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))
}

/// Accepts and serves connections for one instance, forever.
async fn serve(listener: TcpListener, workload: Arc<Workload>) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let workload = workload.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(workload.clone(), req));
            let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle(w: Arc<Workload>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match req.uri().path() {
        "/health" => return Ok(reply(StatusCode::OK, &w.name, "ok\n".into())),
        "/stats" => {
            let body = format!("{{\"requests\": {}}}\n", w.served.load(Ordering::Relaxed));
            return Ok(reply(StatusCode::OK, &w.name, body));
        }
        _ => {}
    }
    let arrived = Instant::now();
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return Ok(reply(StatusCode::BAD_REQUEST, &w.name, "bad body\n".into()));
        }
    }
    let a = &w.args;
    let wait = w.delay(arrived, fastrand::f64());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    burn_cpu(a.cpu);
    w.served.fetch_add(1, Ordering::Relaxed);
    if a.error_rate > 0.0 && fastrand::f64() < a.error_rate {
        return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, &w.name, format!("error from {}\n", w.name)));
    }
    Ok(reply(StatusCode::OK, &w.name, format!("ok {}\n", w.name)))
}

/// Spins for `cost` of wall time on this thread: a stand-in for real request work.
fn burn_cpu(cost: Duration) {
    if cost.is_zero() {
        return;
    }
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while start.elapsed() < cost {
        for _ in 0..256 {
            x = x.rotate_left(13) ^ x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        }
        std::hint::black_box(x);
    }
}

fn reply(status: StatusCode, name: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(name) {
        resp.headers_mut().insert("x-backend", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_outside_zero_to_one_are_refused() {
        assert!(parse_fraction("0.25").is_ok());
        assert!(parse_fraction("1.5").expect_err("refused").contains("out of range"));
        assert!(parse_fraction("-0.1").expect_err("refused").contains("out of range"));
        assert!(parse_fraction("lots").expect_err("refused").contains("not a number"));
        assert!(parse_fraction("NaN").is_err());
    }

    #[test]
    fn durations_use_the_config_syntax() {
        assert_eq!(parse_duration("5ms"), Ok(Duration::from_millis(5)));
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn slow_for_must_be_a_positive_duration() {
        assert_eq!(parse_positive_duration("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_positive_duration("0s").expect_err("refused").contains("zero"));
        assert!(parse_positive_duration("soon").is_err());
    }

    fn workload(knobs: &[&str]) -> Workload {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: DemoBackendArgs,
        }
        let args = Cli::try_parse_from(std::iter::once("demo").chain(knobs.iter().copied()))
            .expect("valid knobs")
            .args;
        Workload { args, name: "t".into(), started: Instant::now(), served: AtomicU64::new(0) }
    }

    #[test]
    fn latency_and_jitter_stop_after_slow_for() {
        let w = workload(&["--latency", "5ms", "--jitter", "2ms", "--slow-for", "10s"]);
        let ms = Duration::from_millis;
        assert_eq!(w.delay(w.started, 0.5), ms(6));
        assert_eq!(w.delay(w.started + ms(9_999), 0.0), ms(5));
        assert_eq!(w.delay(w.started + ms(10_000), 0.5), Duration::ZERO, "recovered");
        let always = workload(&["--latency", "5ms"]);
        assert_eq!(always.delay(always.started + Duration::from_secs(3600), 0.0), ms(5));
    }

    #[test]
    fn slow_for_without_latency_is_refused_naming_both_flags() {
        let err = validate(&workload(&["--slow-for", "1s"]).args).expect_err("refused").to_string();
        assert!(err.contains("--slow-for") && err.contains("--latency"), "{err}");
        assert!(validate(&workload(&["--slow-for", "1s", "--jitter", "1ms"]).args).is_ok());
    }

    #[test]
    fn burn_cpu_takes_at_least_its_cost() {
        let t = Instant::now();
        burn_cpu(Duration::from_millis(3));
        assert!(t.elapsed() >= Duration::from_millis(3));
    }
}
