//! Identify (Base 2.0 "Identify command", "Identify Controller Data Structure"): the CNS
//! values, the Identify Controller data structure and the Active Namespace ID list.
//!
//! The data structures are 4096-byte [`Pod`] types: the fields the driver or model use are
//! named and public at their specification offsets (checked at compile time), and the bytes
//! between them are private. Build one for the model with [`Zeroable::zeroed`] and the setters.

use std::fmt;
use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};

use super::registers::Vs;
use super::{read_padded, write_padded, IDENTIFY_DATA_SIZE};

/// `CNS`, Controller or Namespace Structure: which data Identify returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cns {
    /// 00h: Identify Namespace ([`super::IdentifyNamespace`]) for `NSID`.
    Namespace = 0x00,
    /// 01h: Identify Controller ([`IdentifyController`]).
    Controller = 0x01,
    /// 02h: Active Namespace ID list ([`ActiveNamespaceList`]) of NSIDs greater than `NSID`.
    ActiveNamespaceList = 0x02,
}

impl Cns {
    /// The CNS for `raw`, or `None` for one not defined here (the model answers Invalid Field
    /// in Command).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0x00 => Self::Namespace,
            0x01 => Self::Controller,
            0x02 => Self::ActiveNamespaceList,
            _ => return None,
        })
    }
}

/// Identify Controller data structure (CNS 01h), 4096 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct IdentifyController {
    /// `VID` (1:0): PCI Vendor ID.
    pub vid: u16,
    /// `SSVID` (3:2): PCI Subsystem Vendor ID.
    pub ssvid: u16,
    /// `SN` (23:4): Serial Number, ASCII, space padded ([`IdentifyController::serial`]).
    pub sn: [u8; 20],
    /// `MN` (63:24): Model Number, ASCII, space padded.
    pub mn: [u8; 40],
    /// `FR` (71:64): Firmware Revision, ASCII, space padded.
    pub fr: [u8; 8],
    /// `RAB` (72): Recommended Arbitration Burst, `2 ^ RAB` commands.
    pub rab: u8,
    /// `IEEE` (75:73): IEEE OUI, least significant byte first.
    pub ieee: [u8; 3],
    /// `CMIC` (76): Controller Multi-Path I/O and Namespace Sharing Capabilities.
    pub cmic: u8,
    /// `MDTS` (77): Maximum Data Transfer Size, `2 ^ MDTS` units of `CAP.MPSMIN`; 0 for no limit.
    pub mdts: u8,
    /// `CNTLID` (79:78): Controller ID.
    pub cntlid: u16,
    /// `VER` (83:80): the version, encoded as the `VS` register ([`IdentifyController::version`]).
    pub ver: u32,
    /// `RTD3R` (87:84): RTD3 Resume Latency, microseconds (0: not reported).
    pub rtd3r: u32,
    /// `RTD3E` (91:88): RTD3 Entry Latency, microseconds: the typical time from `CC.SHN` = 01b
    /// to `CSTS.SHST` = 10b (0: not reported).
    pub rtd3e: u32,
    /// `OAES` (95:92): Optional Asynchronous Events Supported.
    pub oaes: u32,
    _bytes96: [u8; 160],
    /// `OACS` (257:256): Optional Admin Command Support (`OACS_*`).
    pub oacs: u16,
    /// `ACL` (258): Abort Command Limit, zero-based.
    pub acl: u8,
    /// `AERL` (259): Asynchronous Event Request Limit, zero-based.
    pub aerl: u8,
    _bytes260: [u8; 1],
    /// `LPA` (261): Log Page Attributes (bit 2: Get Log Page extended data, `NUMDU` and the
    /// offset, see [`IdentifyController::LPA_EXTENDED_DATA`]).
    pub lpa: u8,
    /// `ELPE` (262): Error Log Page Entries, zero-based.
    pub elpe: u8,
    _bytes263: [u8; 3],
    /// `WCTEMP` (267:266): Warning Composite Temperature Threshold, kelvins (0: not reported).
    pub wctemp: u16,
    /// `CCTEMP` (269:268): Critical Composite Temperature Threshold, kelvins (0: not reported).
    pub cctemp: u16,
    _bytes270: [u8; 242],
    /// `SQES` (512): Submission Queue Entry Size, required (3:0) and maximum (7:4), `2 ^ n` bytes.
    pub sqes: u8,
    /// `CQES` (513): Completion Queue Entry Size, required (3:0) and maximum (7:4).
    pub cqes: u8,
    /// `MAXCMD` (515:514): Maximum Outstanding Commands (required for fabrics; may be 0 on
    /// PCIe).
    pub maxcmd: u16,
    /// `NN` (519:516): Number of Namespaces, the largest valid NSID.
    pub nn: u32,
    /// `ONCS` (521:520): Optional NVM Command Support (`ONCS_*`).
    pub oncs: u16,
    _bytes522: [u8; 3],
    /// `VWC` (525): Volatile Write Cache: bit 0 present, bits 2:1 Flush with broadcast NSID.
    pub vwc: u8,
    _bytes526: [u8; 10],
    /// `SGLS` (539:536): SGL Support; bits 1:0 zero when SGLs are not supported.
    pub sgls: u32,
    _bytes540: [u8; 228],
    /// `SUBNQN` (1023:768): NVM Subsystem NVMe Qualified Name, UTF-8, NUL padded.
    pub subnqn: [u8; 256],
    _bytes1024: [u8; 3072],
}
const _: () = assert!(size_of::<IdentifyController>() == IDENTIFY_DATA_SIZE);
const _: () = {
    assert!(offset_of!(IdentifyController, ssvid) == 2);
    assert!(offset_of!(IdentifyController, sn) == 4);
    assert!(offset_of!(IdentifyController, mn) == 24);
    assert!(offset_of!(IdentifyController, fr) == 64);
    assert!(offset_of!(IdentifyController, rab) == 72);
    assert!(offset_of!(IdentifyController, ieee) == 73);
    assert!(offset_of!(IdentifyController, cmic) == 76);
    assert!(offset_of!(IdentifyController, mdts) == 77);
    assert!(offset_of!(IdentifyController, cntlid) == 78);
    assert!(offset_of!(IdentifyController, ver) == 80);
    assert!(offset_of!(IdentifyController, rtd3r) == 84);
    assert!(offset_of!(IdentifyController, rtd3e) == 88);
    assert!(offset_of!(IdentifyController, oaes) == 92);
    assert!(offset_of!(IdentifyController, oacs) == 256);
    assert!(offset_of!(IdentifyController, acl) == 258);
    assert!(offset_of!(IdentifyController, aerl) == 259);
    assert!(offset_of!(IdentifyController, lpa) == 261);
    assert!(offset_of!(IdentifyController, elpe) == 262);
    assert!(offset_of!(IdentifyController, wctemp) == 266);
    assert!(offset_of!(IdentifyController, cctemp) == 268);
    assert!(offset_of!(IdentifyController, sqes) == 512);
    assert!(offset_of!(IdentifyController, cqes) == 513);
    assert!(offset_of!(IdentifyController, maxcmd) == 514);
    assert!(offset_of!(IdentifyController, nn) == 516);
    assert!(offset_of!(IdentifyController, oncs) == 520);
    assert!(offset_of!(IdentifyController, vwc) == 525);
    assert!(offset_of!(IdentifyController, sgls) == 536);
    assert!(offset_of!(IdentifyController, subnqn) == 768);
};

