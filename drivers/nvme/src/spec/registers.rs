//! Controller registers in BAR0 (Base 2.0 "Controller Properties"; the doorbells from the NVMe
//! over PCIe Transport 1.0 "Register Definition").
//!
//! Offsets are byte offsets into BAR0 for the framework's `RegisterIo`. `CAP`, `ASQ` and `ACQ`
//! are 64 bits wide; everything else is 32 bits. A 64-bit register may also be accessed as two
//! 32-bit halves, low half first (Base "Controller Properties"); some real controllers handle
//! only 32-bit accesses, so a driver that meets one splits the access.

use std::fmt;

use super::bitfields;

/// `CAP`, Controller Capabilities (RO, 64 bits).
pub const CAP: usize = 0x00;
/// `VS`, Version (RO, 32 bits).
pub const VS: usize = 0x08;
/// `INTMS`, Interrupt Mask Set (RWS, 32 bits): one bit per vector. Only for pin-based and MSI
/// interrupts; the host shall not access it while MSI-X is in use.
pub const INTMS: usize = 0x0c;
/// `INTMC`, Interrupt Mask Clear (RWC, 32 bits): as [`INTMS`], clearing mask bits.
pub const INTMC: usize = 0x10;
/// `CC`, Controller Configuration (RW, 32 bits).
pub const CC: usize = 0x14;
/// `CSTS`, Controller Status (RO, 32 bits; `NSSRO` is RW1C).
pub const CSTS: usize = 0x1c;
/// `NSSR`, NVM Subsystem Reset (RW, 32 bits), present when `CAP.NSSRS` is set: writing
/// [`NSSR_RESET`] resets the whole NVM subsystem.
pub const NSSR: usize = 0x20;
/// `AQA`, Admin Queue Attributes (RW, 32 bits).
pub const AQA: usize = 0x24;
/// `ASQ`, Admin Submission Queue Base Address (RW, 64 bits): bits 11:0 are reserved, so the
/// queue is at least 4 KiB aligned (and memory-page aligned per `CC.MPS`).
pub const ASQ: usize = 0x28;
/// `ACQ`, Admin Completion Queue Base Address (RW, 64 bits): aligned as [`ASQ`].
pub const ACQ: usize = 0x30;
/// `CMBLOC`, Controller Memory Buffer Location (RO, 32 bits), meaningful when `CAP.CMBS` is set
/// (since NVMe 1.4 the CMB must also be enabled through `CMBMSC`, not defined here).
pub const CMBLOC: usize = 0x38;
/// `CMBSZ`, Controller Memory Buffer Size (RO, 32 bits); zero when there is no CMB.
pub const CMBSZ: usize = 0x3c;
/// Start of the doorbell registers (PCIe Transport "Register Definition").
pub const DOORBELLS: usize = 0x1000;

/// The value written to [`NSSR`] to start an NVM Subsystem Reset: "NVMe" in ASCII.
pub const NSSR_RESET: u32 = 0x4e56_4d65;

/// Byte offset in BAR0 of `SQyTDBL`, the Submission Queue `qid` Tail Doorbell:
/// `1000h + (2 * qid) * (4 << CAP.DSTRD)`.
///
/// `dstrd` is the 4-bit `CAP.DSTRD` ([`Cap::dstrd`]), so the result fits in 38 bits. The same
/// offset minus [`DOORBELLS`] locates the queue's slot in the Doorbell Buffer Config shadow and
/// EventIdx buffers.
pub const fn sq_tail_doorbell(qid: u16, dstrd: u8) -> usize {
    DOORBELLS + (2 * qid as usize) * (4usize << dstrd)
}

/// Byte offset in BAR0 of `CQyHDBL`, the Completion Queue `qid` Head Doorbell:
/// `1000h + (2 * qid + 1) * (4 << CAP.DSTRD)`.
pub const fn cq_head_doorbell(qid: u16, dstrd: u8) -> usize {
    DOORBELLS + (2 * qid as usize + 1) * (4usize << dstrd)
}

