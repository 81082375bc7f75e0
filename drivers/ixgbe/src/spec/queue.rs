//! RX and TX queue, packet buffer and DMA registers (datasheet 8.2.3.8 Receive DMA,
//! 8.2.3.9 Transmit DMA, 8.2.3.10 DCB).
//!
//! The 82599 has 128 RX and 128 TX queues. Per-queue RX registers are at
//! `0x01000 + 0x40n` for `n < 64` and at `0x0D000 + 0x40(n - 64)` above; per-queue TX registers
//! at `0x06000 + 0x40n`.

/// Queues of each direction.
pub const MAX_QUEUES: usize = 128;

/// Offset of a per-queue RX register: `low + 0x40n` for `n < 64`, `high + 0x40(n-64)` above.
const fn rx_queue_reg(n: usize, low: usize, high: usize) -> usize {
    assert!(n < MAX_QUEUES, "RX queue index out of range");
    if n < 64 {
        low + 0x40 * n
    } else {
        high + 0x40 * (n - 64)
    }
}

/// Offset of a per-queue TX register: `base + 0x40n`.
const fn tx_queue_reg(n: usize, base: usize) -> usize {
    assert!(n < MAX_QUEUES, "TX queue index out of range");
    base + 0x40 * n
}

// ---------------------------------------------------------------------------------------------
// Receive queues (8.2.3.8)
// ---------------------------------------------------------------------------------------------

/// `RDBAL(n)`, Receive Descriptor Base Address Low (8.2.3.8.1): bits 6:0 must be zero
/// (128-byte aligned ring).
pub const fn RDBAL(n: usize) -> usize {
    rx_queue_reg(n, 0x01000, 0x0D000)
}
/// `RDBAH(n)`, Receive Descriptor Base Address High (8.2.3.8.2).
pub const fn RDBAH(n: usize) -> usize {
    rx_queue_reg(n, 0x01004, 0x0D004)
}
/// `RDLEN(n)`, Receive Descriptor Length (8.2.3.8.3): bytes, a multiple of 128.
pub const fn RDLEN(n: usize) -> usize {
    rx_queue_reg(n, 0x01008, 0x0D008)
}
/// `DCA_RXCTRL(n)`, Rx DCA Control Register (8.2.3.11.1).
pub const fn DCA_RXCTRL(n: usize) -> usize {
    rx_queue_reg(n, 0x0100C, 0x0D00C)
}
/// `DCA_RXCTRL` bit 12: reserved, reads 1 after reset and must be written 0 (ixy's "probably a
/// broken feature"; datasheet 8.2.3.11.1 lists it as "Reserved, must be set to 0").
pub const DCA_RXCTRL_RESERVED12: u32 = 1 << 12;
/// `RDH(n)`, Receive Descriptor Head (8.2.3.8.4).
pub const fn RDH(n: usize) -> usize {
    rx_queue_reg(n, 0x01010, 0x0D010)
}
/// `SRRCTL(n)`, Split Receive Control Register (8.2.3.8.7). (The 82598 alias `0x02100 + 4n`
/// for `n < 16`, which the Linux and DPDK headers use, is not used here; see the alias table
/// in [`super`].)
pub const fn SRRCTL(n: usize) -> usize {
    rx_queue_reg(n, 0x01014, 0x0D014)
}
/// `RDT(n)`, Receive Descriptor Tail (8.2.3.8.5).
pub const fn RDT(n: usize) -> usize {
    rx_queue_reg(n, 0x01018, 0x0D018)
}
/// `RXDCTL(n)`, Receive Descriptor Control (8.2.3.8.6).
pub const fn RXDCTL(n: usize) -> usize {
    rx_queue_reg(n, 0x01028, 0x0D028)
}

/// `SRRCTL.BSIZEPACKET` (bits 4:0): receive buffer size in 1 KiB units (1..=16).
pub const SRRCTL_BSIZEPACKET_MASK: u32 = 0x1F;
/// The unit of `SRRCTL.BSIZEPACKET`: `1 << 10` bytes.
pub const SRRCTL_BSIZEPACKET_SHIFT: u32 = 10;
/// `SRRCTL.BSIZEHEADER` (bits 13:8): header buffer size in 64-byte units (split modes).
pub const SRRCTL_BSIZEHEADER_MASK: u32 = 0x3F << 8;
/// `SRRCTL.DESCTYPE` (bits 27:25).
pub const SRRCTL_DESCTYPE_MASK: u32 = 0b111 << 25;
/// `SRRCTL.DESCTYPE` = 000b: legacy descriptors.
pub const SRRCTL_DESCTYPE_LEGACY: u32 = 0b000 << 25;
/// `SRRCTL.DESCTYPE` = 001b: advanced descriptors, one buffer.
pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 0b001 << 25;
/// `SRRCTL.DROP_EN` (bit 28): drop packets when no descriptor is available instead of
/// holding them in the packet buffer.
pub const SRRCTL_DROP_EN: u32 = 1 << 28;

