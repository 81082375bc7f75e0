//! The crate's one error type. Only setting a ring up can fail; the data path returns no
//! errors (what it cannot use it counts in [`crate::RxRingStats`] / [`crate::TxRingStats`]).

use userpci_framework::pci::PciAddress;

use crate::desc::RING_ALIGN_DESCS;

/// Smallest ring the engine accepts (a power of two; the chips want multiples of 8).
pub const MIN_RING_SIZE: usize = RING_ALIGN_DESCS;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `userpci-intel-ring`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Allocating the descriptor ring's DMA memory failed.
    #[error(transparent)]
    Framework(#[from] userpci_framework::Error),

    /// A ring parameter the engine cannot work with.
    #[error("{device}: {direction} queue {queue}: invalid {what} {value}, expected {expected}")]
    InvalidRing {
        device: PciAddress,
        direction: &'static str,
        queue: u16,
        what: &'static str,
        value: u64,
        expected: &'static str,
    },
}

/// A ring size the engine can index with a mask.
pub(crate) fn check_ring_size(
    device: PciAddress,
    direction: &'static str,
    queue: u16,
    size: usize,
) -> Result<()> {
    if size.is_power_of_two() && size >= MIN_RING_SIZE {
        return Ok(());
    }
    Err(Error::InvalidRing {
        device,
        direction,
        queue,
        what: "ring size",
        value: size as u64,
        expected: "a power of two of at least 8 descriptors",
    })
}
