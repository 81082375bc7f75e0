//! The one error type of the tools, and the one parser of PCI addresses on their command
//! lines: every message names the value at fault and what was expected.

use std::fmt;
use std::io;
use std::path::PathBuf;

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
    /// A file of the system (sysfs, procfs, /dev, /etc, the setup state) could not be read or
    /// changed; `path` is the system's path (under `userpci setup --root`, inside that tree).
    #[error("cannot {action} {path}: {source}")]
    System {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An action that changes the system, asked of a user who is not root.
    #[error("{action} changes the system: run it as root (sudo){hint}")]
    NotRoot {
        action: &'static str,
        hint: &'static str,
    },
    /// A command that setup runs (`modprobe`, `mount`, `umount`) failed.
    #[error("`{command}` failed: {message}")]
    CommandFailed { command: String, message: String },
    /// A file of the system does not read as the kernel (or `userpci setup`) writes it.
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
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

/// Builds a [`ToolError::System`] for `path` (a closure for `map_err`).
pub fn system(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> ToolError {
    let path = path.into();
    move |source| ToolError::System {
        action,
        path,
        source,
    }
}

/// Parses a PCI address for clap, naming the text on failure.
pub fn parse_bdf(text: &str) -> std::result::Result<PciAddress, String> {
    text.parse::<PciAddress>()
        // The parser's message already says what was expected: an example, not a repeat.
        .map_err(|err| format!("{err}; for example 0000:01:00.0"))
}
