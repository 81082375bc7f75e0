//! NVM Command Set I/O commands (NVM CS 1.0 "I/O Commands for the NVM Command Set"): Read,
//! Write, Flush, Write Zeroes and Dataset Management, with [`NvmCommand::encode`] for the driver
//! and [`NvmCommand::decode`] for the model, and the Dataset Management range ([`DsmRange`]).
//!
//! `NLB` (number of logical blocks) in a command is zero-based; the `length` of a
//! [`DsmRange`] is not.

use std::mem::size_of;

use bytemuck::{Pod, Zeroable};

use super::opcodes::NvmOpcode;
use super::queue::SubmissionEntry;

/// `FUA` (CDW12 bit 30): Force Unit Access, for Read, Write and Write Zeroes.
const CDW12_FUA: u32 = 1 << 30;
/// `DEAC` (CDW12 bit 25): Deallocate, for Write Zeroes.
const CDW12_DEAC: u32 = 1 << 25;

/// Read or Write fields (the same layout for both, PRPs, no protection information).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadWrite {
    /// `NSID`.
    pub nsid: u32,
    /// `SLBA` (CDW11:CDW10): the first logical block.
    pub slba: u64,
    /// `NLB` (CDW12 15:0): logical blocks - 1.
    pub nlb: u16,
    /// `FUA` (CDW12 30): for a write, data is on non-volatile media before completion; for a
    /// read, it comes from non-volatile media.
    pub fua: bool,
    /// `PRP1`: the first data page (may start at an offset into it).
    pub prp1: u64,
    /// `PRP2`: the second page, or a PRP list when the transfer spans more than two pages.
    pub prp2: u64,
}

/// Write Zeroes fields (no data transfer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteZeroes {
    /// `NSID`.
    pub nsid: u32,
    /// `SLBA` (CDW11:CDW10).
    pub slba: u64,
    /// `NLB` (CDW12 15:0): logical blocks - 1.
    pub nlb: u16,
    /// `DEAC` (CDW12 25): the controller may deallocate the blocks (Identify Namespace `DLFEAT`).
    pub deac: bool,
    /// `FUA` (CDW12 30).
    pub fua: bool,
}

/// Dataset Management fields: `nr + 1` [`DsmRange`]s in the buffer at `PRP1`/`PRP2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatasetManagement {
    /// `NSID`.
    pub nsid: u32,
    /// `NR` (CDW10 7:0): ranges - 1 (at most 256 ranges).
    pub nr: u8,
    /// CDW11 attributes: [`DatasetManagement::IDR`], [`DatasetManagement::IDW`],
    /// [`DatasetManagement::AD`].
    pub attributes: u32,
    /// `PRP1`: the range list.
    pub prp1: u64,
    /// `PRP2`: when the range list crosses a page boundary.
    pub prp2: u64,
}

impl DatasetManagement {
    /// `IDR` (CDW11 bit 0): Integral Dataset for Read.
    pub const IDR: u32 = 1 << 0;
    /// `IDW` (CDW11 bit 1): Integral Dataset for Write.
    pub const IDW: u32 = 1 << 1;
    /// `AD` (CDW11 bit 2): Attribute – Deallocate the ranges ("trim").
    pub const AD: u32 = 1 << 2;
}

/// One Dataset Management range (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct DsmRange {
    /// Context Attributes (access frequency and latency hints; 0 for none).
    pub context_attributes: u32,
    /// Length in logical blocks: a count, **not** zero-based.
    pub length: u32,
    /// Starting LBA.
    pub slba: u64,
}
const _: () = assert!(size_of::<DsmRange>() == 16);

impl DsmRange {
    /// The range of `length` blocks from `slba`, no context attributes.
    pub const fn new(slba: u64, length: u32) -> Self {
        DsmRange {
            context_attributes: 0,
            length,
            slba,
        }
    }
}

/// An NVM I/O command in parsed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmCommand {
    /// Flush the volatile write cache of namespace `nsid` (or of all, with
    /// [`super::NSID_ALL`], when Identify Controller `VWC` bits 2:1 allow it).
    Flush {
        /// The namespace.
        nsid: u32,
    },
    /// Write.
    Write(ReadWrite),
    /// Read.
    Read(ReadWrite),
    /// Write Zeroes.
    WriteZeroes(WriteZeroes),
    /// Dataset Management.
    DatasetManagement(DatasetManagement),
}

const fn slba_dwords(e: &mut SubmissionEntry, slba: u64) {
    e.cdw10 = slba as u32;
    e.cdw11 = (slba >> 32) as u32;
}

const fn slba_of(e: &SubmissionEntry) -> u64 {
    ((e.cdw11 as u64) << 32) | e.cdw10 as u64
}

