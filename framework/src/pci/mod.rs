//! PCI addresses and the sysfs view of the PCI topology.

mod address;
pub mod sysfs;

pub use address::PciAddress;
pub use sysfs::{PciFunctionInfo, SysfsPci};
