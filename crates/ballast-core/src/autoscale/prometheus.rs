//! Where a pool's `prometheus:<name>` metrics come from: `[pool.scaling.prometheus]`.
//!
//! ```toml
//! [pool.scaling.prometheus]
//! url = "http://127.0.0.1:9090"     # plain http; a path prefix is kept
//! interval = "15s"                  # how often each query runs (default 15s)
//! timeout = "5s"                    # per query (default 5s, at most `interval`)
//! queries = { queue = "sum(job_queue_depth)" }
//!
//! [[pool.scaling.policy]]
//! kind = "target"
//! metric = "prometheus:queue"       # a name from `queries`, or PromQL itself
//! target = 100
//! ```
//! A policy metric `prometheus:<name>` runs `queries[name]` when the name is there, and
//! `<name>` itself as PromQL otherwise. Each query must give one number (aggregate with
//! `sum(...)`).

use super::config::PolicyConfig;
use super::metrics::MetricKind;
use crate::config::{ConfigDuration, FieldError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest `url`, bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest PromQL query, bytes.
pub const MAX_QUERY_LEN: usize = 8192;

/// `[pool.scaling.prometheus]`: the Prometheus server a pool's `prometheus:` metrics
/// are queried from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// Base URL of the server, `http://host:port[/prefix]`.
    pub url: String,
    /// How often every query runs; default 15s.
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
    /// Longest wait for one query; default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Named queries: `prometheus:<name>` runs `queries[name]`.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}

fn default_interval() -> ConfigDuration {
    ConfigDuration::from_secs(15)
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}

impl PrometheusSource {
    /// A source at `url` with the default interval and timeout and no named queries.
    pub fn new(url: &str) -> Self {
        PrometheusSource { url: url.into(), interval: default_interval(), timeout: default_timeout(), queries: BTreeMap::new() }
    }

    /// The PromQL that metric `prometheus:<name>` runs.
    pub fn promql<'a>(&'a self, name: &'a str) -> &'a str {
        self.queries.get(name).map_or(name, String::as_str)
    }
}

/// The names of the `prometheus:<name>` metrics `policies` read, with the index of the
/// first policy reading each, sorted and without repeats.
pub fn prometheus_metrics(policies: &[PolicyConfig]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        let metrics: Vec<&MetricKind> = match p {
            PolicyConfig::Target(t) => vec![&t.metric],
            PolicyConfig::Step(s) => vec![&s.metric],
            PolicyConfig::Score(s) => s.weights.keys().collect(),
            PolicyConfig::Predictive(p) => vec![&p.metric],
            PolicyConfig::Schedule(_) => vec![],
        };
        for m in metrics {
            if let MetricKind::Prometheus(n) = m {
                if !out.iter().any(|(have, _)| have == n) {
                    out.push((n.clone(), i));
                }
            }
        }
    }
    out.sort();
    out
}

