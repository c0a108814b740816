//! ballast-proxy
pub mod health;
