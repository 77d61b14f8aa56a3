//! The `neonhub` command line.
fn main() {}
