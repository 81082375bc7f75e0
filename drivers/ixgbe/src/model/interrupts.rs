//! Interrupts (datasheet 7.3): causes, masks, `IVAR` mapping, auto-clear and auto-mask, and a
//! minimal `EITR` throttle.
//!
//! - A queue event (an RX write-back, a TX write-back of a descriptor with `RS`, or a head
//!   write-back) looks up the queue's `IVAR` entry; if valid, it sets cause bit `INT_ALLOC`
//!   (in MSI-X mode the MSI-X vector; otherwise an `EICR.RTxQ` bit, 0..16).
//! - "Other" causes (`EICR` 30:16: `LSC`, `RX_MISS`) go to the vector in `IVAR_MISC` bits
//!   15:8 in MSI-X mode. `EICR.OTHER` (31) reads 1 while any is set.
//! - A vector fires when one of its causes is set and unmasked (`EIMS`, `EIMS_EX`): on the
//!   event, or when `EIMS` unmasks a pending cause. After firing, in MSI-X mode, its cause is
//!   cleared if `EIAC` has its bit (vectors 16 and up, which have no `EICR` bit, always
//!   clear), and masked if `GPIE.EIAME` and `EIAM` / `EIAM_EX` have its bit.
//! - Throttle: a vector fires at most once per `EITR.ITR_INTERVAL` (2 µs units); an event
//!   inside the interval fires when it ends.
//! - Without `GPIE.MSIX_MODE` (INTx / MSI) the function signals MSI-X vector 0 whenever an
//!   unmasked cause is set, since the simulated bus only delivers MSI-X.
//! - `EICR` reads clear it (only the other causes with `GPIE.OCD`); writes of 1 clear bits;
//!   `EICS` writes set causes, and reading `EICS` returns `EICR` without clearing it (the
//!   workaround Intel's drivers use).

use std::time::Duration;

use userpci_framework::backend::sim::ModelContext;

use super::regs::{eiam_ex, EICR_OTHER_CAUSES};
use super::shared::TimerKind;
pub use super::shared::MSIX_VECTORS;
use super::state::IxgbeModel;
use crate::spec::regs::{
    ivar_entry, EIAC, EICR_OTHER, EITR, EITR_ITR_INTERVAL_MASK, EITR_ITR_INTERVAL_SHIFT, GPIE,
    GPIE_EIAME, GPIE_MSIX_MODE, GPIE_OCD, IVAR_ALLOC_VAL, IVAR_INT_ALLOC_MASK, IVAR_MISC,
};

impl IxgbeModel {
    fn msix_mode(&self) -> bool {
        self.reg(GPIE) & GPIE_MSIX_MODE != 0
    }

    /// The vector of the "other" causes (`IVAR_MISC` bits 15:8), if valid.
    fn other_vector(&self) -> Option<usize> {
        let entry = (self.reg(IVAR_MISC) >> 8) & 0xFF;
        (entry & IVAR_ALLOC_VAL != 0).then_some((entry & IVAR_INT_ALLOC_MASK) as usize)
    }

    /// `EICR` as read, without clearing.
    pub(crate) fn eicr_value(&self) -> u32 {
        let other = self.irq.other & EICR_OTHER_CAUSES;
        let summary = if other != 0 { EICR_OTHER } else { 0 };
        (self.irq.pending & 0xFFFF) as u32 | other | summary
    }

    /// `EIMS` as read.
    pub(crate) fn eims_value(&self) -> u32 {
        (self.irq.mask & 0xFFFF) as u32 | self.irq.mask_other
    }

    /// A read of `EICR`: returns it and clears it (the other causes only, with `GPIE.OCD`).
    pub(crate) fn read_eicr(&mut self) -> u32 {
        let value = self.eicr_value();
        if self.reg(GPIE) & GPIE_OCD == 0 {
            self.irq.pending &= !0xFFFF;
        }
        self.irq.other = 0;
        value
    }

    /// A write to `EICR`: bits written 1 are cleared.
    pub(crate) fn write_eicr(&mut self, _ctx: &mut ModelContext<'_>, value: u32) {
        self.irq.pending &= !u64::from(value & 0xFFFF);
        self.irq.other &= !value;
    }

    /// A write to `EICS`: bits written 1 are set as causes.
    pub(crate) fn write_eics(&mut self, ctx: &mut ModelContext<'_>, value: u32) {
        self.set_causes(ctx, u64::from(value & 0xFFFF), value & EICR_OTHER_CAUSES);
    }

    /// Sets causes (`EICS`, `EICS_EX`) and signals what they unmask.
    pub(crate) fn set_causes(&mut self, ctx: &mut ModelContext<'_>, vectors: u64, other: u32) {
        self.irq.pending |= vectors;
        let mut bits = vectors;
        while bits != 0 {
            let v = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.signal(ctx, v);
        }
        if other != 0 {
            self.set_other_cause(ctx, other);
        }
    }

