//! ballast-control
