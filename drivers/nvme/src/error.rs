//! The crate's one error type.
//!
//! Every variant names the device it is about and the value that was wrong, so a log line is
//! enough to act on. The variants a queue pair reports per command ([`Error::Command`],
//! [`Error::Timeout`], [`Error::QueueFull`], [`Error::Retriable`], ...) hold only `Copy` data,
//! so failing an I/O allocates nothing.

use std::fmt;

use userpci_framework::pci::PciAddress;

use crate::spec::{Status, StatusCodeType};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an NVMe status, from its Status Code Type (Base 2.0 "Status Field Definition").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// Generic Command Status (SCT 0).
    Generic,
    /// Command Specific Status (SCT 1).
    CommandSpecific,
    /// Media and Data Integrity Errors (SCT 2).
    Media,
    /// Path Related Status (SCT 3).
    Path,
    /// Vendor Specific (SCT 7).
    Vendor,
    /// A reserved SCT (4 to 6), as a device may report one.
    Reserved,
}

impl StatusKind {
    /// The kind of `status`.
    pub const fn of(status: Status) -> Self {
        match status.sct() {
            StatusCodeType::Generic => Self::Generic,
            StatusCodeType::CommandSpecific => Self::CommandSpecific,
            StatusCodeType::MediaAndDataIntegrity => Self::Media,
            StatusCodeType::Path => Self::Path,
            StatusCodeType::VendorSpecific => Self::Vendor,
            StatusCodeType::Reserved(_) => Self::Reserved,
        }
    }
}

