//! ballast-control: the control plane.
//!
//! - [`process`]: local process supervision (spawn in a process group, learn the address,
//!   stop with SIGTERM → grace → SIGKILL, never leave an orphan).
//! - [`metrics`]: bounded metric windows and the collectors that fill them.
//! - [`provider`]: the `Provider` trait: static, process, exec and a test double.

pub mod controller;
pub mod lifecycle;
pub mod metrics;
pub mod process;
pub mod provider;
