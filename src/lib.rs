//! userpci: user-space PCI drivers in Rust.
//!
//! This crate gathers the workspace: [`framework`] (PCI topology, device API, DMA memory,
//! backends, runtime), and the drivers [`nvme`] and [`ixgbe`]. The command-line tool, the
//! examples and the benches live here too; [`output`] is how they write to standard output.

pub mod output;

pub use userpci_framework as framework;
pub use userpci_ixgbe as ixgbe;
pub use userpci_nvme as nvme;
