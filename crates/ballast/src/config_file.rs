//! Reading a config file from disk: the one place the binary turns a path into a
//! validated [`Config`] or a list of precise, printable errors.

use ballast_core::config::{parse_and_validate, Config, HealthCheckKind, MAX_CONFIG_BYTES};
use std::io::Read as _;
use std::path::Path;

/// Reads and validates `path`. Errors are complete lines ready to print, each naming the
/// file and the field at fault.
pub fn load(path: &Path) -> Result<Config, Vec<String>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let mut text = String::new();
    // Read one byte past the limit so an oversized file is reported, not truncated.
    let limit = u64::try_from(MAX_CONFIG_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_string(&mut text)
        .map_err(|e| vec![format!("{shown}: cannot read as UTF-8 text: {e}")])?;
    parse_and_validate(&text).map_err(|errors| errors.iter().map(|e| format!("{shown}: {e}")).collect())
}

/// One plain line per pool whose health checks use ICMP when this process cannot open
/// the raw socket they need (`available` is `icmp_available`, asked only when a pool
/// uses ICMP): those checks would fail at every probe.
pub fn icmp_warnings(config: &Config, available: impl FnOnce() -> Result<(), String>) -> Vec<String> {
    let icmp: Vec<&str> = config
        .pools
        .iter()
        .filter(|p| p.health.as_ref().is_some_and(|h| h.kind == HealthCheckKind::Icmp))
        .map(|p| p.name.as_str())
        .collect();
    if icmp.is_empty() {
        return Vec::new();
    }
    match available() {
        Ok(()) => Vec::new(),
        Err(why) => icmp
            .iter()
            .map(|p| format!("warning: pool {p:?}.health.kind: icmp health checks cannot run here: {why}"))
            .collect(),
    }
}

/// `ballast check CONFIG`: prints every error, or a one-line summary when the file is
/// valid. Returns whether it is.
pub fn check(path: &Path) -> bool {
    match load(path) {
        Ok(config) => {
            for line in icmp_warnings(&config, ballast_proxy::health::icmp_available) {
                eprintln!("{}: {line}", path.display());
            }
            println!(
                "{}: ok ({} balancer(s), {} pool(s))",
                path.display(),
                config.balancers.len(),
                config.pools.len()
            );
            true
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[[balancer]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n[[balancer.route]]\n\
        split = [{ pool = \"app\" }]\n[[pool]]\nname = \"app\"\n[pool.health]\nkind = \"icmp\"\n\
        [[pool.instance]]\naddress = \"127.0.0.1:9\"\n";

    #[test]
    fn icmp_pools_are_named_when_raw_sockets_are_refused() {
        let config = parse_and_validate(CONFIG).expect("valid");
        let refused = icmp_warnings(&config, || Err("permission denied (needs CAP_NET_RAW)".into()));
        assert_eq!(
            refused,
            ["warning: pool \"app\".health.kind: icmp health checks cannot run here: permission denied (needs CAP_NET_RAW)"]
        );
        assert!(icmp_warnings(&config, || Ok(())).is_empty());
        let tcp = parse_and_validate(&CONFIG.replace("icmp", "tcp")).expect("valid");
        assert!(icmp_warnings(&tcp, || panic!("not asked without icmp pools")).is_empty());
    }
}