/// Everything that can go wrong in `userpci-nvme`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the framework (config space, BAR mapping, DMA memory, a register poll).
    #[error(transparent)]
    Framework(#[from] userpci_framework::Error),

    /// The function is not an NVMe controller.
    #[error(
        "{device}: not an NVMe controller: class code {found:#08x}, expected {expected:#08x} \
         (mass storage, non-volatile memory, NVM Express)"
    )]
    NotNvme {
        device: PciAddress,
        found: u32,
        expected: u32,
    },

    /// The controller lacks something this driver needs (the NVM command set, 4 KiB pages).
    #[error("{device}: unsupported controller: {what}")]
    Unsupported { device: PciAddress, what: String },

    /// An option or argument outside what the controller or the driver accepts.
    #[error("{device}: invalid {what} {value}, expected {expected}")]
    InvalidOption {
        device: PciAddress,
        what: &'static str,
        value: u64,
        expected: String,
    },

    /// The controller completed a command with an error status.
    #[error("{device}: queue {qid}: command (opcode {opcode:#04x}) failed: {status}")]
    Command {
        device: PciAddress,
        qid: u16,
        opcode: u8,
        status: Status,
    },

    /// A command did not complete in time (after an abort, or the controller was reset).
    #[error(
        "{device}: queue {qid}: command {cid} (opcode {opcode:#04x}) timed out after {waited_ms} ms"
    )]
    Timeout {
        device: PciAddress,
        qid: u16,
        cid: u16,
        opcode: u8,
        waited_ms: u64,
    },

    /// A queue has no room for the request (its command slots or its submission ring, which
    /// the device frees only as far as its reported SQ head): backpressure. Process
    /// completions, then retry.
    #[error(
        "{device}: queue {qid} is full ({in_flight} commands in flight, {sq_free} submission \
         entries free, {needed} needed); process completions, then retry"
    )]
    QueueFull {
        device: PciAddress,
        qid: u16,
        in_flight: usize,
        sq_free: u16,
        needed: u16,
    },

    /// The controller reported a fatal status (`CSTS.CFS`): it needs a reset.
    #[error("{device}: controller fatal status (CSTS {csts:#x} has CFS set); it needs a reset")]
    ControllerFatal { device: PciAddress, csts: u32 },

    /// The device does not answer: registers read all ones (surprise removal, link down).
    #[error("{device}: device is gone: {register} reads all ones (surprise removal or link down)")]
    DeviceGone {
        device: PciAddress,
        register: &'static str,
    },

    /// The controller is being reset; submissions are refused until it is back.
    #[error("{device}: controller reset in progress; retry when it has finished")]
    Resetting { device: PciAddress },

    /// The controller could not be brought back and is out of service.
    #[error("{device}: controller failed and is out of service: {reason}")]
    ControllerFailed {
        device: PciAddress,
        reason: &'static str,
    },

    /// A command was taken back by a controller reset and could not be issued again; the
    /// device did not (or did not entirely) execute it, so it is safe to retry.
    #[error("{device}: queue {qid}: command not completed: {reason}; safe to retry")]
    Retriable {
        device: PciAddress,
        qid: u16,
        reason: &'static str,
    },

    /// A namespace formatted with metadata, which this driver does not transfer.
    #[error(
        "{device}: namespace {nsid} is formatted with {ms} bytes of metadata per block \
         (LBA format {format}); only formats without metadata are supported"
    )]
    NamespaceMetadata {
        device: PciAddress,
        nsid: u32,
        ms: u16,
        format: usize,
    },

    /// A namespace this driver cannot use for another reason (block size, empty).
    #[error("{device}: namespace {nsid} is unusable: {reason}")]
    NamespaceUnusable {
        device: PciAddress,
        nsid: u32,
        reason: String,
    },

    /// The controller has no namespace this driver can use.
    #[error("{device}: no usable namespace ({details})")]
    NoUsableNamespace { device: PciAddress, details: String },

    /// A namespace identifier the controller does not have, or a namespace of another controller.
    #[error("{device}: no usable namespace {nsid}")]
    NoSuchNamespace { device: PciAddress, nsid: u32 },

    /// A namespace looked different after a controller reset: re-issuing I/O would be unsafe.
    #[error("{device}: namespace {nsid} changed across a controller reset: {what}")]
    NamespaceChanged {
        device: PciAddress,
        nsid: u32,
        what: String,
    },

    /// An LBA range outside the namespace, caught before submission.
    #[error(
        "{device}: namespace {nsid}: blocks {lba}..{lba}+{blocks} are outside its {size} blocks"
    )]
    LbaOutOfRange {
        device: PciAddress,
        nsid: u32,
        lba: u64,
        blocks: u64,
        size: u64,
    },

    /// A buffer that cannot be used for this transfer.
    #[error("{device}: buffer at IOVA {iova:#x} ({len} bytes): {reason}")]
    InvalidBuffer {
        device: PciAddress,
        iova: u64,
        len: usize,
        reason: &'static str,
    },

    /// A request that needs more commands than the queue pair can ever hold at once.
    #[error(
        "{device}: queue {qid}: a request of {blocks} blocks needs {commands} commands, more \
         than the {capacity} the queue holds"
    )]
    RequestTooLarge {
        device: PciAddress,
        qid: u16,
        blocks: u64,
        commands: usize,
        capacity: usize,
    },

    /// An optional command the controller does not support.
    #[error("{device}: {command} is not supported (Identify Controller {field})")]
    CommandUnsupported {
        device: PciAddress,
        command: &'static str,
        field: &'static str,
    },

    /// Shutdown processing (`CC.SHN` = 01b) did not complete within the deadline.
    #[error(
        "{device}: normal shutdown not complete after {waited_ms} ms (deadline {deadline_ms} ms): \
         CSTS.SHST is {shst:02b}b ({}), expected 10b (shutdown processing complete)",
        crate::spec::registers::Csts::shst_meaning(*shst)
    )]
    ShutdownTimeout {
        device: PciAddress,
        waited_ms: u64,
        deadline_ms: u64,
        shst: u8,
    },

    /// The controller was shut down; it takes a new [`crate::Controller`] to use it again.
    #[error("{device}: the controller was shut down (CC.SHN); bring it up again to use it")]
    ShutDown { device: PciAddress },

    /// A Get Log Page request the driver refuses before sending it.
    #[error(
        "{device}: invalid Get Log Page request for log page {lid:#04x}: {len} bytes at offset \
         {offset}: {reason}"
    )]
    InvalidLogPageRequest {
        device: PciAddress,
        lid: u8,
        len: usize,
        offset: u64,
        reason: &'static str,
    },

    /// Every I/O queue the controller granted is in use.
    #[error("{device}: no I/O queue left: the controller granted {granted}, all in use")]
    NoQueueAvailable { device: PciAddress, granted: u16 },
}

impl Error {
    /// The NVMe status of a failed command, if this is one.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Command { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The class of the NVMe status, for [`Error::Command`].
    pub fn kind(&self) -> Option<StatusKind> {
        self.status().map(StatusKind::of)
    }

