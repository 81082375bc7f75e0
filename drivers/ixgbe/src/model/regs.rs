//! The register file's layout: BAR0's size, power-on values, the registers `spec` does not
//! define, and how queue blocks and counters decode. A leaf: the
//! read / write dispatch that gives registers their behaviour is in `mmio.rs`.
//!
//! Every dword of BAR0 has storage, so a register the model gives no behaviour reads back
//! what was last written (zero after reset). Registers with behaviour are listed in the
//! module documentation of [`super`].

use crate::spec::regs::{EEC_ARD, EEC_PRES, HLREG0_RXCRCSTRP, HLREG0_TXCRCEN, HLREG0_TXPADEN};

/// BAR0 size: 512 KiB.
pub const BAR0_SIZE: usize = 512 * 1024;

// ---------------------------------------------------------------------------------------------
// Registers and bits not in `spec` (datasheet offsets; the model's own)
// ---------------------------------------------------------------------------------------------

/// `EICS_EX(n)`, Extended Interrupt Cause Set of MSI-X vectors `32n..32n+32` (8.2.3.5.4).
pub const fn eics_ex(n: usize) -> usize {
    0x00A90 + 4 * n
}
/// `EIMS_EX(n)`, Extended Interrupt Mask Set/Read of vectors `32n..32n+32` (8.2.3.5.7).
pub const fn eims_ex(n: usize) -> usize {
    0x00AA0 + 4 * n
}
/// `EIMC_EX(n)`, Extended Interrupt Mask Clear of vectors `32n..32n+32` (8.2.3.5.9).
pub const fn eimc_ex(n: usize) -> usize {
    0x00AB0 + 4 * n
}
/// `EIAM_EX(n)`, Extended Interrupt Auto Mask of vectors `32n..32n+32` (8.2.3.5.10).
pub const fn eiam_ex(n: usize) -> usize {
    0x00AD0 + 4 * n
}
/// `EICR.RX_MISS` (bit 17): a frame was missed, the packet buffer being full.
pub const EICR_RX_MISS: u32 = 1 << 17;
/// `EICR` bits 30:16: the "other" causes (`EICR.OTHER`, bit 31, summarises them).
pub const EICR_OTHER_CAUSES: u32 = 0x7FFF_0000;

/// `RXCSUM`, Receive Checksum Control (8.2.3.7.5).
pub const RXCSUM: usize = 0x05000;
/// `RXCSUM.PCSD` (bit 13): the write-back carries the RSS hash instead of the fragment
/// checksum and IP identification.
pub const RXCSUM_PCSD: u32 = 1 << 13;
/// `MCSTCTRL`, Multicast Control (8.2.3.7.2): `MO` (1:0), `MFE` (2).
pub const MCSTCTRL: usize = 0x05090;
/// `MCSTCTRL.MFE`: the multicast table array filter is enabled.
pub const MCSTCTRL_MFE: u32 = 1 << 2;
/// `MAXFRS`, Max Frame Size (8.2.3.22.13): `MFS` in bits 31:16.
pub const MAXFRS: usize = 0x04268;
/// `TDWBAL(n)`, Tx Descriptor Completion Write Back Address Low (8.2.3.9.11).
pub const fn tdwbal(n: usize) -> usize {
    0x06038 + 0x40 * n
}
/// `TDWBAH(n)`, Tx Descriptor Completion Write Back Address High (8.2.3.9.12).
pub const fn tdwbah(n: usize) -> usize {
    0x0603C + 0x40 * n
}
/// `TDWBAL.Head_WB_En` (bit 0).
pub const TDWBAL_HEAD_WB_EN: u32 = 1 << 0;
/// `MPTC`, Multicast Packets Transmitted Count.
pub const MPTC: usize = 0x040F0;
/// `BPTC`, Broadcast Packets Transmitted Count.
pub const BPTC: usize = 0x040F4;
/// `EEC` at power-on: EEPROM present, auto-read done.
pub(crate) const EEC_POWER_ON: u32 = EEC_PRES | EEC_ARD;
/// `HLREG0` at power-on: `TXCRCEN`, `RXCRCSTRP`, `TXPADEN`, `MDCSPD` (16), `RXLNGTHERREN`
/// (27) and the reserved bits 3, 11 and 13 that read 1.
pub(crate) const HLREG0_POWER_ON: u32 = HLREG0_TXCRCEN
    | HLREG0_RXCRCSTRP
    | HLREG0_TXPADEN
    | (1 << 3)
    | (1 << 11)
    | (1 << 13)
    | (1 << 16)
    | (1 << 27);
