//! The admin listener of ballast: what an operator reads while the balancer runs.
//!
//! [`AdminServer`] serves, on its own listener (loopback by default, see DESIGN §5):
//! - `GET /metrics`: Prometheus metrics in the OpenMetrics text format, built at scrape
//!   time from the proxy's live atomics and the controller's pool views
//!   ([`collector`] lists the families);
//! - `GET /healthz`: `200 ok` while the listener serves;
//! - `GET /api/v1/pools`: every pool with its instances, health, replicas and held
//!   requests as JSON ([`pools`]).
//!
//! Any other path answers `404` and any other method `405`, both as
//! `application/problem+json` ([`problem`]). Query strings and request bodies are
//! ignored. The REST API that changes things, auth and the dashboard come later.
#![forbid(unsafe_code)]

pub mod collector;
pub mod error;
pub mod exposition;
pub mod pools;
pub mod problem;
pub mod routes;
pub mod server;
pub mod sources;

pub use error::AdminError;
pub use server::AdminServer;
pub use sources::{AdminSources, PoolSource};
