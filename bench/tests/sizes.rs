//! The pure parts of `bench sizes` (`src/cost.rs`): the CPU share of a memory size, the billed
//! duration, GB-s and dollars, and the table. Its own target, so that a plain `cargo test` runs
//! them (the bench's binary has no test harness); the measurement itself runs in `quick.rs`.

#[allow(dead_code)]
#[path = "../src/cost.rs"]
mod cost;
