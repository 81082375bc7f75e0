//! Queue mechanics shared by the admin queue and the I/O queue pairs: ring indices with the
//! phase tag, SQ head tracking from completions, and doorbells (MMIO, or shadow doorbells
//! with EventIdx).
//!
//! # Memory ordering
//! - Submission: entries are written to DMA memory with volatile stores, then the doorbell is
//!   written. The framework's `RegisterIo::write32` issues a release fence before the store,
//!   which orders the entry stores before it. With shadow doorbells the shadow store is
//!   preceded by a release fence of its own and followed by a full fence before EventIdx is
//!   read (the `wmb()` / `mb()` pair of Linux's `nvme_dbbuf_update_and_check_event`).
//! - Completion: Dword 3 (with the phase tag) is read first, with a volatile load followed by
//!   an acquire fence; only then is the rest of the entry read. A controller writes the phase
//!   last, so an entry whose phase matches is complete.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use userpci_framework::device::RegisterIo;
use userpci_framework::dma::{DmaArray, DmaRegion};

use crate::spec::queue::{CompletionEntry, CQE_DW3_OFFSET, CQE_DW3_PHASE, CQE_SIZE};

/// Submission queue indices: the tail the driver fills, the tail last written to the
/// doorbell, and the head the controller reported in `SQHD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SqRing {
    size: u16,
    tail: u16,
    rung: u16,
    head: u16,
}

impl SqRing {
    /// An empty ring of `size` (2..=65536 would not fit u16; at most 65535) entries.
    pub(crate) fn new(size: u16) -> Self {
        debug_assert!(size >= 2);
        SqRing {
            size,
            tail: 0,
            rung: 0,
            head: 0,
        }
    }

    /// Entries the controller may not have fetched yet (between head and tail).
    pub(crate) fn used(&self) -> u16 {
        ((u32::from(self.tail) + u32::from(self.size) - u32::from(self.head))
            % u32::from(self.size)) as u16
    }

    /// Free entries: one entry always stays empty, so a full ring is told from an empty one.
    pub(crate) fn free(&self) -> u16 {
        self.size - 1 - self.used()
    }

    /// Takes the slot at the tail and advances it; the caller checked [`SqRing::free`].
    pub(crate) fn push(&mut self) -> u16 {
        debug_assert!(self.free() > 0);
        let slot = self.tail;
        self.tail = if self.tail + 1 == self.size {
            0
        } else {
            self.tail + 1
        };
        slot
    }

    /// The tail to write to the doorbell, if it moved since the last write.
    pub(crate) fn take_doorbell(&mut self) -> Option<(u16, u16)> {
        if self.tail == self.rung {
            return None;
        }
        let old = self.rung;
        self.rung = self.tail;
        Some((self.tail, old))
    }

    /// Accepts the controller's `SQHD` if it lies within `[head, rung]` (the controller cannot
    /// have fetched past what the doorbell announced). Returns false, changing nothing, for a
    /// value outside the ring or that window.
    pub(crate) fn update_head(&mut self, sqhd: u16) -> bool {
        if sqhd >= self.size {
            return false;
        }
        let size = u32::from(self.size);
        let advance = (u32::from(sqhd) + size - u32::from(self.head)) % size;
        let window = (u32::from(self.rung) + size - u32::from(self.head)) % size;
        if advance > window {
            return false;
        }
        self.head = sqhd;
        true
    }

    /// The current tail.
    #[cfg(test)]
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }

    /// The last `SQHD` accepted.
    #[cfg(test)]
    pub(crate) fn head(&self) -> u16 {
        self.head
    }
}

/// Completion queue head and the phase tag expected at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CqRing {
    size: u16,
    head: u16,
    phase: bool,
    rung: u16,
    /// Entries consumed since the last doorbell write (a full wrap leaves `head == rung`).
    consumed: u32,
}

impl CqRing {
    /// A fresh queue: the controller's first pass writes phase 1 over zeroed memory.
    pub(crate) fn new(size: u16) -> Self {
        CqRing {
            size,
            head: 0,
            phase: true,
            rung: 0,
            consumed: 0,
        }
    }

    /// The entry at the head, if the controller has posted it: reads Dword 3 first, then
    /// (after an acquire fence) the whole entry.
    #[inline]
    pub(crate) fn peek(&self, entries: &DmaArray<CompletionEntry>) -> Option<CompletionEntry> {
        let offset = usize::from(self.head) * CQE_SIZE + CQE_DW3_OFFSET;
        let dw3: u32 = entries.region().read(offset);
        if (dw3 & CQE_DW3_PHASE != 0) != self.phase {
            return None;
        }
        // Acquire: the controller wrote the entry before its phase tag; read it only now.
        fence(Ordering::Acquire);
        Some(entries.get(usize::from(self.head)))
    }

    /// Consumes the entry at the head, flipping the phase on wrap.
    #[inline]
    pub(crate) fn advance(&mut self) {
        self.head += 1;
        self.consumed += 1;
        if self.head == self.size {
            self.head = 0;
            self.phase = !self.phase;
        }
    }

    /// The head to write to the doorbell, if it moved since the last write.
    pub(crate) fn take_doorbell(&mut self) -> Option<(u16, u16)> {
        if self.consumed == 0 {
            return None;
        }
        let old = self.rung;
        self.rung = self.head;
        self.consumed = 0;
        Some((self.head, old))
    }

    /// The current head.
    #[cfg(test)]
    pub(crate) fn head(&self) -> u16 {
        self.head
    }

    /// The phase expected at the head.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> bool {
        self.phase
    }
}

