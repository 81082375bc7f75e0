//! Queue entries: the 64-byte submission queue entry and the 16-byte completion queue entry
//! (Base 2.0 "Submission Queue Entry" / "Common Command Format", "Completion Queue Entry").
//!
//! The command constructors (`SubmissionEntry::identify`, `SubmissionEntry::read`, ...) live
//! with their commands in [`super::admin`] and [`super::nvm`]. They leave `CID` zero: the queue
//! that submits an entry assigns it ([`SubmissionEntry::set_cid`]).

use std::mem::size_of;

use bytemuck::{Pod, Zeroable};

use super::status::Status;

/// Bytes in a submission queue entry.
pub const SQE_SIZE: usize = 64;
/// Bytes in a completion queue entry.
pub const CQE_SIZE: usize = 16;
/// `CC.IOSQES` for [`SubmissionEntry`]: 2^6 = 64 bytes.
pub const IOSQES: u8 = 6;
/// `CC.IOCQES` for [`CompletionEntry`]: 2^4 = 16 bytes.
pub const IOCQES: u8 = 4;

/// `PSDT` 00b: PRPs describe the data buffer (the only transfer type defined here).
pub const PSDT_PRP: u8 = 0b00;
/// `FUSE` 00b: a normal, not fused, command.
pub const FUSE_NORMAL: u8 = 0b00;

/// Byte offset of completion Dword 3 (CID, phase tag, status) within an entry: the dword a
/// driver reads with acquire ordering before it reads the rest of the entry.
pub const CQE_DW3_OFFSET: usize = 12;
/// The phase tag bit in completion Dword 3.
pub const CQE_DW3_PHASE: u32 = 1 << 16;

/// A submission queue entry, "Common Command Format" (64 bytes).
///
/// | dword | field |
/// |---|---|
/// | 0 | `CDW0`: opcode 7:0, `FUSE` 9:8, `PSDT` 15:14, `CID` 31:16 |
/// | 1 | `NSID` |
/// | 2, 3 | `CDW2`, `CDW3` (command specific) |
/// | 4, 5 | `MPTR`, metadata pointer |
/// | 6..9 | `DPTR`: `PRP1` (dwords 6-7) and `PRP2` (dwords 8-9) |
/// | 10..15 | `CDW10`..`CDW15` (command specific) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct SubmissionEntry {
    /// Command Dword 0: opcode, FUSE, PSDT, CID (use the accessors).
    pub cdw0: u32,
    /// Namespace Identifier.
    pub nsid: u32,
    /// Command Dword 2.
    pub cdw2: u32,
    /// Command Dword 3.
    pub cdw3: u32,
    /// Metadata Pointer.
    pub mptr: u64,
    /// PRP Entry 1 (`DPTR` bits 63:0).
    pub prp1: u64,
    /// PRP Entry 2 (`DPTR` bits 127:64): a second page or a PRP list.
    pub prp2: u64,
    /// Command Dword 10.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
}
const _: () = assert!(size_of::<SubmissionEntry>() == SQE_SIZE);
const _: () = assert!(std::mem::offset_of!(SubmissionEntry, mptr) == 16);
const _: () = assert!(std::mem::offset_of!(SubmissionEntry, prp1) == 24);
const _: () = assert!(std::mem::offset_of!(SubmissionEntry, prp2) == 32);
const _: () = assert!(std::mem::offset_of!(SubmissionEntry, cdw10) == 40);
const _: () = assert!(std::mem::offset_of!(SubmissionEntry, cdw15) == 60);

impl SubmissionEntry {
    /// An entry with `opcode` and every other field zero (normal command, PRPs, CID 0).
    pub const fn new(opcode: u8) -> Self {
        SubmissionEntry {
            cdw0: opcode as u32,
            nsid: 0,
            cdw2: 0,
            cdw3: 0,
            mptr: 0,
            prp1: 0,
            prp2: 0,
            cdw10: 0,
            cdw11: 0,
            cdw12: 0,
            cdw13: 0,
            cdw14: 0,
            cdw15: 0,
        }
    }

