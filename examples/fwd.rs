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
//! `src/tools/net/mod.rs` for what is measured and how.
//!
//! A thin wrapper over `userpci net fwd`.

use std::process::ExitCode;

use userpci::tools::net::{self, FwdArgs};

fn main() -> ExitCode {
    userpci::tools::init_logging();
    net::fwd_main(&userpci::tools::cli::parse_args::<FwdArgs>())
}
