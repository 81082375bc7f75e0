//! PCI addresses and the sysfs view of the PCI topology.

mod address;
pub mod devset;
mod parse;
pub mod status;
pub mod sysfs;

pub use address::PciAddress;
pub use sysfs::{PciFunctionInfo, SysfsPci};