/// `CAP`, Controller Capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cap(pub u64);

impl Cap {
    /// `CAP.CSS` bit 0: the NVM Command Set.
    pub const CSS_NVM: u8 = 1 << 0;
    /// `CAP.CSS` bit 6: one or more I/O Command Sets, selected with `CC.CSS` = 110b.
    pub const CSS_IO_COMMAND_SETS: u8 = 1 << 6;
    /// `CAP.CSS` bit 7: no I/O Command Set (Admin only).
    pub const CSS_ADMIN_ONLY: u8 = 1 << 7;

    /// All fields zero: the starting point for a model's builder chain.
    pub const fn new() -> Self {
        Cap(0)
    }

    /// Entries the controller supports per I/O queue, `MQES + 1` (MQES is zero-based).
    pub const fn max_queue_entries(self) -> u32 {
        self.mqes() as u32 + 1
    }

    /// `CAP.TO` in milliseconds: the worst-case time to wait for `CSTS.RDY` to follow `CC.EN`.
    pub const fn timeout_ms(self) -> u64 {
        self.to() as u64 * 500
    }

    /// Bytes between consecutive doorbell registers, `4 << CAP.DSTRD`.
    pub const fn doorbell_stride(self) -> usize {
        4usize << self.dstrd()
    }

    /// Smallest memory page size the controller supports, `2 ^ (12 + MPSMIN)` bytes.
    pub const fn mps_min_bytes(self) -> u64 {
        1u64 << (12 + self.mpsmin())
    }

    /// Largest memory page size the controller supports, `2 ^ (12 + MPSMAX)` bytes.
    pub const fn mps_max_bytes(self) -> u64 {
        1u64 << (12 + self.mpsmax())
    }
}

bitfields!(Cap(u64) {
    /// `MQES` (15:0): Maximum Queue Entries Supported, zero-based (0 is invalid, so at least 2).
    mqes / with_mqes: u16 @ 15:0;
    /// `CQR` (16): Contiguous Queues Required.
    cqr / with_cqr: bool @ 16;
    /// `AMS` (18:17): Arbitration Mechanism Supported beyond round robin (bit 0: weighted round
    /// robin with urgent priority, bit 1: vendor specific).
    ams / with_ams: u8 @ 18:17;
    /// `TO` (31:24): Timeout, in 500 ms units ([`Cap::timeout_ms`]).
    to / with_to: u8 @ 31:24;
    /// `DSTRD` (35:32): Doorbell Stride, `4 << DSTRD` bytes ([`Cap::doorbell_stride`]).
    dstrd / with_dstrd: u8 @ 35:32;
    /// `NSSRS` (36): NVM Subsystem Reset Supported.
    nssrs / with_nssrs: bool @ 36;
    /// `CSS` (44:37): Command Sets Supported ([`Cap::CSS_NVM`] and friends).
    css / with_css: u8 @ 44:37;
    /// `BPS` (45): Boot Partition Support.
    bps / with_bps: bool @ 45;
    /// `MPSMIN` (51:48): Memory Page Size Minimum, `2 ^ (12 + MPSMIN)` bytes.
    mpsmin / with_mpsmin: u8 @ 51:48;
    /// `MPSMAX` (55:52): Memory Page Size Maximum, `2 ^ (12 + MPSMAX)` bytes.
    mpsmax / with_mpsmax: u8 @ 55:52;
    /// `PMRS` (56): Persistent Memory Region Supported.
    pmrs / with_pmrs: bool @ 56;
    /// `CMBS` (57): Controller Memory Buffer Supported.
    cmbs / with_cmbs: bool @ 57;
});

/// `VS`, Version: major 31:16, minor 15:8, tertiary 7:0. The same encoding is used by
/// Identify Controller `VER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vs(pub u32);

