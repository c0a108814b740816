//! Benchmarks of one pick per algorithm (filled in with the algorithms).
fn main() {}
