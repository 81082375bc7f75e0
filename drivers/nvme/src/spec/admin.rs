//! Admin commands (Base 2.0 "Admin Command Set"): their fields, how they are placed in a
//! [`SubmissionEntry`] ([`AdminCommand::encode`], for the driver) and read back out of one
//! ([`AdminCommand::decode`], for the model). Both directions sit side by side so that a field's
//! bit position is written once per direction, next to each other, and tested as a round trip.
//!
//! The driver's shorthands (`SubmissionEntry::identify`, `SubmissionEntry::create_io_cq`, ...)
//! are in the `constructors` submodule.
//!
//! Queue sizes (`QSIZE`) and log lengths (`NUMD`) are zero-based, as encoded. Every command
//! here that transfers data uses PRPs (`PSDT` 00b); queues are always physically contiguous
//! (`PC` set) in what the driver builds.

use super::opcodes::AdminOpcode;
use super::queue::SubmissionEntry;

/// Create I/O Completion Queue fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateIoCq {
    /// `QID` (CDW10 15:0): the new queue's identifier, 1..=the number allocated.
    pub qid: u16,
    /// `QSIZE` (CDW10 31:16): entries - 1, at most `CAP.MQES`.
    pub qsize: u16,
    /// `PRP1`: the queue memory (physically contiguous when `pc`).
    pub prp1: u64,
    /// `IV` (CDW11 31:16): the MSI-X vector for this queue's interrupts.
    pub iv: u16,
    /// `IEN` (CDW11 1): interrupts enabled.
    pub ien: bool,
    /// `PC` (CDW11 0): physically contiguous.
    pub pc: bool,
}

/// Create I/O Submission Queue fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateIoSq {
    /// `QID` (CDW10 15:0).
    pub qid: u16,
    /// `QSIZE` (CDW10 31:16): entries - 1.
    pub qsize: u16,
    /// `PRP1`: the queue memory.
    pub prp1: u64,
    /// `CQID` (CDW11 31:16): the completion queue this queue posts to, created before.
    pub cqid: u16,
    /// `QPRIO` (CDW11 2:1): priority for weighted round robin (ignored for round robin).
    pub qprio: u8,
    /// `PC` (CDW11 0): physically contiguous.
    pub pc: bool,
}

/// Identify fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identify {
    /// `CNS` (CDW10 7:0), raw: a device or driver may send one [`super::Cns`] does not define.
    pub cns: u8,
    /// `CNTID` (CDW10 31:16): controller identifier, for the CNS values that use one.
    pub cntid: u16,
    /// `NSID`: the namespace, or the starting point of a namespace list.
    pub nsid: u32,
    /// `PRP1`: the 4096-byte data buffer.
    pub prp1: u64,
    /// `PRP2`: the second page when the buffer crosses a page boundary.
    pub prp2: u64,
}

/// Get Log Page fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetLogPage {
    /// `NSID`: [`super::NSID_ALL`] for controller-wide (global) pages.
    pub nsid: u32,
    /// `LID` (CDW10 7:0), raw.
    pub lid: u8,
    /// `RAE` (CDW10 15): Retain Asynchronous Event (do not clear the event that named the page).
    pub rae: bool,
    /// `NUMD`: dwords to return - 1, `NUMDU` (CDW11 15:0) : `NUMDL` (CDW10 31:16).
    pub numd: u32,
    /// `LPOU:LPOL` (CDW13:CDW12): byte offset into the log page, a multiple of 4. Nonzero
    /// offsets and `NUMD` above 0xffff need Identify Controller `LPA` bit 2.
    pub offset: u64,
    /// `PRP1`.
    pub prp1: u64,
    /// `PRP2`.
    pub prp2: u64,
}

impl GetLogPage {
    /// `NUMD` for a transfer of `len` bytes (a multiple of 4, at least 4).
    pub const fn numd_for_len(len: u32) -> u32 {
        (len / 4).saturating_sub(1)
    }

    /// Bytes the command transfers, `(NUMD + 1) * 4`.
    pub const fn len_bytes(&self) -> u64 {
        (self.numd as u64 + 1) * 4
    }
}

/// Set Features fields (for features whose value fits in CDW11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetFeatures {
    /// `NSID`, for namespace-specific features; otherwise 0 or [`super::NSID_ALL`].
    pub nsid: u32,
    /// `FID` (CDW10 7:0), raw.
    pub fid: u8,
    /// `SV` (CDW10 31): save the value across power cycles.
    pub sv: bool,
    /// CDW11: the feature value (see [`super::features`]).
    pub cdw11: u32,
}

/// Get Features fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetFeatures {
    /// `NSID`, for namespace-specific features.
    pub nsid: u32,
    /// `FID` (CDW10 7:0), raw.
    pub fid: u8,
    /// `SEL` (CDW10 10:8): 000b current, 001b default, 010b saved, 011b capabilities.
    pub sel: u8,
    /// CDW11: feature specific (for example the vector for Interrupt Vector Configuration).
    pub cdw11: u32,
}