impl Vs {
    /// The version `mjr.mnr.ter`.
    pub const fn new(mjr: u16, mnr: u8, ter: u8) -> Self {
        Vs(((mjr as u32) << 16) | ((mnr as u32) << 8) | ter as u32)
    }
}

bitfields!(Vs(u32) {
    /// `MJR` (31:16): Major Version Number.
    mjr / with_mjr: u16 @ 31:16;
    /// `MNR` (15:8): Minor Version Number.
    mnr / with_mnr: u8 @ 15:8;
    /// `TER` (7:0): Tertiary Version Number.
    ter / with_ter: u8 @ 7:0;
});

impl fmt::Display for Vs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.mjr(), self.mnr(), self.ter())
    }
}

/// `CC`, Controller Configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cc(pub u32);

impl Cc {
    /// `CC.CSS` 000b: the NVM Command Set.
    pub const CSS_NVM: u8 = 0b000;
    /// `CC.CSS` 110b: all I/O Command Sets the controller supports (when `CAP.CSS` bit 6).
    pub const CSS_ALL_IO: u8 = 0b110;
    /// `CC.CSS` 111b: Admin Command Set only.
    pub const CSS_ADMIN_ONLY: u8 = 0b111;
    /// `CC.AMS` 000b: round robin.
    pub const AMS_ROUND_ROBIN: u8 = 0b000;
    /// `CC.SHN` 00b: no notification.
    pub const SHN_NONE: u8 = 0b00;
    /// `CC.SHN` 01b: normal shutdown.
    pub const SHN_NORMAL: u8 = 0b01;
    /// `CC.SHN` 10b: abrupt shutdown.
    pub const SHN_ABRUPT: u8 = 0b10;

    /// All fields zero (`EN` clear).
    pub const fn new() -> Self {
        Cc(0)
    }
}

bitfields!(Cc(u32) {
    /// `EN` (0): Enable.
    en / with_en: bool @ 0;
    /// `CSS` (6:4): I/O Command Set Selected ([`Cc::CSS_NVM`]).
    css / with_css: u8 @ 6:4;
    /// `MPS` (10:7): Memory Page Size, `2 ^ (12 + MPS)` bytes, within `CAP.MPSMIN..=MPSMAX`.
    mps / with_mps: u8 @ 10:7;
    /// `AMS` (13:11): Arbitration Mechanism Selected.
    ams / with_ams: u8 @ 13:11;
    /// `SHN` (15:14): Shutdown Notification ([`Cc::SHN_NORMAL`]).
    shn / with_shn: u8 @ 15:14;
    /// `IOSQES` (19:16): I/O Submission Queue Entry Size, `2 ^ n` bytes (6 for 64 bytes).
    iosqes / with_iosqes: u8 @ 19:16;
    /// `IOCQES` (23:20): I/O Completion Queue Entry Size, `2 ^ n` bytes (4 for 16 bytes).
    iocqes / with_iocqes: u8 @ 23:20;
});

/// `CSTS`, Controller Status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Csts(pub u32);

impl Csts {
    /// `CSTS.SHST` 00b: normal operation, no shutdown requested.
    pub const SHST_NORMAL: u8 = 0b00;
    /// `CSTS.SHST` 01b: shutdown processing occurring.
    pub const SHST_OCCURRING: u8 = 0b01;
    /// `CSTS.SHST` 10b: shutdown processing complete.
    pub const SHST_COMPLETE: u8 = 0b10;

    /// All fields zero.
    pub const fn new() -> Self {
        Csts(0)
    }

    /// What a `CSTS.SHST` value means (Base 2.0 "Offset 1Ch: CSTS - Controller Status").
    pub const fn shst_meaning(shst: u8) -> &'static str {
        match shst {
            Self::SHST_NORMAL => "normal operation, no shutdown requested",
            Self::SHST_OCCURRING => "shutdown processing occurring",
            Self::SHST_COMPLETE => "shutdown processing complete",
            _ => "reserved",
        }
    }

    /// True when every bit reads as one: what a read returns from a function that has been
    /// surprise-removed or does not answer (no defined `CSTS` value has all bits set).
    pub const fn is_all_ones(self) -> bool {
        self.0 == u32::MAX
    }
}