impl NvmCommand {
    /// The opcode of this command.
    pub const fn opcode(&self) -> NvmOpcode {
        match self {
            Self::Flush { .. } => NvmOpcode::Flush,
            Self::Write(_) => NvmOpcode::Write,
            Self::Read(_) => NvmOpcode::Read,
            Self::WriteZeroes(_) => NvmOpcode::WriteZeroes,
            Self::DatasetManagement(_) => NvmOpcode::DatasetManagement,
        }
    }

    /// The submission queue entry for this command, with `CID` 0.
    pub const fn encode(&self) -> SubmissionEntry {
        let mut e = SubmissionEntry::new(self.opcode() as u8);
        match *self {
            Self::Flush { nsid } => e.nsid = nsid,
            Self::Write(c) | Self::Read(c) => {
                e.nsid = c.nsid;
                e.prp1 = c.prp1;
                e.prp2 = c.prp2;
                slba_dwords(&mut e, c.slba);
                e.cdw12 = c.nlb as u32 | if c.fua { CDW12_FUA } else { 0 };
            }
            Self::WriteZeroes(c) => {
                e.nsid = c.nsid;
                slba_dwords(&mut e, c.slba);
                e.cdw12 = c.nlb as u32
                    | if c.deac { CDW12_DEAC } else { 0 }
                    | if c.fua { CDW12_FUA } else { 0 };
            }
            Self::DatasetManagement(c) => {
                e.nsid = c.nsid;
                e.prp1 = c.prp1;
                e.prp2 = c.prp2;
                e.cdw10 = c.nr as u32;
                e.cdw11 = c.attributes;
            }
        }
        e
    }

    /// Parses an entry taken from an I/O submission queue; `None` for an opcode not defined
    /// here. Reserved and unsupported bits (protection information, directives) are ignored.
    pub const fn decode(e: &SubmissionEntry) -> Option<Self> {
        let Some(opcode) = NvmOpcode::from_raw(e.opcode()) else {
            return None;
        };
        let read_write = ReadWrite {
            nsid: e.nsid,
            slba: slba_of(e),
            nlb: e.cdw12 as u16,
            fua: e.cdw12 & CDW12_FUA != 0,
            prp1: e.prp1,
            prp2: e.prp2,
        };
        Some(match opcode {
            NvmOpcode::Flush => Self::Flush { nsid: e.nsid },
            NvmOpcode::Write => Self::Write(read_write),
            NvmOpcode::Read => Self::Read(read_write),
            NvmOpcode::WriteZeroes => Self::WriteZeroes(WriteZeroes {
                nsid: e.nsid,
                slba: slba_of(e),
                nlb: e.cdw12 as u16,
                deac: e.cdw12 & CDW12_DEAC != 0,
                fua: e.cdw12 & CDW12_FUA != 0,
            }),
            NvmOpcode::DatasetManagement => Self::DatasetManagement(DatasetManagement {
                nsid: e.nsid,
                nr: e.cdw10 as u8,
                attributes: e.cdw11,
                prp1: e.prp1,
                prp2: e.prp2,
            }),
        })
    }
}

/// Constructors for the I/O commands the driver sends.
impl SubmissionEntry {
    /// Read `nlb + 1` blocks from `slba` of namespace `nsid` into `prp1`/`prp2`.
    pub const fn read(nsid: u32, slba: u64, nlb: u16, prp1: u64, prp2: u64) -> Self {
        NvmCommand::Read(ReadWrite {
            nsid,
            slba,
            nlb,
            fua: false,
            prp1,
            prp2,
        })
        .encode()
    }

    /// Write `nlb + 1` blocks at `slba` of namespace `nsid` from `prp1`/`prp2`.
    pub const fn write(nsid: u32, slba: u64, nlb: u16, prp1: u64, prp2: u64) -> Self {
        NvmCommand::Write(ReadWrite {
            nsid,
            slba,
            nlb,
            fua: false,
            prp1,
            prp2,
        })
        .encode()
    }

    /// A copy with `FUA` (CDW12 bit 30) set: for Read, Write and Write Zeroes only.
    #[must_use]
    pub const fn with_fua(mut self) -> Self {
        self.cdw12 |= CDW12_FUA;
        self
    }

    /// Flush namespace `nsid`.
    pub const fn flush(nsid: u32) -> Self {
        NvmCommand::Flush { nsid }.encode()
    }

    /// Write Zeroes to `nlb + 1` blocks at `slba` of namespace `nsid` (no deallocation).
    pub const fn write_zeroes(nsid: u32, slba: u64, nlb: u16) -> Self {
        NvmCommand::WriteZeroes(WriteZeroes {
            nsid,
            slba,
            nlb,
            deac: false,
            fua: false,
        })
        .encode()
    }

