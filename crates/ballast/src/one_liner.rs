//! `ballast proxy --listen A --to B --to C`: a balancer without a config file, like
//! `caddy reverse-proxy`. The flags become an ordinary [`Config`] (one balancer, one
//! catch-all route, one pool of static instances), so it runs the same code as `serve`.

use ballast_core::balance::Algorithm;
use ballast_core::config::{AccessLogFormat, Config, TraceContext};

/// Flags of `ballast proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0: the OS chooses; the bound
    /// address is printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A backend `host:port`; repeat the flag or separate with commas.
    #[arg(long = "to", required = true, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Balancing algorithm (the config file's names; HAProxy-style `roundrobin` and
    /// `leastconn` are accepted too).
    #[arg(long, default_value = "least-request", value_parser = parse_algorithm)]
    pub balance: Algorithm,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Access log format: off, combined or json.
    #[arg(long, default_value = "off", value_parser = config_name::<AccessLogFormat>)]
    pub access_log: AccessLogFormat,
    /// Do not add X-Forwarded-For, -Proto and -Host.
    #[arg(long)]
    pub no_x_forwarded: bool,
    /// Do not add, return or log an X-Request-Id (the field passes through as received).
    #[arg(long)]
    pub no_request_id: bool,
    /// W3C traceparent: generate (continue or start a trace), propagate (continue only)
    /// or off (pass it on as received).
    #[arg(long, default_value = "generate", value_parser = config_name::<TraceContext>)]
    pub trace_context: TraceContext,
}

/// Accepts the config names plus the HAProxy/nginx spellings operators type from habit.
pub fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    let alias = match s {
        "roundrobin" | "rr" => "round-robin",
        "leastconn" | "least_conn" => "least-connections",
        other => other,
    };
    alias.parse::<Algorithm>().map_err(|e| e.to_string())
}

/// Reads a flag value by the config file's word for it (`json`, `propagate`, ...), with
/// the config file's error for a wrong one.
fn config_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    toml::Value::String(s.to_string()).try_into().map_err(|e: toml::de::Error| e.message().to_string())
}

/// The config file's word for a flag value (the inverse of [`config_name`]).
fn name_of<T: serde::Serialize>(value: T) -> Result<toml::Value, String> {
    toml::Value::try_from(value).map_err(|e| e.to_string())
}

/// The config the flags describe. Built as a TOML table and read by the same
/// deserializer as a file, so every field the flags don't set keeps its file default.
pub fn config_from_args(args: &ProxyArgs) -> Result<Config, String> {
    let instances: Vec<toml::Value> = args
        .to
        .iter()
        .map(|a| toml::Value::Table(toml::toml! { address = (a.trim()) }))
        .collect();
    let (access_log, trace_context) = (name_of(args.access_log)?, name_of(args.trace_context)?);
    let doc = toml::toml! {
        [[balancer]]
        name = "default"
        listen = (args.listen.clone())
        access_log = access_log
        forwarding = { x_forwarded = (!args.no_x_forwarded), request_id = (!args.no_request_id), trace_context = trace_context }
        [[balancer.route]]
        path_prefix = "/"
        split = [{ pool = "default", weight = 100 }]
        [[pool]]
        name = "default"
        balance = (args.balance.name())
        instance = instances
    };
    toml::Value::Table(doc).try_into().map_err(|e: toml::de::Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_spellings_map_to_ballast_algorithms() {
        assert_eq!(parse_algorithm("roundrobin"), Ok(Algorithm::RoundRobin));
        assert_eq!(parse_algorithm("leastconn"), Ok(Algorithm::LeastConnections));
        assert_eq!(parse_algorithm("peak-ewma"), Ok(Algorithm::PeakEwma));
        let err = parse_algorithm("fastest").expect_err("refused");
        assert!(err.contains("fastest") && err.contains("least-request"), "{err}");
    }

    #[test]
    fn flags_become_one_balancer_one_route_one_pool() {
        let args = ProxyArgs {
            listen: "127.0.0.1:0".into(),
            to: vec!["127.0.0.1:9001".into(), " 127.0.0.1:9002".into()],
            balance: Algorithm::PeakEwma,
            threads: None,
            access_log: AccessLogFormat::Json,
            no_x_forwarded: false,
            no_request_id: true,
            trace_context: TraceContext::Propagate,
        };
        let config = config_from_args(&args).expect("valid");
        let forwarding = config.balancers[0].forwarding;
        assert!(forwarding.x_forwarded && !forwarding.request_id);
        assert_eq!(forwarding.trace_context, TraceContext::Propagate);
        assert_eq!(config.balancers.len(), 1);
        assert_eq!(config.balancers[0].listen, "127.0.0.1:0");
        assert_eq!(config.balancers[0].access_log, AccessLogFormat::Json);
        assert_eq!(config.balancers[0].routes[0].split[0].pool, "default");
        let pool = &config.pools[0];
        assert_eq!(pool.balance, Algorithm::PeakEwma);
        let addrs: Vec<_> = pool.instances.iter().map(|i| i.address.as_str()).collect();
        assert_eq!(addrs, ["127.0.0.1:9001", "127.0.0.1:9002"]);
    }

    #[test]
    fn flag_values_are_the_config_words() {
        assert_eq!(config_name::<AccessLogFormat>("json"), Ok(AccessLogFormat::Json));
        assert_eq!(config_name::<TraceContext>("propagate"), Ok(TraceContext::Propagate));
        let err = config_name::<AccessLogFormat>("xml").expect_err("refused");
        assert!(err.contains("`xml`") && err.contains("`off`, `combined`, `json`"), "{err}");
        let err = config_name::<TraceContext>("Generate").expect_err("refused");
        assert!(err.contains("`Generate`") && err.contains("`generate`, `propagate`, `off`"), "{err}");
        for mode in [TraceContext::Generate, TraceContext::Propagate, TraceContext::Off] {
            let name = name_of(mode).expect("a unit variant is a TOML string");
            assert_eq!(name.as_str().map(config_name::<TraceContext>), Some(Ok(mode)), "round trip");
        }
    }
}