/// `SRRCTL` at power-on: `BSIZEPACKET` 2 KiB, `BSIZEHEADER` 256 bytes, legacy descriptors.
pub const SRRCTL_POWER_ON: u32 = 0x0000_0402;
/// `MAXFRS.MFS` at power-on: 1518 bytes.
pub const MAXFRS_POWER_ON: u32 = 0x05EE << 16;
/// `DCA_RXCTRL` bit 12 reads 1 at power-on (see `spec::queue::DCA_RXCTRL_RESERVED12`).
pub(crate) const DCA_RXCTRL_POWER_ON: u32 = 1 << 12;

/// Which register of a queue block an offset is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueReg {
    /// An RX queue register: queue, offset inside the queue's 64-byte block.
    Rx(usize, usize),
    /// A TX queue register: queue, offset inside the block.
    Tx(usize, usize),
}

/// Offsets inside a queue block.
pub mod block {
    /// `RDBAL` / `TDBAL`.
    pub const BAL: usize = 0x00;
    /// `RDBAH` / `TDBAH`.
    pub const BAH: usize = 0x04;
    /// `RDLEN` / `TDLEN`.
    pub const LEN: usize = 0x08;
    /// `RDH` / `TDH`.
    pub const HEAD: usize = 0x10;
    /// `SRRCTL` (RX).
    pub const SRRCTL: usize = 0x14;
    /// `RDT` / `TDT`.
    pub const TAIL: usize = 0x18;
    /// `RXDCTL` / `TXDCTL`.
    pub const DCTL: usize = 0x28;
}

/// The queue register at `offset`, if it is one (RX `0x01000..0x02000` and
/// `0x0D000..0x0E000`, TX `0x06000..0x08000`).
pub fn queue_reg(offset: usize) -> Option<QueueReg> {
    match offset {
        0x01000..=0x01FFF => Some(QueueReg::Rx((offset - 0x01000) / 0x40, offset % 0x40)),
        0x0D000..=0x0DFFF => Some(QueueReg::Rx(64 + (offset - 0x0D000) / 0x40, offset % 0x40)),
        0x06000..=0x07FFF => Some(QueueReg::Tx((offset - 0x06000) / 0x40, offset % 0x40)),
        _ => None,
    }
}

/// The register file offset of RX queue `q`'s register `reg` (a [`block`] offset).
pub const fn rx_reg(q: usize, reg: usize) -> usize {
    if q < 64 {
        0x01000 + 0x40 * q + reg
    } else {
        0x0D000 + 0x40 * (q - 64) + reg
    }
}

/// The register file offset of TX queue `q`'s register `reg`.
pub const fn tx_reg(q: usize, reg: usize) -> usize {
    0x06000 + 0x40 * q + reg
}

/// Whether `offset` is a statistics counter, read-only and cleared on read.
pub fn is_counter(offset: usize) -> bool {
    match offset {
        0x04000..=0x040FF => true,
        0x03FA0..=0x03FBF => true, // MPC(0..8)
        0x02F50..=0x02F7F => true, // RXDGPC .. RXDLPBKBCH
        0x087A0..=0x087AB => true, // TXDGPC, TXDGBCL/H
        0x08680..=0x086BF => true, // QPTC(0..16)
        0x08700..=0x0877F => true, // QBTC_L/H(0..16)
        o if (0x01030..0x01430).contains(&o) => {
            matches!(o % 0x40, 0x30 | 0x34 | 0x38) // QPRC, QBRC_L/H (0..16)
        }
        o if (0x01430..0x01830).contains(&o) => o % 0x40 == 0x30, // QPRDC(0..16)
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::queue::{RDT, SRRCTL, TDT};
    use crate::spec::stats;

    #[test]
    fn queue_blocks_and_counters_decode() {
        assert_eq!(queue_reg(RDT(70)), Some(QueueReg::Rx(70, block::TAIL)));
        assert_eq!(queue_reg(TDT(127)), Some(QueueReg::Tx(127, block::TAIL)));
        assert_eq!(rx_reg(70, block::TAIL), RDT(70));
        assert!(is_counter(stats::QPRC(15)) && is_counter(stats::QBRC_H(3)));
        assert!(is_counter(stats::QPRDC(0)) && is_counter(stats::GORCH));
        assert!(is_counter(stats::QPTC(2)) && is_counter(stats::QBTC_L(15)));
        assert!(!is_counter(RDT(0)) && !is_counter(SRRCTL(3)));
        assert!(
            is_counter(rx_reg(20, 0x30)),
            "QPRDC(4) is in queue 20's block"
        );
        assert!(!is_counter(rx_reg(40, 0x30)) && !is_counter(rx_reg(20, 0x34)));
    }
}
