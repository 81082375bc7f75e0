//! RX and TX queue registers (82576 datasheet 8.10 receive DMA, 8.12 transmit DMA).
//!
//! The 82576 has 16 RX and 16 TX queues. Their registers are at `0x0C000 + 0x40n` (RX) and
//! `0x0E000 + 0x40n` (TX); queues 0..4 also answer at the 82575-compatible aliases
//! `0x02800 + 0x100n` / `0x03800 + 0x100n`, which this crate does not use. (These are *not*
//! the 82599's offsets: its RX queues start at `0x01000`, its TX queues at `0x06000`.)

/// Queues of each direction.
pub const MAX_QUEUES: usize = 16;

const fn rx_queue_reg(n: usize, base: usize) -> usize {
    assert!(n < MAX_QUEUES, "RX queue index out of range");
    base + 0x40 * n
}

const fn tx_queue_reg(n: usize, base: usize) -> usize {
    assert!(n < MAX_QUEUES, "TX queue index out of range");
    base + 0x40 * n
}

// ---------------------------------------------------------------------------------------------
// Receive queues
// ---------------------------------------------------------------------------------------------

/// `RDBAL(n)`, Receive Descriptor Base Address Low: 128-byte aligned ring.
pub const fn RDBAL(n: usize) -> usize {
    rx_queue_reg(n, 0x0C000)
}
/// `RDBAH(n)`, Receive Descriptor Base Address High.
pub const fn RDBAH(n: usize) -> usize {
    rx_queue_reg(n, 0x0C004)
}
/// `RDLEN(n)`, Receive Descriptor Ring Length: bytes, a multiple of 128.
pub const fn RDLEN(n: usize) -> usize {
    rx_queue_reg(n, 0x0C008)
}
/// `SRRCTL(n)`, Split and Replication Receive Control (8.10.2).
pub const fn SRRCTL(n: usize) -> usize {
    rx_queue_reg(n, 0x0C00C)
}
/// `RDH(n)`, Receive Descriptor Head.
pub const fn RDH(n: usize) -> usize {
    rx_queue_reg(n, 0x0C010)
}
/// `RXCTL(n)`, RX DCA Control (left at its reset value).
pub const fn RXCTL(n: usize) -> usize {
    rx_queue_reg(n, 0x0C014)
}
/// `RDT(n)`, Receive Descriptor Tail.
pub const fn RDT(n: usize) -> usize {
    rx_queue_reg(n, 0x0C018)
}
/// `RXDCTL(n)`, Receive Descriptor Control.
pub const fn RXDCTL(n: usize) -> usize {
    rx_queue_reg(n, 0x0C028)
}
/// `RQDPC(n)`, Receive Queue Drop Packet Count (clear on read): frames dropped for want of a
/// descriptor with `SRRCTL.DROP_EN` set.
pub const fn RQDPC(n: usize) -> usize {
    rx_queue_reg(n, 0x0C030)
}

/// `SRRCTL.BSIZEPACKET` (bits 6:0): receive buffer size in 1 KiB units (1..=127; the 82599's
/// field is 5 bits).
pub const SRRCTL_BSIZEPACKET_MASK: u32 = 0x7F;
/// The unit of `SRRCTL.BSIZEPACKET`: `1 << 10` bytes.
pub const SRRCTL_BSIZEPACKET_SHIFT: u32 = 10;
/// `SRRCTL.BSIZEHEADER` (bits 11:8): header buffer size in 64-byte units (split modes).
pub const SRRCTL_BSIZEHEADER_MASK: u32 = 0xF << 8;
/// `SRRCTL.RDMTS` (bits 24:20): RX descriptor minimum threshold, in 16-descriptor units.
pub const SRRCTL_RDMTS_MASK: u32 = 0x1F << 20;
/// `SRRCTL.DESCTYPE` (bits 27:25).
pub const SRRCTL_DESCTYPE_MASK: u32 = 0b111 << 25;
/// `SRRCTL.DESCTYPE` = 001b: advanced descriptors, one buffer.
pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 0b001 << 25;
/// `SRRCTL.DROP_EN` (bit 31; the 82599's is bit 28): drop frames when no descriptor is free
/// instead of holding them in the packet buffer.
pub const SRRCTL_DROP_EN: u32 = 1 << 31;

/// Largest buffer `SRRCTL.BSIZEPACKET` can describe that a frame needs: 16 KiB (the
/// descriptor's `PKT_LEN` and the 82576's largest frame stay below it).
pub const SRRCTL_MAX_BUFFER_KIB: usize = 16;

