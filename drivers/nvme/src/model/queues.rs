//! Submission and completion queues as the controller sees them (Base 2.0 "Queue Mechanism"),
//! and the shadow doorbell buffers (Base 2.0 "Doorbell Buffer Config command").
//!
//! Memory for every list a queue keeps (commands in flight, completions waiting for room) is
//! reserved when the queue is created, so the data path never allocates. A submission queue
//! has at most `size` commands outstanding (fetched and not yet posted), as QEMU's controller:
//! fetching pauses until completions are posted.

use std::collections::VecDeque;
use std::time::Duration;

use userpci_framework::backend::sim::ModelContext;

use crate::spec::queue::{CQE_SIZE, SQE_SIZE};
use crate::spec::registers::{cq_head_doorbell, sq_tail_doorbell, DOORBELLS};
use crate::spec::{CompletionEntry, Status, SubmissionEntry};

/// A command fetched in latency mode, waiting for its completion time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Inflight {
    pub(super) sqe: SubmissionEntry,
    pub(super) due: Duration,
    pub(super) seq: u64,
}

/// A completion waiting for room in its completion queue.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingCqe {
    pub(super) sqid: u16,
    pub(super) cid: u16,
    pub(super) dw0: u32,
    pub(super) status: Status,
    /// `SQHD` when the command completed, used if the queue is gone by posting time.
    pub(super) sq_head: u16,
}

/// A submission queue.
#[derive(Debug)]
pub(super) struct SubQueue {
    pub(super) base: u64,
    /// Entries, 2..=65536.
    pub(super) size: u32,
    pub(super) head: u16,
    pub(super) tail: u16,
    pub(super) cqid: u16,
    /// Fetched and not yet posted (AERs waiting for an event are not counted).
    pub(super) outstanding: u32,
    /// Latency mode: fetched commands waiting for their completion time, oldest first.
    pub(super) inflight: VecDeque<Inflight>,
}

impl SubQueue {
    pub(super) fn new(base: u64, size: u32, cqid: u16, latency: bool) -> Self {
        SubQueue {
            base,
            size,
            head: 0,
            tail: 0,
            cqid,
            outstanding: 0,
            inflight: VecDeque::with_capacity(if latency { size as usize } else { 0 }),
        }
    }

    /// The next entry to fetch, if any and if the outstanding limit allows.
    pub(super) fn can_fetch(&self) -> bool {
        self.head != self.tail && self.outstanding < self.size
    }

    pub(super) fn entry_address(&self, slot: u16) -> u64 {
        self.base + u64::from(slot) * SQE_SIZE as u64
    }

    /// Whether `tail` is a valid SQ Tail Doorbell value.
    pub(super) fn valid_tail(&self, tail: u32) -> bool {
        tail < self.size
    }

    /// The head after fetching one entry.
    pub(super) fn advance_head(&mut self) {
        self.head = ((u32::from(self.head) + 1) % self.size) as u16;
    }
}

/// Interrupt coalescing state of a completion queue.
#[derive(Debug, Default)]
pub(super) struct Coalescing {
    /// Entries posted since the last interrupt.
    pub(super) unsignalled: u32,
    /// An aggregation-time timer is pending.
    pub(super) timer_armed: bool,
}

/// A completion queue.
#[derive(Debug)]
pub(super) struct CompQueue {
    pub(super) base: u64,
    /// Entries, 2..=65536.
    pub(super) size: u32,
    pub(super) head: u16,
    pub(super) tail: u16,
    pub(super) phase: bool,
    pub(super) vector: u16,
    pub(super) interrupts: bool,
    /// Submission queues posting here.
    pub(super) sq_count: u16,
    /// Completions waiting for room, in completion order.
    pub(super) pending: VecDeque<PendingCqe>,
    pub(super) last_cid: Option<u16>,
    pub(super) coalescing: Coalescing,
}

impl CompQueue {
    pub(super) fn new(base: u64, size: u32, vector: u16, interrupts: bool, room: usize) -> Self {
        CompQueue {
            base,
            size,
            head: 0,
            tail: 0,
            phase: true,
            vector,
            interrupts,
            sq_count: 0,
            pending: VecDeque::with_capacity(room),
            last_cid: None,
            coalescing: Coalescing::default(),
        }
    }

    /// Full when one more entry would make the tail reach the head.
    pub(super) fn is_full(&self) -> bool {
        (u32::from(self.tail) + 1) % self.size == u32::from(self.head)
    }

    /// Whether `head` is a valid CQ Head Doorbell value: inside the queue and not beyond the
    /// entries posted so far.
    pub(super) fn valid_head(&self, head: u32) -> bool {
        let size = self.size;
        if head >= size {
            return false;
        }
        let posted = (u32::from(self.tail) + size - u32::from(self.head)) % size;
        let advance = (head + size - u32::from(self.head)) % size;
        advance <= posted
    }

