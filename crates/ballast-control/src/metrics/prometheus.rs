//! Prometheus as a metric source: a PromQL instant query over the HTTP API
//! (`GET /api/v1/query?query=...`), with the JSON answer parsed into a scalar or a
//! vector of labelled values.
//!
//! A scaling policy needs one number, so [`QueryResult::single`] accepts a scalar or a
//! vector of exactly one series and says what is wrong otherwise (no series, several
//! series: aggregate them in the query, e.g. `sum(...)`).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest response body read, bytes (1 MiB): a runaway query must not eat memory.
pub const MAX_BODY: usize = 1 << 20;

/// Errors of a Prometheus query.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The base URL is not `http://host:port[/prefix]`.
    #[error("prometheus url {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The request failed or timed out.
    #[error("prometheus request to {url}: {reason}")]
    Request {
        /// The query URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer was not the API's JSON shape.
    #[error("prometheus answer: {0}")]
    Malformed(String),
    /// Prometheus refused the query (`status: error`).
    #[error("prometheus refused the query ({kind}): {message}")]
    Refused {
        /// `errorType`, e.g. `bad_data`.
        kind: String,
        /// `error`.
        message: String,
    },
    /// The query matched no series.
    #[error("the query returned no series")]
    NoData,
    /// The query returned several series where one number was needed.
    #[error("the query returned {0} series; aggregate it (e.g. sum(...)) to one")]
    TooMany(usize),
}

/// A query's result.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// `resultType: scalar`.
    Scalar(f64),
    /// `resultType: vector`: one value per series, with its labels.
    Vector(Vec<(BTreeMap<String, String>, f64)>),
}

impl QueryResult {
    /// The one number of a scalar, or of a vector with exactly one series.
    pub fn single(&self) -> Result<f64, PromError> {
        match self {
            QueryResult::Scalar(v) => Ok(*v),
            QueryResult::Vector(s) if s.is_empty() => Err(PromError::NoData),
            QueryResult::Vector(s) if s.len() == 1 => Ok(s[0].1),
            QueryResult::Vector(s) => Err(PromError::TooMany(s.len())),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

fn number(s: &str) -> Result<f64, PromError> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|_| PromError::Malformed(format!("sample value {s:?} is not a number"))),
    }
}

/// Parses a `/api/v1/query` response body.
pub fn parse_response(body: &[u8]) -> Result<QueryResult, PromError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| PromError::Malformed(e.to_string()))?;
    if env.status != "success" {
        return Err(PromError::Refused {
            kind: env.error_type.unwrap_or_else(|| "unknown".into()),
            message: env.error.unwrap_or_else(|| format!("status {:?}", env.status)),
        });
    }
    let data = env.data.ok_or_else(|| PromError::Malformed("success without `data`".into()))?;
    let shape = |e: serde_json::Error| PromError::Malformed(format!("data.result: {e}"));
    match data.result_type.as_str() {
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(data.result).map_err(shape)?;
            Ok(QueryResult::Scalar(number(&v)?))
        }
        "vector" => {
            let series: Vec<Series> = serde_json::from_value(data.result).map_err(shape)?;
            series
                .into_iter()
                .map(|s| Ok((s.metric, number(&s.value.1)?)))
                .collect::<Result<_, _>>()
                .map(QueryResult::Vector)
        }
        other => Err(PromError::Malformed(format!(
            "data.resultType {other:?} is not an instant result (scalar or vector)"
        ))),
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved bytes).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Prometheus HTTP API client (plain HTTP; put a local proxy in front for TLS).
#[derive(Debug, Clone)]
pub struct PromClient {
    base: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl PromClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9090`), each query bounded by `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, PromError> {
        let bad = |reason: &str| PromError::Url { url: base.to_string(), reason: reason.to_string() };
        let uri: hyper::Uri = base.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        if uri.host().is_none() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("must not have a query string"));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(PromClient { base: base.trim_end_matches('/').to_string(), timeout, client })
    }

    /// Runs `promql` as an instant query, at `at` (default: Prometheus's now).
    pub async fn query(&self, promql: &str, at: Option<DateTime<Utc>>) -> Result<QueryResult, PromError> {
        let mut url = format!("{}/api/v1/query?query={}", self.base, encode(promql));
        if let Some(t) = at {
            url.push_str(&format!("&time={}.{:03}", t.timestamp(), t.timestamp_subsec_millis()));
        }
        let fail = |reason: String| PromError::Request { url: url.clone(), reason };
        let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
        let work = async {
            let resp = self.client.get(uri).await.map_err(|e| fail(e.to_string()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the body: {e}")))?
                .to_bytes();
            // Prometheus answers errors (400, 422, 503) with the JSON envelope too
            match parse_response(&body) {
                Err(PromError::Malformed(m)) if !status.is_success() => Err(fail(format!("HTTP {status}: {m}"))),
                other => other,
            }
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| fail(format!("timed out after {:?}", self.timeout)))?
    }
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
pub(crate) mod tests;

/// A named PromQL query polled for a pool: its value is recorded as
/// `prometheus:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    /// The name policies use (`metric = "prometheus:<name>"`).
    pub name: String,
    /// The PromQL; it must give one number (aggregate with `sum`, `avg`...).
    pub promql: String,
}

/// Polls `queries` every `every` and pushes each single value into `inbox` as
/// `prometheus:<name>` at the local time of the query. A failing query is logged (with
/// its error) and skipped; the policy then sees no fresh sample and holds.
pub fn spawn_poller(
    client: PromClient,
    queries: Vec<NamedQuery>,
    every: Duration,
    inbox: super::inbox::MetricInbox,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for q in &queries {
                match client.query(&q.promql, None).await.and_then(|r| r.single()) {
                    Ok(v) => inbox.push(ballast_core::autoscale::MetricKind::Prometheus(q.name.clone()), Utc::now(), v),
                    Err(e) => tracing::warn!(query = %q.name, error = %e, "prometheus query failed"),
                }
            }
        }
    })
}
