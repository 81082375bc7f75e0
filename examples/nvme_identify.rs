//! Identify an NVMe controller and its namespaces, as `nvme id-ctrl` / `nvme id-ns` do.
//!
//! ```text
//! cargo run --release --example nvme_identify                 # the simulated controller model
//! cargo run --release --example nvme_identify -- --json
//! cargo run --release --example nvme_identify -- --model-lba-size 4096 --model-namespaces 2
//! cargo run --release --example nvme_identify -- --device 0000:01:00.0   # bound to vfio-pci
//! ```
//!
//! A thin wrapper over `userpci nvme identify` (`src/tools/nvme/identify.rs`).

use std::process::ExitCode;

use userpci::tools::nvme::identify::{self, IdentifyArgs};

fn main() -> ExitCode {
    userpci::tools::init_logging();
    identify::main(&userpci::tools::cli::parse_args::<IdentifyArgs>())
}
