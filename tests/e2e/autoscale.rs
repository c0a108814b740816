//! Autoscaling through the binary (issue #5): `ballast demo` growing under load and
//! shrinking after it, and `ballast serve` healing a killed instance, reporting a
//! broken provider and recovering once the config is fixed. Real processes, bounded
//! waits; the figures are printed (`--nocapture`) for the closing note.

use ballast_tests::{ballast_bin, get, pids_in, temp_file, wait_gone, Load, Stream, TempDir, Watched};
use std::time::{Duration, Instant};

/// Instance logs inside the test's temporary directory.
fn logs(dir: &TempDir) -> String {
    dir.0.join("logs").to_str().expect("utf-8 temp dir").to_string()
}

/// `decision: target A → B: ...` → (A, B).
fn decision(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix("decision: target ")?;
    let (from, rest) = rest.split_once(" → ")?;
    let to = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// `1.5s` or `500.2ms` (a Debug-printed Duration) in seconds.
fn seconds(s: &str) -> Option<f64> {
    match s.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok().map(|v| v / 1000.0),
        None => s.strip_suffix('s')?.parse().ok(),
    }
}

/// Instances alive after each line of the demo's stdout (started minus stopped).
fn live_counts(lines: &[(Instant, String)]) -> Vec<(Instant, i64)> {
    let mut live = 0i64;
    lines
        .iter()
        .map(|(t, l)| {
            if l.starts_with("started instance ") {
                live += 1;
            } else if l.starts_with("stopped instance ") || l.starts_with("replacing instance ") {
                live -= 1;
            }
            (*t, live)
        })
        .collect()
}

