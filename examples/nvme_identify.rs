//! Identify an NVMe controller and its namespaces, as `nvme id-ctrl` / `nvme id-ns` do.
//!
//! ```text
//! cargo run --release --example nvme_identify                 # the simulated controller model
//! cargo run --release --example nvme_identify -- --json
//! cargo run --release --example nvme_identify -- --model-lba-size 4096 --model-namespaces 2
//! cargo run --release --example nvme_identify -- --device 0000:01:00.0   # bound to vfio-pci
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::identify::{self, IdentifyArgs};

fn main() -> ExitCode {
    common::init_logging();
    let args = IdentifyArgs::parse();
    match identify::run(&args) {
        Ok(report) => {
            let written = if args.json {
                userpci::outln!("{}", report.to_json())
            } else {
                userpci::out!("{}", report.to_text())
            };
            // A reader that closed the pipe (`| head`) has what it wanted.
            if let Some(err) = written.err().filter(|e| !e.is_closed()) {
                userpci::errln!("nvme_identify: {err}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            userpci::errln!("nvme_identify: {err}");
            ExitCode::FAILURE
        }
    }
}
