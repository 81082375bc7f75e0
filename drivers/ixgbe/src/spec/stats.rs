//! Statistics registers (datasheet 8.2.3.23).
//!
//! All of them are clear-on-read: a driver that wants totals accumulates what it reads. The
//! 64-bit byte counters are split in a low and a high register; the datasheet asks for the low
//! half to be read first (the high half is latched by that read).
//!
//! Per-queue counters count the queues mapped to their statistics set through `RQSMR` /
//! `TQSM` ([`super::queue::RQSMR`]); after reset every queue maps to set 0.

/// `CRCERRS`, CRC Error Count.
pub const CRCERRS: usize = 0x04000;
/// `ILLERRC`, Illegal Byte Error Count.
pub const ILLERRC: usize = 0x04004;
/// `ERRBC`, Error Byte Count.
pub const ERRBC: usize = 0x04008;
/// `RLEC`, Receive Length Error Count.
pub const RLEC: usize = 0x04040;
/// `GPRC`, Good Packets Received Count.
pub const GPRC: usize = 0x04074;
/// `BPRC`, Broadcast Packets Received Count.
pub const BPRC: usize = 0x04078;
/// `MPRC`, Multicast Packets Received Count.
pub const MPRC: usize = 0x0407C;
/// `GPTC`, Good Packets Transmitted Count.
pub const GPTC: usize = 0x04080;
/// `GORCL`, Good Octets Received Count, low 32 bits (read first).
pub const GORCL: usize = 0x04088;
/// `GORCH`, Good Octets Received Count, high 4 bits.
pub const GORCH: usize = 0x0408C;
/// `GOTCL`, Good Octets Transmitted Count, low 32 bits (read first).
pub const GOTCL: usize = 0x04090;
/// `GOTCH`, Good Octets Transmitted Count, high 4 bits.
pub const GOTCH: usize = 0x04094;
/// `RUC`, Receive Undersize Count.
pub const RUC: usize = 0x040A4;
/// `ROC`, Receive Oversize Count.
pub const ROC: usize = 0x040AC;
/// `TPR`, Total Packets Received.
pub const TPR: usize = 0x040D0;
/// `TPT`, Total Packets Transmitted.
pub const TPT: usize = 0x040D4;

/// `MPC(n)`, Missed Packets Count of packet buffer `n` (`n < 8`).
pub const fn MPC(n: usize) -> usize {
    assert!(n < 8, "MPC index out of range");
    0x03FA0 + 4 * n
}

/// Statistics sets for the per-queue counters.
pub const QUEUE_STAT_SETS: usize = 16;

/// `QPRC(n)`, Queue Packets Received Count of statistics set `n` (`n < 16`).
pub const fn QPRC(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QPRC index out of range");
    0x01030 + 0x40 * n
}
/// `QPRDC(n)`, Queue Packets Received Drop Count of statistics set `n` (`n < 16`).
pub const fn QPRDC(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QPRDC index out of range");
    0x01430 + 0x40 * n
}
/// `QBRC_L(n)`, Queue Bytes Received Count, low 32 bits (read first).
pub const fn QBRC_L(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QBRC_L index out of range");
    0x01034 + 0x40 * n
}
/// `QBRC_H(n)`, Queue Bytes Received Count, high 4 bits.
pub const fn QBRC_H(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QBRC_H index out of range");
    0x01038 + 0x40 * n
}
/// `QPTC(n)`, Queue Packets Transmitted Count of statistics set `n` (`n < 16`). (The Linux
/// and DPDK headers use the 82598 alias `0x06030 + 0x40n`, not used here; see the alias table
/// in [`super`].)
pub const fn QPTC(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QPTC index out of range");
    0x08680 + 4 * n
}
/// `QBTC_L(n)`, Queue Bytes Transmitted Count, low 32 bits (read first).
pub const fn QBTC_L(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QBTC_L index out of range");
    0x08700 + 8 * n
}
/// `QBTC_H(n)`, Queue Bytes Transmitted Count, high 4 bits.
pub const fn QBTC_H(n: usize) -> usize {
    assert!(n < QUEUE_STAT_SETS, "QBTC_H index out of range");
    0x08704 + 8 * n
}

/// The 36-bit byte counters' high registers hold 4 bits.
pub const OCTETS_HIGH_MASK: u32 = 0xF;