/// The Shadow Doorbell and EventIdx buffers of Doorbell Buffer Config (Base 2.0 "Doorbell
/// Buffer Config command"), each a page-aligned region laid out like the doorbell registers.
#[derive(Debug)]
pub(crate) struct ShadowBuffers {
    pub(crate) shadow: DmaRegion,
    pub(crate) eventidx: DmaRegion,
}

impl ShadowBuffers {
    /// Zeroes both buffers (before Doorbell Buffer Config, and again after a reset).
    pub(crate) fn clear(&self) {
        self.shadow.fill(0);
        self.eventidx.fill(0);
    }

    /// Zeroes the shadow and EventIdx slots of the doorbell at BAR0 `offset`, if the buffers
    /// cover it. Done before a queue is created: a QID used before keeps its old values
    /// otherwise, and a stale EventIdx would hide the new queue's first doorbell.
    pub(crate) fn reset_slot(&self, offset: usize) {
        let slot = offset - crate::spec::registers::DOORBELLS;
        if slot + 4 <= self.shadow.len() {
            self.shadow.write::<u32>(slot, 0);
            self.eventidx.write::<u32>(slot, 0);
        }
    }
}

/// Linux's `nvme_dbbuf_need_event`: whether moving a doorbell from `old` to `new` passed the
/// controller's `event_idx`, so that it must be told through the MMIO doorbell.
pub(crate) const fn need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

/// One doorbell register, optionally shadowed.
#[derive(Debug)]
pub(crate) struct Doorbell<R: RegisterIo> {
    regs: R,
    offset: usize,
    shadow: Option<Arc<ShadowBuffers>>,
}

impl<R: RegisterIo> Doorbell<R> {
    /// The doorbell at BAR0 `offset`; with `shadow`, its slot is at `offset - 0x1000` in the
    /// shadow and EventIdx buffers.
    pub(crate) fn new(regs: R, offset: usize, shadow: Option<Arc<ShadowBuffers>>) -> Self {
        Doorbell {
            regs,
            offset,
            shadow,
        }
    }

    /// Announces `new` (the previous value was `old`). Returns whether an MMIO write happened.
    #[inline]
    pub(crate) fn ring(&self, new: u16, old: u16) -> bool {
        if let Some(bufs) = &self.shadow {
            let slot = self.offset - crate::spec::registers::DOORBELLS;
            // Release: queue entries written before are visible before the shadow value.
            fence(Ordering::Release);
            bufs.shadow.write::<u32>(slot, u32::from(new));
            // Full fence: the shadow store is visible before EventIdx is read, or both sides
            // could miss each other's update.
            fence(Ordering::SeqCst);
            let event_idx = bufs.eventidx.read::<u32>(slot) as u16;
            if !need_event(event_idx, new, old) {
                return false;
            }
        }
        self.regs.write32(self.offset, u32::from(new));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sq_ring_keeps_one_slot_free_and_wraps() {
        let mut sq = SqRing::new(4);
        assert_eq!((sq.used(), sq.free()), (0, 3));
        assert_eq!([sq.push(), sq.push(), sq.push()], [0, 1, 2]);
        assert_eq!(sq.free(), 0);
        assert_eq!(sq.take_doorbell(), Some((3, 0)));
        assert_eq!(sq.take_doorbell(), None);
        // The controller fetched two entries.
        assert!(sq.update_head(2));
        assert_eq!(sq.free(), 2);
        assert_eq!([sq.push(), sq.push()], [3, 0]);
        assert_eq!(sq.tail(), 1);
        assert_eq!(sq.take_doorbell(), Some((1, 3)));
        assert!(sq.update_head(1));
        assert_eq!(sq.used(), 0);
    }

    #[test]
    fn sq_head_outside_the_window_is_refused() {
        let mut sq = SqRing::new(8);
        for _ in 0..5 {
            sq.push();
        }
        sq.take_doorbell();
        assert!(!sq.update_head(8), "outside the ring");
        assert!(!sq.update_head(6), "past the tail the controller was told");
        assert!(sq.update_head(3));
        assert!(!sq.update_head(2), "backwards");
        assert!(sq.update_head(3), "unchanged is fine");
        assert!(sq.update_head(5));
        assert_eq!(sq.head(), 5);
        // Entries pushed but not rung cannot have been fetched.
        sq.push();
        assert!(!sq.update_head(6));
    }

    #[test]
    fn cq_phase_flips_on_wrap() {
        let mut cq = CqRing::new(3);
        assert!(cq.phase());
        cq.advance();
        cq.advance();
        assert!(cq.phase());
        cq.advance();
        assert_eq!(cq.head(), 0);
        assert!(!cq.phase());
        assert_eq!(
            cq.take_doorbell(),
            Some((0, 0)),
            "a full wrap is still news"
        );
        assert_eq!(cq.take_doorbell(), None);
        cq.advance();
        assert_eq!(cq.take_doorbell(), Some((1, 0)));
        for _ in 0..3 {
            cq.advance();
        }
        assert!(cq.phase());
    }

    #[test]
    fn need_event_follows_linux() {
        // The controller asked to be told once the tail passes 5.
        assert!(need_event(5, 6, 5));
        assert!(need_event(5, 8, 3));
        assert!(!need_event(5, 5, 3), "not passed yet");
        assert!(!need_event(5, 9, 7), "passed before the previous write");
        // Wrapping arithmetic.
        assert!(need_event(0xffff, 1, 0xfffe));
        assert!(!need_event(3, 0, 0xfffe));
    }
}
