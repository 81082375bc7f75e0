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

#[path = "common/net.rs"]
mod net;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = net::FwdArgs::parse();
    let quiet = args.json;
    match net::run_fwd(&args, &mut |line| {
        if !quiet {
            println!("{line}");
        }
    }) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fwd: {err}");
            ExitCode::FAILURE
        }
    }
}
