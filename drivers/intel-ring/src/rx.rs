//! RX rings: advanced receive descriptors and the pool buffers they point at.
//!
//! # Ring ownership
//! Every slot holds a pool buffer once the ring is filled. The device owns the descriptors
//! from its head up to the tail register minus one, the driver the one at the tail. The ring
//! looks at slot `next`; once it has consumed a run of descriptors (delivered or dropped, each
//! given back in read format with a buffer) it writes the tail register = last consumed,
//! **once per batch** (`RegisterIo::write32` issues the release fence that makes the
//! descriptor writes visible before the doorbell).
//!
//! # Untrusted write-backs
//! `DD` is read first (the status dword alone), then an acquire fence, then the rest of the
//! descriptor, which [`check_writeback`] judges. A bad descriptor is counted in
//! [`RxRingStats`] and given back to the device with the same buffer, never delivered: a
//! length of zero or beyond the buffer, `EOP` clear (dropped up to its `EOP`), a MAC error
//! bit of [`RxConfig::mac_error_mask`], or a descriptor the device skipped (`DD` clear here
//! but set on the next one: the device writes back in order, so this one never will be).
//!
//! # Refill in batches
//! Each delivered packet's slot gets a fresh buffer from a small stash of spare buffers
//! ([`RX_REFILL_BATCH`]), which is refilled from the pool with one [`BufferPool::get_batch`]
//! when it runs out, instead of one pool look-up per packet. The stash starts empty and holds
//! at most [`RX_REFILL_BATCH`] buffers (size the pool for it, as for a pool cache); when the
//! pool is empty the descriptor stays in the ring (`alloc_failures`) and is delivered once
//! buffers come back. Nothing on this path panics, allocates or takes a lock.

use std::mem;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use userpci_framework::device::RegisterIo;
use userpci_framework::dma::{BufferPool, DmaArray, DmaDirection, DmaSpace, PoolBuffer};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::Clock;

use crate::control::{QueueControl, Stopper};
use crate::desc::{AdvRxDesc, RXD_STAT_DD, RX_WB_STATUS_OFFSET};
use crate::error::{check_ring_size, Result};
use crate::rx_check::{check_writeback, DropReason, Verdict};
use crate::stats::RxRingStats;

/// Spare buffers an RX ring takes from its pool at once, for the refills of the next
/// packets.
pub const RX_REFILL_BATCH: usize = 32;

/// What a driver tells an RX ring about its device and queue.
#[derive(Clone, Debug)]
pub struct RxConfig {
    /// The function, for messages.
    pub device: PciAddress,
    /// The queue's index, for messages.
    pub queue: u16,
    /// Descriptors in the ring: a power of two, at least [`crate::MIN_RING_SIZE`].
    pub size: usize,
    /// Byte offset of the queue's tail register (`RDT(n)`).
    pub tail_reg: usize,
    /// The write-back `status_error` bits that mean "MAC error, drop the frame" (82599:
    /// `RXE` = bit 29; 82576: `RXE` = bit 31).
    pub mac_error_mask: u32,
    /// The queue's enable register (`RXDCTL(n)`), cleared when the ring is dropped.
    pub control: QueueControl,
    /// The function's clock, for the stop's deadline.
    pub clock: Arc<dyn Clock>,
}

/// An RX ring: descriptors, a buffer per slot, the counters. Generic over the register
/// access `R` so the tail write is a direct (inlined) call. One core uses it at a time
/// (`&mut self`); the driver adds what is device-specific (reset gate, interrupts).
///
/// Dropping it clears the queue's enable bit and waits for the device to report it stopped;
/// only then do the buffers go back to the pool. If the queue never stops, the buffers are
/// leaked rather than reused while the device may still write into them.
pub struct RxRing<R: RegisterIo> {
    regs: R,
    tail_reg: usize,
    mac_error_mask: u32,
    descs: DmaArray<AdvRxDesc>,
    /// One buffer per slot; `None` only while a slot is being refilled, before `fill`, or
    /// when the pool could not fill it.
    bufs: Vec<Option<PoolBuffer>>,
    pool: Arc<BufferPool>,
    /// Spare buffers for refills: `spare[spare_next..spare_end]` hold buffers.
    spare: Vec<Option<PoolBuffer>>,
    spare_next: usize,
    spare_end: usize,
    next: usize,
    mask: usize,
    /// Inside a multi-descriptor packet being dropped (until its `EOP`).
    discarding: bool,
    stats: RxRingStats,
    device: PciAddress,
    queue: u16,
    control: QueueControl,
    clock: Arc<dyn Clock>,
}

