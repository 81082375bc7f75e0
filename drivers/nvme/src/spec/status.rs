//! The Status Field of a completion (Base 2.0 "Status Field Definition" and the status value
//! tables: "Generic Command Status Values", "Command Specific Status Values", "Media and Data
//! Integrity Errors", "Path Related Status"; NVM CS 1.0 for the NVM-specific values).
//!
//! In a completion queue entry the 15-bit Status Field is bits 31:17 of Dword 3, next to the
//! phase tag (bit 16). [`Status`] holds the field shifted down to bit 0:
//!
//! | bits | field |
//! |---|---|
//! | 7:0 | `SC`, Status Code |
//! | 10:8 | `SCT`, Status Code Type |
//! | 12:11 | `CRD`, Command Retry Delay |
//! | 13 | `M`, More (more status in the Error Information log page) |
//! | 14 | `DNR`, Do Not Retry |
//!
//! Status codes 80h..BFh of the generic and command specific types are I/O Command Set
//! specific; [`Status`]'s `Display` names them as the NVM Command Set defines them.

use std::fmt;

/// `SCT`, the Status Code Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCodeType {
    /// 0h: Generic Command Status.
    Generic,
    /// 1h: Command Specific Status.
    CommandSpecific,
    /// 2h: Media and Data Integrity Errors.
    MediaAndDataIntegrity,
    /// 3h: Path Related Status.
    Path,
    /// 7h: Vendor Specific.
    VendorSpecific,
    /// 4h..6h: reserved (as a device may report them).
    Reserved(u8),
}

impl StatusCodeType {
    /// Decodes the 3-bit `SCT` (higher bits are ignored).
    pub const fn from_raw(sct: u8) -> Self {
        match sct & 0x7 {
            0 => Self::Generic,
            1 => Self::CommandSpecific,
            2 => Self::MediaAndDataIntegrity,
            3 => Self::Path,
            7 => Self::VendorSpecific,
            other => Self::Reserved(other),
        }
    }

    /// The 3-bit encoding.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Generic => 0,
            Self::CommandSpecific => 1,
            Self::MediaAndDataIntegrity => 2,
            Self::Path => 3,
            Self::VendorSpecific => 7,
            Self::Reserved(other) => other & 0x7,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Generic => "Generic Command Status",
            Self::CommandSpecific => "Command Specific Status",
            Self::MediaAndDataIntegrity => "Media and Data Integrity Error",
            Self::Path => "Path Related Status",
            Self::VendorSpecific => "Vendor Specific Status",
            Self::Reserved(_) => "Reserved Status Code Type",
        }
    }
}

/// The 15-bit Status Field of a completion queue entry. `Display` decodes it by name.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Status(u16);

const FIELD_MASK: u16 = 0x7fff;
const CODE_MASK: u16 = 0x07ff;
const CRD_SHIFT: u16 = 11;
const MORE: u16 = 1 << 13;
const DNR: u16 = 1 << 14;

