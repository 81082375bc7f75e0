//! A packet generator in the manner of ixy-pktgen: one TX queue sending `--size`-byte UDP
//! frames as fast as it can (or at `--rate` Mpps), Mpps and Gbit/s per port every second.
//!
//! ```text
//! cargo run --release --example pktgen -- --seconds 5 --batch 32
//! cargo run --release --example pktgen -- --rate 2 --size 1514 --json
//! cargo run --release --example pktgen -- --sink          # one model port into its sink
//! cargo run --release --example pktgen -- --device 0000:03:00.0
//! ```
//!
//! By default two 82599 model ports linked by a wire: A transmits, B receives and frees.
//! See `examples/common/net.rs` for what is measured and how.

#![deny(clippy::print_stdout, clippy::print_stderr)]

#[path = "common/net.rs"]
mod net;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = net::PktgenArgs::parse();
    net::example_main("pktgen", args.json, |progress| {
        net::run_pktgen(&args, progress)
    })
}