impl IdentifyController {
    /// `OACS` bit 8: Doorbell Buffer Config supported.
    pub const OACS_DOORBELL_BUFFER_CONFIG: u16 = 1 << 8;
    /// `LPA` bit 2: Get Log Page supports extended data (`NUMDU` and a nonzero offset);
    /// without it a read is at most 65536 dwords from offset 0.
    pub const LPA_EXTENDED_DATA: u8 = 1 << 2;
    /// `ONCS` bit 2: Dataset Management supported.
    pub const ONCS_DATASET_MANAGEMENT: u16 = 1 << 2;
    /// `ONCS` bit 3: Write Zeroes supported.
    pub const ONCS_WRITE_ZEROES: u16 = 1 << 3;
    /// `VWC` bit 0: a volatile write cache is present (Flush is meaningful).
    pub const VWC_PRESENT: u8 = 1 << 0;

    /// Serial number, trailing padding removed.
    pub fn serial(&self) -> String {
        read_padded(&self.sn)
    }

    /// Model number, trailing padding removed.
    pub fn model(&self) -> String {
        read_padded(&self.mn)
    }

    /// Firmware revision, trailing padding removed.
    pub fn firmware(&self) -> String {
        read_padded(&self.fr)
    }

    /// NVM Subsystem NQN, trailing padding removed.
    pub fn subsystem_nqn(&self) -> String {
        read_padded(&self.subnqn)
    }

    /// `MDTS`, raw: `2 ^ MDTS` units of the minimum memory page size, 0 for no limit.
    pub const fn mdts(&self) -> u8 {
        self.mdts
    }

    /// `VER` as a version.
    pub const fn version(&self) -> Vs {
        Vs(self.ver)
    }

    /// `SQES` bits 3:0, the required submission queue entry size as `log2(bytes)`.
    pub const fn sqes_min(&self) -> u8 {
        self.sqes & 0xf
    }

