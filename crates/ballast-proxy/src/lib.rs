//! ballast-proxy

pub mod probe;
