//! The receive path (datasheet 7.1): MAC checks, L2 filtering, classification and RSS, the
//! packet buffer, and descriptor fetch and write-back.
//!
//! A frame that reaches the port goes through, in order:
//! 1. link up (otherwise lost, the sender's link would be down too), `TPR` counted;
//!    `RXCTRL.RXEN` set (otherwise dropped);
//! 2. FCS (a frame sent without one counts in `CRCERRS`), length with FCS at least 64
//!    bytes (`RUC`) and at most 1518 (`MAXFRS.MFS` with `HLREG0.JUMBOEN`), +4 with a VLAN
//!    tag (`ROC`);
//! 3. the L2 filters (7.1.1.1): a valid `RAL`/`RAH` exact match; broadcast with
//!    `FCTRL.BAM`; multicast with `FCTRL.MPE` or a hit in `MTA` when `MCSTCTRL.MFE`
//!    (hash per `MCSTCTRL.MO`); unicast with `FCTRL.UPE`;
//! 4. classification: the packet type, and with `MRQC.MRQE` = RSS the Toeplitz hash of the
//!    enabled fields and the queue `RETA[hash & 0x7F]` (low 4 bits); without RSS, queue 0;
//! 5. the packet buffer (`RXPBSIZE(0)` bytes; each frame takes its length rounded up to 8,
//!    plus 16): if full the frame is missed (`MPC(0)`, `EICR.RX_MISS`), else `GPRC`, `GORC`
//!    (with FCS), `BPRC`/`MPRC` count.
//!
//! Frames leave the packet buffer in order, to their queue's ring, whenever descriptors
//! become available (`RDT` write, queue enable, arrival). The head frame's queue must be
//! enabled (`RXDCTL.ENABLE`, otherwise the frame is dropped, `QPRDC`) and own enough
//! descriptors between `RDH` and `RDT` for the frame (and the FCS unless
//! `HLREG0.RXCRCSTRP`) in `SRRCTL.BSIZEPACKET` buffers. If it does not, the frame is dropped
//! (`QPRDC`) with `SRRCTL.DROP_EN`, or waits, holding up the frames behind it (as the
//! hardware's single packet buffer does without DCB). The model writes a frame's descriptors
//! all at once, so a frame needing more buffers than the ring can ever own (its length less
//! one) is dropped (`QPRDC`) rather than blocking for good.
//!
//! Write-back per descriptor, immediately (RX `WTHRESH` is not modelled):
//! - advanced (`SRRCTL.DESCTYPE` 001b; header-split types are treated as one buffer, with
//!   `HDR_LEN` and `SPH` zero): `RSS Type`, `Packet Type`, the RSS hash when `RXCSUM.PCSD`
//!   (zero otherwise: the fragment checksum is not modelled), `DD`, `EOP` on the last
//!   descriptor, `PKT_LEN` = bytes in this buffer. No checksum-offload or VLAN status bits.
//! - legacy (000b): length, `DD`, `EOP` in the second quadword; the first is kept.
//!
//! Then `RDH` advances, `QPRC`/`QBRC` of the queue's `RQSMR` statistics set count, and the
//! queue's interrupt cause is set. A descriptor or buffer the IOMMU refuses drops the frame,
//! counts a DMA fault and disables the queue (`RXDCTL.ENABLE` reads 0).

use userpci_framework::backend::sim::{DmaFault, ModelContext};

use super::frame::{fcs, FCS_LEN, MIN_FRAME};
use super::hostile::DeviceWrite;
use super::regs::{
    block, rx_reg, EICR_RX_MISS, MAXFRS, MCSTCTRL, MCSTCTRL_MFE, RXCSUM, RXCSUM_PCSD,
};
use super::rss::{parse, rss_enabled, rss_hash};
pub use super::shared::RxDrop;
use super::shared::{RxCorruption, RxMeta};
use super::state::IxgbeModel;
use crate::spec::desc::{AdvRxRead, AdvRxWriteback, RXD_STAT_DD, RXD_STAT_EOP};
use crate::spec::queue::{
    RQSMR, RXCTRL, RXCTRL_RXEN, RXDCTL_ENABLE, SRRCTL_BSIZEPACKET_MASK, SRRCTL_DESCTYPE_MASK,
    SRRCTL_DROP_EN,
};
use crate::spec::regs::{
    FCTRL, FCTRL_BAM, FCTRL_MPE, FCTRL_UPE, HLREG0, HLREG0_JUMBOEN, HLREG0_RXCRCSTRP, MRQC, MTA,
    RAH, RAH_AV, RAL, RETA, RSSRK, RSS_KEY_LEN,
};
use crate::spec::stats;

