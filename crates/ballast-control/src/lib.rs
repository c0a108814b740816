//! ballast-control: the control plane.
//!
//! Data flows one way: providers and the proxy produce observations → metric windows →
//! the decision engine (ballast-core) → provider actions and proxy membership updates.
//!
//! - [`metrics`]: bounded metric windows (1 h raw, 24 h of 1-minute rollups) read by the
//!   engine through `MetricSource`, and the collectors that fill them: the proxy's
//!   backend stats, /proc and cgroup v2, Prometheus instant queries.
//! - [`provider`]: the `Provider` trait with `static`, `process` and `exec`
//!   implementations and a test double.
//! - [`lifecycle`]: an instance's life as a pure state machine, and start-up times.
//! - [`controller`]: one task per pool: decide, converge through the provider with
//!   backoff, drain, heal, and keep the proxy's membership current.
//! - [`rollout`]: the rolling-update planner (pure), applied by the controller.
//! - [`process`]: local process supervision (process groups, SIGTERM → grace → SIGKILL,
//!   no orphans).

pub mod controller;
pub mod lifecycle;
pub mod metrics;
pub mod process;
pub mod provider;
pub mod rollout;
