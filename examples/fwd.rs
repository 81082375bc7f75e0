//! A forwarder in the manner of ixy-fwd: two ports, what arrives on one is sent out of the
//! other, both ways, zero copy (`rx_batch` then `tx_batch` of the same buffers); Mpps and
//! Gbit/s per port every second.
//!
//! ```text
//! cargo run --release --example fwd -- --seconds 5 --batch 32
//! cargo run --release --example fwd -- --batch 64 --size 128 --json
//! cargo run --release --example fwd -- --devices 0000:03:00.0 0000:03:00.1
//! ```
//!
//! By default two 82599 model ports fed by the model's traffic generators. See
//! `examples/common/net.rs` for what is measured and how.

#![deny(clippy::print_stdout, clippy::print_stderr)]

#[path = "common/net.rs"]
mod net;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = net::FwdArgs::parse();
    net::example_main("fwd", args.json, |progress| net::run_fwd(&args, progress))
}