/// Checks `http://host[:port][/prefix]`; the reason when it is not.
fn url_problem(url: &str) -> Option<String> {
    if url.len() > MAX_URL_LEN {
        return Some(format!("{} bytes is too long; at most {MAX_URL_LEN}", url.len()));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Some(format!("{url:?} must start with http:// (https is not supported: put a local proxy in front)"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("{url:?} must not contain spaces or control characters"));
    }
    if url.contains(['?', '#']) {
        return Some(format!("{url:?} must not have a query string or fragment; give the server's base URL"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Some(format!("{url:?}: credentials in the URL are not supported"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Some(format!("{url:?} has no host; e.g. http://127.0.0.1:9090"));
    }
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return Some(format!("{url:?}: port {p:?} is not 1-65535"));
        }
    }
    None
}

/// Validates `source` (at `path`, e.g. `pool "api".scaling.prometheus`) against the
/// policies: every problem becomes one [`FieldError`] naming its field.
pub(crate) fn validate(
    source: Option<&PrometheusSource>,
    policies: &[PolicyConfig],
    scaling_path: &str,
    errors: &mut Vec<FieldError>,
) {
    let path = format!("{scaling_path}.prometheus");
    let Some(s) = source else {
        for (name, i) in prometheus_metrics(policies) {
            errors.push(FieldError::new(
                format!("{scaling_path}.policy[{i}].metric"),
                format!("prometheus:{name} needs a Prometheus server: add [pool.scaling.prometheus] with url = \"http://HOST:9090\""),
            ));
        }
        return;
    };
    if let Some(why) = url_problem(&s.url) {
        errors.push(FieldError::new(format!("{path}.url"), why));
    }
    if s.interval.0 < Duration::from_secs(1) {
        errors.push(FieldError::new(format!("{path}.interval"), format!("{} is too short; use at least \"1s\"", s.interval)));
    }
    if s.timeout.0.is_zero() {
        errors.push(FieldError::new(format!("{path}.timeout"), "0s is not allowed; use a duration such as \"5s\""));
    } else if s.timeout.0 > s.interval.0 {
        errors.push(FieldError::new(
            format!("{path}.timeout"),
            format!("{} is longer than interval ({}); use at most the interval", s.timeout, s.interval),
        ));
    }
    for (name, q) in &s.queries {
        let field = format!("{path}.queries.{name}");
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            errors.push(FieldError::new(field.clone(), format!("query name {name:?} must be printable and not blank")));
        }
        if q.trim().is_empty() {
            errors.push(FieldError::new(field, "the query is empty; write PromQL such as \"sum(rate(http_requests_total[1m]))\""));
        } else if q.len() > MAX_QUERY_LEN {
            errors.push(FieldError::new(field, format!("{} bytes is too long; at most {MAX_QUERY_LEN}", q.len())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::ScalingConfig;

    fn scaling(toml_text: &str) -> Result<ScalingConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    const POLICY: &str = "[[policy]]\nkind = \"target\"\nmetric = \"prometheus:queue\"\ntarget = 10\n";

    #[test]
    fn a_section_parses_with_defaults_and_named_queries() {
        let c = scaling(&format!("[prometheus]\nurl = \"http://127.0.0.1:9090\"\nqueries = {{ queue = \"sum(q)\" }}\n{POLICY}"))
            .expect("parses");
        let p = c.prometheus.as_ref().expect("section");
        assert_eq!((p.interval.0, p.timeout.0), (Duration::from_secs(15), Duration::from_secs(5)));
        assert_eq!(p.promql("queue"), "sum(q)");
        assert_eq!(p.promql("sum(up)"), "sum(up)", "an unnamed metric is PromQL itself");
        let mut errors = Vec::new();
        c.validate("pool \"api\".scaling", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(prometheus_metrics(&c.policies), [("queue".to_string(), 0)]);
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_field() {
        let e = scaling("[prometheus]\nurl = \"http://h:1\"\nintreval = \"1s\"\n").expect_err("unknown field");
        assert!(e.contains("intreval"), "{e}");
        let e = scaling("[prometheus]\nurl = 9090\n").expect_err("type");
        assert!(e.contains("url"), "{e}");
        let e = scaling("[prometheus]\nurl = \"http://h:1\"\ninterval = \"soon\"\n").expect_err("duration");
        assert!(e.contains("interval"), "{e}");
        let e = scaling("[prometheus]\ninterval = \"1s\"\n").expect_err("missing url");
        assert!(e.contains("url"), "{e}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_field() {
        let long_url = format!("http://h:1/{}", "a".repeat(MAX_URL_LEN));
        let long_query = "x".repeat(MAX_QUERY_LEN + 1);
        let cases: &[(&str, &str, &str)] = &[
            ("url = \"https://h:9090\"", ".prometheus.url", "http://"),
            ("url = \"127.0.0.1:9090\"", ".prometheus.url", "http://"),
            ("url = \"http://\"", ".prometheus.url", "no host"),
            ("url = \"http://:9090\"", ".prometheus.url", "no host"),
            ("url = \"http://h:0\"", ".prometheus.url", "port"),
            ("url = \"http://h:99999\"", ".prometheus.url", "port"),
            ("url = \"http://h:x\"", ".prometheus.url", "port"),
            ("url = \"http://h:1/?q=1\"", ".prometheus.url", "query string"),
            ("url = \"http://u:p@h:1\"", ".prometheus.url", "credentials"),
            ("url = \"http://h 1:9\"", ".prometheus.url", "spaces"),
            (&format!("url = \"{long_url}\""), ".prometheus.url", "too long"),
            ("url = \"http://h:1\"\ninterval = \"500ms\"\ntimeout = \"100ms\"", ".prometheus.interval", "at least"),
            ("url = \"http://h:1\"\ntimeout = \"0s\"", ".prometheus.timeout", "0s"),
            ("url = \"http://h:1\"\ninterval = \"2s\"\ntimeout = \"3s\"", ".prometheus.timeout", "longer than interval"),
            ("url = \"http://h:1\"\nqueries = { queue = \" \" }", ".prometheus.queries.queue", "empty"),
            ("url = \"http://h:1\"\nqueries = { \" \" = \"up\" }", ".prometheus.queries. ", "blank"),
            (&format!("url = \"http://h:1\"\nqueries = {{ queue = \"{long_query}\" }}"), ".prometheus.queries.queue", "too long"),
        ];
        for (body, field, words) in cases {
            let c = scaling(&format!("[prometheus]\n{body}\n{POLICY}")).unwrap_or_else(|e| panic!("{body}: {e}"));
            let mut errors = Vec::new();
            c.validate("pool \"api\".scaling", &mut errors);
            assert_eq!(errors.len(), 1, "{body}: {errors:?}");
            assert_eq!(errors[0].path, format!("pool \"api\".scaling{field}"), "{body}");
            assert!(errors[0].message.contains(words), "{body}: {}", errors[0].message);
        }
        for ok in ["http://h:1", "http://[::1]:9090", "http://prom.internal/prefix", "http://h"] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn a_prometheus_metric_without_a_server_names_the_policy() {
        let c = scaling(&format!("[[policy]]\nkind = \"target\"\nmetric = \"cpu\"\ntarget = 50\n{POLICY}")).expect("parses");
        let mut errors = Vec::new();
        c.validate("pool \"api\".scaling", &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "pool \"api\".scaling.policy[1].metric");
        assert!(errors[0].message.contains("[pool.scaling.prometheus]"), "{}", errors[0].message);
    }
}
