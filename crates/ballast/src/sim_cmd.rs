//! `ballast sim`: replay a request-rate trace through the scaling engine with a replica
//! model and print each policy side by side with the oracle (a table, or `--json`), and
//! optionally an SVG chart.
//!
//! The replica model is the simulator's default (100 req/s per replica, 60 s start-up,
//! SLO: utilisation at most 85%, 0.05 per replica-hour) with `--capacity` and
//! `--startup` overriding. `--config FILE` is a ballast config file: its pools with a
//! `[pool.scaling]` section can be replayed (`--policy config` runs the first one,
//! `--policy NAME` the pool called NAME, `--policy schedule` the schedule policies of
//! the first pool that has one), and the price of the first such pool's `[pool.cost]`
//! prices every policy. Without `--policy` the run compares `hpa`, `target`,
//! `predictive` (plus `config` with a config file) and `fixed-P`, where P is the peak
//! number of replicas the trace needs.
//!
//! Every problem is printed on stderr with the file or flag it is about
//! (`trace.csv: line 17: ...`, `--policy: ...`) and the exit code is 1; the same input
//! always gives the same output.

use ballast_core::config::{parse_and_validate, MAX_CONFIG_BYTES};
use ballast_core::sim::trace::MAX_TRACE_BYTES;
use ballast_core::sim::{build_policy, parse_trace, render_svg, ConfigPool, ReplicaModel, Scenario, SimReport};
use clap::Args;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `ballast sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Load trace: CSV `t_seconds,requests_per_second` (header optional) or a
    /// Common/Combined Log Format access log.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// A ballast config file whose pools' `[pool.scaling]` (and `[pool.cost]`) can be
    /// replayed with `--policy config`, `--policy schedule` or `--policy POOL`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Requests per second one replica serves at full utilisation (default 100).
    #[arg(long, value_name = "RPS_PER_REPLICA", allow_negative_numbers = true, value_parser = parse_capacity)]
    capacity: Option<f64>,
    /// Seconds from asking for a replica to it serving traffic (default 60).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = parse_startup)]
    startup: Option<f64>,
    /// A policy to compare; repeat for several: fixed-N, target, step, score,
    /// predictive, hpa, and with --config: config, schedule or a pool's name.
    #[arg(long = "policy", value_name = "NAME")]
    policies: Vec<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write a chart of every policy and the oracle to this SVG file.
    #[arg(long, value_name = "OUT.svg")]
    svg: Option<PathBuf>,
}

fn parse_number(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text:?} is not a finite number"))
    }
}

fn parse_capacity(text: &str) -> Result<f64, String> {
    let v = parse_number(text)?;
    let max = ballast_core::sim::model::MAX_RPS;
    if v > 0.0 && v <= max {
        Ok(v)
    } else {
        Err(format!("{v} is out of range; use requests per second above 0 and at most {max}"))
    }
}

fn parse_startup(text: &str) -> Result<f64, String> {
    let v = parse_number(text)?;
    let max = ballast_core::sim::model::MAX_STARTUP_S;
    if (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range; use 0 to {max} seconds"))
    }
}

/// Runs `ballast sim`; prints the report on stdout, problems on stderr.
pub fn run(args: SimArgs) -> ExitCode {
    match simulate(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Reads a text file of at most `max` bytes; errors start with the path.
fn read_text(path: &Path, max: usize) -> Result<String, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if bytes.len() > max {
        return Err(format!("{shown}: more than {max} bytes; at most {max} are accepted"));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        format!("{shown}: line {line}: not UTF-8 text")
    })
}

fn simulate(args: &SimArgs) -> Result<String, Vec<String>> {
    let one = |e: String| vec![e];
    let trace_text = read_text(&args.trace, MAX_TRACE_BYTES).map_err(one)?;
    let trace = parse_trace(&trace_text).map_err(|e| one(format!("{}: {e}", args.trace.display())))?;
    let pools = match &args.config {
        Some(path) => {
            let text = read_text(path, MAX_CONFIG_BYTES).map_err(one)?;
            let config = parse_and_validate(&text)
                .map_err(|errors| errors.iter().map(|e| format!("{}: {e}", path.display())).collect::<Vec<_>>())?;
            let pools = ConfigPool::all(&config);
            if pools.is_empty() {
                return Err(one(format!("{}: no pool has a [pool.scaling] section to simulate", path.display())));
            }
            pools
        }
        None => Vec::new(),
    };
    let mut model = ReplicaModel::default();
    if let Some(c) = args.capacity {
        model.capacity_rps = c;
    }
    if let Some(s) = args.startup {
        model.startup_s = s;
    }
    if let Some(price) = pools.first().and_then(|p| p.cost.as_ref()).map(|c| c.instance_hour_price()) {
        model.price_per_replica_hour = price;
    }
    let origin = trace.start_unix_s().unwrap_or(0);
    let scenario = Scenario::new(trace, model).map_err(|e| one(format!("{}: {e}", args.trace.display())))?;

    let names: Vec<String> = if args.policies.is_empty() {
        let peak = scenario.needed().iter().copied().max().unwrap_or(0);
        let mut names: Vec<String> = ["hpa", "target", "predictive"].map(String::from).to_vec();
        if !pools.is_empty() {
            names.push("config".into());
        }
        names.push(format!("fixed-{peak}"));
        names
    } else {
        args.policies.clone()
    };
    let mut policies = Vec::with_capacity(names.len());
    let mut problems = Vec::new();
    for name in &names {
        match build_policy(name, &pools, model.max_replicas, origin) {
            Ok(p) => policies.push(p),
            Err(e) => problems.push(format!("--{e}")),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let bar = progress_bar(policies.len());
    let mut reports = Vec::with_capacity(policies.len());
    for (i, (policy, opts)) in policies.iter_mut().enumerate() {
        let mut tick = |f: f64| {
            if let Some(b) = &bar {
                b.set_position(((i as f64 + f) * 1000.0) as u64);
            }
        };
        let report = scenario.simulate_with_progress(policy.as_mut(), opts, &mut tick);
        reports.push(report.map_err(|e| one(format!("--policy {}: {e}", policy.name())))?);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = SimReport { oracle: scenario.oracle().clone(), policies: reports };
    if let Some(path) = &args.svg {
        std::fs::write(path, render_svg(&scenario, &report))
            .map_err(|e| one(format!("{}: cannot write the chart: {e}", path.display())))?;
    }
    Ok(if args.json { format!("{}\n", report.to_json()) } else { report.to_table() })
}

/// A progress bar on stderr, 1000 steps per policy, only when stderr is a terminal.
fn progress_bar(policies: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(policies as u64 * 1000);
    if let Ok(style) = indicatif::ProgressStyle::with_template("simulating {bar:40} {percent}% ({elapsed})") {
        bar.set_style(style);
    }
    Some(bar)
}
