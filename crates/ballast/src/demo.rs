//! `ballast demo`: the quick start, autoscaling. A balancer in front of a pool of demo
//! backends that ballast starts and stops itself: a `process` provider running this
//! same executable's `demo-backend`, with a target-tracking policy on concurrency
//! (default: 4 in-flight requests per instance, 1 to 8 instances).
//!
//! It prints, to stdout: `listening on ADDR`, then every decision with its reason
//! (`decision: target 1 → 3: concurrency ...`), every instance started and stopped with
//! its address and pid, and once the first `--min` instances are ready, what to try.
//! On Ctrl-C (or SIGTERM) it drains the balancer, then stops every backend.

use crate::one_liner::parse_algorithm;
use crate::serve::print_line;
use anyhow::Context as _;
use ballast_control::controller::wire::Wiring;
use ballast_control::controller::{ControlEvent, EventKind, EventLog, Fleet, Settings};
use ballast_control::lifecycle::Phase;
use ballast_core::balance::Algorithm;
use ballast_core::config::{parse_and_validate, Config, ConfigDuration};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Flags of `ballast demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the balancer listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where the admin listener (/metrics, /healthz, /api/v1/pools) listens, an IP and a
    /// port; port 0 lets the OS choose.
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub admin: std::net::SocketAddr,
    /// Fewest demo backends (1–64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub min: u32,
    /// Most demo backends (1–64, at least --min).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max: u32,
    /// In-flight requests per backend the pool is scaled to keep (above 0, at most 10000).
    #[arg(long, default_value_t = 4.0, value_parser = parse_target)]
    pub target: f64,
    /// How often the controller evaluates the policy (1s–1h), e.g. "2s".
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    pub interval: Duration,
    /// A scale-down goes only to the highest count wanted within this window (0s–1h).
    #[arg(long, default_value = "60s", value_parser = parse_window)]
    pub scale_down_stabilization: Duration,
    /// Response latency of each demo backend (0s–10s), e.g. "20ms".
    #[arg(long, default_value = "20ms", value_parser = parse_latency)]
    pub latency: Duration,
    /// Balancing algorithm.
    #[arg(long, default_value = "least-request", value_parser = parse_algorithm)]
    pub balance: Algorithm,
    /// Where the backends' stdout/stderr logs and records go; a restart with the same
    /// directory stops what a killed demo left running (default: `demo-<listen port>`
    /// under `$XDG_STATE_HOME/ballast` or `~/.local/state/ballast`).
    #[arg(long)]
    pub log_dir: Option<std::path::PathBuf>,
}

fn duration_in(s: &str, lo: Duration, hi: Duration, what: &str) -> Result<Duration, String> {
    let d = s.parse::<ConfigDuration>()?.0;
    if d < lo || d > hi {
        return Err(format!("{s} is out of range: {what} must be from {} to {}", ConfigDuration(lo), ConfigDuration(hi)));
    }
    Ok(d)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_secs(1), Duration::from_secs(3600), "the interval")
}

fn parse_window(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, Duration::from_secs(3600), "the stabilization window")
}

fn parse_latency(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, Duration::from_secs(10), "the latency")
}

fn parse_target(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number; use e.g. 4"))?;
    if v.is_finite() && v > 0.0 && v <= 10_000.0 {
        Ok(v)
    } else {
        Err(format!("{s} is out of range: the target must be above 0 and at most 10000"))
    }
}

/// The config `ballast demo` runs: one balancer, one autoscaled pool of demo backends.
pub fn demo_config(args: &DemoArgs, exe: &std::path::Path) -> Result<Config, String> {
    if args.min > args.max {
        return Err(format!("--min ({}) is greater than --max ({}); lower --min or raise --max", args.min, args.max));
    }
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let secs = |d: Duration| q(&ConfigDuration(d).to_string());
    let exe = exe.to_str().ok_or_else(|| format!("the ballast executable path {} is not UTF-8", exe.display()))?;
    let args_list = ["demo-backend", "--port", "{port}", "--name", "{instance}", "--latency", &ConfigDuration(args.latency).to_string()]
        .map(q)
        .join(", ");
    // the policy averages over two evaluations, so a decision sees fresh load only
    let window = secs(args.interval * 2);
    let text = format!(
        r#"
[[balancer]]
name = "demo"
listen = {listen}
access_log = "off"
[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "demo" }}]

[[pool]]
name = "demo"
balance = {balance}
[pool.health]
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 1
[pool.provider]
kind = "process"
command = {exe}
args = [{args_list}]
grace_period = "5s"
[pool.scaling]
min = {min}
max = {max}
sync_interval = {interval}
scale_up_cooldown = {interval}
scale_down_cooldown = {interval}
scale_down_stabilization = {stabilization}
[[pool.scaling.policy]]
kind = "target"
metric = "concurrency"
target = {target}
window = {window}
"#,
        listen = q(&args.listen),
        balance = q(args.balance.name()),
        exe = q(exe),
        min = args.min,
        max = args.max,
        interval = secs(args.interval),
        stabilization = secs(args.scale_down_stabilization),
        target = args.target,
    );
    parse_and_validate(&text).map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
}

/// The stdout line for a controller event, if the demo shows that kind.
pub fn event_line(e: &ControlEvent) -> Option<String> {
    Some(match e.kind {
        EventKind::Decision => format!("decision: {}: {}", e.outcome, e.reason),
        EventKind::Created => format!("started instance {} ({})", e.outcome, e.reason),
        EventKind::Ready => format!("ready: {} ({})", e.reason, e.outcome),
        EventKind::Drain => format!("draining instance {}", e.reason),
        EventKind::Stopped => format!("stopped instance {} ({})", e.reason, e.outcome),
        EventKind::Replace => format!("replacing instance {} ({})", e.reason, e.outcome),
        EventKind::ProviderError | EventKind::PoolError | EventKind::MembershipError => format!("error: {} ({})", e.reason, e.outcome),
        EventKind::Recovered => format!("recovered: {}", e.reason),
        EventKind::Rollout | EventKind::RolledBack => return None,
    })
}


/// Runs the quick start until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the ballast executable")?;
    let config = demo_config(&args, &exe).map_err(anyhow::Error::msg)?;
    let events = EventLog::new(1000);
    let mut live = events.subscribe();
    let printer = tokio::spawn(async move {
        loop {
            match live.recv().await {
                Ok(e) => {
                    if let Some(line) = event_line(&e) {
                        print_line(&line);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => print_line(&format!("({n} events not shown)")),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let server = Arc::new(crate::serve::start(&config)?);
    let log_dir = args.log_dir.clone().unwrap_or_else(|| demo_log_dir(&crate::serve::state_base(|v| std::env::var_os(v)), &args.listen));
    // a shorter tick than `serve`'s: instances count as ready (and the pool reacts) sooner
    let settings = Settings { tick: Duration::from_millis(500), drain_grace: Duration::from_secs(10), ..Settings::default() };
    let wiring = Wiring { log_dir: log_dir.clone(), settings, events };
    // from here on Ctrl-C and SIGTERM are ours (not the default exit), so the backends
    // are stopped even when one comes while they are starting
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let pools = Arc::new(crate::admin::PoolDirectory::default());
    let admin = crate::admin::start(args.admin, &server, pools.clone())?;
    let mut fleet = crate::serve::start_fleet(&server, &config, wiring);
    pools.refresh(&fleet);
    let served = async {
        tokio::select! {
            ready = wait_until_ready(&fleet, args.min) => ready?,
            _ = term.recv() => return server_stopped(&server).await,
            _ = int.recv() => return server_stopped(&server).await,
        }
        if let Some((_, addr)) = server.local_addrs().first() {
            print_line(&format!(
                "balancer ({}) over {}–{} autoscaled demo backends, target {} in flight per backend, evaluated every {}. Try:",
                args.balance,
                args.min,
                args.max,
                args.target,
                ConfigDuration(args.interval)
            ));
            print_line(&format!("  curl -i http://{addr}/"));
            print_line(&format!("  wrk -t2 -c32 -d30s http://{addr}/      # apt-get install wrk; watch the pool grow"));
            print_line(&format!("  curl -s http://{}/api/v1/pools          # the pool; /metrics for Prometheus", admin.local_addr()));
            print_line(&format!("Backend logs: {}. Ctrl-C stops the balancer and the backends.", log_dir.join("demo").display()));
        }
        crate::serve::serve_until_signal(&server, None, &mut fleet, &pools).await
    }
    .await;
    crate::serve::stop_fleet(fleet).await;
    crate::admin::stop(Some(admin)).await;
    // every sender is gone with the pool tasks: the printer prints what is left and ends
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
    served
}

/// The default `--log-dir` of a demo listening on `listen`: `<base>/demo-<port>`.
fn demo_log_dir(base: &std::path::Path, listen: &str) -> std::path::PathBuf {
    let port = listen.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).unwrap_or(0);
    base.join(format!("demo-{port}"))
}

/// A signal came before the backends were ready: drain and return.
async fn server_stopped(server: &ballast_proxy::ProxyServer) -> anyhow::Result<()> {
    server.shutdown(crate::serve::DRAIN_GRACE).await;
    Ok(())
}

/// Waits (at most 60 s) for `min` ready demo backends.
async fn wait_until_ready(fleet: &Fleet, min: u32) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = fleet.view("demo").context("the demo pool is not running")?;
        if view.count(Phase::Ready) >= min as usize {
            return Ok(());
        }
        if let ballast_control::controller::PoolStatus::Error { cause } = &view.status {
            anyhow::bail!("the demo backends cannot start: {cause}");
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the demo backends were not ready within 60s: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        demo: DemoArgs,
    }

    fn parse(args: &[&str]) -> Result<DemoArgs, String> {
        T::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).map(|t| t.demo).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_build_a_valid_autoscaled_config() {
        let args = parse(&[]).expect("defaults");
        let c = demo_config(&args, std::path::Path::new("/usr/bin/ballast")).expect("valid");
        let s = c.pools[0].scaling.as_ref().expect("scaling");
        assert_eq!((s.min, s.max, s.sync_interval.0), (1, 8, Duration::from_secs(10)));
        let ballast_core::config::ProviderConfig::Process(p) = &c.pools[0].provider else { panic!("process provider") };
        assert_eq!(p.command, "/usr/bin/ballast");
        assert_eq!(p.args[..3], ["demo-backend", "--port", "{port}"]);
    }

    #[test]
    fn the_default_log_dir_is_stable_per_listen_port() {
        let base = std::path::Path::new("/state");
        assert_eq!(demo_log_dir(base, "127.0.0.1:8080"), base.join("demo-8080"));
        assert_eq!(demo_log_dir(base, "[::1]:9000"), base.join("demo-9000"));
        assert_eq!(demo_log_dir(base, "127.0.0.1:0"), base.join("demo-0"));
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        for (args, words) in [
            (&["--min", "0"][..], "--min"),
            (&["--max", "65"], "--max"),
            (&["--interval", "500ms"], "interval"),
            (&["--interval", "2h"], "interval"),
            (&["--interval", "soon"], "--interval"),
            (&["--scale-down-stabilization=-1s"], "--scale-down-stabilization"),
            (&["--scale-down-stabilization", "2h"], "stabilization window"),
            (&["--target", "0"], "target"),
            (&["--target", "NaN"], "target"),
            (&["--target", "x"], "--target"),
            (&["--latency", "11s"], "latency"),
        ] {
            let e = parse(args).expect_err(&format!("{args:?}"));
            assert!(e.contains(words), "{args:?}: {e}");
        }
        let args = parse(&["--min", "5", "--max", "3"]).expect("each flag alone is fine");
        let e = demo_config(&args, std::path::Path::new("/b")).expect_err("min > max");
        assert!(e.contains("--min (5) is greater than --max (3)"), "{e}");
    }

    #[test]
    fn events_print_with_reason_address_and_pid() {
        let event = |kind, reason: &str, outcome: &str| ControlEvent {
            at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            pool: "demo".into(),
            kind,
            reason: reason.into(),
            inputs: String::new(),
            outcome: outcome.into(),
        };
        let d = event_line(&event(EventKind::Decision, "concurrency 9 per instance > target 4", "target 1 → 3"));
        assert_eq!(d.as_deref(), Some("decision: target 1 → 3: concurrency 9 per instance > target 4"));
        let c = event_line(&event(EventKind::Created, "1 live instances, target 3", "demo-2 at 127.0.0.1:20001 (pid 42)"));
        assert_eq!(c.as_deref(), Some("started instance demo-2 at 127.0.0.1:20001 (pid 42) (1 live instances, target 3)"));
        assert_eq!(event_line(&event(EventKind::Rollout, "", "")), None);
    }
}
