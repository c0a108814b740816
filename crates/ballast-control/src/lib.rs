//! ballast-control: the control plane's edges.
//!
//! Today this is local process supervision ([`process`]): the `process` provider's way to
//! start a replica, learn its address, and stop it (SIGTERM, grace, SIGKILL) without ever
//! leaving an orphan behind. The controller loop and metric sources build on it.

pub mod process;
