//! ballast-proxy
