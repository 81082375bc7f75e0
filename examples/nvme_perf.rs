//! An NVMe load generator in the manner of SPDK's `perf`: one pinned worker and one queue pair
//! per core, QD I/Os in flight, IOPS, MB/s and latency percentiles.
//!
//! ```text
//! cargo run --release --example nvme_perf -- --rw randread --bs 4096 --qd 32 --seconds 5
//! cargo run --release --example nvme_perf -- --rw verify --cores 2 --async --json
//! cargo run --release --example nvme_perf -- --model-latency-ns 10000 --qd 8
//! cargo run --release --example nvme_perf -- --device 0000:01:00.0 --rw randread
//! ```
//!
//! See `src/tools/nvme/perf.rs` for what is measured and how. Ctrl-C ends the run with the
//! partial report.
//!
//! A thin wrapper over `userpci nvme perf`.

use std::process::ExitCode;

use userpci::tools::nvme::perf::{self, PerfArgs};

fn main() -> ExitCode {
    userpci::tools::init_logging();
    perf::main(&userpci::tools::cli::parse_args::<PerfArgs>())
}
