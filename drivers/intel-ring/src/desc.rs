//! Advanced receive and transmit descriptors: the layout the 82599 and the 82576 share.
//! Section numbers below are the 82599 datasheet's (7.1.6 receive, 7.2.3.2.4 transmit); the
//! 82576 uses the same read and write-back formats, `DD` / `EOP` / `RS` bits and `DTYP` /
//! `DCMD` encodings.
//!
//! Every descriptor is 16 bytes. A ring slot holds the *read* format when the driver hands it
//! to the device and the *write-back* format once the device is done with it; [`AdvRxDesc`]
//! and [`AdvTxDesc`] are the raw 16 bytes with views as either format ([`AdvRxDesc::read`],
//! [`AdvRxDesc::writeback`]), because Rust's safe subset has no unions.
//!
//! # Panic contract
//! Every accessor is total: it extracts bits from whatever the device wrote and never panics.
//! A write-back is untrusted (a length beyond the buffer, EOP clear, a descriptor never
//! written); checking it is [`crate::rx`]'s job ([`AdvRxWriteback::status_error`] gives it the
//! bits to check).
//!
//! # What is not here
//! The meaning of the `Extended Error` bits differs between the chips (the 82599's `RXE` is
//! bit 29, where the 82576 has `TCPE`; the 82576's `RXE` is bit 31, the 82599's `IPE`), and
//! so do the `RSS Type` and `Packet Type` tables' details: those stay in each driver's spec.

use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};

/// Bytes in one descriptor of either direction.
pub const DESC_SIZE: usize = 16;
/// Ring lengths (`RDLEN`, `TDLEN`) must be multiples of 128 bytes: 8 descriptors.
pub const RING_ALIGN_DESCS: usize = 8;
/// Rings must be 128-byte aligned (`RDBAL` / `TDBAL` bits 6:0 are zero).
pub const RING_BASE_ALIGN: usize = 128;

// ---------------------------------------------------------------------------------------------
// Receive (7.1.6)
// ---------------------------------------------------------------------------------------------

/// Advanced receive descriptor, read format (7.1.6.1): written by the driver.
///
/// | bytes | field |
/// |---|---|
/// | 0..8 | packet buffer address (bit 0 is `A0`, 2-byte alignment only in some modes) |
/// | 8..16 | header buffer address (bit 0 doubles as `DD` once written back) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct AdvRxRead {
    /// Packet buffer address (IOVA).
    pub pkt_addr: u64,
    /// Header buffer address (header split only); zero in one-buffer mode.
    pub hdr_addr: u64,
}

/// Advanced receive descriptor, write-back format (7.1.6.2): written by the device.
///
/// | bytes | field |
/// |---|---|
/// | 0..4 | `RSS Type` (3:0), `Packet Type` (16:4), `RSCCNT` (20:17), `HDR_LEN` (30:21), `SPH` (31) |
/// | 4..8 | `RSS Hash` (or fragment checksum / IP id) |
/// | 8..12 | `Extended Status` (19:0: `DD` 0, `EOP` 1, ...), `Extended Error` (31:20) |
/// | 12..14 | `PKT_LEN`: bytes written to the packet buffer |
/// | 14..16 | `VLAN Tag` |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct AdvRxWriteback {
    /// RSS type, packet type, RSC count, header length, SPH (use the accessors).
    pub pkt_info: u32,
    /// RSS hash value.
    pub rss_hash: u32,
    /// Extended status (bits 19:0) and extended error (bits 31:20).
    pub status_error: u32,
    /// `PKT_LEN`.
    pub length: u16,
    /// `VLAN Tag` (valid when `VP` is set).
    pub vlan: u16,
}

/// `RX status DD` (bit 0): descriptor done.
pub const RXD_STAT_DD: u32 = 1 << 0;
/// `RX status EOP` (bit 1): end of packet, the last descriptor of a frame.
pub const RXD_STAT_EOP: u32 = 1 << 1;
/// `RX status VP` (bit 3): 802.1Q packet, `VLAN Tag` valid.
pub const RXD_STAT_VP: u32 = 1 << 3;
/// `RX status` field mask (bits 19:0).
pub const RXD_STAT_MASK: u32 = 0x000F_FFFF;
/// `RX error` field mask (bits 31:20).
pub const RXD_ERR_MASK: u32 = 0xFFF0_0000;
impl AdvRxWriteback {
    /// `RSS Type` (bits 3:0); the values are in each driver's spec.
    pub const fn rss_type(&self) -> u8 {
        (self.pkt_info & 0xF) as u8
    }
    /// `Packet Type` (bits 16:4), shifted down; the bits are in each driver's spec.
    pub const fn packet_type(&self) -> u16 {
        ((self.pkt_info >> 4) & 0x1FFF) as u16
    }
    /// `Extended Status` (bits 19:0).
    pub const fn status(&self) -> u32 {
        self.status_error & RXD_STAT_MASK
    }
    /// `Extended Error` (bits 31:20), unshifted: compare with the driver's error bits (they
    /// differ between the chips, see the crate documentation).
    pub const fn errors(&self) -> u32 {
        self.status_error & RXD_ERR_MASK
    }
    /// `DD`: the device has written this descriptor back.
    pub const fn dd(&self) -> bool {
        self.status_error & RXD_STAT_DD != 0
    }
    /// `EOP`: the last descriptor of its packet.
    pub const fn eop(&self) -> bool {
        self.status_error & RXD_STAT_EOP != 0
    }
    /// The write-back a device produces for a whole packet of `length` bytes in one buffer
    /// (for the model; `DD | EOP` set).
    pub const fn done(length: u16, rss_hash: u32, rss_type: u8, packet_type: u16) -> Self {
        AdvRxWriteback {
            pkt_info: (rss_type as u32 & 0xF) | ((packet_type as u32 & 0x1FFF) << 4),
            rss_hash,
            status_error: RXD_STAT_DD | RXD_STAT_EOP,
            length,
            vlan: 0,
        }
    }
}