/// An admin command in parsed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Delete I/O Submission Queue `QID` (CDW10 15:0).
    DeleteIoSq {
        /// The queue to delete.
        qid: u16,
    },
    /// Create I/O Submission Queue.
    CreateIoSq(CreateIoSq),
    /// Get Log Page.
    GetLogPage(GetLogPage),
    /// Delete I/O Completion Queue `QID` (CDW10 15:0).
    DeleteIoCq {
        /// The queue to delete.
        qid: u16,
    },
    /// Create I/O Completion Queue.
    CreateIoCq(CreateIoCq),
    /// Identify.
    Identify(Identify),
    /// Abort the command `cid` on submission queue `sqid`: `SQID` (CDW10 15:0), `CID`
    /// (CDW10 31:16). Completion DW0 bit 0 clear means the command was aborted.
    Abort {
        /// The submission queue of the command to abort.
        sqid: u16,
        /// The command to abort.
        cid: u16,
    },
    /// Set Features.
    SetFeatures(SetFeatures),
    /// Get Features (the value comes back in completion DW0).
    GetFeatures(GetFeatures),
    /// Asynchronous Event Request: completes when an event occurs (result in DW0, see
    /// [`super::log::AsyncEvent`]); it has no fields.
    AsyncEventRequest,
    /// Doorbell Buffer Config: `PRP1` is the Shadow Doorbell buffer and `PRP2` the EventIdx
    /// buffer, each one memory page, page aligned.
    DoorbellBufferConfig {
        /// Shadow Doorbell buffer address.
        shadow: u64,
        /// EventIdx buffer address.
        eventidx: u64,
    },
}

const fn lo16(v: u32) -> u16 {
    v as u16
}

const fn hi16(v: u32) -> u16 {
    (v >> 16) as u16
}

const fn pack16(hi: u16, lo: u16) -> u32 {
    ((hi as u32) << 16) | lo as u32
}

impl AdminCommand {
    /// The opcode of this command.
    pub const fn opcode(&self) -> AdminOpcode {
        match self {
            Self::DeleteIoSq { .. } => AdminOpcode::DeleteIoSq,
            Self::CreateIoSq(_) => AdminOpcode::CreateIoSq,
            Self::GetLogPage(_) => AdminOpcode::GetLogPage,
            Self::DeleteIoCq { .. } => AdminOpcode::DeleteIoCq,
            Self::CreateIoCq(_) => AdminOpcode::CreateIoCq,
            Self::Identify(_) => AdminOpcode::Identify,
            Self::Abort { .. } => AdminOpcode::Abort,
            Self::SetFeatures(_) => AdminOpcode::SetFeatures,
            Self::GetFeatures(_) => AdminOpcode::GetFeatures,
            Self::AsyncEventRequest => AdminOpcode::AsyncEventRequest,
            Self::DoorbellBufferConfig { .. } => AdminOpcode::DoorbellBufferConfig,
        }
    }

    /// The submission queue entry for this command, with `CID` 0.
    pub const fn encode(&self) -> SubmissionEntry {
        let mut e = SubmissionEntry::new(self.opcode() as u8);
        match *self {
            Self::DeleteIoSq { qid } | Self::DeleteIoCq { qid } => e.cdw10 = qid as u32,
            Self::CreateIoSq(c) => {
                e.prp1 = c.prp1;
                e.cdw10 = pack16(c.qsize, c.qid);
                e.cdw11 = pack16(c.cqid, 0) | ((c.qprio as u32 & 0x3) << 1) | c.pc as u32;
            }
            Self::GetLogPage(c) => {
                e.nsid = c.nsid;
                e.prp1 = c.prp1;
                e.prp2 = c.prp2;
                e.cdw10 = pack16(lo16(c.numd), 0) | ((c.rae as u32) << 15) | c.lid as u32;
                e.cdw11 = hi16(c.numd) as u32;
                e.cdw12 = c.offset as u32;
                e.cdw13 = (c.offset >> 32) as u32;
            }
            Self::CreateIoCq(c) => {
                e.prp1 = c.prp1;
                e.cdw10 = pack16(c.qsize, c.qid);
                e.cdw11 = pack16(c.iv, 0) | ((c.ien as u32) << 1) | c.pc as u32;
            }
            Self::Identify(c) => {
                e.nsid = c.nsid;
                e.prp1 = c.prp1;
                e.prp2 = c.prp2;
                e.cdw10 = pack16(c.cntid, 0) | c.cns as u32;
            }
            Self::Abort { sqid, cid } => e.cdw10 = pack16(cid, sqid),
            Self::SetFeatures(c) => {
                e.nsid = c.nsid;
                e.cdw10 = ((c.sv as u32) << 31) | c.fid as u32;
                e.cdw11 = c.cdw11;
            }
            Self::GetFeatures(c) => {
                e.nsid = c.nsid;
                e.cdw10 = ((c.sel as u32 & 0x7) << 8) | c.fid as u32;
                e.cdw11 = c.cdw11;
            }
            Self::AsyncEventRequest => {}
            Self::DoorbellBufferConfig { shadow, eventidx } => {
                e.prp1 = shadow;
                e.prp2 = eventidx;
            }
        }
        e
    }