bitfields!(Csts(u32) {
    /// `RDY` (0): Ready, following `CC.EN` within `CAP.TO`.
    rdy / with_rdy: bool @ 0;
    /// `CFS` (1): Controller Fatal Status; recovery needs a controller reset.
    cfs / with_cfs: bool @ 1;
    /// `SHST` (3:2): Shutdown Status ([`Csts::SHST_COMPLETE`]).
    shst / with_shst: u8 @ 3:2;
    /// `NSSRO` (4): NVM Subsystem Reset Occurred (RW1C).
    nssro / with_nssro: bool @ 4;
    /// `PP` (5): Processing Paused.
    pp / with_pp: bool @ 5;
});

/// `AQA`, Admin Queue Attributes: both sizes zero-based, at most 4095 (4096 entries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Aqa(pub u32);

impl Aqa {
    /// Largest zero-based admin queue size.
    pub const MAX_SIZE: u16 = 0xfff;

    /// `ASQS` and `ACQS`, zero-based (entries - 1).
    pub const fn new(asqs: u16, acqs: u16) -> Self {
        Aqa(0).with_asqs(asqs).with_acqs(acqs)
    }
}

bitfields!(Aqa(u32) {
    /// `ASQS` (11:0): Admin Submission Queue Size, zero-based.
    asqs / with_asqs: u16 @ 11:0;
    /// `ACQS` (27:16): Admin Completion Queue Size, zero-based.
    acqs / with_acqs: u16 @ 27:16;
});

/// `CMBLOC`, Controller Memory Buffer Location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cmbloc(pub u32);

bitfields!(Cmbloc(u32) {
    /// `BIR` (2:0): the BAR (Base Indicator Register) holding the CMB.
    bir / with_bir: u8 @ 2:0;
    /// `OFST` (31:12): offset of the CMB in that BAR, in `CMBSZ.SZU` units.
    ofst / with_ofst: u32 @ 31:12;
});

/// `CMBSZ`, Controller Memory Buffer Size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cmbsz(pub u32);

impl Cmbsz {
    /// The size unit, `4 KiB * 16 ^ SZU`; `None` for the reserved `SZU` values above 6 (64 GiB).
    pub const fn unit_bytes(self) -> Option<u64> {
        if self.szu() > 6 {
            None
        } else {
            Some(4096u64 << (4 * self.szu()))
        }
    }

    /// The CMB size, `SZ` units; `None` when `SZU` is reserved.
    pub const fn size_bytes(self) -> Option<u64> {
        match self.unit_bytes() {
            // SZ < 2^20 and the unit <= 2^36: the product fits.
            Some(unit) => Some(self.sz() as u64 * unit),
            None => None,
        }
    }
}

bitfields!(Cmbsz(u32) {
    /// `SQS` (0): Submission Queue Support in the CMB.
    sqs / with_sqs: bool @ 0;
    /// `CQS` (1): Completion Queue Support in the CMB.
    cqs / with_cqs: bool @ 1;
    /// `LISTS` (2): PRP SGL List Support in the CMB.
    lists / with_lists: bool @ 2;
    /// `RDS` (3): Read Data Support.
    rds / with_rds: bool @ 3;
    /// `WDS` (4): Write Data Support.
    wds / with_wds: bool @ 4;
    /// `SZU` (11:8): Size Units, `4 KiB * 16 ^ SZU`.
    szu / with_szu: u8 @ 11:8;
    /// `SZ` (31:12): Size, in `SZU` units.
    sz / with_sz: u32 @ 31:12;
});

#[cfg(test)]
mod tests {
    use super::*;

