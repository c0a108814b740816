//! `ballast demo-backend`: a synthetic service with tunable latency, jitter, CPU cost and
//! error rate, so the quick start, the tests and the benchmarks need nothing else.
//!
//! `GET /health` answers `200 ok` at once. Every other request waits `latency ± jitter`,
//! burns `cpu` of CPU time, drains the request body, then answers `200 ok <name>` (or
//! `500` with probability `error_rate`). It prints `listening on ADDR` once bound, so a
//! parent that asked for port 0 learns the real port.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
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
    /// Fraction of requests answered with 500, from 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,
    /// Name shown in responses and the `x-backend` header (default: the bound address).
    #[arg(long)]
    pub name: Option<String>,
}

/// Parses "250ms", "2s", "1m" (the same syntax as the config file).
fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<ballast_core::config::ConfigDuration>().map(|d| d.0)
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
}

/// Runs the demo backend until the process is killed.
pub async fn run(args: DemoBackendArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let name = args.name.clone().unwrap_or_else(|| addr.to_string());
    println!("listening on {addr}");
    let workload = Arc::new(Workload { args, name });
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
    if req.uri().path() == "/health" {
        return Ok(reply(StatusCode::OK, &w.name, "ok\n".into()));
    }
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return Ok(reply(StatusCode::BAD_REQUEST, &w.name, "bad body\n".into()));
        }
    }
    let a = &w.args;
    let wait = a.latency + a.jitter.mul_f64(fastrand::f64());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    burn_cpu(a.cpu);
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
    fn burn_cpu_takes_at_least_its_cost() {
        let t = Instant::now();
        burn_cpu(Duration::from_millis(3));
        assert!(t.elapsed() >= Duration::from_millis(3));
    }
}