/// What became of a frame offered to the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// Accepted into the packet buffer for `queue` (and written to the ring at once if it
    /// had descriptors).
    Accepted {
        /// The RX queue the frame is for.
        queue: u16,
    },
    /// Not accepted.
    Dropped(RxDrop),
}

/// One RX ring as the registers describe it.
#[derive(Clone, Copy, Debug)]
struct RxRing {
    base: u64,
    count: u32,
    head: u32,
    tail: u32,
    bsize: usize,
    legacy: bool,
    drop_en: bool,
}

impl RxRing {
    /// Descriptors the device owns: from head up to tail - 1. Zero if the registers are
    /// inconsistent (no ring, an index past its end).
    fn available(&self) -> u32 {
        if self.count == 0 || self.head >= self.count || self.tail >= self.count {
            return 0;
        }
        (self.tail + self.count - self.head) % self.count
    }
}

/// The `MTA` bit for a multicast address, per `MCSTCTRL.MO` (which 12 address bits).
fn mta_index(dst: &[u8], mo: u32) -> usize {
    let (a, b) = (u16::from(dst[4]), u16::from(dst[5]));
    let hash = match mo & 3 {
        0 => (a >> 4) | (b << 4),
        1 => (a >> 3) | (b << 5),
        2 => (a >> 2) | (b << 6),
        _ => a | (b << 8),
    };
    usize::from(hash & 0xFFF)
}

impl IxgbeModel {
    /// Offers a frame (without FCS; the wire adds a valid one) to the port, as if it arrived
    /// from the network now. For tests; the generator and the wire use the same path.
    pub fn receive_frame(&mut self, ctx: &mut ModelContext<'_>, frame: &[u8]) -> RxOutcome {
        self.receive(ctx, frame, true)
    }

    /// A frame from the wire that started while the link was down: lost, and counted as
    /// such.
    pub(crate) fn lost_link_down(&mut self) {
        self.stats.rx_offered += 1;
        self.stats.count_rx_drop(RxDrop::LinkDown);
    }

    pub(crate) fn receive(
        &mut self,
        ctx: &mut ModelContext<'_>,
        frame: &[u8],
        fcs_ok: bool,
    ) -> RxOutcome {
        self.stats.rx_offered += 1;
        let outcome = self.accept(ctx, frame, fcs_ok);
        if let RxOutcome::Dropped(why) = outcome {
            self.stats.count_rx_drop(why);
        }
        self.drain_rx(ctx);
        outcome
    }