    /// Parses an entry taken from the admin submission queue; `None` for an opcode not defined
    /// here. Reserved bits are ignored; range checks are the caller's.
    pub const fn decode(e: &SubmissionEntry) -> Option<Self> {
        let Some(opcode) = AdminOpcode::from_raw(e.opcode()) else {
            return None;
        };
        Some(match opcode {
            AdminOpcode::DeleteIoSq => Self::DeleteIoSq { qid: lo16(e.cdw10) },
            AdminOpcode::CreateIoSq => Self::CreateIoSq(CreateIoSq {
                qid: lo16(e.cdw10),
                qsize: hi16(e.cdw10),
                prp1: e.prp1,
                cqid: hi16(e.cdw11),
                qprio: ((e.cdw11 >> 1) & 0x3) as u8,
                pc: e.cdw11 & 1 != 0,
            }),
            AdminOpcode::GetLogPage => Self::GetLogPage(GetLogPage {
                nsid: e.nsid,
                lid: e.cdw10 as u8,
                rae: e.cdw10 & (1 << 15) != 0,
                numd: pack16(lo16(e.cdw11), hi16(e.cdw10)),
                offset: ((e.cdw13 as u64) << 32) | e.cdw12 as u64,
                prp1: e.prp1,
                prp2: e.prp2,
            }),
            AdminOpcode::DeleteIoCq => Self::DeleteIoCq { qid: lo16(e.cdw10) },
            AdminOpcode::CreateIoCq => Self::CreateIoCq(CreateIoCq {
                qid: lo16(e.cdw10),
                qsize: hi16(e.cdw10),
                prp1: e.prp1,
                iv: hi16(e.cdw11),
                ien: e.cdw11 & (1 << 1) != 0,
                pc: e.cdw11 & 1 != 0,
            }),
            AdminOpcode::Identify => Self::Identify(Identify {
                cns: e.cdw10 as u8,
                cntid: hi16(e.cdw10),
                nsid: e.nsid,
                prp1: e.prp1,
                prp2: e.prp2,
            }),
            AdminOpcode::Abort => Self::Abort {
                sqid: lo16(e.cdw10),
                cid: hi16(e.cdw10),
            },
            AdminOpcode::SetFeatures => Self::SetFeatures(SetFeatures {
                nsid: e.nsid,
                fid: e.cdw10 as u8,
                sv: e.cdw10 & (1 << 31) != 0,
                cdw11: e.cdw11,
            }),
            AdminOpcode::GetFeatures => Self::GetFeatures(GetFeatures {
                nsid: e.nsid,
                fid: e.cdw10 as u8,
                sel: ((e.cdw10 >> 8) & 0x7) as u8,
                cdw11: e.cdw11,
            }),
            AdminOpcode::AsyncEventRequest => Self::AsyncEventRequest,
            AdminOpcode::DoorbellBufferConfig => Self::DoorbellBufferConfig {
                shadow: e.prp1,
                eventidx: e.prp2,
            },
        })
    }
}

mod constructors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips() {
        let commands = [
            AdminCommand::DeleteIoSq { qid: 0xfffe },
            AdminCommand::CreateIoSq(CreateIoSq {
                qid: 1,
                qsize: 0xffff,
                prp1: u64::MAX,
                cqid: 0xffff,
                qprio: 3,
                pc: true,
            }),
            AdminCommand::GetLogPage(GetLogPage {
                nsid: 5,
                lid: 0xc0,
                rae: true,
                numd: u32::MAX,
                offset: u64::MAX - 3,
                prp1: 1,
                prp2: 2,
            }),
            AdminCommand::DeleteIoCq { qid: 1 },
            AdminCommand::CreateIoCq(CreateIoCq {
                qid: 0xffff,
                qsize: 1,
                prp1: 4096,
                iv: 0xffff,
                ien: true,
                pc: false,
            }),
            AdminCommand::Identify(Identify {
                cns: 0xff,
                cntid: 0xffff,
                nsid: u32::MAX,
                prp1: 3,
                prp2: 4,
            }),
            AdminCommand::Abort {
                sqid: 0xffff,
                cid: 0xfffe,
            },
            AdminCommand::SetFeatures(SetFeatures {
                nsid: 1,
                fid: 0xff,
                sv: true,
                cdw11: u32::MAX,
            }),
            AdminCommand::GetFeatures(GetFeatures {
                nsid: 1,
                fid: 0x80,
                sel: 3,
                cdw11: 7,
            }),
            AdminCommand::AsyncEventRequest,
            AdminCommand::DoorbellBufferConfig {
                shadow: 0x1000,
                eventidx: 0x2000,
            },
        ];
        for command in commands {
            let e = command.encode().with_cid(77);
            assert_eq!(e.opcode(), command.opcode() as u8);
            assert_eq!(AdminCommand::decode(&e), Some(command), "{command:?}");
        }
        assert_eq!(AdminCommand::decode(&SubmissionEntry::new(0x03)), None);
        assert_eq!(AdminCommand::decode(&SubmissionEntry::new(0xff)), None);
    }
}
