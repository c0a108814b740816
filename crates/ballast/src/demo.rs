//! `ballast demo`: the quick start. Starts demo backends as child processes, a balancer
//! in front of them, prints what it started and what to try, and on Ctrl-C (or SIGTERM)
//! drains the balancer and stops every child.

use crate::one_liner::{config_from_args, parse_algorithm, ProxyArgs};
use anyhow::Context as _;
use ballast_control::process::{ManagedProcess, ProcessSpec};
use ballast_core::balance::Algorithm;
use ballast_core::config::AccessLogFormat;
use std::time::Duration;

/// Flags of `ballast demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the balancer listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How many demo backends to start (1–64).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub backends: u16,
    /// Balancing algorithm.
    #[arg(long, default_value = "least-request", value_parser = parse_algorithm)]
    pub balance: Algorithm,
}

/// How long a backend gets to exit after SIGTERM before SIGKILL.
const BACKEND_GRACE: Duration = Duration::from_secs(5);

/// Runs the quick start until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the ballast executable")?;
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for i in 1..=args.backends {
        let name = format!("demo-{i}");
        let spec = ProcessSpec {
            program: exe.clone(),
            // A small, slightly uneven synthetic workload: ~2 ms ± 3 ms, 200 µs of CPU.
            args: ["demo-backend", "--port", "0", "--name", &name, "--latency", "2ms", "--jitter", "3ms", "--cpu", "200us"]
                .map(Into::into)
                .to_vec(),
            ..Default::default()
        };
        let mut child = ManagedProcess::spawn(&spec)?;
        let addr = child.read_announcement("listening on ").await?;
        println!("started backend {name} on {addr} (pid {})", child.pid());
        addrs.push(addr);
        children.push(child);
    }
    let config = config_from_args(&ProxyArgs {
        listen: args.listen.clone(),
        to: addrs,
        balance: args.balance,
        threads: None,
        access_log: AccessLogFormat::Off,
    })
    .map_err(anyhow::Error::msg)?;
    let server = crate::serve::start(&config)?;
    if let Some((_, addr)) = server.local_addrs().first() {
        println!("balancer ({}) over {} backends. Try:", args.balance, children.len());
        println!("  curl -i http://{addr}/");
        println!("  wrk -t2 -c32 -d10s http://{addr}/      # apt-get install wrk");
        println!("Ctrl-C stops the balancer and the backends.");
    }
    let served = crate::serve::serve_until_signal(&server, None).await;
    for child in children {
        let pid = child.pid();
        match child.stop(BACKEND_GRACE).await {
            Ok(status) => tracing::info!(pid, %status, "backend stopped"),
            Err(e) => tracing::warn!(pid, "backend stop: {e}"),
        }
    }
    served
}
