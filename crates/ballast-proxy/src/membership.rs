//! Who owns a pool's instance list, the config or the controller, and the checks on a
//! list the controller sets ([`crate::ProxyServer::set_pool_instances`]).
//!
//! Two writers set a pool's instances: the config ([`ProxyServer::reload`]) and the
//! controller ([`ProxyServer::set_pool_instances`]). The server keeps the config it runs
//! (the last one loaded, with the controller's lists applied) and, per pool, the list the
//! controller set last. The rule:
//!
//! - A pool whose provider is `process` or `exec` belongs to the controller: a reload
//!   changes its settings (balancing, health, limits, scaling...) but keeps the
//!   instances the controller set (the config lists none for such pools). Until the
//!   controller sets some, it has none (and holds requests when it may run at zero).
//! - A `static` pool belongs to the config: `set_pool_instances` may change it, but the
//!   next reload puts the config's `[[pool.instance]]` list back and forgets the
//!   controller's.
//! - A pool that a reload removes, or turns from process/exec into static, forgets the
//!   controller's list.
//!
//! Either way, an address that leaves a pool loses its stats, breaker, outlier state
//! and idle connections at once, so one that comes back (say a new process on a reused
//! port) starts fresh; an address that stays keeps all of it, drain mark included.
//!
//! [`ProxyServer::reload`]: crate::ProxyServer::reload
//! [`ProxyServer::set_pool_instances`]: crate::ProxyServer::set_pool_instances

use ballast_core::config::{Config, InstanceConfig, ProviderConfig};
use std::collections::HashMap;

/// What the server runs: the config in force and the controller's lists.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The last config loaded, with `managed` applied to its process/exec pools.
    pub(crate) config: Config,
    /// The instance lists set by `set_pool_instances`, by pool name.
    pub(crate) managed: HashMap<String, Vec<InstanceConfig>>,
}

impl Applied {
    /// `config` with the controller's lists applied, and the lists that survive it.
    pub(crate) fn merge(&self, config: &Config) -> (Config, HashMap<String, Vec<InstanceConfig>>) {
        let mut merged = config.clone();
        let mut managed = HashMap::new();
        for p in &mut merged.pools {
            if p.provider == ProviderConfig::Static {
                continue;
            }
            if let Some(list) = self.managed.get(&p.name) {
                p.instances = list.clone();
                managed.insert(p.name.clone(), list.clone());
            }
        }
        (merged, managed)
    }
}

/// The checks `ballast_core::config::validate` makes on a config's instance list, for a
/// list that comes from the controller: `(field, reason)` of the first problem.
pub(crate) fn check_instances(instances: &[InstanceConfig]) -> Result<(), (String, String)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, inst) in instances.iter().enumerate() {
        if let Some(j) = seen.insert(inst.address.as_str(), i) {
            return Err((format!("instance[{i}].address"), format!("{:?} is already instance[{j}]", inst.address)));
        }
        if !(1..=10_000).contains(&inst.weight) {
            return Err((format!("instance[{i}].weight"), format!("{} is not allowed; use 1 to 10000", inst.weight)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(address: &str, weight: u32) -> InstanceConfig {
        InstanceConfig { address: address.into(), weight, zone: None }
    }

    #[test]
    fn merge_keeps_controller_lists_of_process_pools_only() {
        let cfg: Config = toml::from_str(
            "[[pool]]\nname = \"proc\"\n[pool.provider]\nkind = \"process\"\ncommand = \"x\"\n\
             [[pool]]\nname = \"stat\"\n[[pool.instance]]\naddress = \"10.0.0.1:80\"\n\
             [[pool]]\nname = \"fresh\"\n[pool.provider]\nkind = \"exec\"\ncreate = \"c\"\ndestroy = \"d\"\n",
        )
        .expect("parses");
        let mut applied = Applied::default();
        for pool in ["proc", "stat", "gone"] {
            applied.managed.insert(pool.into(), vec![inst("10.0.0.9:80", 2)]);
        }
        let (merged, managed) = applied.merge(&cfg);
        assert_eq!(merged.pools[0].instances, vec![inst("10.0.0.9:80", 2)], "process: the controller's");
        assert_eq!(merged.pools[1].instances, vec![inst("10.0.0.1:80", 1)], "static: the config's");
        assert!(merged.pools[2].instances.is_empty(), "exec pool never set: none");
        let mut kept: Vec<&String> = managed.keys().collect();
        kept.sort();
        assert_eq!(kept, vec!["proc"], "static and removed pools forget the controller's list");
    }

    #[test]
    fn instance_lists_are_checked_field_by_field() {
        assert_eq!(check_instances(&[]), Ok(()), "an empty list is a pool at zero");
        assert_eq!(check_instances(&[inst("a:1", 1), inst("b:2", 10_000)]), Ok(()));
        let cases: &[(&[InstanceConfig], &str, &str)] = &[
            (&[inst("a:1", 1), inst("a:1", 1)], "instance[1].address", "\"a:1\" is already instance[0]"),
            (&[inst("a:1", 0)], "instance[0].weight", "0 is not allowed; use 1 to 10000"),
            (&[inst("a:1", 1), inst("b:1", 10_001)], "instance[1].weight", "10001 is not allowed"),
            (&[inst("a:1", 1), inst("b:1", u32::MAX)], "instance[1].weight", "4294967295 is not allowed"),
        ];
        for (list, field, message) in cases {
            let (f, m) = check_instances(list).expect_err(field);
            assert_eq!(&f, field);
            assert!(m.contains(message), "{m} lacks {message}");
        }
    }
}
