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
    let args = net::PktgenArgs::parse();
    let quiet = args.json;
    match net::run_pktgen(&args, &mut |line| {
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
            eprintln!("pktgen: {err}");
            ExitCode::FAILURE
        }
    }
}
