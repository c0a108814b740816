//! Errors of starting the admin listener.

use std::net::SocketAddr;

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `[admin] listen` is not an `IP:port` (a config that skipped validation).
    #[error("admin.listen: {listen:?} is not an IP:port listen address")]
    Address {
        /// The configured text.
        listen: String,
    },
    /// The address could not be bound (in use, not local, no permission).
    #[error("admin listener: cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bound socket could not be handed to the runtime.
    #[error("admin listener on {addr}: {source}")]
    Socket {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}
