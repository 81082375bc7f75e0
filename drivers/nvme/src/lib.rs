//! userpci NVMe driver. Written against `userpci_framework::device::PciFunction`, so the same
//! code drives a simulated controller and a real one.

#![forbid(unsafe_code)]

pub mod spec;

#[cfg(feature = "model")]
pub mod model;