/// `SRRCTL.BSIZEPACKET` for a buffer of `bytes` bytes (rounded down to whole KiB, clamped to
/// 1..=16 KiB).
pub const fn srrctl_bsizepacket(bytes: usize) -> u32 {
    let kib = bytes >> SRRCTL_BSIZEPACKET_SHIFT;
    let kib = if kib < 1 {
        1
    } else if kib > 16 {
        16
    } else {
        kib
    };
    kib as u32 & SRRCTL_BSIZEPACKET_MASK
}

/// `RXDCTL.ENABLE` (bit 25): enable the queue; reads back 1 once the queue is enabled.
pub const RXDCTL_ENABLE: u32 = 1 << 25;
/// `RXDCTL.VME` (bit 30): strip VLAN tags.
pub const RXDCTL_VME: u32 = 1 << 30;

/// `RDRXCTL`, Receive DMA Control Register (8.2.3.8.8).
pub const RDRXCTL: usize = 0x02F00;
/// `RDRXCTL.CRCSTRIP` (bit 1): strip the CRC (must match `HLREG0.RXCRCSTRP`).
pub const RDRXCTL_CRCSTRIP: u32 = 1 << 1;
/// `RDRXCTL.DMAIDONE` (bit 3): DMA initialisation done (waited for in 4.6.3).
pub const RDRXCTL_DMAIDONE: u32 = 1 << 3;
/// `RDRXCTL.RSCFRSTSIZE` (bits 21:17): must be zero (4.6.7).
pub const RDRXCTL_RSCFRSTSIZE: u32 = 0x1F << 17;
/// `RDRXCTL.RSCACKC` (bit 25): must be set (4.6.7).
pub const RDRXCTL_RSCACKC: u32 = 1 << 25;
/// `RDRXCTL.FCOE_WRFIX` (bit 26): must be set (4.6.7).
pub const RDRXCTL_FCOE_WRFIX: u32 = 1 << 26;

/// `RXCTRL`, Receive Control Register (8.2.3.8.10).
pub const RXCTRL: usize = 0x03000;
/// `RXCTRL.RXEN` (bit 0): receive enable.
pub const RXCTRL_RXEN: u32 = 1 << 0;

/// `RXPBSIZE(n)`, Receive Packet Buffer Size (8.2.3.8.9), `n < 8`: size in KiB in bits 19:10.
pub const fn RXPBSIZE(n: usize) -> usize {
    assert!(n < 8, "RXPBSIZE index out of range");
    0x03C00 + 4 * n
}
/// Shift of the KiB count in `RXPBSIZE` / `TXPBSIZE`.
pub const PBSIZE_SHIFT: u32 = 10;
/// `RXPBSIZE` for all 512 KiB in packet buffer 0 when DCB is off (4.6.11.3.4; ixy writes
/// 128 KiB, the 82598's size; 512 KiB is the 82599's total, which Linux gives PB0).
pub const RXPBSIZE_512KB: u32 = 512 << PBSIZE_SHIFT;
/// `RXPBSIZE` = 128 KiB (ixy's value).
pub const RXPBSIZE_128KB: u32 = 128 << PBSIZE_SHIFT;

/// `RQSMR(n)`, Receive Queue Statistic Mapping (8.2.3.8.11), `n < 32`: byte `i` (bits 3:0)
/// is the statistics set (0..16) of RX queue `4n + i`.
pub const fn RQSMR(n: usize) -> usize {
    assert!(n < 32, "RQSMR index out of range");
    0x02300 + 4 * n
}

// ---------------------------------------------------------------------------------------------
// Transmit queues (8.2.3.9)
// ---------------------------------------------------------------------------------------------