    /// `OPC` (CDW0 7:0), the opcode. Whether it is an admin or an I/O opcode depends on the
    /// queue: see [`super::AdminOpcode::from_raw`] and [`super::NvmOpcode::from_raw`].
    pub const fn opcode(&self) -> u8 {
        self.cdw0 as u8
    }

    /// `FUSE` (CDW0 9:8).
    pub const fn fuse(&self) -> u8 {
        ((self.cdw0 >> 8) & 0x3) as u8
    }

    /// `PSDT` (CDW0 15:14), PRP or SGL for Data Transfer.
    pub const fn psdt(&self) -> u8 {
        ((self.cdw0 >> 14) & 0x3) as u8
    }

    /// `CID` (CDW0 31:16), the Command Identifier.
    pub const fn cid(&self) -> u16 {
        (self.cdw0 >> 16) as u16
    }

    /// Sets `CID`.
    pub fn set_cid(&mut self, cid: u16) {
        *self = self.with_cid(cid);
    }

    /// A copy with `CID` set.
    #[must_use]
    pub const fn with_cid(mut self, cid: u16) -> Self {
        self.cdw0 = (self.cdw0 & 0xffff) | ((cid as u32) << 16);
        self
    }
}

/// A completion queue entry (16 bytes).
///
/// | dword | field |
/// |---|---|
/// | 0 | command specific (for example the Set Features result) |
/// | 1 | command specific |
/// | 2 | `SQHD` 15:0 (SQ head pointer), `SQID` 31:16 |
/// | 3 | `CID` 15:0, `P` (phase tag) 16, Status Field 31:17 |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct CompletionEntry {
    /// Dword 0, command specific.
    pub dw0: u32,
    /// Dword 1, command specific.
    pub dw1: u32,
    /// Dword 2: SQHD and SQID (use the accessors).
    pub dw2: u32,
    /// Dword 3: CID, phase tag and status (use the accessors).
    pub dw3: u32,
}
const _: () = assert!(size_of::<CompletionEntry>() == CQE_SIZE);
const _: () = assert!(std::mem::offset_of!(CompletionEntry, dw3) == CQE_DW3_OFFSET);

impl CompletionEntry {
    /// The entry a controller posts (the model side).
    pub const fn new(
        dw0: u32,
        sq_head: u16,
        sq_id: u16,
        cid: u16,
        phase: bool,
        status: Status,
    ) -> Self {
        CompletionEntry {
            dw0,
            dw1: 0,
            dw2: ((sq_id as u32) << 16) | sq_head as u32,
            dw3: ((status.field() as u32) << 17) | ((phase as u32) << 16) | cid as u32,
        }
    }

    /// `SQHD` (DW2 15:0): the controller's head pointer of the submission queue, telling the
    /// driver which entries it may reuse.
    pub const fn sq_head(&self) -> u16 {
        self.dw2 as u16
    }

    /// `SQID` (DW2 31:16): the submission queue the command came from.
    pub const fn sq_id(&self) -> u16 {
        (self.dw2 >> 16) as u16
    }

    /// `CID` (DW3 15:0): the identifier of the command that completed.
    pub const fn cid(&self) -> u16 {
        self.dw3 as u16
    }

    /// `P` (DW3 16): the phase tag; the entry is new when it equals the phase the driver
    /// expects for the current pass through the queue.
    pub const fn phase(&self) -> bool {
        self.dw3 & CQE_DW3_PHASE != 0
    }

