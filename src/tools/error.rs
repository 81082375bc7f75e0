//! The one error type of the tools, and the one parser of PCI addresses on their command
//! lines: every message names the value at fault and what was expected.

use std::fmt;

use crate::framework::pci::PciAddress;

/// What the tools fail with.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The command line did not parse (clap's message, or help / version output).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// A value that parsed but is out of range for this device, namespace or machine.
    #[error("invalid argument {name} = {value}: expected {expected}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// A framework error: opening the device, DMA memory, affinity, the runtime.
    #[error(transparent)]
    Framework(#[from] crate::framework::Error),
    /// An NVMe driver error: bring-up, queue creation, a failed I/O.
    #[error(transparent)]
    Nvme(#[from] crate::nvme::Error),
    /// An 82599 bring-up or queue error.
    #[error(transparent)]
    Ixgbe(#[from] crate::ixgbe::Error),
    /// An 82576 bring-up or queue error.
    #[error(transparent)]
    Igb(#[from] crate::igb::Error),
    /// The simulated topology (model parameters) was refused.
    #[error("simulated device: {0}")]
    Model(String),
    /// A worker thread panicked (a bug; the message says where).
    #[error("core {core}: worker thread panicked: {message}")]
    WorkerPanicked { core: usize, message: String },
    /// `--device` names a function no NIC driver of userpci drives.
    #[error(
        "{address}: vendor {vendor:#06x} device {device:#06x} is not a NIC userpci drives \
         (expected an Intel 82599 for ixgbe or an Intel 82576 for igb)"
    )]
    UnsupportedNic {
        address: PciAddress,
        vendor: u16,
        device: u16,
    },
    /// `--devices` names ports of two different drivers.
    #[error(
        "{first} is driven by {first_driver} but {other} by {other_driver}: \
         the ports of one run must have the same driver"
    )]
    MixedDrivers {
        first: PciAddress,
        first_driver: &'static str,
        other: PciAddress,
        other_driver: &'static str,
    },
}

/// Shorthand for the tools' results.
pub type Result<T, E = ToolError> = std::result::Result<T, E>;

/// Builds a [`ToolError::InvalidArgument`].
pub fn invalid(
    name: &'static str,
    value: impl fmt::Display,
    expected: impl Into<String>,
) -> ToolError {
    ToolError::InvalidArgument {
        name,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Parses a PCI address for clap, naming the text on failure.
pub fn parse_bdf(text: &str) -> std::result::Result<PciAddress, String> {
    text.parse::<PciAddress>()
        // The parser's message already says what was expected: an example, not a repeat.
        .map_err(|err| format!("{err}; for example 0000:01:00.0"))
}