/// `SRRCTL.BSIZEPACKET` for a buffer of `bytes` bytes: whole KiB, rounded down, clamped to
/// 1..=16 KiB.
pub const fn srrctl_bsizepacket(bytes: usize) -> u32 {
    let kib = bytes >> SRRCTL_BSIZEPACKET_SHIFT;
    let kib = if kib < 1 {
        1
    } else if kib > SRRCTL_MAX_BUFFER_KIB {
        SRRCTL_MAX_BUFFER_KIB
    } else {
        kib
    };
    kib as u32 & SRRCTL_BSIZEPACKET_MASK
}

/// `SRRCTL` for advanced one-buffer descriptors of `buffer_size` bytes, dropping when the
/// ring is full if `drop_when_full`; the other fields of `current` are kept.
pub const fn srrctl_value(current: u32, buffer_size: usize, drop_when_full: bool) -> u32 {
    let kept = current & !(SRRCTL_DESCTYPE_MASK | SRRCTL_BSIZEPACKET_MASK | SRRCTL_DROP_EN);
    kept | SRRCTL_DESCTYPE_ADV_ONEBUF
        | srrctl_bsizepacket(buffer_size)
        | if drop_when_full { SRRCTL_DROP_EN } else { 0 }
}

/// `RXDCTL.PTHRESH` (bits 4:0), `HTHRESH` (12:8), `WTHRESH` (20:16); the 82599's fields are
/// 7 bits wide at the same positions.
pub const fn dctl_thresholds(pthresh: u32, hthresh: u32, wthresh: u32) -> u32 {
    (pthresh & 0x1F) | ((hthresh & 0x1F) << 8) | ((wthresh & 0x1F) << 16)
}
/// `RXDCTL.ENABLE` (bit 25): enable the queue; reads back 1 once it is enabled.
pub const RXDCTL_ENABLE: u32 = 1 << 25;
/// `RXDCTL.SWFLSH` (bit 26): flush pending write-backs.
pub const RXDCTL_SWFLSH: u32 = 1 << 26;

// ---------------------------------------------------------------------------------------------
// Transmit queues
// ---------------------------------------------------------------------------------------------

/// `TDBAL(n)`, Transmit Descriptor Base Address Low.
pub const fn TDBAL(n: usize) -> usize {
    tx_queue_reg(n, 0x0E000)
}
/// `TDBAH(n)`, Transmit Descriptor Base Address High.
pub const fn TDBAH(n: usize) -> usize {
    tx_queue_reg(n, 0x0E004)
}
/// `TDLEN(n)`, Transmit Descriptor Ring Length: bytes, a multiple of 128.
pub const fn TDLEN(n: usize) -> usize {
    tx_queue_reg(n, 0x0E008)
}
/// `TDH(n)`, Transmit Descriptor Head.
pub const fn TDH(n: usize) -> usize {
    tx_queue_reg(n, 0x0E010)
}
/// `TXCTL(n)`, TX DCA Control (left at its reset value).
pub const fn TXCTL(n: usize) -> usize {
    tx_queue_reg(n, 0x0E014)
}
/// `TDT(n)`, Transmit Descriptor Tail.
pub const fn TDT(n: usize) -> usize {
    tx_queue_reg(n, 0x0E018)
}
/// `TXDCTL(n)`, Transmit Descriptor Control.
pub const fn TXDCTL(n: usize) -> usize {
    tx_queue_reg(n, 0x0E028)
}
/// `TDWBAL(n)`, TX Descriptor Completion Write-Back Address Low: bit 0 set would make the
/// device write the head there instead of `DD` into the descriptors; kept 0.
pub const fn TDWBAL(n: usize) -> usize {
    tx_queue_reg(n, 0x0E038)
}
/// `TDWBAH(n)`, TX Descriptor Completion Write-Back Address High.
pub const fn TDWBAH(n: usize) -> usize {
    tx_queue_reg(n, 0x0E03C)
}

/// `TXDCTL.ENABLE` (bit 25): enable the queue; reads back 1 once it is enabled.
pub const TXDCTL_ENABLE: u32 = 1 << 25;
/// `TXDCTL.SWFLSH` (bit 26): write back pending descriptors now (with `WTHRESH` > 0).
pub const TXDCTL_SWFLSH: u32 = 1 << 26;
