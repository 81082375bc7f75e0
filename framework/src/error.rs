//! The framework's one error type.
//!
//! Every variant names the thing it is about (a device address, a file, a value) and keeps its
//! source, so a message read in a log is enough to act on.

use std::io;
use std::path::PathBuf;

use crate::pci::PciAddress;

/// Result alias used across the framework.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `userpci-framework`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- pci: addresses and sysfs topology ----
    /// A PCI address did not parse.
    #[error("invalid PCI address {text:?}: {reason}")]
    InvalidPciAddress { text: String, reason: &'static str },
    /// A sysfs file could not be read.
    #[error("cannot read {path}: {source}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A sysfs attribute held something other than what the kernel documents.
    #[error("{path}: unexpected content {value:?}, expected {expected}")]
    SysfsFormat {
        path: PathBuf,
        value: String,
        expected: &'static str,
    },
    /// No PCI function with this address exists.
    #[error("no PCI function {device} in {place}; `userpci list` shows the functions there")]
    NoSuchDevice { device: PciAddress, place: String },

    // ---- device: config space, BARs, interrupts ----
    /// A config-space access outside the function's config space.
    #[error(
        "{device}: config access at {offset:#x}+{len} is outside its {size}-byte config space"
    )]
    ConfigOutOfRange {
        device: PciAddress,
        offset: u16,
        len: usize,
        size: usize,
    },
    /// A BAR index that the function does not implement as memory.
    #[error("{device}: BAR {bar} {reason}")]
    InvalidBar {
        device: PciAddress,
        bar: u8,
        reason: &'static str,
    },
    /// A request for more MSI-X vectors than the function has.
    #[error("{device}: asked for {requested} MSI-X vectors, the function has {available}")]
    MsixVectors {
        device: PciAddress,
        requested: u16,
        available: u16,
    },
    /// A function-level reset was asked of a function that cannot do one.
    #[error("{device}: no function-level reset (reset methods: {methods})")]
    NoFunctionReset { device: PciAddress, methods: String },
    /// The device stopped answering (config reads return all ones).
    #[error("{device}: device is not responding (reads return all ones)")]
    DeviceGone { device: PciAddress },
    /// A register poll did not see the expected value before its deadline.
    #[error("{device}: timed out after {waited_ms} ms waiting for {what}")]
    Timeout {
        device: PciAddress,
        what: &'static str,
        waited_ms: u64,
    },
    /// An eventfd operation failed.
    #[error("eventfd {op}: {source}")]
    EventFd {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    // ---- dma: memory, IOVA space, pools ----
    /// Host memory for DMA could not be allocated or locked.
    #[error("cannot allocate {len} bytes of DMA memory ({what}): {source}")]
    DmaAlloc {
        len: usize,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Locking DMA memory failed, almost always because of RLIMIT_MEMLOCK.
    #[error("cannot lock {len} bytes of DMA memory (memlock limit: {limit} bytes): {source}; raise the limit (ulimit -l unlimited, LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK")]
    MemlockLimit {
        len: usize,
        limit: String,
        #[source]
        source: io::Error,
    },
    /// A DMA size that is zero or too large.
    #[error("invalid DMA size {len}: {reason}")]
    InvalidDmaSize { len: usize, reason: &'static str },
    /// The IOVA space has no free range of this size and alignment.
    #[error("IOVA space {space}: no free range of {len:#x} bytes aligned to {align:#x}")]
    IovaExhausted { space: String, len: u64, align: u64 },
    /// An IOVA range given to the allocator or the IOMMU is malformed.
    #[error("IOVA space {space}: invalid range {start:#x}..{end:#x}: {reason}")]
    InvalidIovaRange {
        space: String,
        start: u64,
        end: u64,
        reason: &'static str,
    },
    /// An access outside a DMA region.
    #[error(
        "DMA region at IOVA {iova:#x} ({len} bytes): access {offset:#x}+{access} is out of bounds"
    )]
    DmaOutOfBounds {
        iova: u64,
        len: usize,
        offset: usize,
        access: usize,
    },
    /// The IOMMU refused a mapping.
    #[error("IOMMU map of IOVA {iova:#x}+{len:#x} failed: {reason}")]
    IommuMap { iova: u64, len: u64, reason: String },
    /// A buffer pool could not be created as asked.
    #[error("buffer pool {pool:?}: {reason}")]
    InvalidPool { pool: String, reason: String },

    // ---- backend::sim ----
    /// A simulated topology is inconsistent.
    #[error("simulated topology: {0}")]
    Topology(String),
    /// A topology file could not be read or parsed.
    #[error("topology file {path}: {reason}")]
    TopologyFile { path: PathBuf, reason: String },
    /// A device-model name with no registered factory.
    #[error("unknown device model {name:?} for {device} (known: {known})")]
    UnknownModel {
        device: PciAddress,
        name: String,
        known: String,
    },
    /// A bus or slot reset that would hit functions this process does not own.
    #[error("{device}: hot reset of its reset group refused: {blockers}")]
    HotResetRefused {
        device: PciAddress,
        blockers: String,
    },
    /// The function is already open in this process.
    #[error("{device} is already open in this process")]
    AlreadyOpen { device: PciAddress },
    /// The function is held by another owner.
    #[error("{device} is owned by {owner}")]
    Busy { device: PciAddress, owner: String },

    // ---- reset coordination ----
    /// Claiming a whole reset group failed; nothing was kept open.
    #[error("{device}: cannot claim its reset group: {blockers}")]
    ClaimRefused {
        device: PciAddress,
        blockers: String,
    },
    /// A reset was requested for a function the coordinator does not know.
    #[error("{device}: not registered with the reset coordinator")]
    NotRegistered { device: PciAddress },
    /// A second participant for a function that already has one: the first would be lost.
    #[error(
        "{device}: a participant is already registered ({existing}); unregister it before \
         registering {new}"
    )]
    AlreadyRegistered {
        device: PciAddress,
        existing: String,
        new: String,
    },
    /// A participant's hook asked the coordinator for something while the coordinator was
    /// running that hook's reset: waiting would deadlock, so it is refused.
    #[error(
        "{device}: {what} refused: called from inside the reset of {running} that is running \
         (a participant hook must not call the coordinator)"
    )]
    ReentrantReset {
        device: PciAddress,
        what: &'static str,
        running: PciAddress,
    },
    /// A participant's hook failed.
    #[error("participant {participant}: {phase} failed: {reason}")]
    ParticipantFailed {
        participant: String,
        phase: &'static str,
        reason: String,
    },

    // ---- broker: reset groups shared between processes ----
    /// The broker's socket could not be created, bound or used.
    #[error("broker socket {path}: {what}: {source}")]
    BrokerSocket {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Another broker answers on the socket path.
    #[error("a broker is already serving {path}; stop it first or choose another socket path")]
    BrokerRunning { path: PathBuf },
    /// A client asked for a function its lease does not cover.
    #[error("{device}: not in the lease of {client}: {why}")]
    NotLeased {
        device: PciAddress,
        client: String,
        why: String,
    },
    /// A client's participant failed a hook, missed its deadline, or its client went away.
    #[error("{client}: {reason}")]
    RemoteHook {
        client: String,
        phase: &'static str,
        reason: String,
    },
    /// The broker refused or failed a client's request; the message is the broker's.
    #[error("broker refused: {message}")]
    BrokerRefused { message: String },
    /// The other side broke the protocol (a malformed or unexpected message, no reply).
    #[error("{peer}: broker protocol: {what}")]
    BrokerProtocol { peer: String, what: String },

    // ---- backend::vfio ----
    /// The IOMMU is off (or absent), so VFIO cannot isolate a device.
    #[error(
        "no IOMMU: {what}; turn it on: add intel_iommu=on (Intel) or amd_iommu=on (AMD) to the \
         kernel command line and enable VT-d / AMD-Vi in the firmware"
    )]
    NoIommu { what: String },
    /// The function is not bound to vfio-pci, so there is no VFIO device to open.
    #[error(
        "{device} is not bound to vfio-pci (driver: {driver}); bind it first (bind_vfio, or \
         write vfio-pci to its driver_override, unbind it and write {device} to \
         /sys/bus/pci/drivers_probe)"
    )]
    NotBoundToVfio { device: PciAddress, driver: String },
    /// A VFIO node or driver directory that a kernel module provides is missing.
    #[error("{path}: {source}; is the {module} module loaded? (modprobe {module})")]
    VfioModuleMissing {
        path: PathBuf,
        module: &'static str,
        #[source]
        source: io::Error,
    },
    /// Permission denied on a VFIO device node or a sysfs file.
    #[error("permission denied on {path}: {source}; {hint}")]
    VfioPermission {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    /// Another process (or a kernel driver in the same IOMMU group) holds the device.
    #[error(
        "{what} is busy: {source}; another process holds the device or its IOMMU group, or a \
         function of the group is bound to a kernel driver"
    )]
    VfioBusy {
        what: String,
        #[source]
        source: io::Error,
    },
    /// An IOMMU group with a member bound to a kernel driver cannot be used through VFIO.
    #[error(
        "{device}: IOMMU group {group} is not viable: {members}; bind every function of the \
         group to vfio-pci (or unbind it from its driver)"
    )]
    GroupNotViable {
        device: PciAddress,
        group: u32,
        members: String,
    },
    /// A VFIO or iommufd ioctl failed.
    #[error("{context}: {ioctl}: {source}{hint}")]
    VfioIoctl {
        context: String,
        ioctl: &'static str,
        hint: String,
        #[source]
        source: io::Error,
    },
    /// The kernel answered an ioctl with something its uAPI does not allow.
    #[error("{context}: {ioctl}: unexpected reply: {reason}")]
    VfioReply {
        context: String,
        ioctl: &'static str,
        reason: String,
    },
    /// The VFIO mode asked for cannot be used on this system or for this device.
    #[error("VFIO {mode} mode cannot be used: {reason}")]
    VfioMode { mode: &'static str, reason: String },
    /// Pinning memory for a DMA mapping hit RLIMIT_MEMLOCK.
    #[error(
        "{space}: cannot pin {len:#x} bytes at IOVA {iova:#x} for DMA ({pinned} bytes pinned \
         with it; memlock limit: {limit} bytes): {source}; raise the limit (ulimit -l \
         unlimited, LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK"
    )]
    IommuMemlock {
        space: String,
        iova: u64,
        len: u64,
        pinned: u64,
        limit: String,
        #[source]
        source: io::Error,
    },
    /// Attaching another device narrowed an IOVA space that already hands out addresses.
    #[error(
        "{space}: attaching {device} narrows its IOVA ranges to {ranges}, which no longer cover \
         {allocated}; open that device in a VFIO context of its own"
    )]
    IovaRangesNarrowed {
        space: String,
        device: PciAddress,
        ranges: String,
        allocated: String,
    },
    /// A sysfs attribute could not be written (driver binding).
    #[error("cannot write {value:?} to {path}: {source}{hint}")]
    SysfsWrite {
        path: PathBuf,
        value: String,
        hint: String,
        #[source]
        source: io::Error,
    },
    /// Binding a function to a driver did not take effect.
    #[error("{device}: after {action}, its driver is {found}, expected {expected}")]
    BindFailed {
        device: PciAddress,
        action: &'static str,
        found: String,
        expected: String,
    },

    // ---- runtime ----
    /// A core that does not exist or that this process may not run on.
    #[error("core {core} is not available to this process (allowed: {allowed})")]
    CoreUnavailable { core: usize, allowed: String },
    /// An io_uring or thread operation of the runtime failed.
    #[error("runtime: {op}: {source}")]
    Runtime {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The runtime of a core has shut down.
    #[error("runtime of core {core} has shut down")]
    RuntimeGone { core: usize },

    // ---- drivers built on the framework (testdev) ----
    /// The function is not the device the driver was written for (IDs, an identity register).
    #[error("{device}: not the expected device: {what} is {found:#x}, expected {expected:#x}")]
    UnexpectedDevice {
        device: PciAddress,
        what: &'static str,
        found: u64,
        expected: u64,
    },
    /// A driver argument the device cannot accept (a ring size, a transfer length).
    #[error("{device}: invalid {what} {value}, expected {expected}")]
    InvalidArgument {
        device: PciAddress,
        what: &'static str,
        value: u64,
        expected: String,
    },
    /// Every usable entry of a queue is in flight: backpressure, poll completions, then retry.
    #[error(
        "{device}: {queue} is full ({capacity} entries in flight); poll completions, then retry"
    )]
    QueueFull {
        device: PciAddress,
        queue: String,
        capacity: usize,
    },
    /// The device stopped processing work (an error state, or disabled/reset under the driver).
    #[error("{device}: device halted (STATUS {status:#x}): {cause}")]
    DeviceHalted {
        device: PciAddress,
        status: u32,
        cause: String,
    },

    // ---- any ----
    /// An I/O error with what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}
