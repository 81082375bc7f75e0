//! The transmit path (datasheet 7.2): descriptor fetch, frame assembly, write-back.
//!
//! A queue is processed when its `TDT` is written, when it is enabled, when `DMATXCTL.TE`
//! is set and when the link comes up, provided `DMATXCTL.TE` and `TXDCTL.ENABLE` are set and
//! the link is up (the 82599 stops transmit DMA while the link is down; Linux's
//! `ixgbe_watchdog_flush_tx` relies on it) or `HLREG0.LPBK` loops the MAC back.
//!
//! On a wire, the MAC sends at line rate ([`super::wire`]): each frame starts when the
//! previous one, its preamble and the inter-frame gap are through, and descriptors are taken
//! only while the frames already processed fit the `TXPBSIZE(0)` packet buffer (as wire time
//! at 10 Gb/s); when it is full, processing stops (`TDH` stays, no write-back) and resumes
//! on a timer when there is room again ([`super::IxgbeModelStats::tx_wire_waits`]). So a
//! saturated queue completes descriptors at line rate, as on hardware.
//!
//! The device owns the descriptors from `TDH` to `TDT - 1`. Packets are taken whole: the
//! descriptors from `TDH` up to one with `EOP`; if `TDT` comes first, the partial packet
//! waits for a later `TDT` write. Descriptors:
//! - advanced data (`DEXT`, `DTYP` 0011b) and legacy (`DEXT` clear): `DTALEN` bytes from the
//!   buffer; `IFCS` (the device appends the FCS) and `TSE` are taken from the first
//!   descriptor of the packet, `RS` and `EOP` from each;
//! - advanced context (`DTYP` 0010b): consumed (offloads are not modelled);
//! - anything else with `DEXT`, `TSE` (segmentation is not modelled) or a packet over
//!   [`super::frame::MAX_FRAME`]: the descriptors are consumed and written back, the packet is
//!   dropped and counted ([`super::IxgbeModelStats::tx_dropped`]).
//!
//! Frames shorter than 60 bytes are padded with zeroes when `HLREG0.TXPADEN`. A sent frame
//! counts in `GPTC`, `GOTC` (with the FCS when `IFCS`), `TPT`, `BPTC`/`MPTC` and the
//! `TQSM` set's `QPTC`/`QBTC`, is recorded by the sink, and goes to the wire (or, with
//! `HLREG0.LPBK`, back into this port's receive path).
//!
//! Write-back (7.2.3.5):
//! - `TDWBAL.Head_WB_En`: no descriptor is written; after a batch that completed a
//!   descriptor with `RS`, the new head (a dword) is written at `TDWBAH:TDWBAL[31:2]`;
//! - else with `TXDCTL.WTHRESH` = 0: `DD` (dword 3 = `STA.DD`, the other dwords kept) is
//!   written into each descriptor with `RS` as soon as it is processed;
//! - else: processed descriptors accumulate and all of them get `DD` once `WTHRESH` have,
//!   on `TXDCTL.SWFLSH`, or when the `EITR` interval of the queue's vector ends.
//!
//! Each write-back (or head write) sets the queue's TX interrupt cause. A descriptor or
//! buffer the IOMMU refuses stops the queue: `TXDCTL.ENABLE` reads 0, a DMA fault is counted.

use userpci_framework::backend::sim::{DmaFault, ModelContext};

use std::time::Duration;

use super::frame::{FCS_LEN, MAX_FRAME, MIN_FRAME};
use super::hostile::DeviceWrite;
use super::regs::{block, tdwbah, tdwbal, tx_reg, BPTC, MPTC, TDWBAL_HEAD_WB_EN};
use super::shared::TimerKind;
use super::state::IxgbeModel;
use super::wire::{from_ps, ps, wire_time_ps, PS_PER_BIT};
use crate::spec::desc::{
    AdvTxRead, TXD_DCMD_DEXT, TXD_DCMD_EOP, TXD_DCMD_IFCS, TXD_DCMD_RS, TXD_DCMD_TSE, TXD_STAT_DD,
    TX_WB_STATUS_OFFSET,
};
use crate::spec::queue::{
    DMATXCTL, DMATXCTL_TE, MAX_QUEUES, PBSIZE_SHIFT, TQSM, TXDCTL_ENABLE, TXDCTL_WTHRESH_MASK,
    TXDCTL_WTHRESH_SHIFT, TXPBSIZE,
};
use crate::spec::regs::{ivar_entry, HLREG0, HLREG0_LPBK, HLREG0_TXPADEN, IVAR_ALLOC_VAL};
use crate::spec::stats;