    /// `SQES` bits 7:4, the maximum submission queue entry size as `log2(bytes)`.
    pub const fn sqes_max(&self) -> u8 {
        self.sqes >> 4
    }

    /// `CQES` bits 3:0, the required completion queue entry size as `log2(bytes)`.
    pub const fn cqes_min(&self) -> u8 {
        self.cqes & 0xf
    }

    /// `CQES` bits 7:4, the maximum completion queue entry size as `log2(bytes)`.
    pub const fn cqes_max(&self) -> u8 {
        self.cqes >> 4
    }

    /// Doorbell Buffer Config is supported (`OACS` bit 8).
    pub const fn supports_doorbell_buffer_config(&self) -> bool {
        self.oacs & Self::OACS_DOORBELL_BUFFER_CONFIG != 0
    }

    /// Dataset Management is supported (`ONCS` bit 2).
    pub const fn supports_dataset_management(&self) -> bool {
        self.oncs & Self::ONCS_DATASET_MANAGEMENT != 0
    }

    /// Write Zeroes is supported (`ONCS` bit 3).
    pub const fn supports_write_zeroes(&self) -> bool {
        self.oncs & Self::ONCS_WRITE_ZEROES != 0
    }

    /// A volatile write cache is present (`VWC` bit 0).
    pub const fn has_volatile_write_cache(&self) -> bool {
        self.vwc & Self::VWC_PRESENT != 0
    }

    /// Sets `SN`: at most 20 bytes are kept, the rest is space padded.
    pub fn set_serial(&mut self, serial: &str) {
        write_padded(&mut self.sn, serial, b' ');
    }

    /// Sets `MN`: at most 40 bytes, space padded.
    pub fn set_model(&mut self, model: &str) {
        write_padded(&mut self.mn, model, b' ');
    }

    /// Sets `FR`: at most 8 bytes, space padded.
    pub fn set_firmware(&mut self, firmware: &str) {
        write_padded(&mut self.fr, firmware, b' ');
    }

    /// Sets `SUBNQN`: at most 255 bytes (one NUL remains), NUL padded.
    pub fn set_subsystem_nqn(&mut self, nqn: &str) {
        write_padded(&mut self.subnqn[..255], nqn, 0);
        self.subnqn[255] = 0;
    }
}

impl fmt::Debug for IdentifyController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentifyController")
            .field("vid", &format_args!("{:#06x}", self.vid))
            .field("ssvid", &format_args!("{:#06x}", self.ssvid))
            .field("sn", &self.serial())
            .field("mn", &self.model())
            .field("fr", &self.firmware())
            .field("mdts", &self.mdts)
            .field("cntlid", &self.cntlid)
            .field("ver", &self.version().to_string())
            .field("oacs", &format_args!("{:#x}", self.oacs))
            .field("acl", &self.acl)
            .field("aerl", &self.aerl)
            .field("elpe", &self.elpe)
            .field("sqes", &format_args!("{:#x}", self.sqes))
            .field("cqes", &format_args!("{:#x}", self.cqes))
            .field("nn", &self.nn)
            .field("oncs", &format_args!("{:#x}", self.oncs))
            .field("vwc", &format_args!("{:#x}", self.vwc))
            .field("subnqn", &self.subsystem_nqn())
            .finish_non_exhaustive()
    }
}

/// Active Namespace ID list (CNS 02h): up to 1024 active NSIDs greater than the command's
/// `NSID`, in increasing order, ending at the first zero entry.
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct ActiveNamespaceList {
    /// The entries, zero after the last NSID.
    pub ids: [u32; 1024],
}
const _: () = assert!(size_of::<ActiveNamespaceList>() == IDENTIFY_DATA_SIZE);

impl ActiveNamespaceList {
    /// A list of `ids` (at most 1024 are kept; the caller gives them in increasing order).
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Self {
        let mut list: Self = Zeroable::zeroed();
        for (slot, id) in list.ids.iter_mut().zip(ids) {
            *slot = id;
        }
        list
    }

    /// The NSIDs up to the first zero entry, as listed (ordering is the driver's to check).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.iter().copied().take_while(|&id| id != 0)
    }
}