/// Ready instances now, from the demo's stdout (ready minus stopped).
fn ready_now(lines: &[(Instant, String)]) -> i64 {
    let ready = lines.iter().filter(|(_, l)| l.starts_with("ready: ")).count() as i64;
    let gone = lines.iter().filter(|(_, l)| l.starts_with("stopped instance ") || l.starts_with("replacing instance ")).count();
    ready - gone as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_grows_under_load_and_shrinks_after_it() {
    const INTERVAL: u64 = 2;
    const STABILIZATION: u64 = 6;
    const TARGET: u64 = 4;
    const LOAD: usize = 16; // 16 in flight / 4 per instance → 4 instances
    let (min, max) = (1u32, 8u32);
    let dir = TempDir::new();
    let mut demo = Watched::start(&[
        "demo", "--log-dir", &logs(&dir), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--interval", "2s", "--scale-down-stabilization", "6s", "--min", "1", "--max", "8",
        "--target", "4", "--latency", "50ms",
    ]);
    let addr = demo.listening().await;
    demo.wait_for(Stream::Out, 1, 60, "the try-it lines", |l| l.starts_with("Backend logs: ")).await;

    let began = Instant::now();
    let load = Load::start(&format!("http://{addr}/"), LOAD);
    let want = (LOAD as u64).div_ceil(TARGET) as i64;
    let deadline = began + Duration::from_secs(60);
    while ready_now(&demo.lines(Stream::Out)) < want {
        assert!(Instant::now() < deadline, "never {want} ready: {:#?}", demo.lines(Stream::Out));
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    let grew = began.elapsed();
    let startup = demo
        .lines(Stream::Out)
        .iter()
        .filter_map(|(_, l)| l.split("ready after ").nth(1).and_then(|s| s.strip_suffix(')')).and_then(seconds))
        .fold(0.0f64, f64::max);
    // the issue's bound: two evaluation intervals plus start-up time (and slack for a
    // busy two-core machine)
    let bound = Duration::from_secs(2 * INTERVAL + 10) + Duration::from_secs_f64(startup);
    assert!(grew <= bound, "grew to {want} in {grew:?}, over {bound:?}");
    load.wait_for_more(200).await;
    let report = load.finish().await;
    assert!(report.errors.is_empty(), "errors under load: {:?}", &report.errors[..report.errors.len().min(5)]);
    assert!(report.by_backend.len() as i64 >= want, "the load reached every instance: {:?}", report.by_backend);

    let quiet = Instant::now();
    let deadline = quiet + Duration::from_secs(60);
    loop {
        let lines = demo.lines(Stream::Out);
        let last = live_counts(&lines).last().map_or(0, |(_, n)| *n);
        if last == i64::from(min) && lines.iter().rev().find_map(|(_, l)| decision(l)).is_some_and(|(_, to)| to == min) {
            break;
        }
        assert!(Instant::now() < deadline, "never shrank back to {min}: {lines:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    let shrank = quiet.elapsed();
    // the issue's bound: back after the stabilisation window (plus two evaluations and
    // the drains, with slack for a busy machine)
    let bound = Duration::from_secs(STABILIZATION + 2 * INTERVAL + 15);
    assert!(shrank <= bound, "shrank back in {shrank:?}, over {bound:?}");

    let lines = demo.lines(Stream::Out);
    let decisions: Vec<(u32, u32)> = lines.iter().filter_map(|(_, l)| decision(l)).collect();
    assert!(!decisions.is_empty(), "decisions are printed: {lines:#?}");
    for (from, to) in &decisions {
        assert!((min..=max).contains(from) && (min..=max).contains(to), "decision {from} → {to} outside [{min}, {max}]");
    }
    let peak = live_counts(&lines).iter().map(|(_, n)| *n).max().unwrap_or(0);
    assert!(peak >= want && peak <= i64::from(max), "peak {peak} instances");
    for (_, l) in lines.iter().filter(|(_, l)| l.starts_with("decision: ")) {
        assert!(l.contains("concurrency"), "every decision gives its reason: {l}");
        println!("  {l}");
    }
    println!(
        "ramp: {LOAD} in flight, target {TARGET}/instance, interval {INTERVAL}s: grew 1 → {want} ready in {grew:.1?} \
         (slowest start-up {startup:.1}s); shrank back to {min} {shrank:.1?} after the load stopped \
         (stabilisation {STABILIZATION}s); peak {peak} instances; decisions {decisions:?}; {} requests ok",
        report.ok
    );
    let pids = pids_in(lines.iter().map(|(_, l)| l.as_str()).filter(|l| l.starts_with("started instance ")));
    let status = demo.terminate().await;
    assert!(status.success(), "clean exit: {status}");
    wait_gone(&pids, 10).await;
}

/// A `serve` config with one autoscaled pool of demo backends (fixed at `count`).
pub(crate) fn serve_config(count: u32, ports: (u16, u16), args: &str) -> String {
    let bin = ballast_bin();
    format!(
        r#"
[[balancer]]
name = "web"
listen = "127.0.0.1:0"
access_log = "off"
[[balancer.route]]
path_prefix = "/"
split = [{{ pool = "app" }}]

[[pool]]
name = "app"
[pool.health]
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 1
[pool.retry]
attempts = 2
[pool.provider]
kind = "process"
command = "{bin}"
args = [{args}]
port_range = {{ start = {start}, end = {end} }}
grace_period = "2s"
[pool.scaling]
min = {count}
max = {count}
sync_interval = "2s"
[[pool.scaling.policy]]
kind = "target"
metric = "concurrency"
target = 10
"#,
        bin = bin.display(),
        start = ports.0,
        end = ports.1,
    )
}

const BACKEND: &str = r#""demo-backend", "--port", "{port}", "--name", "{instance}", "--latency", "5ms""#;

fn control_events<'a>(lines: &'a [(Instant, String)], kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let needle = format!("kind={kind} ");
    lines.iter().map(|(_, l)| l.as_str()).filter(move |l| l.contains("control event") && l.contains(&needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_replaces_a_killed_instance_without_client_errors() {
    let config = serve_config(2, (31_000, 31_099), BACKEND) + "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let (dir, path) = temp_file("ballast.toml", &config);
    let mut serve = Watched::start(&["serve", "--config", path.to_str().expect("utf-8"), "--log-dir", &logs(&dir), "--threads", "2"]);
    let addr = serve.listening().await;
    let ready = |l: &str| l.contains("control event") && l.contains("kind=Ready");
    serve.wait_for(Stream::Err, 2, 60, "two ready instances", ready).await;
    // the proxy gets the addresses just after the events: wait until both serve
    until_backends(&format!("http://{addr}/"), 10, "both instances serving", |s| s.len() == 2).await;
    let load = Load::start(&format!("http://{addr}/"), 4);
    load.wait_for_more(100).await;

    let lines = serve.lines(Stream::Err);
    let victim = *pids_in(control_events(&lines, "Created")).first().expect("a pid in the Created event");
    let killed = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), nix::sys::signal::Signal::SIGKILL).expect("kill");
    serve.wait_for(Stream::Err, 1, 30, "the replace event", |l| l.contains("kind=Replace")).await;
    let (at, _) = serve.wait_for(Stream::Err, 3, 60, "the successor ready", ready).await;
    load.wait_for_more(100).await;
    let report = load.finish().await;
    println!(
        "kill: instance pid {victim} SIGKILLed; successor ready {:.1?} later; {} GETs ok, {} errors",
        at.duration_since(killed),
        report.ok,
        report.errors.len()
    );
    assert!(report.errors.is_empty(), "client-visible errors: {:?}", &report.errors[..report.errors.len().min(5)]);

    let lines = serve.lines(Stream::Err);
    let pids = pids_in(control_events(&lines, "Created"));
    assert_eq!(pids.len(), 3, "two instances and one successor: {pids:?}");
    // the admin listener ([admin]) shows the replaced pool
    let (_, line) = serve.wait_for(Stream::Out, 1, 10, "admin on", |l| l.starts_with("admin on ")).await;
    let admin = line["admin on ".len()..].split(' ').next().expect("admin address").to_string();
    let pools = get(&format!("http://{admin}/api/v1/pools")).await.expect("pools");
    let doc: serde_json::Value = serde_json::from_str(&pools.text()).expect("json");
    let app = doc["pools"].as_array().expect("pools").iter().find(|p| p["name"] == "app").expect("app pool").clone();
    assert_eq!(app["replicas"]["by_phase"]["ready"], 2, "{app}");
    assert_eq!(app["autoscaled"], true, "{app}");
    let status = serve.terminate().await;
    assert!(status.success(), "clean exit: {status}");
    wait_gone(&pids, 10).await;
    let lines = serve.lines(Stream::Err);
    assert!(lines.iter().any(|(_, l)| l.contains("every autoscaled instance stopped")), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_shows_error_and_recovers_after_a_fixing_reload() {
    let broken = r#""-c", "echo 'cannot load model weights' >&2; exit 1", "{port}""#;
    let config = |args: &str| serve_config(1, (31_100, 31_199), args).replace(&format!("\"{}\"", ballast_bin().display()), "\"/bin/sh\"");
    let (dir, path) = temp_file("ballast.toml", &config(broken));
    let mut serve = Watched::start(&["serve", "--config", path.to_str().expect("utf-8"), "--log-dir", &logs(&dir), "--threads", "1"]);
    let addr = serve.listening().await;
    let (_, error) = serve.wait_for(Stream::Err, 1, 60, "the pool in error", |l| l.contains("kind=PoolError")).await;
    assert!(error.contains("exit status: 1") || error.contains("exited"), "the cause is logged: {error}");
    let r = get(&format!("http://{addr}/")).await.expect("the proxy answers");
    assert_eq!(r.status, 503, "no instance to serve from");

    // the fixed template: the real backend
    let fixed = serve_config(1, (31_100, 31_199), BACKEND);
    std::fs::write(&path, fixed).expect("rewrite config");
    ballast_tests::signal(&serve.process, nix::sys::signal::Signal::SIGHUP);
    serve.wait_for(Stream::Err, 1, 60, "recovery", |l| l.contains("kind=Recovered")).await;
    serve.wait_for(Stream::Err, 1, 60, "a ready instance", |l| l.contains("kind=Ready")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if get(&format!("http://{addr}/")).await.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "never served after recovery");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    let lines = serve.lines(Stream::Err);
    let pids = pids_in(control_events(&lines, "Created"));
    let status = serve.terminate().await;
    assert!(status.success(), "clean exit: {status}");
    wait_gone(&pids, 10).await;
}

/// GETs `url` until `done` holds for the set of backends of the last `n` answers.
async fn until_backends(url: &str, n: usize, what: &str, done: impl Fn(&std::collections::BTreeSet<String>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut recent = std::collections::VecDeque::new();
    loop {
        if let Ok(r) = get(url).await {
            recent.push_back(r.backend().unwrap_or_default());
            if recent.len() > n {
                recent.pop_front();
            }
        }
        let seen: std::collections::BTreeSet<String> = recent.iter().cloned().collect();
        if recent.len() == n && done(&seen) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: last backends {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_scaling_templates_and_removed_pools_to_running_instances() {
    let v1 = r#""demo-backend", "--port", "{port}", "--name", "v1-{instance}", "--latency", "5ms""#;
    let v2 = r#""demo-backend", "--port", "{port}", "--name", "v2-{instance}", "--latency", "5ms""#;
    let ports = (31_200, 31_299);
    let (dir, path) = temp_file("ballast.toml", &serve_config(2, ports, v1));
    let mut serve = Watched::start(&["serve", "--config", path.to_str().expect("utf-8"), "--log-dir", &logs(&dir), "--threads", "2"]);
    let url = format!("http://{}/", serve.listening().await);
    until_backends(&url, 20, "two v1 backends", |s| s.len() == 2 && s.iter().all(|b| b.starts_with("v1-"))).await;
    let hup = |text: String| {
        std::fs::write(&path, text).expect("rewrite config");
        ballast_tests::signal(&serve.process, nix::sys::signal::Signal::SIGHUP);
    };

    // new bounds reach the running pool task
    hup(serve_config(3, ports, v1));
    until_backends(&url, 30, "three v1 backends", |s| s.len() == 3).await;

    // a new template rolls every instance under load, without an error
    let load = Load::start(&url, 4);
    load.wait_for_more(50).await;
    let rolled = Instant::now();
    hup(serve_config(3, ports, v2));
    until_backends(&url, 30, "three v2 backends", |s| s.len() == 3 && s.iter().all(|b| b.starts_with("v2-"))).await;
    let took = rolled.elapsed();
    load.wait_for_more(50).await;
    let report = load.finish().await;
    println!("rolling update of 3 instances: {took:.1?}, {} GETs ok, {} errors", report.ok, report.errors.len());
    assert!(report.errors.is_empty(), "errors during the rollout: {:?}", &report.errors[..report.errors.len().min(5)]);
    serve.wait_for(Stream::Err, 1, 30, "the rollout done", |l| l.contains("kind=Rollout") && l.contains("done")).await;

    // the pool becomes static: its task stops every instance it started
    let fixed = ballast_tests::start_backend("fixed", &[]).await;
    let pids = pids_in(control_events(&serve.lines(Stream::Err), "Created"));
    assert!(pids.len() >= 6, "3 v1 and 3 v2 instances were started: {pids:?}");
    let static_pool = format!(
        "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n[[balancer.route]]\npath_prefix = \"/\"\n\
         split = [{{ pool = \"app\" }}]\n[[pool]]\nname = \"app\"\n[[pool.instance]]\naddress = \"{}\"\n",
        fixed.addr
    );
    hup(static_pool);
    wait_gone(&pids, 30).await;
    until_backends(&url, 5, "the static backend", |s| s.len() == 1 && s.contains("fixed")).await;
    let status = serve.terminate().await;
    assert!(status.success(), "clean exit: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_to_a_pool_at_zero_is_held_until_an_instance_starts() {
    let config = serve_config(1, (31_300, 31_399), BACKEND)
        .replace("min = 1\nmax = 1\n", "min = 0\nmax = 2\n")
        .replace("[[pool.scaling.policy]]", "[pool.scaling.scale_to_zero]\nidle_after = \"10m\"\n[[pool.scaling.policy]]");
    assert!(config.contains("min = 0"), "{config}");
    let (dir, path) = temp_file("ballast.toml", &config);
    let mut serve = Watched::start(&["serve", "--config", path.to_str().expect("utf-8"), "--log-dir", &logs(&dir), "--threads", "2"]);
    let url = format!("http://{}/", serve.listening().await);
    serve.wait_for(Stream::Err, 1, 30, "the controller started", |l| l.contains("autoscaling controller started")).await;
    let created = |l: &str| l.contains("control event") && l.contains("kind=Created");
    assert!(!serve.lines(Stream::Err).iter().any(|(_, l)| created(l)), "min 0: nothing starts before a request");

    let sent = Instant::now();
    let r = get(&url).await.expect("the held request is served");
    let latency = sent.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, ready) = serve.wait_for(Stream::Err, 1, 10, "the instance ready", |l| l.contains("kind=Ready")).await;
    let startup = ready.split("ready after ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("?").to_string();
    println!("scale from zero: first request answered 200 after {latency:.1?}; the instance's start-up (controller probe) {startup}");
    // the issue's bound: about the start-up time, far below the 30 s hold timeout
    assert!(latency < Duration::from_secs(10), "first request took {latency:?}");
    for _ in 0..5 {
        assert_eq!(get(&url).await.expect("served").status, 200);
    }
    let pids = pids_in(control_events(&serve.lines(Stream::Err), "Created"));
    assert_eq!(pids.len(), 1, "one instance woke: {pids:?}");
    let status = serve.terminate().await;
    assert!(status.success(), "clean exit: {status}");
    wait_gone(&pids, 10).await;
}
