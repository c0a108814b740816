//! Where a pool's instances come from: the [`Provider`] trait and its implementations.
//!
//! - [`StaticProvider`]: the fixed `[[pool.instance]]` list; balancing only, it cannot
//!   create or destroy.
//! - [`ProcessProvider`]: local child processes from a command template, logs captured
//!   to rotating files, SIGTERM → grace → SIGKILL, exits reported for auto-healing;
//!   [`records`] and [`reap`] let a restarted ballast stop the replicas a crashed one left.
//! - [`ExecProvider`]: the operator's create / destroy / list scripts exchanging JSON
//!   (the contract is documented in [`exec`]); covers any cloud CLI.
//! - [`FakeProvider`]: the test double, with scripted failures.
//!
//! The trait returns boxed futures so pools with different kinds of provider can share
//! one controller through `Arc<dyn Provider>`; a provider action is rare next to a
//! request, so the allocation does not matter.

pub mod exec;
pub mod fake;
pub mod logs;
pub mod process;
pub mod reap;
pub mod records;
pub mod static_list;


pub use exec::ExecProvider;
pub use fake::FakeProvider;
pub use process::ProcessProvider;
pub use static_list::StaticProvider;

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what [`Provider`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One instance as a provider knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// Provider-unique id (`web-3`, a cloud instance id).
    pub id: String,
    /// `host:port` the proxy sends requests to.
    pub address: String,
}

/// An instance that exited on its own (crash detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The instance's id.
    pub id: String,
    /// How it ended, e.g. `exit status: 1` or `signal: 9 (SIGKILL)`.
    pub status: String,
}

/// What a provider action can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider cannot do this at all (a static pool cannot create instances).
    #[error("the {kind} provider cannot {action}")]
    Unsupported {
        /// Provider kind.
        kind: &'static str,
        /// The action.
        action: &'static str,
    },
    /// Starting the instance or the script failed.
    #[error("{action} failed: {reason}")]
    Failed {
        /// `create`, `destroy` or `list`.
        action: &'static str,
        /// Why, e.g. the script's exit status and the end of its stderr.
        reason: String,
    },
    /// A script's output did not follow the contract.
    #[error("{action} printed bad output: {reason}")]
    BadOutput {
        /// `create` or `list`.
        action: &'static str,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The action took longer than allowed.
    #[error("{action} timed out after {after:?}")]
    Timeout {
        /// The action.
        action: &'static str,
        /// The limit.
        after: std::time::Duration,
    },
    /// No such instance.
    #[error("no instance {0:?}")]
    UnknownInstance(String),
    /// No free port in the pool's range.
    #[error("no free port in {start}-{end}")]
    NoFreePort {
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
}

/// Creates, destroys and lists a pool's instances.
pub trait Provider: Send + Sync {
    /// The kind, for messages: `static`, `process`, `exec`, `fake`.
    fn kind(&self) -> &'static str;
    /// Starts one instance and returns it (it may not be ready yet: health checks say when).
    fn create(&self) -> BoxFuture<'_, Result<Instance, ProviderError>>;
    /// Stops instance `id` for good (the caller drained it first).
    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;
    /// The instances that exist now.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, ProviderError>>;
    /// Instances that exited on their own since the last call (crash detection); default
    /// none: providers that cannot watch exits rely on health checks.
    fn take_exits(&self) -> Vec<Exit> {
        Vec::new()
    }
    /// The process group of instance `id` when it is a local process tree (for CPU and
    /// memory figures); default None.
    fn process_group(&self, _id: &str) -> Option<u32> {
        None
    }
    /// Makes new instances use template `version` (rolling updates); default: the
    /// provider has no templates.
    fn use_template(&self, _version: u64) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported { kind: self.kind(), action: "switch templates" })
    }
}

/// Checks an instance reported by a provider: a non-empty printable id of at most 256
/// characters and a `host:port` address with a valid port.
pub fn check_instance(action: &'static str, i: &Instance) -> Result<(), ProviderError> {
    let bad = |reason: String| ProviderError::BadOutput { action, reason };
    if i.id.is_empty() || i.id.len() > 256 || i.id.chars().any(char::is_control) {
        return Err(bad(format!("`id` {:?} must be 1-256 printable characters", i.id)));
    }
    let port = i.address.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(p))) if !host.is_empty() && p != 0 && !host.chars().any(|c| c.is_whitespace() || c == '/') => Ok(()),
        _ => Err(bad(format!("`address` {:?} must be host:port with a port 1-65535", i.address))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_from_outside_are_checked() {
        let ok = Instance { id: "i-0abc".into(), address: "10.0.0.1:8080".into() };
        check_instance("create", &ok).expect("valid");
        check_instance("create", &Instance { address: "[::1]:80".into(), ..ok.clone() }).expect("ipv6");
        for (id, address, field) in [
            ("", "h:1", "`id`"),
            ("a\nb", "h:1", "`id`"),
            (&"x".repeat(300) as &str, "h:1", "`id`"),
            ("i", "h", "`address`"),
            ("i", "h:0", "`address`"),
            ("i", "h:70000", "`address`"),
            ("i", ":80", "`address`"),
            ("i", "http://h:80", "`address`"),
        ] {
            let err = check_instance("list", &Instance { id: id.into(), address: address.into() }).expect_err(address);
            assert!(err.to_string().contains(field), "{id:?} {address:?}: {err}");
            assert!(err.to_string().starts_with("list printed bad output"), "{err}");
        }
    }
}
