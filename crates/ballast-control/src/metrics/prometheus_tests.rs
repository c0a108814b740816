//! Tests of the Prometheus client: the parser on the API's shapes and hostile bodies,
//! and a real Prometheus (Debian's package) started by the test when it is installed.

use super::*;
use crate::process::{ManagedProcess, ProcessSpec};

#[test]
fn parses_vector_and_scalar_results() {
    let v = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"up","job":"web"},"value":[1435781451.781,"1.5"]}]}}"#;
    let r = parse_response(v).expect("vector");
    assert_eq!(r.single().expect("one"), 1.5);
    let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,"+Inf"]}}"#;
    assert_eq!(parse_response(s).expect("scalar").single().expect("one"), f64::INFINITY);
}

#[test]
fn single_needs_exactly_one_series() {
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    assert!(matches!(parse_response(empty).expect("ok").single(), Err(PromError::NoData)));
    let two = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
    let err = parse_response(two).expect("ok").single().expect_err("two");
    assert!(err.to_string().contains("2 series"), "{err}");
}

#[test]
fn hostile_bodies_are_named_errors() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "EOF"),
        (b"<html>", "expected value"),
        (br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#, "bad_data"),
        (br#"{"status":"success"}"#, "without `data`"),
        (br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, "not an instant result"),
        (br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}"#, "\"abc\" is not a number"),
        (br#"{"status":"success","data":{"resultType":"scalar","result":{"x":1}}}"#, "data.result"),
    ];
    for (body, want) in cases {
        let err = parse_response(body).expect_err(&String::from_utf8_lossy(body));
        assert!(err.to_string().contains(want), "{}: {err}", String::from_utf8_lossy(body));
    }
}

#[test]
fn urls_are_checked_and_queries_encoded() {
    for (url, want) in [("ftp://x", "only http://"), ("not a url", "not a URL"), ("http://h:9090/?a=b", "query string")] {
        let err = PromClient::new(url, Duration::from_secs(1)).expect_err(url);
        assert!(err.to_string().contains(want), "{url}: {err}");
    }
    assert_eq!(encode("sum(rate(x{a=\"b c\"}[1m]))"), "sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29");
}

#[tokio::test]
async fn an_unreachable_prometheus_is_a_request_error() {
    let port = free_port();
    let c = PromClient::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5)).expect("url");
    let err = c.query("up", None).await.expect_err("nothing listens");
    assert!(matches!(err, PromError::Request { .. }), "{err}");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A real Prometheus (Debian's `/usr/bin/prometheus`, installed by `scripts/test.sh`)
/// on a free port with an empty scrape config, answering queries; stop it with
/// [`RealPrometheus::stop`].
pub(crate) struct RealPrometheus {
    process: ManagedProcess,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
}

impl RealPrometheus {
    /// Starts it and waits (at most 60 s) until it answers `vector(42)`.
    pub(crate) async fn start(tag: &str) -> (RealPrometheus, PromClient, QueryResult) {
        let bin = std::path::Path::new("/usr/bin/prometheus");
        assert!(bin.exists(), "/usr/bin/prometheus is not installed: run scripts/test.sh, or apt-get install prometheus");
        let dir = std::env::temp_dir().join(format!("ballast-prom-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("prometheus.yml"), "global:\n  scrape_interval: 15s\n").expect("config");
        let port = free_port();
        let spec = ProcessSpec {
            program: bin.into(),
            args: vec![
                format!("--config.file={}", dir.join("prometheus.yml").display()).into(),
                format!("--storage.tsdb.path={}", dir.join("data").display()).into(),
                format!("--web.listen-address=127.0.0.1:{port}").into(),
            ],
            ..Default::default()
        };
        let mut process = ManagedProcess::spawn_captured(&spec).expect("spawn prometheus");
        // its logs are noise here: drain them so it never blocks on a full pipe
        let (out, err) = process.take_output();
        if let (Some(mut out), Some(mut err)) = (out, err) {
            tokio::spawn(async move { tokio::io::copy(&mut out, &mut tokio::io::sink()).await });
            tokio::spawn(async move { tokio::io::copy(&mut err, &mut tokio::io::sink()).await });
        }
        let url = format!("http://127.0.0.1:{port}");
        let client = PromClient::new(&url, Duration::from_secs(5)).expect("url");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let first = loop {
            match client.query("vector(42)", None).await {
                Ok(r) => break r,
                Err(e) if tokio::time::Instant::now() > deadline => panic!("prometheus never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await, // poll interval
            }
        };
        (RealPrometheus { process, dir, url }, client, first)
    }

    /// Stops it and removes its data.
    pub(crate) async fn stop(self) {
        self.process.stop(Duration::from_secs(10)).await.expect("stop prometheus");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Against Debian's `prometheus` binary: started on a free port with an empty scrape
/// config, then queried. `scripts/test.sh` installs it; without it this test fails.
#[tokio::test]
async fn real_prometheus_answers_instant_queries() {
    let (prom, client, first) = RealPrometheus::start("query").await;
    assert_eq!(first.single().expect("one series"), 42.0);
    let s = client.query("scalar(vector(7)) * 2", Some(Utc::now())).await.expect("scalar");
    assert_eq!(s, QueryResult::Scalar(14.0));
    let refused = client.query("sum(", None).await.expect_err("syntax error");
    assert!(matches!(refused, PromError::Refused { ref kind, .. } if kind == "bad_data"), "{refused}");
    let none = client.query("no_such_metric_anywhere", None).await.expect("empty vector");
    assert!(matches!(none.single(), Err(PromError::NoData)));

    // the poller feeds a pool's windows through the inbox
    let inbox = crate::metrics::inbox::MetricInbox::new(100);
    let queries = vec![
        NamedQuery { name: "answer".into(), promql: "vector(42)".into() },
        NamedQuery { name: "broken".into(), promql: "sum(".into() },
    ];
    let poller = spawn_poller(client.clone(), queries, Duration::from_millis(100), inbox.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while inbox.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the poller pushed nothing");
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    poller.abort();
    let mut windows = crate::metrics::PoolWindows::new(Default::default());
    inbox.drain_into(&mut windows);
    use ballast_core::autoscale::{MetricKind, MetricSource};
    let now = Utc::now();
    let s = windows.summary(&MetricKind::Prometheus("answer".into()), now - chrono::Duration::seconds(60), now).expect("samples");
    assert_eq!((s.mean, s.latest), (42.0, 42.0));
    assert_eq!(windows.raw_len(&MetricKind::Prometheus("broken".into())), 0, "a refused query records nothing");
    prom.stop().await;
}