    /// CAP as QEMU's emulated controller (hw/nvme) reports it: MQES 0x7ff, CQR, TO 15,
    /// CSS = NVM | I/O Command Sets | Admin only, MPSMAX 4.
    const QEMU_CAP: u64 = 0x0040_1820_0f01_07ff;

    #[test]
    fn cap_decodes_qemu_value() {
        let cap = Cap(QEMU_CAP);
        assert_eq!(cap.mqes(), 0x7ff);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.cqr());
        assert_eq!(cap.ams(), 0);
        assert_eq!(cap.to(), 15);
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.dstrd(), 0);
        assert_eq!(cap.doorbell_stride(), 4);
        assert!(!cap.nssrs());
        assert_eq!(cap.css() & Cap::CSS_NVM, Cap::CSS_NVM);
        assert_eq!(cap.css(), 0xc1);
        assert_ne!(QEMU_CAP & (1 << 37), 0);
        assert!(!cap.bps());
        assert_eq!(cap.mpsmin(), 0);
        assert_eq!(cap.mps_min_bytes(), 4096);
        assert_eq!(cap.mpsmax(), 4);
        assert_eq!(cap.mps_max_bytes(), 64 * 1024);
        assert!(!cap.pmrs() && !cap.cmbs());
    }

    #[test]
    fn cap_builder_reproduces_qemu_value() {
        let cap = Cap::new()
            .with_mqes(0x7ff)
            .with_cqr(true)
            .with_to(15)
            .with_css(Cap::CSS_NVM | Cap::CSS_IO_COMMAND_SETS | Cap::CSS_ADMIN_ONLY)
            .with_mpsmax(4);
        assert_eq!(cap, Cap(QEMU_CAP));
        // Single bits land where the specification puts them.
        assert_eq!(Cap::new().with_nssrs(true).0, 1 << 36);
        assert_eq!(Cap::new().with_bps(true).0, 1 << 45);
        assert_eq!(Cap::new().with_pmrs(true).0, 1 << 56);
        assert_eq!(Cap::new().with_cmbs(true).0, 1 << 57);
        assert_eq!(Cap::new().with_dstrd(0xf).0, 0xf << 32);
        assert_eq!(Cap::new().with_ams(0b11).0, 0b11 << 17);
        // A builder replaces the field, leaving the others.
        assert_eq!(cap.with_to(1).to(), 1);
        assert_eq!(cap.with_to(1).mqes(), 0x7ff);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "wider than its register field")]
    fn builder_rejects_a_value_wider_than_its_field_in_debug() {
        let _ = Cc::new().with_mps(16);
    }

    #[test]
    fn vs_decodes_and_displays() {
        let vs = Vs(0x0001_0400);
        assert_eq!((vs.mjr(), vs.mnr(), vs.ter()), (1, 4, 0));
        assert_eq!(vs.to_string(), "1.4.0");
        assert_eq!(Vs::new(2, 0, 1), Vs(0x0002_0001));
        assert!(Vs::new(1, 4, 0) < Vs::new(2, 0, 0));
    }

    #[test]
    fn cc_builds_the_usual_enable_value() {
        let cc = Cc::new()
            .with_css(Cc::CSS_NVM)
            .with_mps(0)
            .with_ams(Cc::AMS_ROUND_ROBIN)
            .with_iosqes(6)
            .with_iocqes(4)
            .with_en(true);
        assert_eq!(cc.0, 0x0046_0001);
        assert_eq!(cc.with_shn(Cc::SHN_NORMAL).0, 0x0046_4001);
        assert_eq!(cc.with_en(false).0, 0x0046_0000);
        assert_eq!(Cc::new().with_mps(0xf).0, 0xf << 7);
        assert_eq!(Cc::new().with_css(Cc::CSS_ADMIN_ONLY).0, 0b111 << 4);
        assert_eq!(Cc::new().with_ams(0b001).0, 1 << 11);
        let back = Cc(0x0046_4001);
        assert!(back.en());
        assert_eq!((back.iosqes(), back.iocqes(), back.shn()), (6, 4, 1));
    }

    #[test]
    fn csts_decodes_each_bit() {
        assert!(Csts(0x1).rdy());
        assert!(Csts(0x2).cfs());
        assert_eq!(Csts(0x8).shst(), Csts::SHST_COMPLETE);
        assert_eq!(Csts(0x4).shst(), Csts::SHST_OCCURRING);
        assert!(Csts(0x10).nssro());
        assert!(Csts(0x20).pp());
        assert_eq!(Csts::new().with_rdy(true).with_shst(2).0, 0x9);
        assert!(Csts(u32::MAX).is_all_ones());
        assert!(!Csts(0x1).is_all_ones());
    }

    #[test]
    fn aqa_places_both_sizes() {
        let aqa = Aqa::new(31, 63);
        assert_eq!(aqa.0, 0x003f_001f);
        assert_eq!((aqa.asqs(), aqa.acqs()), (31, 63));
        assert_eq!(Aqa::new(Aqa::MAX_SIZE, Aqa::MAX_SIZE).0, 0x0fff_0fff);
        // Reserved bits 15:12 and 31:28 are not part of either field.
        assert_eq!(Aqa(0xffff_ffff).asqs(), 0xfff);
        assert_eq!(Aqa(0xffff_ffff).acqs(), 0xfff);
    }

    #[test]
    fn cmb_registers() {
        // A 64 MiB CMB at the start of BAR 2: SQS, CQS, LISTS, RDS, WDS; SZU 2 (1 MiB units).
        let loc = Cmbloc(0x2);
        assert_eq!((loc.bir(), loc.ofst()), (2, 0));
        assert_eq!(Cmbloc::default().with_ofst(0xfffff).0, 0xffff_f000);
        let sz = Cmbsz(0x0004_021f);
        assert!(sz.sqs() && sz.cqs() && sz.lists() && sz.rds() && sz.wds());
        assert_eq!(sz.szu(), 2);
        assert_eq!(sz.sz(), 64);
        assert_eq!(sz.unit_bytes(), Some(1 << 20));
        assert_eq!(sz.size_bytes(), Some(64 << 20));
        assert_eq!(Cmbsz(0xffff_ffff).size_bytes(), None);
        assert_eq!(Cmbsz(0xffff_f600).size_bytes(), Some(0xfffff << 36));
    }

    #[test]
    fn doorbell_offsets() {
        assert_eq!(sq_tail_doorbell(0, 0), 0x1000);
        assert_eq!(cq_head_doorbell(0, 0), 0x1004);
        assert_eq!(sq_tail_doorbell(1, 0), 0x1008);
        assert_eq!(cq_head_doorbell(1, 0), 0x100c);
        assert_eq!(sq_tail_doorbell(7, 0), 0x1038);
        // DSTRD 2: 16-byte stride.
        assert_eq!(sq_tail_doorbell(0, 2), 0x1000);
        assert_eq!(cq_head_doorbell(0, 2), 0x1010);
        assert_eq!(sq_tail_doorbell(1, 2), 0x1020);
        assert_eq!(cq_head_doorbell(1, 2), 0x1030);
        // The largest queue ID with the largest stride does not overflow.
        assert_eq!(
            cq_head_doorbell(u16::MAX, 15),
            0x1000 + (2 * 65535 + 1) * (4 << 15)
        );
        assert_eq!(Cap(2 << 32).doorbell_stride(), 16);
    }

    #[test]
    fn register_offsets() {
        assert_eq!(
            [CAP, VS, INTMS, INTMC, CC, CSTS, NSSR, AQA, ASQ, ACQ, CMBLOC, CMBSZ],
            [0x00, 0x08, 0x0c, 0x10, 0x14, 0x1c, 0x20, 0x24, 0x28, 0x30, 0x38, 0x3c]
        );
        assert_eq!(&NSSR_RESET.to_be_bytes(), b"NVMe");
    }
}