impl<R: RegisterIo> RxRing<R> {
    /// Allocates the descriptor ring in `space` (empty: no buffer yet; see [`RxRing::fill`]).
    /// The driver programs the ring's base ([`RxRing::iova`]) and length into the device.
    pub fn new(
        space: &Arc<DmaSpace>,
        regs: R,
        config: RxConfig,
        pool: Arc<BufferPool>,
    ) -> Result<Self> {
        check_ring_size(config.device, "RX", config.queue, config.size)?;
        let descs = space.allocate_array::<AdvRxDesc>(config.size, DmaDirection::Bidirectional)?;
        Ok(RxRing {
            regs,
            tail_reg: config.tail_reg,
            mac_error_mask: config.mac_error_mask,
            descs,
            bufs: (0..config.size).map(|_| None).collect(),
            pool,
            spare: (0..RX_REFILL_BATCH).map(|_| None).collect(),
            spare_next: 0,
            spare_end: 0,
            next: 0,
            mask: config.size - 1,
            discarding: false,
            stats: RxRingStats::default(),
            device: config.device,
            queue: config.queue,
            control: config.control,
            clock: config.clock,
        })
    }

    /// Bus address of the descriptor ring (for `RDBAL` / `RDBAH`).
    pub fn iova(&self) -> u64 {
        self.descs.iova()
    }

    /// Descriptors in the ring.
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    /// Never true: a ring has at least [`crate::MIN_RING_SIZE`] descriptors.
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The queue's index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The pool the ring is refilled from.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// The ring's counters.
    pub fn stats(&self) -> RxRingStats {
        self.stats
    }

    /// The register access the ring was given (for the driver's own registers of the queue).
    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// Gives every slot a buffer (batched from the pool; slots holding one keep it) and
    /// writes every slot holding a buffer in read format, starts over at slot 0, and
    /// returns how many slots from slot 0 on hold a buffer (the ring's length when the pool
    /// had enough). Touches no register: for the start, before the queue is enabled, and
    /// after a device reset. Written-back descriptors not received yet are dropped.
    pub fn fill(&mut self) -> usize {
        self.pool.get_batch(&mut self.bufs);
        let mut filled = self.bufs.len();
        for (slot, buf) in self.bufs.iter().enumerate() {
            match buf {
                Some(buf) => self.descs.set(slot, AdvRxDesc::new_read(buf.iova())),
                None => filled = filled.min(slot),
            }
        }
        self.next = 0;
        self.discarding = false;
        filled
    }

    /// Hands the first `filled` slots to the device: the tail register = `min(filled, N - 1)`
    /// (one slot stays the driver's). Call after [`RxRing::fill`] once the queue is enabled.
    pub fn publish(&self, filled: usize) {
        self.regs
            .write32(self.tail_reg, filled.min(self.mask) as u32);
    }

    /// [`RxRing::fill`], then [`RxRing::publish`]: a ring restarted on an enabled, empty
    /// queue (head = tail = 0) after a device reset. Returns the slots filled.
    pub fn restart(&mut self) -> usize {
        let filled = self.fill();
        self.publish(filled);
        filled
    }