/// One slot of an RX ring: 16 bytes, seen as [`AdvRxRead`] or [`AdvRxWriteback`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct AdvRxDesc {
    /// The raw descriptor, as two little-endian quadwords.
    pub raw: [u64; 2],
}

impl AdvRxDesc {
    /// The descriptor in read format for a packet buffer at `pkt_addr` (`hdr_addr` zero, which
    /// also clears `DD`).
    pub const fn new_read(pkt_addr: u64) -> Self {
        AdvRxDesc { raw: [pkt_addr, 0] }
    }
    /// The read-format view.
    pub fn read(&self) -> AdvRxRead {
        bytemuck::cast(*self)
    }
    /// The write-back view.
    pub fn writeback(&self) -> AdvRxWriteback {
        bytemuck::cast(*self)
    }
    /// The descriptor holding `wb` (for the model).
    pub fn from_writeback(wb: AdvRxWriteback) -> Self {
        bytemuck::cast(wb)
    }
}

impl From<AdvRxRead> for AdvRxDesc {
    fn from(read: AdvRxRead) -> Self {
        bytemuck::cast(read)
    }
}

// ---------------------------------------------------------------------------------------------
// Transmit (7.2.3.2.4)
// ---------------------------------------------------------------------------------------------

/// Advanced transmit data descriptor, read format (7.2.3.2.4): written by the driver.
///
/// | bytes | field |
/// |---|---|
/// | 0..8 | buffer address |
/// | 8..12 | `cmd_type_len`: `DTALEN` (15:0), `MAC` (19:18), `DTYP` (23:20), `DCMD` (31:24) |
/// | 12..16 | `olinfo_status`: `STA` (3:0), `IDX` (6:4), `CC` (7), `POPTS` (13:8), `PAYLEN` (31:14) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct AdvTxRead {
    /// Data buffer address (IOVA).
    pub buffer_addr: u64,
    /// `DTALEN`, `DTYP`, `DCMD`.
    pub cmd_type_len: u32,
    /// `PAYLEN`, `POPTS`, `CC`, `IDX`, `STA`.
    pub olinfo_status: u32,
}

/// `DTALEN` (bits 15:0): bytes in this descriptor's buffer.
pub const TXD_DTALEN_MASK: u32 = 0xFFFF;
/// `DTYP` (bits 23:20).
pub const TXD_DTYP_MASK: u32 = 0xF << 20;
/// `DTYP` = 0011b: advanced data descriptor.
pub const TXD_DTYP_DATA: u32 = 0x3 << 20;
/// `DTYP` = 0010b: advanced context descriptor.
pub const TXD_DTYP_CTXT: u32 = 0x2 << 20;
/// `DCMD.EOP` (bit 24): end of packet.
pub const TXD_DCMD_EOP: u32 = 1 << 24;
/// `DCMD.IFCS` (bit 25): insert FCS.
pub const TXD_DCMD_IFCS: u32 = 1 << 25;
/// `DCMD.RS` (bit 27): report status (write back `DD`).
pub const TXD_DCMD_RS: u32 = 1 << 27;
/// `DCMD.DEXT` (bit 29): descriptor extension (1 = advanced).
pub const TXD_DCMD_DEXT: u32 = 1 << 29;
/// `DCMD.VLE` (bit 30): VLAN insertion.
pub const TXD_DCMD_VLE: u32 = 1 << 30;
/// `DCMD.TSE` (bit 31): TCP segmentation.
pub const TXD_DCMD_TSE: u32 = 1 << 31;
/// `PAYLEN` shift in `olinfo_status` (bits 31:14).
pub const TXD_PAYLEN_SHIFT: u32 = 14;
/// `STA.DD` (bit 0) in the write-back status.
pub const TXD_STAT_DD: u32 = 1 << 0;

