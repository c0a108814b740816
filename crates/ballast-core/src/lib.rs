//! ballast-core: the pure heart of ballast.
//!
//! Everything here is plain computation with no async runtime, no sockets and no wall
//! clock: callers pass `now` in. The proxy, the controller and the simulator all build on
//! these modules, so the same code balances live traffic and replays traces.

pub mod autoscale;
pub mod balance;
pub mod config;
pub mod resilience;
pub mod sim;
