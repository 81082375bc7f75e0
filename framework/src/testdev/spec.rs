//! The copy engine's specification: PCI identity, BAR0 register map, descriptor and completion
//! formats. Shared by the device model and the driver; no `unsafe`.
//!
//! # Programming model
//! 1. Reset (`CTRL.RST`), program `RING_BASE`, `RING_SIZE` and `COMPLETION_BASE` while
//!    `CTRL.EN` is clear, then set `CTRL.EN` and wait for `STATUS.RDY`.
//! 2. Write descriptors into the ring at the tail, then write the new tail to `DOORBELL`. The
//!    engine copies each descriptor in ring order and writes a completion at the same index of
//!    the completion ring, so at most `RING_SIZE - 1` descriptors may be outstanding (a tail equal
//!    to the head means an empty ring) and a slot is reusable once its completion was read.
//! 3. A completion is new when its phase bit equals the phase the driver expects: 1 on the first
//!    lap, flipping each time the index wraps to 0 (as NVMe completion queues do).
//! 4. After each completion the engine raises MSI-X vector 0 unless `IRQ_MASK` bit 0 is set or
//!    the descriptor has [`DESC_FLAG_NO_IRQ`].
//!
//! `STATUS.ERR` is sticky: it halts the engine (doorbells are ignored) until `CTRL.RST` or a
//! function reset. `ERROR_CAUSE` says why it was set.

use std::fmt;
use std::mem::size_of;

use bytemuck::{Pod, Zeroable};

/// PCI vendor ID of the simulated engine (QEMU's Red Hat ID; the device ID is made up and
/// exists only on the simulated bus).
pub const VENDOR_ID: u16 = 0x1b36;
/// PCI device ID.
pub const DEVICE_ID: u16 = 0xc0e1;
/// Class code: base system peripheral, DMA controller.
pub const CLASS_CODE: u32 = 0x08_01_00;
/// The register BAR.
pub const BAR: u8 = 0;
/// Size of BAR0 in bytes.
pub const BAR_SIZE: u64 = 4096;
/// MSI-X vectors the engine implements.
pub const MSIX_VECTORS: u16 = 1;
/// The vector completions are signalled on.
pub const COMPLETION_VECTOR: u16 = 0;

/// `ID` (RO, 32 bits): always [`ID_VALUE`].
pub const ID: usize = 0x00;
/// `CTRL` (RW, 32 bits).
pub const CTRL: usize = 0x04;
/// `STATUS` (RO, 32 bits).
pub const STATUS: usize = 0x08;
/// `IRQ_MASK` (RW, 32 bits): bit 0 masks the completion interrupt.
pub const IRQ_MASK: usize = 0x0c;
/// `RING_BASE` (RW, 64 bits): IOVA of the descriptor ring, aligned to a descriptor.
pub const RING_BASE: usize = 0x10;
/// `RING_SIZE` (RW, 32 bits): entries in both rings, a power of two in
/// [`MIN_RING_SIZE`]`..=`[`MAX_RING_SIZE`].
pub const RING_SIZE: usize = 0x18;
/// `COMPLETION_BASE` (RW, 64 bits): IOVA of the completion ring, aligned to an entry.
pub const COMPLETION_BASE: usize = 0x20;
/// `DOORBELL` (WO, 32 bits): the new tail index of the descriptor ring, `< RING_SIZE`.
pub const DOORBELL: usize = 0x28;
/// `HEAD` (RO, 32 bits): index of the next descriptor the engine will consume.
pub const HEAD: usize = 0x2c;
/// `ERROR_CAUSE` (RO, 32 bits): why `STATUS.ERR` was set (`CAUSE_*`).
pub const ERROR_CAUSE: usize = 0x30;

/// Contents of `ID`: "COPY" in ASCII.
pub const ID_VALUE: u32 = 0x434f_5059;

/// `CTRL.EN`: run the engine.
pub const CTRL_EN: u32 = 1 << 0;
/// `CTRL.RST`: return every register to its power-on value (self-clearing).
pub const CTRL_RST: u32 = 1 << 1;
/// `STATUS.RDY`: enabled with a valid configuration, accepting doorbells.
pub const STATUS_RDY: u32 = 1 << 0;
/// `STATUS.ERR`: halted after invalid programming or a ring DMA fault.
pub const STATUS_ERR: u32 = 1 << 1;
/// `IRQ_MASK` bit masking the completion vector.
pub const IRQ_MASK_COMPLETION: u32 = 1 << 0;

/// `ERROR_CAUSE`: none.
pub const CAUSE_NONE: u32 = 0;
/// `ERROR_CAUSE`: `RING_SIZE` written with a value that is not a valid size.
pub const CAUSE_BAD_RING_SIZE: u32 = 1;
/// `ERROR_CAUSE`: `DOORBELL` written with an index `>= RING_SIZE`.
pub const CAUSE_BAD_DOORBELL: u32 = 2;
/// `ERROR_CAUSE`: `CTRL.EN` set with rings that are unset or misaligned.
pub const CAUSE_BAD_CONFIG: u32 = 3;
/// `ERROR_CAUSE`: a ring register written while `CTRL.EN` is set.
pub const CAUSE_CONFIG_WHILE_ENABLED: u32 = 4;
/// `ERROR_CAUSE`: reading a descriptor or writing a completion faulted.
pub const CAUSE_RING_FAULT: u32 = 5;

