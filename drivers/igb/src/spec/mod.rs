//! The Intel 82576 Gigabit Ethernet controller as Rust types.
//!
//! Source: *Intel 82576EB Gigabit Ethernet Controller Datasheet* (revision 2.x), chapter 8
//! "Programming Interface" for the registers, 7.1 / 7.2 for the advanced descriptors, 7.3
//! for interrupts, 4.5 for the initialisation. Names are the datasheet's (`RDT`,
//! `SRRCTL.DROP_EN`, `STATUS.LU`) so a reader can search the PDF for them. Only what the
//! driver uses is defined. Every offset and bit was checked against two independent
//! definitions of the same facts: Linux (`drivers/net/ethernet/intel/igb/e1000_regs.h`,
//! `e1000_defines.h`, `e1000_82575.h`) and QEMU's model (`hw/net/igb_regs.h`,
//! `hw/net/igb_core.c`), which the VM tier runs the driver against.
//!
//! | module | contents | datasheet |
//! |---|---|---|
//! | [`regs`] | general, EEPROM, `MDIC`, interrupt, RX / TX control, filter and RSS registers | 8.2, 8.4, 8.8, 8.9, 8.10, 8.11 |
//! | [`queue`] | RX and TX queue registers | 8.10, 8.12 |
//! | [`phy`] | the PHY's MII registers behind `MDIC` | 8.2.4 |
//! | [`stats`] | statistics counters (clear on read) | 8.19 |
//! | [`desc`] | what the advanced RX write-back's status and error bits mean on this chip | 7.1.5 |
//!
//! The descriptor layouts themselves (16-byte advanced RX / TX descriptors, read and
//! write-back formats, `DD`, `EOP`, `RS`, `DTYP`, `DCMD`) are the 82599's too and live in the
//! shared ring engine, [`userpci_intel_ring::desc`].
//!
//! # Registers used, with their BAR0 offsets
//!
//! | register | offset | n | what |
//! |---|---|---|---|
//! | `CTRL` | `0x00000` | | device control: `GIO_MASTER_DISABLE` (2), `SLU` (6), `FRCSPD` (11), `FRCDPX` (12), `RST` (26), `PHY_RST` (31) |
//! | `STATUS` | `0x00008` | | device status: `FD` (0), `LU` (1), `SPEED` (7:6), `GIO_MASTER_ENABLE` (19) |
//! | `EECD` | `0x00010` | | EEPROM control: `PRES` (8), `AUTO_RD` (9) |
//! | `CTRL_EXT` | `0x00018` | | extended control: `DRV_LOAD` (28) |
//! | `MDIC` | `0x00020` | | MDI control: `DATA` (15:0), `REGADD` (20:16), `PHYADD` (25:21), `OP` (27:26), `R` (28), `E` (30) |
//! | `ICR` / `IMC` | `0x000C0` / `0x000D8` | | legacy interrupt cause / mask clear |
//! | `RCTL` | `0x00100` | | receive control: `EN` (1), `UPE` (3), `MPE` (4), `BAM` (15), `SECRC` (26) |
//! | `TCTL` | `0x00400` | | transmit control: `EN` (1), `PSP` (3), `CT` (11:4), `COLD` (21:12), `RTLC` (24) |
//! | `GPIE` | `0x01514` | | general purpose interrupt enable: `NSICR` (0), `MSIX_MODE` (4), `EIAME` (30), `PBA` (31) |
//! | `EICS` / `EIMS` / `EIMC` / `EIAC` / `EIAM` | `0x01520` .. `0x01530` | | extended interrupt cause set, mask set, mask clear, auto clear, auto mask |
//! | `EICR` | `0x01580` | | extended interrupt cause (read to clear) |
//! | `EITR(n)` | `0x01680 + 4n` | 0..25 | interrupt throttle: `INTERVAL` (14:2, µs), `CNT_IGNR` (31) |
//! | `IVAR(n)` | `0x01700 + 4n` | 0..8 | vectors of RX `n` (7:0), TX `n` (15:8), RX `n+8` (23:16), TX `n+8` (31:24) |
//! | `IVAR_MISC` | `0x01740` | | vectors of the TCP timer and the other causes |
//! | `CRCERRS` .. `BPTC` | `0x04000` .. `0x040F4` | | statistics, see [`stats`] |
//! | `RXCSUM` | `0x05000` | | receive checksum control: `PCSD` (13) |
//! | `MTA(n)` | `0x05200 + 4n` | 0..128 | multicast table |
//! | `RAL(n)` / `RAH(n)` | `0x05400 + 8n`; `0x054E0 + 8(n-16)` | 0..24 | receive addresses, `RAH.AV` (31) |
//! | `MRQC` | `0x05818` | | multiple receive queues: `MRQE` (2:0), hash fields (23:16) |
//! | `RETA(n)` | `0x05C00 + 4n` | 0..32 | RSS redirection table, four 8-bit entries each |
//! | `RSSRK(n)` | `0x05C80 + 4n` | 0..10 | RSS key, 40 bytes |
//! | `RDBAL(n)` .. `RDT(n)` | `0x0C000` .. `0x0C018 + 0x40n` | 0..16 | RX ring base, length, `SRRCTL`, head, tail |
//! | `RXDCTL(n)` | `0x0C028 + 0x40n` | 0..16 | RX queue control: thresholds, `ENABLE` (25) |
//! | `RQDPC(n)` | `0x0C030 + 0x40n` | 0..16 | RX queue drop count |
//! | `TDBAL(n)` .. `TDT(n)` | `0x0E000` .. `0x0E018 + 0x40n` | 0..16 | TX ring base, length, head, tail |
//! | `TXDCTL(n)` | `0x0E028 + 0x40n` | 0..16 | TX queue control: thresholds, `ENABLE` (25) |
//! | `TDWBAL(n)` / `TDWBAH(n)` | `0x0E038` / `0x0E03C + 0x40n` | 0..16 | head write-back address (kept 0: `DD` write-back) |
//!
//! # How the 82576 differs from the 82599 (the chips the ring engine serves)
//! - The queue registers are elsewhere: RX at `0x0C000 + 0x40n`, TX at `0x0E000 + 0x40n`
//!   (82599: `0x01000`, `0x06000`); the descriptor formats are the same.
//! - `SRRCTL.DROP_EN` is bit 31 (82599: 28); `SRRCTL.BSIZEPACKET` is 7 bits wide.
//! - The receive filters are `RCTL` bits (`UPE`, `MPE`, `BAM`); there is no `FCTRL`. CRC
//!   stripping is `RCTL.SECRC`.
//! - Link is the copper PHY's, reached through `MDIC`; `STATUS.LU` / `STATUS.SPEED` report
//!   it (82599: `AUTOC` / `LINKS`).
//! - `IVAR(n)` holds queues `n` and `n + 8` (82599: `2n` and `2n + 1`); the interrupt
//!   registers sit at `0x015xx` / `0x016xx`.
//! - The write-back error bits differ: `RXE` is bit 31, bit 29 is the L4 checksum error.
//! - The octet counters' high halves hold 32 bits (82599: 4).
//!
//! # Where QEMU's model departs from the datasheet
//! What the driver meets in the VM tier (QEMU 10's `hw/net/igb_core.c`), and what the driver
//! does about it:
//! - **`EECD.AUTO_RD` is never set** (the model's reset value has `PRES` only). The wait for
//!   it times out after 10 ms and warns, as Linux's does for parts without EEPROM.
//! - **The link comes up only through auto-negotiation**: after any reset `STATUS.LU` is
//!   clear, and the model sets it 500 ms (virtual time) after a PHY `BMCR` write with
//!   `AN_RESTART`. A driver that only sets `CTRL.SLU` never sees a link; this one restarts
//!   auto-negotiation through `MDIC` as 4.5.7 prescribes.
//! - **`CTRL` bit 3** (reserved on the 82576, `LRST` on older parts) is set in the model's
//!   reset value and gates `STATUS.GIO_MASTER_ENABLE`; the driver clears it.
//! - **`EIAM` is not implemented** (a write ORs the complement of the value into it and
//!   nothing reads it): vectors do not mask themselves when they fire. The driver masks a
//!   vector (`EIMC`) when its queue wakes. **`EIAC` can only gain bits** (writes are ORed).
//! - **Queue enables are plain bits**: `RXDCTL.ENABLE` / `TXDCTL.ENABLE` read back at once;
//!   `RXDCTL0` and `TXDCTL0` read enabled after reset (datasheet: queue 0 enabled too).
//! - **Frames are received only with PCI bus mastering on, `STATUS.LU` and `RCTL.EN`**, and
//!   only while the ring has room for the whole frame (`RDT - RDH` descriptors of
//!   `SRRCTL.BSIZEPACKET`); otherwise the model reports `RXO` and drops it without counting.
//! - **Without `RCTL.SECRC`** the model appends four zero bytes in place of the CRC (in a
//!   second descriptor when the frame fills the buffer); the driver strips.
//! - **RSS needs `RXCSUM.PCSD`** in the model (the hash shares the write-back dword with the
//!   checksum), as in the datasheet; RETA entries are used modulo 16.
//! - **Statistics**: only part of them clear on read (see [`stats`]); the error counters
//!   are never incremented.
//! - **Transmit is synchronous**: the `TDT` write processes the ring before it returns, and
//!   `DD` is written for every descriptor with `RS` regardless of `WTHRESH`.
//!
//! # Conventions
//! - Offsets are byte offsets into BAR0 (`usize`). All registers used are 32 bits wide.
//! - Indexed registers are `const fn NAME(n: usize) -> usize` with the datasheet's name; an
//!   index outside the documented range is a bug in the caller and panics (at compile time
//!   when the index is a constant).
//! - Values the device writes are untrusted: the accessors here decode bits and never
//!   panic; validation is the driver's (and the ring engine's) job.

// Indexed registers keep the datasheet's upper-case names (`RDT(n)`), see Conventions.
#![allow(non_snake_case)]

pub mod desc;
pub mod phy;
pub mod queue;
pub mod regs;
pub mod stats;

#[cfg(test)]
mod tests;
