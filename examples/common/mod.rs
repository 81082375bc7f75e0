//! What `nvme_identify` and `nvme_perf` share, kept out of their `main`s so that
//! `tests/nvme_examples.rs` can run the same code (it includes this module by path).
//!
//! - [`device`]: where the controller comes from, the NVMe controller model on a simulated bus
//!   (the default) or a real controller bound to vfio-pci (`--device BDF`), and the error type;
//! - [`identify`]: the `nvme id-ctrl` / `id-ns` style report;
//! - [`perf`]: the SPDK-`perf`-like load generator.

// Each example uses part of the module (identify does not run perf).
#![allow(dead_code)]

pub mod device;
pub mod identify;
pub mod perf;

/// Sets up logging to stderr (`RUST_LOG`, default `warn`), as the CLI does.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