impl fmt::Debug for ActiveNamespaceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cns_values() {
        assert_eq!(Cns::Namespace as u8, 0x00);
        assert_eq!(Cns::Controller as u8, 0x01);
        assert_eq!(Cns::ActiveNamespaceList as u8, 0x02);
        assert_eq!(Cns::from_raw(0x01), Some(Cns::Controller));
        assert_eq!(Cns::from_raw(0x03), None);
    }

    #[test]
    fn controller_fields_land_at_spec_offsets() {
        let mut id: IdentifyController = Zeroable::zeroed();
        id.vid = 0x1b36;
        id.ssvid = 0x1af4;
        id.set_serial("deadbeef");
        id.set_model("QEMU NVMe Ctrl");
        id.set_firmware("9.2.0");
        id.ieee = [0x00, 0x54, 0x52];
        id.mdts = 7;
        id.cntlid = 0x0102;
        id.ver = Vs::new(1, 4, 0).0;
        id.oacs = IdentifyController::OACS_DOORBELL_BUFFER_CONFIG;
        id.acl = 3;
        id.aerl = 3;
        id.elpe = 3;
        id.sqes = 0x66;
        id.cqes = 0x44;
        id.nn = 256;
        id.oncs =
            IdentifyController::ONCS_DATASET_MANAGEMENT | IdentifyController::ONCS_WRITE_ZEROES;
        id.vwc = IdentifyController::VWC_PRESENT;
        id.sgls = 0x0010_0001;
        id.set_subsystem_nqn("nqn.2019-08.org.qemu:deadbeef");

        let b = bytemuck::bytes_of(&id);
        assert_eq!(&b[0..4], &[0x36, 0x1b, 0xf4, 0x1a]);
        assert_eq!(&b[4..24], b"deadbeef            ");
        assert_eq!(&b[24..38], b"QEMU NVMe Ctrl");
        assert_eq!(b[63], b' ');
        assert_eq!(&b[64..72], b"9.2.0   ");
        assert_eq!(&b[73..76], &[0x00, 0x54, 0x52]);
        assert_eq!(b[77], 7);
        assert_eq!(&b[78..80], &[0x02, 0x01]);
        assert_eq!(&b[80..84], &[0x00, 0x04, 0x01, 0x00]);
        assert_eq!(&b[256..258], &[0x00, 0x01]);
        assert_eq!((b[258], b[259], b[262]), (3, 3, 3));
        assert_eq!((b[512], b[513]), (0x66, 0x44));
        assert_eq!(&b[516..520], &[0x00, 0x01, 0x00, 0x00]);
        assert_eq!(&b[520..522], &[0x0c, 0x00]);
        assert_eq!(b[525], 0x01);
        assert_eq!(&b[536..540], &[0x01, 0x00, 0x10, 0x00]);
        assert_eq!(&b[768..775], b"nqn.201");
        assert_eq!(b[768 + 29], 0);
        // Everything not set is still zero.
        assert!(b[84..256].iter().all(|&x| x == 0));
        assert!(b[1024..].iter().all(|&x| x == 0));

        let back: IdentifyController = bytemuck::pod_read_unaligned(b);
        assert_eq!(back.serial(), "deadbeef");
        assert_eq!(back.model(), "QEMU NVMe Ctrl");
        assert_eq!(back.firmware(), "9.2.0");
        assert_eq!(back.subsystem_nqn(), "nqn.2019-08.org.qemu:deadbeef");
        assert_eq!(back.mdts(), 7);
        assert_eq!(back.version().to_string(), "1.4.0");
        assert_eq!((back.sqes_min(), back.sqes_max()), (6, 6));
        assert_eq!((back.cqes_min(), back.cqes_max()), (4, 4));
        assert!(back.supports_doorbell_buffer_config());
        assert!(back.supports_dataset_management() && back.supports_write_zeroes());
        assert!(back.has_volatile_write_cache());
        assert!(format!("{back:?}").contains("sn: \"deadbeef\""));
    }

    #[test]
    fn long_strings_are_truncated() {
        let mut id: IdentifyController = Zeroable::zeroed();
        id.set_serial("0123456789abcdefghijKLMN");
        assert_eq!(id.serial(), "0123456789abcdefghij");
        id.set_subsystem_nqn(&"x".repeat(300));
        assert_eq!(id.subsystem_nqn().len(), 255);
        assert_eq!(id.subnqn[255], 0);
    }

    #[test]
    fn active_namespace_list() {
        let list = ActiveNamespaceList::from_ids([1, 2, 5]);
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![1, 2, 5]);
        let b = bytemuck::bytes_of(&list);
        assert_eq!(&b[0..12], &[1, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0]);
        assert!(b[12..].iter().all(|&x| x == 0));
        let mut raw = [0u8; 4096];
        raw[0] = 7;
        raw[8] = 9; // after the terminating zero: not listed
        let parsed: ActiveNamespaceList = bytemuck::pod_read_unaligned(&raw);
        assert_eq!(parsed.iter().collect::<Vec<_>>(), vec![7]);
        let full = ActiveNamespaceList::from_ids(1..=2000);
        assert_eq!(full.iter().count(), 1024);
        assert_eq!(format!("{:?}", ActiveNamespaceList::from_ids([3])), "[3]");
    }
}
