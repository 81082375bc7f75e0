//! The soak's errors: what stops a run before it can report (a run that loses writes still
//! reports; the figures say so).

use userpci_framework::pci::PciAddress;

/// Why a soak could not run to its report.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The configuration is out of range.
    #[error("soak configuration: {0}")]
    InvalidConfig(String),
    /// Building the bus, opening a function, a DMA pool.
    #[error(transparent)]
    Framework(#[from] userpci_framework::Error),
    /// Bringing up an NVMe controller or a queue pair.
    #[error(transparent)]
    Nvme(#[from] userpci_nvme::Error),
    /// Bringing up the 82599 port.
    #[error("ixgbe {device}: {source}")]
    Ixgbe {
        device: PciAddress,
        source: userpci_ixgbe::Error,
    },
    /// Reading a block back for verification failed or never completed.
    #[error("{device}: reading back slot {slot} for verification: {reason}")]
    Verify {
        device: PciAddress,
        slot: u64,
        reason: String,
    },
    /// A controller could not be brought back after its fault (re-attaching failed).
    #[error("{device}: not re-attached after fault {fault} ({class}): {reason}")]
    Reattach {
        device: PciAddress,
        fault: u32,
        class: &'static str,
        reason: String,
    },
}

/// The soak's result type.
pub type Result<T, E = SoakError> = std::result::Result<T, E>;