impl Status {
    /// Successful Completion.
    pub const SUCCESS: Status = Status::generic(0x00);
    /// Invalid Command Opcode.
    pub const INVALID_OPCODE: Status = Status::generic(0x01);
    /// Invalid Field in Command.
    pub const INVALID_FIELD: Status = Status::generic(0x02);
    /// Command ID Conflict.
    pub const COMMAND_ID_CONFLICT: Status = Status::generic(0x03);
    /// Data Transfer Error (for example a DMA fault on a data buffer).
    pub const DATA_TRANSFER_ERROR: Status = Status::generic(0x04);
    /// Internal Error.
    pub const INTERNAL_ERROR: Status = Status::generic(0x06);
    /// Command Abort Requested (the command was aborted by an Abort command).
    pub const ABORT_REQUESTED: Status = Status::generic(0x07);
    /// Command Aborted due to SQ Deletion.
    pub const ABORTED_SQ_DELETION: Status = Status::generic(0x08);
    /// Invalid Namespace or Format.
    pub const INVALID_NAMESPACE_OR_FORMAT: Status = Status::generic(0x0b);
    /// Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: Status = Status::generic(0x0c);
    /// PRP Offset Invalid.
    pub const PRP_OFFSET_INVALID: Status = Status::generic(0x13);
    /// LBA Out of Range (NVM Command Set).
    pub const LBA_OUT_OF_RANGE: Status = Status::generic(0x80);
    /// Capacity Exceeded (NVM Command Set).
    pub const CAPACITY_EXCEEDED: Status = Status::generic(0x81);
    /// Namespace Not Ready (NVM Command Set).
    pub const NAMESPACE_NOT_READY: Status = Status::generic(0x82);
    /// Completion Queue Invalid (Create I/O Submission Queue).
    pub const COMPLETION_QUEUE_INVALID: Status = Status::command_specific(0x00);
    /// Invalid Queue Identifier (create or delete queue).
    pub const INVALID_QUEUE_IDENTIFIER: Status = Status::command_specific(0x01);
    /// Invalid Queue Size (create queue).
    pub const INVALID_QUEUE_SIZE: Status = Status::command_specific(0x02);
    /// Abort Command Limit Exceeded.
    pub const ABORT_COMMAND_LIMIT_EXCEEDED: Status = Status::command_specific(0x03);
    /// Asynchronous Event Request Limit Exceeded.
    pub const ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED: Status = Status::command_specific(0x05);
    /// Invalid Interrupt Vector (Create I/O Completion Queue).
    pub const INVALID_INTERRUPT_VECTOR: Status = Status::command_specific(0x08);
    /// Invalid Log Page (Get Log Page).
    pub const INVALID_LOG_PAGE: Status = Status::command_specific(0x09);
    /// Invalid Queue Deletion (Delete I/O Completion Queue with SQs still attached).
    pub const INVALID_QUEUE_DELETION: Status = Status::command_specific(0x0c);
    /// Feature Identifier Not Saveable (Set Features with SV).
    pub const FEATURE_NOT_SAVEABLE: Status = Status::command_specific(0x0d);
    /// Write Fault.
    pub const WRITE_FAULT: Status = Status::media(0x80);
    /// Unrecovered Read Error.
    pub const UNRECOVERED_READ_ERROR: Status = Status::media(0x81);
    /// Access Denied.
    pub const ACCESS_DENIED: Status = Status::media(0x86);
    /// Deallocated or Unwritten Logical Block.
    pub const DEALLOCATED_OR_UNWRITTEN: Status = Status::media(0x87);
    /// Internal Path Error.
    pub const INTERNAL_PATH_ERROR: Status = Status::new(StatusCodeType::Path, 0x00);

    /// The status `sct`/`sc`, with CRD, More and DNR clear.
    pub const fn new(sct: StatusCodeType, sc: u8) -> Self {
        Status(((sct.raw() as u16) << 8) | sc as u16)
    }

    const fn generic(sc: u8) -> Self {
        Self::new(StatusCodeType::Generic, sc)
    }

    const fn command_specific(sc: u8) -> Self {
        Self::new(StatusCodeType::CommandSpecific, sc)
    }

    const fn media(sc: u8) -> Self {
        Self::new(StatusCodeType::MediaAndDataIntegrity, sc)
    }

    /// From the 15-bit field (bit 15 is ignored).
    pub const fn from_field(field: u16) -> Self {
        Status(field & FIELD_MASK)
    }

    /// The 15-bit field, as it goes into bits 31:17 of completion Dword 3.
    pub const fn field(self) -> u16 {
        self.0
    }

    /// `SC`, the Status Code.
    pub const fn sc(self) -> u8 {
        self.0 as u8
    }

    /// `SCT`, the Status Code Type.
    pub const fn sct(self) -> StatusCodeType {
        StatusCodeType::from_raw((self.0 >> 8) as u8)
    }

    /// `CRD`, Command Retry Delay: 0 for none, else which of Identify Controller `CRDT1..3`
    /// applies before a retry.
    pub const fn crd(self) -> u8 {
        ((self.0 >> CRD_SHIFT) & 0x3) as u8
    }

    /// `M`, More: the Error Information log page has more about this error.
    pub const fn more(self) -> bool {
        self.0 & MORE != 0
    }

    /// `DNR`, Do Not Retry: the same command would fail again.
    pub const fn dnr(self) -> bool {
        self.0 & DNR != 0
    }

