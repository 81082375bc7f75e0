//! userpci framework: PCI topology, the device API drivers are written against, DMA memory,
//! the backends (VFIO and a simulated bus) and the per-core runtime.
//!
//! See the workspace README for the layer picture.

pub mod alloc_count;
pub mod backend;
pub mod broker;
pub mod device;
pub mod dma;
pub mod error;
pub mod net;
pub mod pci;
pub mod reset;
pub mod runtime;
pub mod testdev;
pub mod time;

pub use error::{Error, Result};