    /// Receives up to `max` packets into `out`, never more than its spare capacity (so `out`
    /// never grows: reserve capacity once). Each packet is a [`PoolBuffer`] whose `len()` is
    /// the frame length; its slot gets a fresh buffer. Writes the tail register once if any
    /// descriptor was consumed. Returns the number of packets pushed.
    pub fn receive(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize {
        let max = max.min(out.capacity() - out.len());
        let mut received = 0;
        let mut slot = self.next;
        // At most the descriptors the device can own (N - 1): each consumed slot is given
        // back in read format, so a second lap would only meet read-format slots anyway.
        let mut budget = self.mask;
        while received < max && budget > 0 {
            let status = self.status(slot);
            if status & RXD_STAT_DD == 0 {
                if !self.skipped(slot) {
                    break;
                }
                self.stats.not_written += 1;
                self.give_back(slot);
            } else {
                // Acquire: the rest of the descriptor is read only after DD was seen set.
                fence(Ordering::Acquire);
                match self.take_packet(slot) {
                    Take::Packet(buf) => {
                        out.push(buf);
                        received += 1;
                    }
                    Take::Dropped => {}
                    Take::NoBuffer => break,
                }
            }
            slot = (slot + 1) & self.mask;
            budget -= 1;
        }
        if slot != self.next {
            self.next = slot;
            // The descriptor before `next` is the last one given back.
            let tail = (slot + self.mask) & self.mask;
            self.regs.write32(self.tail_reg, tail as u32);
        }
        received
    }

    /// Whether the descriptor at `next` has `DD` set (memory only: a cheap "is anything
    /// waiting" check, e.g. after arming an interrupt).
    pub fn has_pending(&self) -> bool {
        self.status(self.next) & RXD_STAT_DD != 0
    }

    /// Writes slot `slot` in read format for the buffer it holds.
    #[inline]
    fn give_back(&self, slot: usize) {
        if let Some(buf) = &self.bufs[slot] {
            self.descs.set(slot, AdvRxDesc::new_read(buf.iova()));
        }
    }

    /// The status dword of slot `slot`, read alone (the device writes it with the rest).
    #[inline(always)]
    fn status(&self, slot: usize) -> u32 {
        self.descs
            .region()
            .read::<u32>(slot * mem::size_of::<AdvRxDesc>() + RX_WB_STATUS_OFFSET)
    }

    /// True when the device skipped `slot`: its `DD` is clear while the next slot's is set.
    /// Re-reads `slot` after seeing the next one done, since both may have been written in
    /// between the two reads.
    #[inline]
    fn skipped(&self, slot: usize) -> bool {
        let after = (slot + 1) & self.mask;
        if self.status(after) & RXD_STAT_DD == 0 {
            return false;
        }
        fence(Ordering::Acquire);
        self.status(slot) & RXD_STAT_DD == 0
    }

    /// Checks the written-back descriptor in `slot` and takes its packet, or drops it.
    #[inline]
    fn take_packet(&mut self, slot: usize) -> Take {
        let wb = self.descs.get(slot).writeback();
        let capacity = self.bufs[slot].as_ref().map_or(0, PoolBuffer::capacity);
        let (verdict, discarding) =
            check_writeback(&wb, capacity, self.discarding, self.mac_error_mask);
        self.discarding = discarding;
        let len = match verdict {
            Verdict::Deliver(len) => len,
            Verdict::Drop(reason) => {
                match reason {
                    DropReason::MultiDescriptorStart => self.stats.multi_descriptor += 1,
                    DropReason::MultiDescriptorRest => {}
                    DropReason::BadLength => self.stats.bad_length += 1,
                    DropReason::MacError => self.stats.mac_errors += 1,
                }
                self.give_back(slot);
                return Take::Dropped;
            }
        };
        let Some(fresh) = self.spare_buffer() else {
            self.stats.alloc_failures += 1;
            // The stash is empty and the descriptor stays as written: the next call sees
            // it again. `discarding` was false and stays false (a deliverable packet).
            return Take::NoBuffer;
        };
        self.descs.set(slot, AdvRxDesc::new_read(fresh.iova()));
        match self.bufs[slot].replace(fresh) {
            Some(mut buf) => {
                buf.set_len(len); // len <= capacity, checked by `check_writeback`
                self.stats.packets += 1;
                self.stats.bytes += len as u64;
                Take::Packet(buf)
            }
            // Unreachable while every slot holds a buffer (capacity 0 fails the length
            // check); never a panic.
            None => Take::Dropped,
        }
    }

    /// A buffer from the stash, refilling the stash from the pool in one batch when empty.
    #[inline(always)]
    fn spare_buffer(&mut self) -> Option<PoolBuffer> {
        if self.spare_next == self.spare_end {
            self.refill_spare();
        }
        let buf = self.spare.get_mut(self.spare_next)?.take();
        if buf.is_some() {
            self.spare_next += 1;
        }
        buf
    }

    /// The stash is empty (every slot `None`): one batched get fills it from the front.
    #[inline(never)]
    fn refill_spare(&mut self) {
        self.spare_next = 0;
        self.spare_end = self.pool.get_batch(&mut self.spare);
    }
}

enum Take {
    Packet(PoolBuffer),
    Dropped,
    NoBuffer,
}

impl<R: RegisterIo> Drop for RxRing<R> {
    fn drop(&mut self) {
        let stopper = Stopper {
            regs: &self.regs,
            clock: self.clock.as_ref(),
            device: self.device,
            control: self.control,
        };
        if let Err(err) = stopper.disable() {
            tracing::error!(device = %self.device, queue = self.queue, %err,
                "RX queue did not stop; leaking its buffers");
            mem::forget(mem::take(&mut self.bufs));
        }
    }
}

impl<R: RegisterIo> std::fmt::Debug for RxRing<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxRing")
            .field("device", &self.device)
            .field("queue", &self.queue)
            .field("len", &self.descs.len())
            .field("next", &self.next)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