    /// Writes `entry` at the tail and advances it, flipping the phase on wrap.
    pub(super) fn push(
        &mut self,
        ctx: &mut ModelContext<'_>,
        entry: &CompletionEntry,
    ) -> Result<(), ()> {
        let address = self.base + u64::from(self.tail) * CQE_SIZE as u64;
        ctx.dma_write_pod(address, entry).map_err(|_| ())?;
        let tail = u32::from(self.tail) + 1;
        if tail == self.size {
            self.tail = 0;
            self.phase = !self.phase;
        } else {
            self.tail = tail as u16;
        }
        Ok(())
    }
}

/// The Shadow Doorbell and EventIdx buffers of Doorbell Buffer Config.
///
/// Each queue's slot is at the offset of its doorbell register minus 1000h (so `CAP.DSTRD`
/// applies, as the specification lays them out; QEMU hard-codes a 4-byte stride, which is the
/// same with `DSTRD` 0). A slot beyond the one memory page of the buffer is not used.
#[derive(Clone, Copy, Debug)]
pub(super) struct ShadowDoorbells {
    pub(super) shadow: u64,
    pub(super) eventidx: u64,
    pub(super) page: u64,
    pub(super) dstrd: u8,
}

impl ShadowDoorbells {
    fn slot(&self, register: usize) -> Option<u64> {
        let offset = (register - DOORBELLS) as u64;
        (offset + 4 <= self.page).then_some(offset)
    }

    pub(super) fn sq_slot(&self, qid: u16) -> Option<u64> {
        self.slot(sq_tail_doorbell(qid, self.dstrd))
    }

    pub(super) fn cq_slot(&self, qid: u16) -> Option<u64> {
        self.slot(cq_head_doorbell(qid, self.dstrd))
    }

    /// Reads a shadow doorbell value.
    pub(super) fn read(&self, ctx: &mut ModelContext<'_>, slot: u64) -> Option<u32> {
        ctx.dma_read_pod::<u32>(self.shadow + slot).ok()
    }

    /// Writes a shadow doorbell value (the admin queue's, mirrored from MMIO).
    pub(super) fn write_shadow(&self, ctx: &mut ModelContext<'_>, slot: u64, value: u32) {
        // A blocked write only loses the mirror; the MMIO value is what the controller uses.
        let _ = ctx.dma_write_pod(self.shadow + slot, &value);
    }

    /// Writes an EventIdx value: the host rings the MMIO doorbell again once its new value
    /// passes this one.
    pub(super) fn write_eventidx(&self, ctx: &mut ModelContext<'_>, slot: u64, value: u32) {
        let _ = ctx.dma_write_pod(self.eventidx + slot, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_head_validity_wrap() {
        let mut cq = CompQueue::new(0, 4, 0, true, 0);
        assert!(!cq.is_full());
        assert!(cq.valid_head(0));
        assert!(!cq.valid_head(1), "nothing posted yet");
        cq.tail = 3;
        assert!(cq.is_full());
        assert!(cq.valid_head(3) && cq.valid_head(2));
        assert!(!cq.valid_head(4));
        cq.head = 3;
        cq.tail = 1;
        assert!(!cq.is_full());
        assert!(cq.valid_head(0) && cq.valid_head(1));
        assert!(!cq.valid_head(2), "beyond the posted entries");
        cq.head = 2;
        assert!(cq.is_full());
    }

    #[test]
    fn submission_queue_limits() {
        let mut sq = SubQueue::new(0x1000, 8, 1, false);
        assert!(!sq.can_fetch());
        sq.tail = 2;
        assert!(sq.can_fetch());
        sq.outstanding = 8;
        assert!(!sq.can_fetch());
        assert!(sq.valid_tail(7) && !sq.valid_tail(8));
        assert_eq!(sq.entry_address(3), 0x1000 + 3 * 64);
    }

    #[test]
    fn shadow_slots_follow_the_doorbell_layout() {
        let buffers = ShadowDoorbells {
            shadow: 0x10000,
            eventidx: 0x20000,
            page: 4096,
            dstrd: 0,
        };
        assert_eq!(buffers.sq_slot(0), Some(0));
        assert_eq!(buffers.cq_slot(0), Some(4));
        assert_eq!(buffers.sq_slot(3), Some(24));
        assert_eq!(buffers.cq_slot(511), Some(4092));
        assert_eq!(buffers.sq_slot(512), None);
        let wide = ShadowDoorbells {
            dstrd: 2,
            ..buffers
        };
        assert_eq!(wide.cq_slot(1), Some(48));
    }
}
