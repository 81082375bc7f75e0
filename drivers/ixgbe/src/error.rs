//! The crate's one error type.
//!
//! Every variant names the device and, where there is one, the datasheet step or the value
//! that was wrong, so a log line is enough to act on. The data path (`rx_batch`, `tx_batch`)
//! returns no errors: what it cannot use it counts and drops (see the queue statistics).

use userpci_framework::pci::PciAddress;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `userpci-ixgbe`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the framework (config space, BAR mapping, DMA memory, MSI-X).
    #[error(transparent)]
    Framework(#[from] userpci_framework::Error),

    /// Setting a descriptor ring up failed (its memory, or a parameter the ring engine
    /// refuses).
    #[error(transparent)]
    Ring(#[from] userpci_intel_ring::Error),

    /// A step of the initialisation (datasheet 4.6) failed, typically a register poll that
    /// missed its deadline; `step` names the section and the condition.
    #[error("{device}: initialisation step \"{step}\" failed: {source}")]
    Init {
        device: PciAddress,
        step: &'static str,
        #[source]
        source: userpci_framework::Error,
    },

    /// The function is not an Intel 82599.
    #[error(
        "{device}: not an Intel 82599: vendor {vendor:#06x} device {device_id:#06x} \
         (expected vendor 0x8086 and an 82599 device ID)"
    )]
    NotIxgbe {
        device: PciAddress,
        vendor: u16,
        device_id: u16,
    },

    /// An option outside what the driver or the device accepts.
    #[error("{device}: invalid {what} {value}, expected {expected}")]
    InvalidOption {
        device: PciAddress,
        what: &'static str,
        value: u64,
        expected: &'static str,
    },

    /// The device does not answer: a register read all ones (surprise removal, link down).
    #[error("{device}: device is gone: {register} reads all ones (surprise removal or link down)")]
    DeviceGone {
        device: PciAddress,
        register: &'static str,
    },

    /// The link did not come up before the deadline (only with `require_link`).
    #[error("{device}: link still down after {waited_ms} ms (LINKS {links:#010x})")]
    LinkDown {
        device: PciAddress,
        waited_ms: u64,
        links: u32,
    },

    /// The buffer pool ran dry while filling a receive ring.
    #[error(
        "{device}: RX queue {queue}: buffer pool {pool:?} has no free buffer to fill the ring \
         ({filled} of {needed} descriptors filled); make the pool larger"
    )]
    PoolExhausted {
        device: PciAddress,
        queue: u16,
        pool: String,
        filled: usize,
        needed: usize,
    },

    /// A queue index the device was not configured with, or a queue taken already.
    #[error("{device}: {direction} queue {queue} {reason}")]
    Queue {
        device: PciAddress,
        direction: &'static str,
        queue: u16,
        reason: &'static str,
    },
}