    /// The Status Field (DW3 31:17).
    pub const fn status(&self) -> Status {
        Status::from_field((self.dw3 >> 17) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_entry_cdw0_fields() {
        let mut sqe = SubmissionEntry::new(0x02);
        sqe.set_cid(0xbeef);
        assert_eq!(sqe.opcode(), 0x02);
        assert_eq!(sqe.cid(), 0xbeef);
        assert_eq!((sqe.fuse(), sqe.psdt()), (FUSE_NORMAL, PSDT_PRP));
        assert_eq!(&bytemuck::bytes_of(&sqe)[..4], &[0x02, 0x00, 0xef, 0xbe]);
        // FUSE and PSDT decode from raw bits; set_cid keeps them.
        sqe.cdw0 |= (0b01 << 8) | (0b10 << 14);
        sqe.set_cid(1);
        assert_eq!((sqe.fuse(), sqe.psdt(), sqe.cid()), (0b01, 0b10, 1));
        assert_eq!(sqe.opcode(), 0x02);
    }

    #[test]
    fn submission_entry_field_offsets() {
        let sqe = SubmissionEntry {
            nsid: 0x0403_0201,
            prp1: 0x1122_3344_5566_7788,
            prp2: 0x99aa_bbcc_ddee_ff00,
            cdw10: 0xa0a0_a0a0,
            cdw15: 0xf0f0_f0f0,
            ..SubmissionEntry::new(0x01)
        };
        let bytes = bytemuck::bytes_of(&sqe);
        assert_eq!(&bytes[4..8], &[1, 2, 3, 4]);
        assert_eq!(&bytes[24..32], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &0x99aa_bbcc_ddee_ff00u64.to_le_bytes());
        assert_eq!(&bytes[40..44], &[0xa0; 4]);
        assert_eq!(&bytes[60..64], &[0xf0; 4]);
    }

    #[test]
    fn completion_entry_decodes_raw_bytes() {
        // DW0 = 0x00030003 (a Number of Queues result), SQHD 5, SQID 0, CID 7, phase 1,
        // status Invalid Field in Command with DNR (field 0x4002).
        let raw: [u8; 16] = [
            0x03, 0x00, 0x03, 0x00, // DW0
            0x00, 0x00, 0x00, 0x00, // DW1
            0x05, 0x00, 0x00, 0x00, // DW2: SQHD 5, SQID 0
            0x07, 0x00, 0x05, 0x80, // DW3: CID 7, P 1, status 0x4002 << 17
        ];
        let cqe: CompletionEntry = bytemuck::pod_read_unaligned(&raw);
        assert_eq!(cqe.dw0, 0x0003_0003);
        assert_eq!(cqe.sq_head(), 5);
        assert_eq!(cqe.sq_id(), 0);
        assert_eq!(cqe.cid(), 7);
        assert!(cqe.phase());
        assert_eq!(cqe.status(), Status::INVALID_FIELD.with_dnr());
        assert!(cqe.status().dnr());

        // An I/O completion: SQHD 0x1ff on SQ 3, CID 0xffff, phase 0, success.
        let raw: [u8; 16] = [
            0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x01, 0x03, 0x00, 0xff, 0xff, 0, 0,
        ];
        let cqe: CompletionEntry = bytemuck::pod_read_unaligned(&raw);
        assert_eq!((cqe.sq_head(), cqe.sq_id(), cqe.cid()), (0x1ff, 3, 0xffff));
        assert!(!cqe.phase());
        assert!(cqe.status().is_success());
    }

    #[test]
    fn completion_entry_new_round_trips() {
        let status = Status::LBA_OUT_OF_RANGE.with_dnr();
        let cqe = CompletionEntry::new(0xdead_beef, 17, 2, 42, true, status);
        let bytes = bytemuck::bytes_of(&cqe);
        assert_eq!(&bytes[0..4], &0xdead_beefu32.to_le_bytes());
        assert_eq!(&bytes[8..12], &[17, 0, 2, 0]);
        assert_eq!(bytes[CQE_DW3_OFFSET], 42);
        assert_eq!(bytes[CQE_DW3_OFFSET + 2] & 1, 1);
        assert_eq!(
            (
                cqe.sq_head(),
                cqe.sq_id(),
                cqe.cid(),
                cqe.phase(),
                cqe.status()
            ),
            (17, 2, 42, true, status)
        );
        let flipped = CompletionEntry::new(0, 0, 0, 0, false, Status::SUCCESS);
        assert_eq!(flipped, CompletionEntry::default());
    }

    #[test]
    fn entry_sizes_match_cc_encodings() {
        assert_eq!(1usize << IOSQES, SQE_SIZE);
        assert_eq!(1usize << IOCQES, CQE_SIZE);
    }
}