impl AdvTxRead {
    /// A one-buffer packet of `len` bytes at `buffer_addr`: advanced data descriptor with
    /// `EOP | IFCS | RS | DEXT`, `PAYLEN = len` (ixy's and DPDK's simple TX path).
    pub const fn packet(buffer_addr: u64, len: u16) -> Self {
        AdvTxRead {
            buffer_addr,
            cmd_type_len: TXD_DCMD_EOP
                | TXD_DCMD_IFCS
                | TXD_DCMD_RS
                | TXD_DCMD_DEXT
                | TXD_DTYP_DATA
                | len as u32,
            olinfo_status: (len as u32) << TXD_PAYLEN_SHIFT,
        }
    }
    /// `DTALEN`.
    pub const fn dtalen(&self) -> u16 {
        (self.cmd_type_len & TXD_DTALEN_MASK) as u16
    }
    /// `DTYP` (shifted down).
    pub const fn dtyp(&self) -> u8 {
        ((self.cmd_type_len & TXD_DTYP_MASK) >> 20) as u8
    }
    /// `DCMD` bits (unshifted; compare with `TXD_DCMD_*`).
    pub const fn dcmd(&self) -> u32 {
        self.cmd_type_len & 0xFF00_0000
    }
    /// `PAYLEN`.
    pub const fn paylen(&self) -> u32 {
        self.olinfo_status >> TXD_PAYLEN_SHIFT
    }
}

/// Advanced transmit descriptor, write-back format (7.2.3.2.4): the device sets `DD` in
/// `status` of descriptors with `RS` once it has read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct AdvTxWriteback {
    /// Reserved.
    pub rsvd: u64,
    /// `NXTSEQ` / `SEED` (FCoE / IPsec only).
    pub nxtseq_seed: u32,
    /// `STA` (bits 3:0): `DD` bit 0.
    pub status: u32,
}

impl AdvTxWriteback {
    /// `DD`: the device is done with the descriptor.
    pub const fn dd(&self) -> bool {
        self.status & TXD_STAT_DD != 0
    }
}

/// One slot of a TX ring: 16 bytes, seen as [`AdvTxRead`] or [`AdvTxWriteback`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct AdvTxDesc {
    /// The raw descriptor, as two little-endian quadwords.
    pub raw: [u64; 2],
}

impl AdvTxDesc {
    /// The read-format view.
    pub fn read(&self) -> AdvTxRead {
        bytemuck::cast(*self)
    }
    /// The write-back view.
    pub fn writeback(&self) -> AdvTxWriteback {
        bytemuck::cast(*self)
    }
    /// The descriptor after the device wrote `DD` back (for the model): the write-back format
    /// with only `STA.DD` set. (The datasheet leaves the other bytes of a written-back
    /// descriptor undefined; the model keeps the first quadword.)
    pub fn with_dd(self) -> Self {
        let mut wb = self.writeback();
        wb.status |= TXD_STAT_DD;
        bytemuck::cast(wb)
    }
}

impl From<AdvTxRead> for AdvTxDesc {
    fn from(read: AdvTxRead) -> Self {
        bytemuck::cast(read)
    }
}

impl From<AdvTxWriteback> for AdvTxDesc {
    fn from(wb: AdvTxWriteback) -> Self {
        bytemuck::cast(wb)
    }
}

/// Byte offset of the RX write-back `status_error` dword within a descriptor.
pub const RX_WB_STATUS_OFFSET: usize = offset_of!(AdvRxWriteback, status_error);
/// Byte offset of the TX write-back `status` dword within a descriptor.
pub const TX_WB_STATUS_OFFSET: usize = offset_of!(AdvTxWriteback, status);

const _: () = {
    assert!(size_of::<AdvRxRead>() == DESC_SIZE);
    assert!(size_of::<AdvRxWriteback>() == DESC_SIZE);
    assert!(size_of::<AdvRxDesc>() == DESC_SIZE);
    assert!(size_of::<AdvTxRead>() == DESC_SIZE);
    assert!(size_of::<AdvTxWriteback>() == DESC_SIZE);
    assert!(size_of::<AdvTxDesc>() == DESC_SIZE);
    assert!(offset_of!(AdvRxRead, hdr_addr) == 8);
    assert!(offset_of!(AdvRxWriteback, rss_hash) == 4);
    assert!(offset_of!(AdvRxWriteback, status_error) == 8);
    assert!(offset_of!(AdvRxWriteback, length) == 12);
    assert!(offset_of!(AdvRxWriteback, vlan) == 14);
    assert!(offset_of!(AdvTxRead, cmd_type_len) == 8);
    assert!(offset_of!(AdvTxRead, olinfo_status) == 12);
    assert!(offset_of!(AdvTxWriteback, nxtseq_seed) == 8);
    assert!(offset_of!(AdvTxWriteback, status) == 12);
};