/// `DTYP` of an advanced context descriptor.
const DTYP_CONTEXT: u8 = 0x2;
/// `DTYP` of an advanced data descriptor.
const DTYP_DATA: u8 = 0x3;

/// One TX ring as the registers describe it.
#[derive(Clone, Copy, Debug)]
struct TxRing {
    base: u64,
    count: u32,
    head: u32,
    tail: u32,
}

impl TxRing {
    fn valid(&self) -> bool {
        self.count != 0 && self.head < self.count && self.tail < self.count
    }

    fn desc(&self, slot: u32) -> u64 {
        self.base + u64::from(slot % self.count) * 16
    }
}

/// How descriptors are reported done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteBack {
    Head(u64),
    Immediate,
    Threshold(u32),
}

impl IxgbeModel {
    fn tx_ring(&self, q: usize) -> TxRing {
        TxRing {
            base: (u64::from(self.reg(tx_reg(q, block::BAH))) << 32)
                | u64::from(self.reg(tx_reg(q, block::BAL)) & !0x7F),
            count: (self.reg(tx_reg(q, block::LEN)) & 0x000F_FF80) / 16,
            head: self.reg(tx_reg(q, block::HEAD)) & 0xFFFF,
            tail: self.reg(tx_reg(q, block::TAIL)) & 0xFFFF,
        }
    }

    fn tx_writeback_mode(&self, q: usize) -> WriteBack {
        let wbal = self.reg(tdwbal(q));
        if wbal & TDWBAL_HEAD_WB_EN != 0 {
            let addr = (u64::from(self.reg(tdwbah(q))) << 32) | u64::from(wbal & !3);
            return WriteBack::Head(addr);
        }
        let dctl = self.reg(tx_reg(q, block::DCTL));
        match (dctl & TXDCTL_WTHRESH_MASK) >> TXDCTL_WTHRESH_SHIFT {
            0 => WriteBack::Immediate,
            n => WriteBack::Threshold(n),
        }
    }

    /// Processes every enabled TX queue (transmit enabled, link up).
    pub(crate) fn process_all_tx(&mut self, ctx: &mut ModelContext<'_>) {
        for q in 0..usize::from(self.config.tx_queues) {
            if self.reg(tx_reg(q, block::DCTL)) & TXDCTL_ENABLE != 0 {
                self.process_tx(ctx, q);
            }
        }
    }

    /// Transmits what queue `q` holds between `TDH` and `TDT`.
    pub(crate) fn process_tx(&mut self, ctx: &mut ModelContext<'_>, q: usize) {
        if q >= MAX_QUEUES
            || self.reg(DMATXCTL) & DMATXCTL_TE == 0
            || self.reg(tx_reg(q, block::DCTL)) & TXDCTL_ENABLE == 0
        {
            return;
        }
        if self.faults.tx_hang {
            self.stats.tx_hang_ignored += 1;
            return;
        }
        if !self.link.up && self.reg(HLREG0) & HLREG0_LPBK == 0 {
            return;
        }
        let ring = self.tx_ring(q);
        if !ring.valid() {
            if ring.head != ring.tail {
                self.stats.protocol_violations += 1;
            }
            return;
        }
        let mode = self.tx_writeback_mode(q);
        let mut head = ring.head;
        let mut reported = false;
        let mut rs_seen = false;
        while head != ring.tail {
            if self.tx_waits_for_wire(ctx) {
                break;
            }
            match self.tx_packet(ctx, q, &ring, head, mode) {
                Ok(Some((next, rs, wrote))) => {
                    head = next;
                    rs_seen |= rs;
                    reported |= wrote;
                    self.set_reg(tx_reg(q, block::HEAD), head);
                }
                Ok(None) => break, // a packet without EOP before TDT waits
                Err(_) => {
                    self.stats.dma_faults += 1;
                    let dctl = tx_reg(q, block::DCTL);
                    self.set_reg(dctl, self.reg(dctl) & !TXDCTL_ENABLE);
                    self.tx_queues[q].disable();
                    break;
                }
            }
        }
        if let WriteBack::Head(addr) = mode {
            if rs_seen {
                let value = self.hostile.u32(head, |head| DeviceWrite::TxHead {
                    queue: q as u16,
                    head,
                });
                if ctx.dma_write_pod(addr, &value).is_err() {
                    self.stats.dma_faults += 1;
                } else {
                    reported = true;
                }
            }
        }
        if reported {
            self.queue_cause(ctx, q, true);
        }
    }

