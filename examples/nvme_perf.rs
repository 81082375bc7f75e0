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
//! See `examples/common/perf.rs` for what is measured and how. Ctrl-C ends the run with the
//! partial report.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::perf::{self, PerfArgs};

fn main() -> ExitCode {
    common::init_logging();
    let args = PerfArgs::parse();
    // Ctrl-C: stop submitting, drain, print the partial report; a second one exits at once.
    if let Err(err) = ctrlc::set_handler(|| {
        if perf::stop_requested() {
            std::process::exit(130);
        }
        perf::request_stop();
    }) {
        tracing::warn!("nvme_perf: Ctrl-C will not end the run with a summary: {err}");
    }
    match perf::run(&args) {
        Ok(report) => {
            let written = if args.json {
                userpci::outln!("{}", report.to_json())
            } else {
                userpci::out!("{}", report.to_text())
            };
            // A reader that closed the pipe (`| head`) has what it wanted.
            if let Some(err) = written.err().filter(|e| !e.is_closed()) {
                userpci::errln!("nvme_perf: {err}");
                return ExitCode::FAILURE;
            }
            if report.errors > 0 {
                userpci::errln!("nvme_perf: {} I/O error(s)", report.errors);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            userpci::errln!("nvme_perf: {err}");
            ExitCode::FAILURE
        }
    }
}