/// `TDBAL(n)`, Transmit Descriptor Base Address Low (8.2.3.9.5).
pub const fn TDBAL(n: usize) -> usize {
    tx_queue_reg(n, 0x06000)
}
/// `TDBAH(n)`, Transmit Descriptor Base Address High (8.2.3.9.6).
pub const fn TDBAH(n: usize) -> usize {
    tx_queue_reg(n, 0x06004)
}
/// `TDLEN(n)`, Transmit Descriptor Length (8.2.3.9.7): bytes, a multiple of 128.
pub const fn TDLEN(n: usize) -> usize {
    tx_queue_reg(n, 0x06008)
}
/// `TDH(n)`, Transmit Descriptor Head (8.2.3.9.8).
pub const fn TDH(n: usize) -> usize {
    tx_queue_reg(n, 0x06010)
}
/// `TDT(n)`, Transmit Descriptor Tail (8.2.3.9.9).
pub const fn TDT(n: usize) -> usize {
    tx_queue_reg(n, 0x06018)
}
/// `TXDCTL(n)`, Transmit Descriptor Control (8.2.3.9.10).
pub const fn TXDCTL(n: usize) -> usize {
    tx_queue_reg(n, 0x06028)
}

/// `TXDCTL.PTHRESH` (bits 6:0): prefetch threshold.
pub const TXDCTL_PTHRESH_MASK: u32 = 0x7F;
/// `TXDCTL.HTHRESH` (bits 14:8): host threshold.
pub const TXDCTL_HTHRESH_MASK: u32 = 0x7F << 8;
/// Shift of `TXDCTL.HTHRESH`.
pub const TXDCTL_HTHRESH_SHIFT: u32 = 8;
/// `TXDCTL.WTHRESH` (bits 22:16): write-back threshold.
pub const TXDCTL_WTHRESH_MASK: u32 = 0x7F << 16;
/// Shift of `TXDCTL.WTHRESH`.
pub const TXDCTL_WTHRESH_SHIFT: u32 = 16;
/// `TXDCTL.ENABLE` (bit 25): enable the queue; reads back 1 once enabled.
pub const TXDCTL_ENABLE: u32 = 1 << 25;
/// `TXDCTL.SWFLSH` (bit 26): software flush of pending write-backs.
pub const TXDCTL_SWFLSH: u32 = 1 << 26;

/// `TXDCTL` thresholds: `PTHRESH | HTHRESH << 8 | WTHRESH << 16` (each 7 bits, masked).
pub const fn txdctl_thresholds(pthresh: u32, hthresh: u32, wthresh: u32) -> u32 {
    (pthresh & 0x7F)
        | ((hthresh & 0x7F) << TXDCTL_HTHRESH_SHIFT)
        | ((wthresh & 0x7F) << TXDCTL_WTHRESH_SHIFT)
}

/// `DMATXCTL`, DMA Tx Control (8.2.3.9.2).
pub const DMATXCTL: usize = 0x04A80;
/// `DMATXCTL.TE` (bit 0): transmit enable.
pub const DMATXCTL_TE: u32 = 1 << 0;

/// `DTXMXSZRQ`, DMA Tx TCP Max Allow Size Requests (8.2.3.9.1).
pub const DTXMXSZRQ: usize = 0x08100;
/// `DTXMXSZRQ.MAX_BYTES_NUM_REQ` (bits 11:0); 4.6.11.3.4 (DCB off) sets it to `0xFFF`.
pub const DTXMXSZRQ_MAX_BYTES_NUM_REQ_MASK: u32 = 0xFFF;

/// `TXPBSIZE(n)`, Transmit Packet Buffer Size (8.2.3.9.13), `n < 8`: KiB in bits 19:10.
pub const fn TXPBSIZE(n: usize) -> usize {
    assert!(n < 8, "TXPBSIZE index out of range");
    0x0CC00 + 4 * n
}
/// `TXPBSIZE` = 160 KiB, all of the TX packet buffer in PB0 when DCB is off (4.6.11.3.4).
pub const TXPBSIZE_160KB: u32 = 160 << PBSIZE_SHIFT;
/// `TXPBSIZE` = 40 KiB (ixy's value, the 82598's size).
pub const TXPBSIZE_40KB: u32 = 40 << PBSIZE_SHIFT;

/// `TQSM(n)`, Transmit Queue Statistic Mapping (8.2.3.9.14), `n < 32`: byte `i` (bits 3:0) is
/// the statistics set of TX queue `4n + i`.
pub const fn TQSM(n: usize) -> usize {
    assert!(n < 32, "TQSM index out of range");
    0x08600 + 4 * n
}

/// `RTTDCS`, DCB Transmit Descriptor Plane Control and Status (8.2.3.10.2).
pub const RTTDCS: usize = 0x04900;
/// `RTTDCS.ARBDIS` (bit 6): disable the TX descriptor arbiter while reconfiguring (4.6.11.3.4).
pub const RTTDCS_ARBDIS: u32 = 1 << 6;