    /// Handles the packet (or context descriptor) at `head`: `Some((next head, an RS
    /// descriptor was completed, a write-back was done))`, or `None` when the packet's last
    /// descriptor is not yet the device's.
    fn tx_packet(
        &mut self,
        ctx: &mut ModelContext<'_>,
        q: usize,
        ring: &TxRing,
        head: u32,
        mode: WriteBack,
    ) -> Result<Option<(u32, bool, bool)>, DmaFault> {
        let first: AdvTxRead = ctx.dma_read_pod(ring.desc(head))?;
        let extended = first.cmd_type_len & TXD_DCMD_DEXT != 0;
        // Pass 1: the packet's extent.
        let mut count = 1u32;
        if !(extended && first.dtyp() == DTYP_CONTEXT) {
            let mut desc = first;
            while desc.cmd_type_len & TXD_DCMD_EOP == 0 {
                let slot = (head + count) % ring.count;
                if slot == ring.tail {
                    return Ok(None);
                }
                desc = ctx.dma_read_pod(ring.desc(slot))?;
                count += 1;
            }
        }
        let context = extended && first.dtyp() == DTYP_CONTEXT;
        // Pass 2: gather the data, write back.
        self.tx_frame.clear();
        let mut too_long = false;
        let mut rs_seen = false;
        let mut wrote = false;
        for i in 0..count {
            let slot = (head + i) % ring.count;
            let desc: AdvTxRead = ctx.dma_read_pod(ring.desc(slot))?;
            if !context {
                let len = usize::from(desc.dtalen());
                let at = self.tx_frame.len();
                if at + len > MAX_FRAME {
                    too_long = true;
                } else if len > 0 {
                    self.tx_frame.resize(at + len, 0);
                    ctx.dma_read(desc.buffer_addr, &mut self.tx_frame[at..])?;
                }
            }
            let rs = desc.cmd_type_len & TXD_DCMD_RS != 0;
            rs_seen |= rs;
            wrote |= self.tx_writeback(ctx, q, ring, slot, rs, mode)?;
        }
        self.stats.tx_descriptors += u64::from(count);
        if context {
            self.stats.tx_context_descriptors += 1;
        } else {
            let bad_type = extended && first.dtyp() != DTYP_DATA;
            let tso = extended && first.cmd_type_len & TXD_DCMD_TSE != 0;
            if too_long || bad_type || tso {
                self.stats.tx_dropped += 1;
            } else {
                let ifcs = first.cmd_type_len & TXD_DCMD_IFCS != 0;
                self.transmit(ctx, q, ifcs);
            }
        }
        Ok(Some(((head + count) % ring.count, rs_seen, wrote)))
    }

    /// Reports descriptor `slot` done per `mode`; whether a write-back happened.
    fn tx_writeback(
        &mut self,
        ctx: &mut ModelContext<'_>,
        q: usize,
        ring: &TxRing,
        slot: u32,
        rs: bool,
        mode: WriteBack,
    ) -> Result<bool, DmaFault> {
        match mode {
            WriteBack::Head(_) => Ok(false),
            WriteBack::Immediate => {
                if rs {
                    self.write_dd(ctx, q, ring, slot)?;
                }
                Ok(rs)
            }
            WriteBack::Threshold(threshold) => {
                let state = &mut self.tx_queues[q];
                if state.accumulated == 0 {
                    state.accumulated_from = slot;
                }
                state.accumulated += 1;
                if state.accumulated >= threshold {
                    self.write_accumulated(ctx, q, ring)?;
                    return Ok(true);
                }
                self.arm_tx_flush(ctx, q);
                Ok(false)
            }
        }
    }

    fn write_accumulated(
        &mut self,
        ctx: &mut ModelContext<'_>,
        q: usize,
        ring: &TxRing,
    ) -> Result<(), DmaFault> {
        let state = &mut self.tx_queues[q];
        let (from, n) = (state.accumulated_from, state.accumulated);
        state.accumulated = 0;
        for i in 0..n {
            self.write_dd(ctx, q, ring, (from + i) % ring.count.max(1))?;
        }
        Ok(())
    }

    /// Writes DD into descriptor `slot`'s status (through the hostile hook, if any).
    fn write_dd(
        &self,
        ctx: &mut ModelContext<'_>,
        q: usize,
        ring: &TxRing,
        slot: u32,
    ) -> Result<(), DmaFault> {
        let at = ring.desc(slot) + TX_WB_STATUS_OFFSET as u64;
        let dd = self
            .hostile
            .u32(TXD_STAT_DD, |status| DeviceWrite::TxStatus {
                queue: q as u16,
                slot,
                status,
            });
        ctx.dma_write_pod(at, &dd)
    }