    /// Dataset Management of `nr + 1` [`DsmRange`]s at `prp1` (which must not cross a memory
    /// page boundary: no `PRP2`), with `attributes` such as [`DatasetManagement::AD`].
    pub const fn dataset_management(nsid: u32, nr: u8, attributes: u32, prp1: u64) -> Self {
        NvmCommand::DatasetManagement(DatasetManagement {
            nsid,
            nr,
            attributes,
            prp1,
            prp2: 0,
        })
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dword(e: &SubmissionEntry, n: usize) -> u32 {
        let bytes = bytemuck::bytes_of(e);
        u32::from_le_bytes(bytes[n * 4..n * 4 + 4].try_into().unwrap())
    }

    #[test]
    fn read_write_place_slba_nlb_prps() {
        let e = SubmissionEntry::read(1, 0x0000_0012_3456_789a, 7, 0x10_0000, 0x10_1000);
        let b = bytemuck::bytes_of(&e);
        assert_eq!(b[0], 0x02);
        assert_eq!(dword(&e, 1), 1);
        assert_eq!(&b[24..32], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[32..40], &0x10_1000u64.to_le_bytes());
        assert_eq!((dword(&e, 10), dword(&e, 11)), (0x3456_789a, 0x12));
        assert_eq!(dword(&e, 12), 7);
        assert_eq!(dword(&e, 13), 0);

        let e = SubmissionEntry::write(2, 0, 0xffff, 0x2000, 0).with_fua();
        assert_eq!(e.opcode(), 0x01);
        assert_eq!(dword(&e, 12), (1 << 30) | 0xffff);
    }

    #[test]
    fn flush_write_zeroes_dsm() {
        let e = SubmissionEntry::flush(crate::spec::NSID_ALL);
        assert_eq!((dword(&e, 0), dword(&e, 1)), (0x00, 0xffff_ffff));
        assert!(bytemuck::bytes_of(&e)[8..].iter().all(|&x| x == 0));

        let e = SubmissionEntry::write_zeroes(1, 0x100, 31);
        assert_eq!(dword(&e, 0), 0x08);
        assert_eq!((dword(&e, 10), dword(&e, 12)), (0x100, 31));
        assert_eq!(e.prp1, 0);

        let e = SubmissionEntry::dataset_management(1, 2, DatasetManagement::AD, 0x9000);
        assert_eq!(dword(&e, 0), 0x09);
        assert_eq!((dword(&e, 10), dword(&e, 11)), (2, 0b100));
        assert_eq!(e.prp1, 0x9000);
    }

    #[test]
    fn dsm_range_layout() {
        let range = DsmRange::new(0x0102_0304_0506_0708, 64);
        let b = bytemuck::bytes_of(&range);
        assert_eq!(&b[0..4], &[0; 4]);
        assert_eq!(&b[4..8], &[64, 0, 0, 0]);
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let ranges = [DsmRange::new(0, 8), DsmRange::new(100, 1)];
        assert_eq!(bytemuck::cast_slice::<DsmRange, u8>(&ranges).len(), 32);
    }

    #[test]
    fn every_command_round_trips() {
        let rw = ReadWrite {
            nsid: 3,
            slba: u64::MAX,
            nlb: 0xffff,
            fua: true,
            prp1: 0x1000,
            prp2: 0x2000,
        };
        let commands = [
            NvmCommand::Flush { nsid: 1 },
            NvmCommand::Write(rw),
            NvmCommand::Read(ReadWrite { fua: false, ..rw }),
            NvmCommand::WriteZeroes(WriteZeroes {
                nsid: 1,
                slba: 1 << 40,
                nlb: 3,
                deac: true,
                fua: true,
            }),
            NvmCommand::DatasetManagement(DatasetManagement {
                nsid: 1,
                nr: 255,
                attributes: DatasetManagement::AD | DatasetManagement::IDW,
                prp1: 0x3000,
                prp2: 0x4000,
            }),
        ];
        for command in commands {
            let e = command.encode().with_cid(5);
            assert_eq!(NvmCommand::decode(&e), Some(command), "{command:?}");
        }
        let e = SubmissionEntry::write_zeroes(1, 0, 0).with_fua();
        let Some(NvmCommand::WriteZeroes(wz)) = NvmCommand::decode(&e) else {
            panic!("not a Write Zeroes");
        };
        assert!(wz.fua && !wz.deac);
        assert_eq!(NvmCommand::decode(&SubmissionEntry::new(0x05)), None);
    }
}
