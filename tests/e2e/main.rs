//! End-to-end tests: the real `ballast` binary with real backends on loopback.

mod demo_backend;
mod autoscale;
mod bench_scripts;
mod bench_watch;
mod cli;
mod proxy;
mod reap;
mod resilience;
mod serve;
mod sim;
