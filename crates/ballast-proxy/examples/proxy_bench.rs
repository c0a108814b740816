//! Runs the data plane from a TOML config with a chosen runtime, for benchmarks:
//! `proxy_bench <config.toml> <threads> [current|multi]`. Ctrl-C drains and exits.

use ballast_core::config::Config;
use ballast_proxy::{AccessLog, ProxyServer};
use std::time::Duration;

/// glibc's malloc costs ~6% of the proxy's CPU on small requests; mimalloc less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: proxy_bench <config.toml> <threads> [current|multi]")?;
    let threads: usize = args.next().as_deref().unwrap_or("1").parse()?;
    let flavor = args.next().unwrap_or_else(|| "multi".into());
    let config: Config = toml::from_str(&std::fs::read_to_string(&path)?)?;
    let runtime = if flavor == "current" {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    runtime.block_on(async move {
        let server = ProxyServer::start(&config, AccessLog::stdout())?;
        for (name, addr) in server.local_addrs() {
            eprintln!("{name} listening on {addr}");
        }
        tokio::signal::ctrl_c().await?;
        server.shutdown(Duration::from_secs(5)).await;
        Ok(())
    })
}