    fn accept(&mut self, ctx: &mut ModelContext<'_>, frame: &[u8], fcs_ok: bool) -> RxOutcome {
        // MAC loopback (HLREG0.LPBK) does not need the link.
        if !self.link.up && self.reg(HLREG0) & crate::spec::regs::HLREG0_LPBK == 0 {
            return RxOutcome::Dropped(RxDrop::LinkDown);
        }
        self.count(stats::TPR, 1);
        if self.reg(RXCTRL) & RXCTRL_RXEN == 0 {
            return RxOutcome::Dropped(RxDrop::ReceiverDisabled);
        }
        if !fcs_ok {
            self.count(stats::CRCERRS, 1);
            return RxOutcome::Dropped(RxDrop::CrcError);
        }
        let parsed = parse(frame);
        let with_fcs = frame.len() + FCS_LEN;
        if frame.len() < MIN_FRAME {
            self.count(stats::RUC, 1);
            return RxOutcome::Dropped(RxDrop::Undersize);
        }
        let hlreg0 = self.reg(HLREG0);
        let mut max = if hlreg0 & HLREG0_JUMBOEN != 0 {
            (self.reg(MAXFRS) >> 16) as usize
        } else {
            1518
        };
        if parsed.vlan {
            max += 4;
        }
        if with_fcs > max || frame.len() > super::frame::MAX_FRAME {
            self.count(stats::ROC, 1);
            return RxOutcome::Dropped(RxDrop::Oversize);
        }
        if !self.l2_filter(frame) {
            return RxOutcome::Dropped(RxDrop::Filtered);
        }
        let mrqc = self.reg(MRQC);
        let (hash, kind, queue) = if rss_enabled(mrqc) {
            let mut key = [0u8; RSS_KEY_LEN];
            for (i, chunk) in key.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&self.reg(RSSRK(i)).to_le_bytes());
            }
            let (hash, kind) = rss_hash(mrqc, &key, &parsed);
            let index = (hash & 0x7F) as usize;
            let entry = (self.reg(RETA(index / 4)) >> (8 * (index % 4))) & 0xF;
            (hash, kind, entry)
        } else {
            (0, 0, 0)
        };
        let meta = RxMeta {
            queue,
            rss_hash: hash,
            pkt_info: u32::from(kind) | (u32::from(parsed.packet_type) << 4),
        };
        if !self.rx_fifo.push(meta, frame) {
            self.count(stats::MPC(0), 1);
            self.set_other_cause(ctx, EICR_RX_MISS);
            return RxOutcome::Dropped(RxDrop::Missed);
        }
        self.count(stats::GPRC, 1);
        self.count36(stats::GORCL, stats::GORCH, with_fcs as u64);
        if frame[0..6] == [0xFF; 6] {
            self.count(stats::BPRC, 1);
        } else if frame[0] & 1 != 0 {
            self.count(stats::MPRC, 1);
        }
        RxOutcome::Accepted {
            queue: queue as u16,
        }
    }

    /// The L2 filters (datasheet 7.1.1.1).
    fn l2_filter(&self, frame: &[u8]) -> bool {
        let dst = &frame[0..6];
        for i in 0..128 {
            let rah = self.reg(RAH(i));
            if rah & RAH_AV == 0 {
                continue;
            }
            let mac = crate::spec::regs::mac_from_ral_rah(self.reg(RAL(i)), rah);
            if dst == mac {
                return true;
            }
        }
        let fctrl = self.reg(FCTRL);
        if dst == [0xFF; 6] {
            return fctrl & FCTRL_BAM != 0;
        }
        if dst[0] & 1 != 0 {
            if fctrl & FCTRL_MPE != 0 {
                return true;
            }
            let mcstctrl = self.reg(MCSTCTRL);
            if mcstctrl & MCSTCTRL_MFE == 0 {
                return false;
            }
            let index = mta_index(dst, mcstctrl);
            return self.reg(MTA(index >> 5)) & (1 << (index & 0x1F)) != 0;
        }
        fctrl & FCTRL_UPE != 0
    }

    fn rx_ring(&self, q: usize) -> RxRing {
        let srrctl = self.reg(rx_reg(q, block::SRRCTL));
        RxRing {
            base: (u64::from(self.reg(rx_reg(q, block::BAH))) << 32)
                | u64::from(self.reg(rx_reg(q, block::BAL)) & !0x7F),
            count: (self.reg(rx_reg(q, block::LEN)) & 0x000F_FF80) / 16,
            head: self.reg(rx_reg(q, block::HEAD)) & 0xFFFF,
            tail: self.reg(rx_reg(q, block::TAIL)) & 0xFFFF,
            bsize: (srrctl & SRRCTL_BSIZEPACKET_MASK) as usize * 1024,
            legacy: srrctl & SRRCTL_DESCTYPE_MASK == 0,
            drop_en: srrctl & SRRCTL_DROP_EN != 0,
        }
    }

    /// The `RQSMR` statistics set of RX queue `q`.
    fn rx_stat_set(&self, q: usize) -> usize {
        ((self.reg(RQSMR(q / 4)) >> (8 * (q % 4))) & 0xF) as usize
    }

    /// Moves frames from the packet buffer to their rings while they can go.
    pub(crate) fn drain_rx(&mut self, ctx: &mut ModelContext<'_>) {
        while let Some((meta, len)) = self.rx_fifo.peek().map(|(m, d)| (m, d.len())) {
            let q = meta.queue as usize;
            let set = self.rx_stat_set(q);
            if self.reg(rx_reg(q, block::DCTL)) & RXDCTL_ENABLE == 0 {
                self.rx_fifo.pop();
                self.count(stats::QPRDC(set), 1);
                self.stats.rx_queue_drops += 1;
                continue;
            }
            let ring = self.rx_ring(q);
            let strip = self.reg(HLREG0) & HLREG0_RXCRCSTRP != 0;
            let total = len + if strip { 0 } else { FCS_LEN };
            let needed = if ring.bsize == 0 {
                u32::MAX
            } else {
                total.div_ceil(ring.bsize) as u32
            };
            // A frame needing more buffers than the ring can ever hold would block the
            // packet buffer for good (the hardware would fill descriptors as they come; the
            // model writes a frame at once): it is dropped.
            let never = ring.count == 0 || needed > ring.count - 1;
            if needed > ring.available() {
                if ring.drop_en || never {
                    self.rx_fifo.pop();
                    self.count(stats::QPRDC(set), 1);
                    self.stats.rx_queue_drops += 1;
                    continue;
                }
                return; // waits for descriptors, holding up the frames behind it
            }
            let corruption = self.faults.rx_corruption;
            match self.write_packet(ctx, q, &ring, needed, total, strip, corruption) {
                Ok(()) => {
                    self.faults.rx_corruption = None;
                    let head = (ring.head + needed) % ring.count;
                    self.set_reg(rx_reg(q, block::HEAD), head);
                    self.count(stats::QPRC(set), 1);
                    self.count36(stats::QBRC_L(set), stats::QBRC_H(set), total as u64);
                    self.stats.rx_delivered += 1;
                    self.stats.rx_descriptors += u64::from(needed);
                    self.rx_fifo.pop();
                    self.queue_cause(ctx, q, false);
                }
                Err(_) => {
                    self.stats.dma_faults += 1;
                    self.stats.rx_queue_drops += 1;
                    let dctl = rx_reg(q, block::DCTL);
                    self.set_reg(dctl, self.reg(dctl) & !RXDCTL_ENABLE);
                    self.rx_fifo.pop();
                    self.count(stats::QPRDC(set), 1);
                }
            }
        }
    }

    /// Writes the head frame of the packet buffer into `needed` descriptors of `ring`.
    #[allow(clippy::too_many_arguments)]
    fn write_packet(
        &self,
        ctx: &mut ModelContext<'_>,
        q: usize,
        ring: &RxRing,
        needed: u32,
        total: usize,
        strip: bool,
        corruption: Option<RxCorruption>,
    ) -> Result<(), DmaFault> {
        let Some((meta, frame)) = self.rx_fifo.peek() else {
            return Ok(());
        };
        // The FCS goes to memory unless the CRC is stripped (computed only then).
        let crc = if strip {
            [0; 4]
        } else {
            fcs(frame).to_le_bytes()
        };
        let hash = if self.reg(RXCSUM) & RXCSUM_PCSD != 0 {
            meta.rss_hash
        } else {
            0
        };
        for i in 0..needed {
            let slot = (ring.head + i) % ring.count;
            let desc = ring.base + u64::from(slot) * 16;
            let read: AdvRxRead = ctx.dma_read_pod(desc)?;
            let start = i as usize * ring.bsize;
            let chunk = ring.bsize.min(total - start);
            // The frame's bytes in this buffer, then (without CRC stripping) the FCS's.
            let data_end = (start + chunk).min(frame.len());
            if start < data_end {
                ctx.dma_write(read.pkt_addr, &frame[start..data_end])?;
            }
            if !strip && start + chunk > frame.len() {
                let from = start.max(frame.len()) - frame.len();
                let to = start + chunk - frame.len();
                let at = read.pkt_addr + (data_end.max(start) - start) as u64;
                ctx.dma_write(at, &crc[from..to])?;
            }
            let first = i == 0;
            let last = i + 1 == needed;
            let mut status = RXD_STAT_DD | if last { RXD_STAT_EOP } else { 0 };
            let mut length = chunk as u16;
            match corruption {
                Some(RxCorruption::LengthBeyondBuffer) if first => {
                    length = (ring.bsize + 1).min(usize::from(u16::MAX)) as u16;
                }
                Some(RxCorruption::NoDd) if first => status &= !RXD_STAT_DD,
                Some(RxCorruption::NoEop) if last => status &= !RXD_STAT_EOP,
                _ => {}
            }
            if ring.legacy {
                // Legacy write-back: length (15:0), checksum (31:16), status (39:32),
                // errors (47:40), VLAN (63:48) in the second quadword.
                let qword = u64::from(length) | (u64::from(status & 0xFF) << 32);
                ctx.dma_write_pod(desc + 8, &qword)?;
            } else {
                let mut wb = AdvRxWriteback {
                    pkt_info: meta.pkt_info,
                    rss_hash: hash,
                    status_error: status,
                    length,
                    vlan: 0,
                };
                if self.hostile.active() {
                    let mut bytes: [u8; 16] = bytemuck::cast(wb);
                    self.hostile.offer(DeviceWrite::RxWriteback {
                        queue: q as u16,
                        slot,
                        desc: &mut bytes,
                    });
                    wb = bytemuck::cast(bytes);
                }
                ctx.dma_write_pod(desc, &wb)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mta_index_follows_the_multicast_offset() {
        let dst = [0x01, 0x00, 0x5e, 0x00, 0xAB, 0xCD];
        assert_eq!(mta_index(&dst, 0), (0xCD << 4) | 0xA);
        assert_eq!(mta_index(&dst, 3), 0xDAB);
    }

    #[test]
    fn ring_ownership_is_head_to_tail_minus_one() {
        let mut ring = RxRing {
            base: 0,
            count: 8,
            head: 6,
            tail: 2,
            bsize: 2048,
            legacy: false,
            drop_en: false,
        };
        assert_eq!(ring.available(), 4);
        ring.tail = 6;
        assert_eq!(ring.available(), 0);
        ring.tail = 8;
        assert_eq!(ring.available(), 0, "tail past the ring");
    }
}