    /// The status with only `SCT` and `SC`, for comparing against the constants:
    /// `status.code() == Status::LBA_OUT_OF_RANGE`.
    pub const fn code(self) -> Self {
        Status(self.0 & CODE_MASK)
    }

    /// True for Successful Completion (whatever the CRD, More and DNR bits say).
    pub const fn is_success(self) -> bool {
        self.0 & CODE_MASK == 0
    }

    /// A copy with `DNR` set.
    #[must_use]
    pub const fn with_dnr(self) -> Self {
        Status(self.0 | DNR)
    }

    /// A copy with `M` (More) set.
    #[must_use]
    pub const fn with_more(self) -> Self {
        Status(self.0 | MORE)
    }

    /// A copy with `CRD` set to `crd` (0..=3; higher bits are masked).
    #[must_use]
    pub const fn with_crd(self, crd: u8) -> Self {
        Status((self.0 & !(0x3 << CRD_SHIFT)) | (((crd & 0x3) as u16) << CRD_SHIFT))
    }

    /// The specification's name for this status, if it has one.
    pub fn name(self) -> Option<&'static str> {
        let sc = self.sc();
        match self.sct() {
            StatusCodeType::Generic => generic_name(sc),
            StatusCodeType::CommandSpecific => command_specific_name(sc),
            StatusCodeType::MediaAndDataIntegrity => media_name(sc),
            StatusCodeType::Path => path_name(sc),
            StatusCodeType::VendorSpecific | StatusCodeType::Reserved(_) => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sct = self.sct();
        match self.name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "Unrecognized {}", sct.name())?,
        }
        write!(f, " (SCT {:#x}, SC {:#04x}", sct.raw(), self.sc())?;
        if self.crd() != 0 {
            write!(f, ", CRD {}", self.crd())?;
        }
        if self.more() {
            f.write_str(", More")?;
        }
        if self.dnr() {
            f.write_str(", DNR")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({:#06x}: {self})", self.0)
    }
}

fn generic_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x00 => "Successful Completion",
        0x01 => "Invalid Command Opcode",
        0x02 => "Invalid Field in Command",
        0x03 => "Command ID Conflict",
        0x04 => "Data Transfer Error",
        0x05 => "Commands Aborted due to Power Loss Notification",
        0x06 => "Internal Error",
        0x07 => "Command Abort Requested",
        0x08 => "Command Aborted due to SQ Deletion",
        0x09 => "Command Aborted due to Failed Fused Command",
        0x0a => "Command Aborted due to Missing Fused Command",
        0x0b => "Invalid Namespace or Format",
        0x0c => "Command Sequence Error",
        0x0d => "Invalid SGL Segment Descriptor",
        0x0e => "Invalid Number of SGL Descriptors",
        0x0f => "Data SGL Length Invalid",
        0x10 => "Metadata SGL Length Invalid",
        0x11 => "SGL Descriptor Type Invalid",
        0x12 => "Invalid Use of Controller Memory Buffer",
        0x13 => "PRP Offset Invalid",
        0x14 => "Atomic Write Unit Exceeded",
        0x15 => "Operation Denied",
        0x16 => "SGL Offset Invalid",
        0x18 => "Host Identifier Inconsistent Format",
        0x19 => "Keep Alive Timer Expired",
        0x1a => "Keep Alive Timeout Invalid",
        0x1b => "Command Aborted due to Preempt and Abort",
        0x1c => "Sanitize Failed",
        0x1d => "Sanitize In Progress",
        0x1e => "SGL Data Block Granularity Invalid",
        0x1f => "Command Not Supported for Queue in CMB",
        0x20 => "Namespace is Write Protected",
        0x21 => "Command Interrupted",
        0x22 => "Transient Transport Error",
        0x23 => "Command Prohibited by Command and Feature Lockdown",
        0x24 => "Admin Command Media Not Ready",
        // NVM Command Set specific.
        0x80 => "LBA Out of Range",
        0x81 => "Capacity Exceeded",
        0x82 => "Namespace Not Ready",
        0x83 => "Reservation Conflict",
        0x84 => "Format In Progress",
        _ => return None,
    })
}

