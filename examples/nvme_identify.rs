//! Identify an NVMe controller and its namespaces, as `nvme id-ctrl` / `nvme id-ns` do.
//!
//! ```text
//! cargo run --release --example nvme_identify                 # the simulated controller model
//! cargo run --release --example nvme_identify -- --json
//! cargo run --release --example nvme_identify -- --model-lba-size 4096 --model-namespaces 2
//! cargo run --release --example nvme_identify -- --device 0000:01:00.0   # bound to vfio-pci
//! ```

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::identify::{self, IdentifyArgs};

fn main() -> ExitCode {
    common::init_logging();
    let args = IdentifyArgs::parse();
    match identify::run(&args) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("nvme_identify: {err}");
            ExitCode::FAILURE
        }
    }
}
