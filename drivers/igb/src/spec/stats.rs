//! Statistics registers (82576 datasheet 8.19).
//!
//! On hardware they all clear on read, so a driver that wants totals accumulates what it
//! reads. The 64-bit octet counters are a low and a high register; the low half is read first
//! (the read of the high half completes, and clears, the pair).
//!
//! QEMU's model clears only some of them on read (`GPRC`, `GPTC`, `GORC`, `GOTC`, `TPR`,
//! `TPT`, `RUC`, `ROC`, `BPRC`, `MPRC`, `RQDPC`, ...); the error counters from `CRCERRS` to
//! `MPC`, `RLEC`, `RNBC` are plain registers there, which the model never increments. The
//! accumulation is right for both.

/// `CRCERRS`, CRC Error Count.
pub const CRCERRS: usize = 0x04000;
/// `ALGNERRC`, Alignment Error Count.
pub const ALGNERRC: usize = 0x04004;
/// `RXERRC`, RX Error Count.
pub const RXERRC: usize = 0x0400C;
/// `MPC`, Missed Packets Count: frames lost for want of packet buffer space.
pub const MPC: usize = 0x04010;
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
/// `GORCH`, Good Octets Received Count, high 32 bits.
pub const GORCH: usize = 0x0408C;
/// `GOTCL`, Good Octets Transmitted Count, low 32 bits (read first).
pub const GOTCL: usize = 0x04090;
/// `GOTCH`, Good Octets Transmitted Count, high 32 bits.
pub const GOTCH: usize = 0x04094;
/// `RNBC`, Receive No Buffers Count.
pub const RNBC: usize = 0x040A0;
/// `RUC`, Receive Undersize Count.
pub const RUC: usize = 0x040A4;
/// `ROC`, Receive Oversize Count.
pub const ROC: usize = 0x040AC;
/// `TPR`, Total Packets Received.
pub const TPR: usize = 0x040D0;
/// `TPT`, Total Packets Transmitted.
pub const TPT: usize = 0x040D4;
/// `MPTC`, Multicast Packets Transmitted Count.
pub const MPTC: usize = 0x040F0;
/// `BPTC`, Broadcast Packets Transmitted Count.
pub const BPTC: usize = 0x040F4;