fn command_specific_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x00 => "Completion Queue Invalid",
        0x01 => "Invalid Queue Identifier",
        0x02 => "Invalid Queue Size",
        0x03 => "Abort Command Limit Exceeded",
        0x05 => "Asynchronous Event Request Limit Exceeded",
        0x06 => "Invalid Firmware Slot",
        0x07 => "Invalid Firmware Image",
        0x08 => "Invalid Interrupt Vector",
        0x09 => "Invalid Log Page",
        0x0a => "Invalid Format",
        0x0b => "Firmware Activation Requires Conventional Reset",
        0x0c => "Invalid Queue Deletion",
        0x0d => "Feature Identifier Not Saveable",
        0x0e => "Feature Not Changeable",
        0x0f => "Feature Not Namespace Specific",
        0x10 => "Firmware Activation Requires NVM Subsystem Reset",
        0x11 => "Firmware Activation Requires Controller Level Reset",
        0x12 => "Firmware Activation Requires Maximum Time Violation",
        0x13 => "Firmware Activation Prohibited",
        0x14 => "Overlapping Range",
        0x15 => "Namespace Insufficient Capacity",
        0x16 => "Namespace Identifier Unavailable",
        0x18 => "Namespace Already Attached",
        0x19 => "Namespace Is Private",
        0x1a => "Namespace Not Attached",
        0x1b => "Thin Provisioning Not Supported",
        0x1c => "Controller List Invalid",
        0x1d => "Device Self-test In Progress",
        0x1e => "Boot Partition Write Prohibited",
        0x1f => "Invalid Controller Identifier",
        0x20 => "Invalid Secondary Controller State",
        0x21 => "Invalid Number of Controller Resources",
        0x22 => "Invalid Resource Identifier",
        0x23 => "Sanitize Prohibited While Persistent Memory Region is Enabled",
        0x24 => "ANA Group Identifier Invalid",
        0x25 => "ANA Attach Failed",
        0x26 => "Insufficient Capacity",
        0x27 => "Namespace Attachment Limit Exceeded",
        0x28 => "Prohibition of Command Execution Not Supported",
        0x29 => "I/O Command Set Not Supported",
        0x2a => "I/O Command Set Not Enabled",
        0x2b => "I/O Command Set Combination Rejected",
        0x2c => "Invalid I/O Command Set",
        0x2d => "Identifier Unavailable",
        // NVM Command Set specific.
        0x80 => "Conflicting Attributes",
        0x81 => "Invalid Protection Information",
        0x82 => "Attempted Write to Read Only Range",
        0x83 => "Command Size Limit Exceeded",
        _ => return None,
    })
}

fn media_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x80 => "Write Fault",
        0x81 => "Unrecovered Read Error",
        0x82 => "End-to-end Guard Check Error",
        0x83 => "End-to-end Application Tag Check Error",
        0x84 => "End-to-end Reference Tag Check Error",
        0x85 => "Compare Failure",
        0x86 => "Access Denied",
        0x87 => "Deallocated or Unwritten Logical Block",
        0x88 => "End-to-End Storage Tag Check Error",
        _ => return None,
    })
}

