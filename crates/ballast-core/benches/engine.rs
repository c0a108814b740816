//! Benchmarks of the scaling engine.
fn main() {}
