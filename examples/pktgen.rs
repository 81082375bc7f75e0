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
//! See `src/tools/net/mod.rs` for what is measured and how.
//!
//! A thin wrapper over `userpci net pktgen`.

use std::process::ExitCode;

use userpci::tools::net::{self, PktgenArgs};

fn main() -> ExitCode {
    userpci::tools::init_logging();
    net::pktgen_main(&userpci::tools::cli::parse_args::<PktgenArgs>())
}
