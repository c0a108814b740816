//! The ballast binary: command-line parsing, logging, runtimes and signals. Everything
//! else lives in the library crates.

mod demo_backend;
mod one_liner;
mod sim_cmd;

use clap::{Parser, Subcommand};

/// ballast: an L7 load balancer that autoscales its own backends.
#[derive(Debug, Parser)]
#[command(name = "ballast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a synthetic backend (latency, jitter, CPU cost and error-rate knobs).
    DemoBackend(demo_backend::DemoBackendArgs),
    /// Replay a load trace through scaling policies and compare them with the oracle.
    Sim(sim_cmd::SimArgs),
}

fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::DemoBackend(args) => current_thread_runtime()?.block_on(demo_backend::run(args)),
        Command::Sim(args) => match sim_cmd::run(args) {
            code if code == std::process::ExitCode::SUCCESS => Ok(()),
            _ => std::process::exit(1),
        },
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
