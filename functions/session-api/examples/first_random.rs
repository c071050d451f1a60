//! How long a process's first random number from aws-lc takes: what the first TLS handshake
//! of a cold start pays before it sends a byte (rustls on aws-lc draws the client random and
//! the key share from it). Built with the workspace's `.cargo/config.toml`, which turns off
//! aws-lc's CPU jitter entropy source; `AWS_LC_SYS_NO_JITTER_ENTROPY=0` in the environment of
//! the build brings it back, to compare:
//!
//! ```text
//! cargo run --release --example first_random -p session-api
//! ```
//!
//! A benchmark, not a test: it prints the times and asserts nothing.

use std::time::Instant;

fn main() {
    let mut bytes = [0u8; 32];
    let started = Instant::now();
    aws_lc_rs::rand::fill(&mut bytes).expect("aws-lc's generator");
    let first = started.elapsed();
    let started = Instant::now();
    aws_lc_rs::rand::fill(&mut bytes).expect("aws-lc's generator");
    let second = started.elapsed();
    println!("first random draw {first:?}, the next {second:?}");
}
