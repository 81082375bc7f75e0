//! userpci: user-space PCI drivers in Rust.
//!
//! This crate gathers the workspace: [`framework`] (PCI topology, device API, DMA memory,
//! backends, runtime), and the drivers [`nvme`], [`ixgbe`] and [`igb`]. The command-line tool, the
//! examples and the benches live here too; [`output`] is how they write to standard output.
//!
//! # Quick start
//! Write one block to an NVMe controller and read it back. [`sim::nvme_function`] gives the
//! controller model on a simulated PCI bus in one call; [`blocking`] does one I/O at a time.
//!
//! ```
//! use userpci::framework::device::PciFunction;
//! use userpci::framework::dma::{DmaBuffer, DmaDirection};
//! use userpci::nvme::{Controller, ControllerOptions, QpairOptions};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let function = userpci::sim::nvme_function()?;
//!     let ctrl = Controller::new(function, ControllerOptions::default())?;
//!     let ns = ctrl.namespace(1)?.clone();
//!     let mut qp = ctrl.create_io_qpair::<(), DmaBuffer>(QpairOptions::default())?;
//!
//!     let block = ns.block_size() as usize;
//!     let dma = ctrl.function().dma_space();
//!     let mut out = dma.allocate_buffer(block, DmaDirection::ToDevice)?;
//!     out.as_mut_slice()[..14].copy_from_slice(b"hello, block 7");
//!     userpci::blocking::write(&mut qp, &ns, 7, out)?;
//!
//!     let into = dma.allocate_buffer(block, DmaDirection::FromDevice)?;
//!     let back = userpci::blocking::read(&mut qp, &ns, 7, into)?;
//!     assert_eq!(&back.as_slice()[..14], b"hello, block 7");
//!     Ok(())
//! }
//! ```
//!
//! On a real controller bound to `vfio-pci` (`userpci bind 0000:01:00.0`), only the first
//! line changes:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use userpci::framework::backend::vfio::{VfioContext, VfioOptions};
//! let context = VfioContext::new(VfioOptions::new())?;
//! let function = context.open("0000:01:00.0".parse()?)?;
//! # let _ = function;
//! # Ok(())
//! # }
//! ```

pub mod blocking;
pub mod output;
pub mod sim;
pub mod soak;
pub mod tools;

pub use userpci_framework as framework;
pub use userpci_igb as igb;
pub use userpci_ixgbe as ixgbe;
pub use userpci_nvme as nvme;

#[cfg(test)]
mod readme {
    /// The Rust code of the first `//! ```` block of this file's docs.
    fn quick_start_of_rustdoc() -> String {
        let lib = include_str!("lib.rs");
        let body: Vec<&str> = lib
            .lines()
            .skip_while(|l| *l != "//! ```")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| l.strip_prefix("//! ").unwrap_or(""))
            .collect();
        body.join("\n")
    }

    #[test]
    fn the_readme_quick_start_is_the_doctest() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("## Using the library")
            .nth(1)
            .expect("README has a 'Using the library' section");
        let code: Vec<&str> = section
            .lines()
            .skip_while(|l| *l != "```rust")
            .skip(1)
            .take_while(|l| *l != "```")
            .collect();
        assert_eq!(code.join("\n"), quick_start_of_rustdoc());
    }
}