fn path_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x00 => "Internal Path Error",
        0x01 => "Asymmetric Access Persistent Loss",
        0x02 => "Asymmetric Access Inaccessible",
        0x03 => "Asymmetric Access Transition",
        0x60 => "Controller Pathing Error",
        0x70 => "Host Pathing Error",
        0x71 => "Command Aborted By Host",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_extracted() {
        // DNR 1, More 1, CRD 01b, SCT 010b, SC 81h.
        let s = Status::from_field((1 << 14) | (1 << 13) | (0b01 << 11) | (0b010 << 8) | 0x81);
        assert_eq!(s.field(), 0x6a81);
        assert_eq!(s.sc(), 0x81);
        assert_eq!(s.sct(), StatusCodeType::MediaAndDataIntegrity);
        assert_eq!(s.crd(), 1);
        assert!(s.more());
        assert!(s.dnr());
        assert!(!s.is_success());
        assert_eq!(s.code(), Status::UNRECOVERED_READ_ERROR);
        // Bit 15 is not part of the field.
        assert_eq!(Status::from_field(0x8000), Status::SUCCESS);
        assert!(Status::from_field(0x8000).is_success());
        // DNR or More on a success code is still a success.
        assert!(Status::SUCCESS.with_dnr().is_success());
    }

    #[test]
    fn constructors_build_the_field() {
        assert_eq!(Status::INVALID_FIELD.with_dnr().field(), 0x4002);
        assert_eq!(Status::INVALID_QUEUE_SIZE.field(), 0x0102);
        assert_eq!(Status::ACCESS_DENIED.field(), 0x0286);
        assert_eq!(Status::INTERNAL_PATH_ERROR.field(), 0x0300);
        assert_eq!(
            Status::new(StatusCodeType::VendorSpecific, 0xc0).field(),
            0x07c0
        );
        assert_eq!(Status::SUCCESS.with_more().field(), 0x2000);
        assert_eq!(Status::SUCCESS.with_crd(3).field(), 0x1800);
        assert_eq!(Status::SUCCESS.with_crd(3).with_crd(1).crd(), 1);
    }

    #[test]
    fn sct_round_trips() {
        for raw in 0..8 {
            assert_eq!(StatusCodeType::from_raw(raw).raw(), raw);
        }
        assert_eq!(StatusCodeType::from_raw(5), StatusCodeType::Reserved(5));
        assert_eq!(StatusCodeType::from_raw(7), StatusCodeType::VendorSpecific);
    }

    #[test]
    fn display_names_codes() {
        assert_eq!(
            Status::SUCCESS.to_string(),
            "Successful Completion (SCT 0x0, SC 0x00)"
        );
        assert_eq!(
            Status::INVALID_FIELD.with_dnr().to_string(),
            "Invalid Field in Command (SCT 0x0, SC 0x02, DNR)"
        );
        assert_eq!(
            Status::LBA_OUT_OF_RANGE.with_dnr().to_string(),
            "LBA Out of Range (SCT 0x0, SC 0x80, DNR)"
        );
        assert_eq!(
            Status::INVALID_QUEUE_IDENTIFIER.to_string(),
            "Invalid Queue Identifier (SCT 0x1, SC 0x01)"
        );
        assert_eq!(
            Status::ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED.to_string(),
            "Asynchronous Event Request Limit Exceeded (SCT 0x1, SC 0x05)"
        );
        assert_eq!(
            Status::DEALLOCATED_OR_UNWRITTEN.to_string(),
            "Deallocated or Unwritten Logical Block (SCT 0x2, SC 0x87)"
        );
        assert_eq!(
            Status::new(StatusCodeType::MediaAndDataIntegrity, 0x85)
                .with_more()
                .with_crd(2)
                .to_string(),
            "Compare Failure (SCT 0x2, SC 0x85, CRD 2, More)"
        );
        assert_eq!(
            Status::INTERNAL_PATH_ERROR.to_string(),
            "Internal Path Error (SCT 0x3, SC 0x00)"
        );
        assert_eq!(
            Status::new(StatusCodeType::VendorSpecific, 0x12).to_string(),
            "Unrecognized Vendor Specific Status (SCT 0x7, SC 0x12)"
        );
        assert_eq!(
            Status::from_field(0x007f).to_string(),
            "Unrecognized Generic Command Status (SCT 0x0, SC 0x7f)"
        );
        assert_eq!(
            Status::from_field(0x0401).to_string(),
            "Unrecognized Reserved Status Code Type (SCT 0x4, SC 0x01)"
        );
        assert_eq!(
            format!("{:?}", Status::DATA_TRANSFER_ERROR),
            "Status(0x0004: Data Transfer Error (SCT 0x0, SC 0x04))"
        );
    }

    #[test]
    fn every_named_code_has_a_distinct_name_within_its_type() {
        for sct in [0u8, 1, 2, 3] {
            let mut names = std::collections::HashSet::new();
            for sc in 0..=255u8 {
                let status = Status::new(StatusCodeType::from_raw(sct), sc);
                if let Some(name) = status.name() {
                    assert!(names.insert(name), "{name} twice in SCT {sct}");
                }
            }
            assert!(!names.is_empty());
        }
    }
}
