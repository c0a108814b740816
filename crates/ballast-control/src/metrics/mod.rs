//! Metric collection for the controller: bounded windows ([`windows`]) and the
//! collectors that fill them: the proxy's live backend stats ([`proxy`]), the /proc and
//! cgroup v2 figures of a process tree ([`procfs`]), and Prometheus instant queries
//! ([`prometheus`]), and an inbox for samples produced elsewhere (Prometheus pollers,
//! pushed metrics) ([`inbox`]).

pub mod inbox;
pub mod procfs;
pub mod prometheus;
pub mod proxy;
pub mod resources;
pub mod windows;

pub use windows::{PoolWindows, WindowConfig};
