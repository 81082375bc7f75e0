//! userpci Intel 82599 (ixgbe) driver (in progress: it arrives with the ixgbe issue). Written
//! against `userpci_framework::device::PciFunction`, so the same code drives the 82599 model
//! and a real NIC.

#![forbid(unsafe_code)]