/// Smallest ring: one usable entry.
pub const MIN_RING_SIZE: u32 = 2;
/// Largest ring.
pub const MAX_RING_SIZE: u32 = 4096;
/// Longest copy one descriptor may ask for.
pub const MAX_COPY_LEN: u32 = 1 << 20;
/// How long the engine may take from `CTRL.EN` to `STATUS.RDY` (or from `CTRL.RST` to clear).
pub const READY_TIMEOUT_MS: u64 = 100;

/// True for a value `RING_SIZE` accepts.
pub const fn valid_ring_size(size: u32) -> bool {
    size.is_power_of_two() && size >= MIN_RING_SIZE && size <= MAX_RING_SIZE
}

/// One entry of the descriptor ring (the engine only reads it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Descriptor {
    /// IOVA to copy from.
    pub src: u64,
    /// IOVA to copy to.
    pub dst: u64,
    /// Bytes to copy, `1..=MAX_COPY_LEN`.
    pub len: u32,
    /// The driver's tag, returned in the completion.
    pub tag: u32,
    /// `DESC_FLAG_*`; unknown bits make the descriptor bad.
    pub flags: u32,
    /// Must be zero.
    pub reserved: u32,
}
const _: () = assert!(size_of::<Descriptor>() == 32);

/// Descriptor flag: do not raise an interrupt for this completion.
pub const DESC_FLAG_NO_IRQ: u32 = 1 << 0;
/// Every defined descriptor flag.
pub const DESC_FLAGS_KNOWN: u32 = DESC_FLAG_NO_IRQ;

/// One entry of the completion ring (the engine only writes it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct CompletionEntry {
    /// The descriptor's tag.
    pub tag: u32,
    /// A [`CompletionStatus`] value.
    pub status: u32,
    /// Bytes written to the destination before the copy ended.
    pub bytes: u32,
    /// Bit 0: the phase tag ([`PHASE`]); other bits zero.
    pub phase: u32,
}
const _: () = assert!(size_of::<CompletionEntry>() == 16);

/// Byte offset of [`CompletionEntry::phase`], for an acquire read of the phase alone.
pub const COMPLETION_PHASE_OFFSET: usize = 12;
/// The phase-tag bit of [`CompletionEntry::phase`].
pub const PHASE: u32 = 1 << 0;

/// The status of one copy, as the engine reports it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompletionStatus(pub u32);

impl CompletionStatus {
    /// The whole length was copied.
    pub const OK: Self = Self(0);
    /// Reading the source faulted (`bytes` says how far the copy got).
    pub const READ_FAULT: Self = Self(1);
    /// Writing the destination faulted.
    pub const WRITE_FAULT: Self = Self(2);
    /// Length 0 or above [`MAX_COPY_LEN`], an address range that wraps, or unknown flags.
    pub const BAD_DESCRIPTOR: Self = Self(3);

    /// True for [`CompletionStatus::OK`].
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }

    /// True for a status this specification defines.
    pub fn is_known(self) -> bool {
        self.0 <= Self::BAD_DESCRIPTOR.0
    }
}

impl fmt::Display for CompletionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OK => f.write_str("ok"),
            Self::READ_FAULT => f.write_str("DMA read fault"),
            Self::WRITE_FAULT => f.write_str("DMA write fault"),
            Self::BAD_DESCRIPTOR => f.write_str("bad descriptor"),
            Self(other) => write!(f, "unknown status {other:#x}"),
        }
    }
}

impl fmt::Debug for CompletionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompletionStatus({}: {self})", self.0)
    }
}

/// Names an `ERROR_CAUSE` value for messages.
pub fn cause_name(cause: u32) -> &'static str {
    match cause {
        CAUSE_NONE => "none",
        CAUSE_BAD_RING_SIZE => "bad RING_SIZE",
        CAUSE_BAD_DOORBELL => "DOORBELL beyond RING_SIZE",
        CAUSE_BAD_CONFIG => "CTRL.EN with invalid rings",
        CAUSE_CONFIG_WHILE_ENABLED => "ring register written while enabled",
        CAUSE_RING_FAULT => "DMA fault on a ring",
        _ => "unknown cause",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_display_decodes_every_value() {
        assert_eq!(CompletionStatus::OK.to_string(), "ok");
        assert_eq!(CompletionStatus::READ_FAULT.to_string(), "DMA read fault");
        assert_eq!(CompletionStatus::WRITE_FAULT.to_string(), "DMA write fault");
        assert_eq!(
            CompletionStatus::BAD_DESCRIPTOR.to_string(),
            "bad descriptor"
        );
        assert_eq!(CompletionStatus(9).to_string(), "unknown status 0x9");
        assert!(!CompletionStatus(9).is_known());
        assert_eq!(
            format!("{:?}", CompletionStatus(2)),
            "CompletionStatus(2: DMA write fault)"
        );
    }

    #[test]
    fn layouts_match_the_byte_format() {
        let entry = CompletionEntry {
            tag: 0x0403_0201,
            status: 2,
            bytes: 0x10,
            phase: PHASE,
        };
        let bytes = bytemuck::bytes_of(&entry);
        assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
        assert_eq!(bytes[COMPLETION_PHASE_OFFSET], 1);
        let desc = Descriptor {
            len: 0x20,
            ..Descriptor::default()
        };
        assert_eq!(bytemuck::bytes_of(&desc)[16], 0x20);
    }

    #[test]
    fn ring_sizes() {
        assert!(valid_ring_size(2) && valid_ring_size(4096));
        assert!(!valid_ring_size(0) && !valid_ring_size(1));
        assert!(!valid_ring_size(3) && !valid_ring_size(8192));
    }
}
