//! `userpci nvme identify` and `userpci nvme perf` (and the examples `nvme_identify`,
//! `nvme_perf`, and `tests/nvme_examples.rs`, which run the same code).
//!
//! - [`device`]: where the controller comes from, the NVMe controller model on a simulated bus
//!   (the default) or a real controller bound to vfio-pci (`--device BDF`), and the error type;
//! - [`identify`]: the `nvme id-ctrl` / `id-ns` style report;
//! - [`perf`]: the SPDK-`perf`-like load generator.

pub mod device;
pub mod identify;
pub mod perf;
