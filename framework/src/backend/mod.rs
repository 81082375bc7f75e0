//! Backends: how a PCI function is reached. `sim` emulates a PCI bus; the VFIO backends
//! (iommufd + cdev, legacy groups) come with the real-hardware support.
//!
//! Everything above this module is written against [`crate::device::PciFunction`] and does not
//! know which backend it runs on.

pub mod sim;
pub mod vfio;
