//! The Intel 82599 10 GbE controller as Rust types, shared by the driver and the device model.
//!
//! Source: *Intel 82599 10 GbE Controller Datasheet* (revision 3.x), chapter 8 "Programming
//! Interface" for the registers and section 7.1.6 / 7.2.3 for the advanced receive and
//! transmit descriptors. Names are the datasheet's (`RDT`, `SRRCTL.DROP_EN`, `LINKS.LINK_UP`)
//! so that a reader can search the PDF for them. Only what the driver or the model uses is
//! defined. Every offset and bit was checked against three independent definitions of the same
//! facts: ixy.rs (`src/constants.rs`, a copy of `ixgbe_type.h`), DPDK
//! (`drivers/net/ixgbe/base/ixgbe_type.h`) and Linux (`drivers/net/ethernet/intel/ixgbe/
//! ixgbe_type.h`); where they differ from the 82599 datasheet the difference is noted below.
//!
//! | module | contents | datasheet |
//! |---|---|---|
//! | [`regs`] | general, interrupt, EEPROM, link, filter and RSS registers | 8.2.3.1, 8.2.3.5, 8.2.3.2, 8.2.3.22, 8.2.3.7 |
//! | [`queue`] | RX and TX queue, packet buffer and DMA registers | 8.2.3.8, 8.2.3.9 |
//! | [`stats`] | statistics counters (clear on read) | 8.2.3.23 |
//! | [`desc`] | advanced RX and TX descriptors, read and write-back formats | 7.1.6, 7.2.3.2.4 |
//! | [`ids`] | the 82599 family's PCI device IDs (Linux's `board_82599` table) | |
//!
//! # Registers used, with their BAR0 offsets
//!
//! Indexed registers are `const fn`s of the index (`RDT(n)`); the table gives the offset of
//! index `n` and the range of `n` the function accepts.
//!
//! | register | offset | n | what |
//! |---|---|---|---|
//! | `CTRL` | `0x00000` | | device control: `RST` (26), `LRST` (3), `PCIE_MASTER_DISABLE` (2) |
//! | `STATUS` | `0x00008` | | device status: `LAN_ID` (3:2), `LINK_UP` (7), `PCIE_MASTER_ENABLE_STATUS` (19) |
//! | `CTRL_EXT` | `0x00018` | | extended control: `PFRSTD` (14), `NS_DIS` (16), `DRV_LOAD` (28) |
//! | `EEC` | `0x10010` | | EEPROM/flash control: `PRES` (8), `ARD` auto-read done (9) |
//! | `EICR` | `0x00800` | | extended interrupt cause (read to clear) |
//! | `EICS` | `0x00808` | | extended interrupt cause set |
//! | `EIAC` | `0x00810` | | extended interrupt auto clear |
//! | `EITR(n)` | `0x00820 + 4n`; `0x12300 + 4(n-24)` | 0..128 | interrupt throttle: `ITR_INTERVAL` (11:3, 2 µs units), `CNT_WDIS` (31) |
//! | `EIMS` | `0x00880` | | extended interrupt mask set / read |
//! | `EIMC` | `0x00888` | | extended interrupt mask clear |
//! | `EIAM` | `0x00890` | | extended interrupt auto mask |
//! | `EIAM_EX(n)` | `0x00AD0 + 4n` | 0..2 | extended interrupt auto mask, MSI-X vectors `32n..32n+32` |
//! | `GPIE` | `0x00898` | | general purpose interrupt enable: `MSIX_MODE` (4), `OCD` (5), `EIAME` (30), `PBA_SUPPORT` (31) |
//! | `IVAR(n)` | `0x00900 + 4n` | 0..64 | interrupt vector allocation, queues `2n` and `2n+1` |
//! | `IVAR_MISC` | `0x00A00` | | vector of the "other causes" interrupt |
//! | `RDBAL(n)` | `0x01000 + 0x40n`; `0x0D000 + 0x40(n-64)` | 0..128 | RX descriptor ring base, low |
//! | `RDBAH(n)` | `0x01004 + 0x40n`; ... | 0..128 | RX descriptor ring base, high |
//! | `RDLEN(n)` | `0x01008 + 0x40n`; ... | 0..128 | RX ring length in bytes (multiple of 128) |
//! | `DCA_RXCTRL(n)` | `0x0100C + 0x40n`; ... | 0..128 | RX DCA control (bit 12 must be cleared) |
//! | `RDH(n)` | `0x01010 + 0x40n`; ... | 0..128 | RX descriptor head |
//! | `SRRCTL(n)` | `0x01014 + 0x40n`; ... | 0..128 | split and replication RX control: `BSIZEPACKET` (4:0, KiB), `BSIZEHEADER` (13:8), `DESCTYPE` (27:25), `DROP_EN` (28) |
//! | `RDT(n)` | `0x01018 + 0x40n`; ... | 0..128 | RX descriptor tail |
//! | `RXDCTL(n)` | `0x01028 + 0x40n`; ... | 0..128 | RX descriptor control: `ENABLE` (25), `VME` (30) |
//! | `QPRC(n)` | `0x01030 + 0x40n` | 0..16 | queue packets received count |
//! | `QBRC_L(n)` / `QBRC_H(n)` | `0x01034` / `0x01038 + 0x40n` | 0..16 | queue bytes received count |
//! | `QPRDC(n)` | `0x01430 + 0x40n` | 0..16 | queue packets received drop count |
//! | `RQSMR(n)` | `0x02300 + 4n` | 0..32 | RX queue statistic mapping (queues `4n..4n+4`) |
//! | `RDRXCTL` | `0x02F00` | | RX DMA control: `CRCSTRIP` (1), `DMAIDONE` (3), `RSCFRSTSIZE` (21:17), `RSCACKC` (25), `FCOE_WRFIX` (26) |
//! | `RXCTRL` | `0x03000` | | RX control: `RXEN` (0) |
//! | `RXPBSIZE(n)` | `0x03C00 + 4n` | 0..8 | RX packet buffer size (KiB in 19:10) |
//! | `MPC(n)` | `0x03FA0 + 4n` | 0..8 | missed packets count |
//! | `CRCERRS` .. `TPT` | `0x04000` .. `0x040D4` | | MAC statistics, see [`stats`] |
//! | `HLREG0` | `0x04240` | | MAC core control 0: `TXCRCEN` (0), `RXCRCSTRP` (1), `JUMBOEN` (2), `TXPADEN` (10), `LPBK` (15) |
//! | `AUTOC` | `0x042A0` | | auto-negotiation control: `FLU` (0), `10G_PMA_PMD` (8:7), `AN_RESTART` (12), `LMS` (15:13) |
//! | `LINKS` | `0x042A4` | | link status: `LINK_SPEED` (29:28), `LINK_UP` (30) |
//! | `RTTDCS` | `0x04900` | | DCB TX descriptor plane control: `ARBDIS` (6) |
//! | `DMATXCTL` | `0x04A80` | | TX DMA control: `TE` (0) |
//! | `FCTRL` | `0x05080` | | filter control: `SBP` (1), `MPE` (8), `UPE` (9), `BAM` (10) |
//! | `MTA(n)` | `0x05200 + 4n` | 0..128 | multicast table array |
//! | `MRQC` | `0x0EC80` | | multiple RX queues command: `MRQE` (3:0), RSS field enables (24:16) |
//! | `TDBAL(n)` | `0x06000 + 0x40n` | 0..128 | TX descriptor ring base, low |
//! | `TDBAH(n)` | `0x06004 + 0x40n` | 0..128 | TX descriptor ring base, high |
//! | `TDLEN(n)` | `0x06008 + 0x40n` | 0..128 | TX ring length in bytes (multiple of 128) |
//! | `TDH(n)` | `0x06010 + 0x40n` | 0..128 | TX descriptor head |
//! | `TDT(n)` | `0x06018 + 0x40n` | 0..128 | TX descriptor tail |
//! | `TXDCTL(n)` | `0x06028 + 0x40n` | 0..128 | TX descriptor control: `PTHRESH` (6:0), `HTHRESH` (14:8), `WTHRESH` (22:16), `ENABLE` (25), `SWFLSH` (26) |
//! | `DTXMXSZRQ` | `0x08100` | | DMA TX max total allowed size requests: `MAX_BYTES_NUM_REQ` (11:0) |
//! | `TQSM(n)` | `0x08600 + 4n` | 0..32 | TX queue statistic mapping (queues `4n..4n+4`) |
//! | `QPTC(n)` | `0x08680 + 4n` | 0..16 | queue packets transmitted count |
//! | `QBTC_L(n)` / `QBTC_H(n)` | `0x08700` / `0x08704 + 8n` | 0..16 | queue bytes transmitted count |
//! | `RAL(n)` | `0x0A200 + 8n` | 0..128 | receive address low (MAC bytes 0..4) |
//! | `RAH(n)` | `0x0A204 + 8n` | 0..128 | receive address high (MAC bytes 4..6, `AV` (31)) |
//! | `TXPBSIZE(n)` | `0x0CC00 + 4n` | 0..8 | TX packet buffer size (KiB in 19:10) |
//! | `RETA(n)` | `0x0EB00 + 4n` | 0..32 | RSS redirection table, four 8-bit entries each |
//! | `RSSRK(n)` | `0x0EB80 + 4n` | 0..10 | RSS random key, 40 bytes |
//!
//! # Register addresses: the 82599's own, never the 82598 aliases
//!
//! Some registers moved between the 82598 and the 82599. The 82599 datasheet gives each its
//! 82599 address; the 82599 silicon also decodes the old 82598 address of the first entries,
//! so that 82598 software keeps working, and the Linux and DPDK headers (and ixy.rs, a copy of
//! them) still name several registers by the old address. This crate uses **only the 82599
//! addresses**, and the model answers only those: a write to an alias address is stored like
//! any unmodelled dword and does nothing, so a driver that used one would be caught by the
//! model tests instead of working by accident.
//!
//! | register | 82599 address (used here) | 82598 alias (not used) | Linux / DPDK header |
//! |---|---|---|---|
//! | `MRQC` | `0x0EC80` | `0x05818` | alias |
//! | `RETA(n)`, n < 32 | `0x0EB00 + 4n` | `0x05C00 + 4n` | alias |
//! | `RSSRK(n)`, n < 10 | `0x0EB80 + 4n` | `0x05C80 + 4n` | alias |
//! | `RAL(n)` / `RAH(n)`, n < 16 | `0x0A200` / `0x0A204 + 8n` | `0x05400` / `0x05404 + 8n` | alias for n < 16, own above |
//! | `SRRCTL(n)`, n < 16 | `0x01014 + 0x40n` | `0x02100 + 4n` | alias for n < 16, own above |
//! | `DCA_RXCTRL(n)`, n < 16 | `0x0100C + 0x40n` | `0x02200 + 4n` | alias for n < 16, own above |
//! | `QPTC(n)`, n < 16 | `0x08680 + 4n` | `0x06030 + 0x40n` | alias |
//!
//! (Before this table, `MRQC` alone was defined at its alias `0x05818`, the address every
//! anchor writes, while the others used the 82599 addresses, and the model answered both,
//! which hid the mix.)
//!
//! # Where the anchors disagree with the datasheet
//!
//! - **`DTXMXSZRQ`** (`0x08100`): `MAX_BYTES_NUM_REQ` is bits 11:0, and the datasheet's
//!   transmit set-up without DCB (4.6.11.3.4) asks for `0xFFF`. ixy.rs (`src/ixgbe.rs`
//!   `init_tx`, like ixy in C) writes `0xFFFF`, setting the reserved bits 15:12 as well;
//!   redox's `ixgbed`, derived from ixy.rs, writes `0xFFF`. Linux and DPDK only define the
//!   register (we found no write of it in their non-DCB transmit set-up, so the power-on value
//!   stays there). This crate sets the field alone to `0xFFF`
//!   ([`queue::DTXMXSZRQ_MAX_BYTES_NUM_REQ_MASK`]), leaving the reserved bits as they are.
//! - **RX write-back error bit 29**: the datasheet calls it `RXE` (any MAC error: CRC,
//!   length, ...). Linux names it `IXGBE_RXDADV_ERR_USE` ("Undersize Error", the 82598's
//!   meaning of the bit) and folds it into its `FRAME_ERR_MASK`; DPDK defines both
//!   `IXGBE_RXDADV_ERR_RXE` ("Any MAC Error") and `IXGBE_RXDADV_ERR_USE` at `0x20000000`.
//!   This crate uses the datasheet's name, [`desc::RXD_ERR_RXE`].
//! - **`STATUS.LINK_UP`** (bit 7) is in the datasheet's STATUS table but none of the headers
//!   defines it; every anchor reads the link from `LINKS`, and so does this driver.
//!
//! # Conventions
//! - Offsets are byte offsets into BAR0 (`usize`, as the framework's `RegisterIo` takes them).
//!   All registers used here are 32 bits wide.
//! - Indexed registers are `const fn NAME(n: usize) -> usize` with the datasheet's upper-case
//!   name, so `RDT(q)` reads like the datasheet. An index outside the documented range is a
//!   bug in the caller and panics (at compile time when the index is a constant).
//! - Values the device writes (descriptor write-back, register reads) are untrusted: the
//!   accessors here decode bits and never panic; validation is the driver's job.
//! - No `unsafe`: the crate forbids it.

// Indexed registers keep the datasheet's upper-case names (`RDT(n)`), see Conventions.
#![allow(non_snake_case)]

pub mod desc;
pub mod ids;
pub mod queue;
pub mod regs;
pub mod stats;

pub use desc::{AdvRxDesc, AdvRxRead, AdvRxWriteback, AdvTxDesc, AdvTxRead, AdvTxWriteback};

#[cfg(not(target_endian = "little"))]
compile_error!("the descriptor types store fields in host order, which must be little-endian");

#[cfg(test)]
mod tests;