    /// A write to `EIMS` / `EIMS_EX`: unmasks, and fires what was pending behind the mask.
    pub(crate) fn write_eims(&mut self, ctx: &mut ModelContext<'_>, vectors: u64, other: u32) {
        let newly = vectors & !self.irq.mask;
        let newly_other = other & !self.irq.mask_other;
        self.irq.mask |= vectors;
        self.irq.mask_other |= other;
        let mut bits = newly & self.irq.pending;
        while bits != 0 {
            let v = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.signal(ctx, v);
        }
        if newly_other & self.irq.other != 0 {
            self.signal_other(ctx);
        }
    }

    /// A write to `EIMC` / `EIMC_EX`: masks.
    pub(crate) fn write_eimc(&mut self, vectors: u64, other: u32) {
        self.irq.mask &= !vectors;
        self.irq.mask_other &= !other;
    }

    /// An RX (`tx == false`) or TX queue event on queue `q`.
    pub(crate) fn queue_cause(&mut self, ctx: &mut ModelContext<'_>, q: usize, tx: bool) {
        let (reg, shift) = ivar_entry(q, tx);
        let entry = (self.reg(reg) >> shift) & 0xFF;
        if entry & IVAR_ALLOC_VAL == 0 {
            return;
        }
        let mut index = (entry & IVAR_INT_ALLOC_MASK) as usize;
        if !self.msix_mode() {
            index &= 0xF;
        }
        self.irq.pending |= 1 << index;
        self.signal(ctx, index);
    }

    /// Sets "other" causes (`EICR` bits 30:16).
    pub(crate) fn set_other_cause(&mut self, ctx: &mut ModelContext<'_>, bits: u32) {
        self.irq.other |= bits & EICR_OTHER_CAUSES;
        self.signal_other(ctx);
    }

    fn signal_other(&mut self, ctx: &mut ModelContext<'_>) {
        if !self.msix_mode() {
            self.signal(ctx, 0);
        } else if let Some(v) = self.other_vector() {
            self.signal(ctx, v);
        }
    }

    /// Whether vector `v` has an unmasked cause.
    fn vector_active(&self, v: usize) -> bool {
        if !self.msix_mode() {
            return self.eicr_value() & self.eims_value() != 0;
        }
        let bit = 1u64 << v;
        self.irq.pending & self.irq.mask & bit != 0
            || (self.other_vector() == Some(v)
                && self.irq.other & self.irq.mask_other & EICR_OTHER_CAUSES != 0)
    }

    /// The throttle interval of vector `v` (`EITR.ITR_INTERVAL`, 2 µs units).
    pub(crate) fn itr_interval(&self, v: usize) -> Duration {
        let units = (self.reg(EITR(v)) & EITR_ITR_INTERVAL_MASK) >> EITR_ITR_INTERVAL_SHIFT;
        Duration::from_micros(2 * u64::from(units))
    }

    /// Fires vector `v` (0 in INTx / MSI mode) if it has an unmasked cause and its throttle
    /// interval allows; otherwise sets a timer for the end of the interval.
    fn signal(&mut self, ctx: &mut ModelContext<'_>, v: usize) {
        let v = if self.msix_mode() { v } else { 0 };
        if v >= MSIX_VECTORS || !self.vector_active(v) {
            return;
        }
        let interval = self.itr_interval(v);
        if let Some(last) = self.irq.last_fire[v] {
            let now = ctx.now();
            if !interval.is_zero() && now < last + interval {
                if self.irq.throttled & (1 << v) == 0 {
                    self.irq.throttled |= 1 << v;
                    self.schedule(ctx, last + interval - now, TimerKind::Itr, v as u32);
                }
                return;
            }
        }
        self.fire(ctx, v);
    }

    fn fire(&mut self, ctx: &mut ModelContext<'_>, v: usize) {
        ctx.raise_interrupt(v as u16);
        self.stats.interrupts += 1;
        self.irq.last_fire[v] = Some(ctx.now());
        if !self.msix_mode() {
            return;
        }
        let bit = 1u64 << v;
        if v >= 16 || self.reg(EIAC) & (1 << v) != 0 {
            self.irq.pending &= !bit;
        }
        let auto_mask = self.reg(eiam_ex(v / 32)) & (1 << (v % 32)) != 0;
        if self.reg(GPIE) & GPIE_EIAME != 0 && auto_mask {
            self.irq.mask &= !bit;
        }
    }

    /// The throttle interval of vector `v` ended.
    pub(crate) fn itr_expired(&mut self, ctx: &mut ModelContext<'_>, v: usize) {
        if v >= MSIX_VECTORS {
            return;
        }
        self.irq.throttled &= !(1 << v);
        self.signal(ctx, v);
    }
}
