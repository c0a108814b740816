//! `[admin]`: where the admin listener (metrics, health, read-only API) listens.

use serde::{Deserialize, Serialize};

/// The admin listener (`[admin]`). Without this section none is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on, an IP and a port, e.g. `127.0.0.1:9900` (the conventional
    /// choice: loopback only, since the listener has no auth yet); port 0 lets the OS
    /// choose. It must not clash with a balancer's listen address.
    pub listen: String,
}
