//! userpci NVMe driver (in progress: the controller bring-up, queue pairs and the controller
//! model arrive with the NVMe issue). Written against `userpci_framework::device::PciFunction`,
//! so the same code drives a simulated controller and a real one.

#![forbid(unsafe_code)]

pub mod spec;