    /// Sets the flush timer of queue `q` for the `EITR` interval of its vector, if any.
    fn arm_tx_flush(&mut self, ctx: &mut ModelContext<'_>, q: usize) {
        if self.tx_queues[q].flush_timer {
            return;
        }
        let (reg, shift) = ivar_entry(q, true);
        let entry = (self.reg(reg) >> shift) & 0xFF;
        if entry & IVAR_ALLOC_VAL == 0 {
            return;
        }
        let interval = self.itr_interval((entry & 0x3F) as usize);
        if !interval.is_zero() {
            self.tx_queues[q].flush_timer = true;
            self.schedule(ctx, interval, TimerKind::TxFlush, q as u32);
        }
    }

    /// Writes back the descriptors queue `q` has accumulated (`TXDCTL.SWFLSH`, the flush
    /// timer).
    pub(crate) fn flush_tx_writebacks(&mut self, ctx: &mut ModelContext<'_>, q: usize) {
        if self.tx_queues[q].accumulated == 0 {
            return;
        }
        let ring = self.tx_ring(q);
        if !ring.valid() {
            self.tx_queues[q].accumulated = 0;
            return;
        }
        if self.write_accumulated(ctx, q, &ring).is_err() {
            self.stats.dma_faults += 1;
            return;
        }
        self.queue_cause(ctx, q, true);
    }

    /// Whether transmission must wait because the packet buffer already holds as much wire
    /// time as `TXPBSIZE(0)` bytes take at line rate; if so, sets the timer that resumes it
    /// when the wire has drained below that. Only a port on a wire waits: the sink takes
    /// frames as fast as the transmit path runs, and MAC loopback skips the wire.
    fn tx_waits_for_wire(&mut self, ctx: &mut ModelContext<'_>) -> bool {
        if self.wire.is_none() || self.reg(HLREG0) & HLREG0_LPBK != 0 {
            return false;
        }
        let buffer = u64::from((self.reg(TXPBSIZE(0)) >> PBSIZE_SHIFT) & 0x3FF) * 1024;
        // At least one largest frame, so that a zero size cannot stop transmit for good.
        let capacity_ps = (buffer * 8 * PS_PER_BIT).max(wire_time_ps(MAX_FRAME as u64));
        let now_ps = ps(ctx.now());
        if self.tx_wire_free_ps.saturating_sub(now_ps) < capacity_ps {
            return false;
        }
        self.stats.tx_wire_waits += 1;
        if !self.tx_resume_armed {
            self.tx_resume_armed = true;
            let resume = from_ps(self.tx_wire_free_ps - capacity_ps + 1);
            let after = resume
                .saturating_sub(ctx.now())
                .max(Duration::from_nanos(1));
            self.schedule(ctx, after, TimerKind::TxResume, 0);
        }
        true
    }

    /// Sends the assembled frame in `tx_frame`.
    fn transmit(&mut self, ctx: &mut ModelContext<'_>, q: usize, ifcs: bool) {
        let mut frame = std::mem::take(&mut self.tx_frame);
        if frame.len() < MIN_FRAME && self.reg(HLREG0) & HLREG0_TXPADEN != 0 {
            frame.resize(MIN_FRAME, 0);
        }
        let len = frame.len() as u64;
        let set = ((self.reg(TQSM(q / 4)) >> (8 * (q % 4))) & 0xF) as usize;
        self.count(stats::GPTC, 1);
        self.count(stats::TPT, 1);
        self.count36(
            stats::GOTCL,
            stats::GOTCH,
            len + if ifcs { FCS_LEN as u64 } else { 0 },
        );
        if frame.len() >= 6 && frame[0..6] == [0xFF; 6] {
            self.count(BPTC, 1);
        } else if frame.first().is_some_and(|b| b & 1 != 0) {
            self.count(MPTC, 1);
        }
        self.count(stats::QPTC(set), 1);
        self.count36(stats::QBTC_L(set), stats::QBTC_H(set), len);
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len;
        self.sink.record(q as u16, ifcs, &frame);
        if self.reg(HLREG0) & HLREG0_LPBK != 0 {
            self.receive(ctx, &frame, ifcs);
        } else if let Some(wire) = &self.wire {
            // The frame starts when the wire is free and holds it for its bytes, FCS,
            // preamble and gap at line rate.
            let start = self.tx_wire_free_ps.max(ps(ctx.now()));
            let fcs = if ifcs { FCS_LEN as u64 } else { 0 };
            self.tx_wire_free_ps = start + wire_time_ps(len + fcs);
            wire.send(&frame, ifcs, start);
        }
        self.tx_frame = frame;
    }
}