    /// Whether the same request may succeed when submitted again.
    ///
    /// A failed command is retriable when the controller left `DNR` (Do Not Retry) clear and
    /// the status is not one that repeats by nature (invalid opcode or field, LBA out of range,
    /// access denied). Timeouts, a full queue, a reset in progress and commands taken back by
    /// a reset are retriable; configuration and namespace errors are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Command { status, .. } => !status.dnr() && !is_fatal_status(*status),
            Error::Timeout { .. }
            | Error::QueueFull { .. }
            | Error::Resetting { .. }
            | Error::Retriable { .. } => true,
            _ => false,
        }
    }
}

/// Statuses that describe the command itself, so that a retry fails the same way whatever
/// `DNR` says.
fn is_fatal_status(status: Status) -> bool {
    let code = status.code();
    code == Status::INVALID_OPCODE
        || code == Status::INVALID_FIELD
        || code == Status::INVALID_NAMESPACE_OR_FORMAT
        || code == Status::LBA_OUT_OF_RANGE
        || code == Status::CAPACITY_EXCEEDED
        || code == Status::ACCESS_DENIED
        || code == Status::PRP_OFFSET_INVALID
}

/// A submission the queue pair refused, with the caller's token and buffer handed back.
pub struct Rejected<T, B> {
    /// Why.
    pub error: Error,
    /// The token given to the submit call.
    pub token: T,
    /// The buffer given to the submit call, if any.
    pub buffer: Option<B>,
}

impl<T, B> Rejected<T, B> {
    /// Drops the token and buffer, keeping the error.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl<T, B> fmt::Debug for Rejected<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .field("buffer", &self.buffer.is_some())
            .finish_non_exhaustive()
    }
}

impl<T, B> fmt::Display for Rejected<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// So that `?` turns a refused submission into a `Box<dyn std::error::Error>`; the message
/// is the error's, the token and buffer are dropped with it.
impl<T, B> std::error::Error for Rejected<T, B> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl<T, B> From<Rejected<T, B>> for Error {
    fn from(rejected: Rejected<T, B>) -> Self {
        rejected.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> PciAddress {
        "01:00.0".parse().unwrap()
    }

    #[test]
    fn command_errors_decode_status_and_honour_dnr() {
        let err = Error::Command {
            device: device(),
            qid: 1,
            opcode: 0x02,
            status: Status::UNRECOVERED_READ_ERROR,
        };
        assert_eq!(err.kind(), Some(StatusKind::Media));
        assert!(err.is_retriable());
        let text = err.to_string();
        assert!(text.contains("0000:01:00.0"), "{text}");
        assert!(text.contains("Unrecovered Read Error"), "{text}");
        assert!(text.contains("opcode 0x02"), "{text}");

        let dnr = Error::Command {
            device: device(),
            qid: 1,
            opcode: 0x02,
            status: Status::UNRECOVERED_READ_ERROR.with_dnr(),
        };
        assert!(!dnr.is_retriable());
        let invalid = Error::Command {
            device: device(),
            qid: 0,
            opcode: 0x06,
            status: Status::INVALID_FIELD,
        };
        assert!(!invalid.is_retriable(), "invalid field repeats without DNR");
        assert_eq!(invalid.kind(), Some(StatusKind::Generic));
        assert_eq!(
            StatusKind::of(Status::INVALID_QUEUE_SIZE),
            StatusKind::CommandSpecific
        );
        assert_eq!(
            StatusKind::of(Status::INTERNAL_PATH_ERROR),
            StatusKind::Path
        );
    }

    #[test]
    fn other_errors_name_device_and_values() {
        let err = Error::Timeout {
            device: device(),
            qid: 3,
            cid: 17,
            opcode: 0x01,
            waited_ms: 5000,
        };
        assert!(err.is_retriable());
        assert_eq!(err.kind(), None);
        assert_eq!(
            err.to_string(),
            "0000:01:00.0: queue 3: command 17 (opcode 0x01) timed out after 5000 ms"
        );
        let err = Error::NamespaceMetadata {
            device: device(),
            nsid: 2,
            ms: 8,
            format: 1,
        };
        assert!(err.to_string().contains("namespace 2"));
        assert!(err.to_string().contains("8 bytes of metadata"));
        assert!(!err.is_retriable());
        let err = Error::NotNvme {
            device: device(),
            found: 0x020000,
            expected: 0x010802,
        };
        assert!(err.to_string().contains("0x020000"), "{err}");
        assert!(err.to_string().contains("0x010802"), "{err}");
    }
}
