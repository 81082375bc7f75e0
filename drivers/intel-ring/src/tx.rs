//! TX rings: advanced transmit data descriptors and the pool buffers being sent.
//!
//! # Ring ownership
//! Slots `clean..tail` are in flight (the device owns their descriptors, the ring keeps their
//! buffers); slots `tail..clean-1` are free; one slot always stays empty so that
//! `tail == clean` means "nothing in flight". [`TxRing::send`] fills descriptors at `tail`
//! and writes the tail register **once per batch**.
//!
//! # Cleaning in batches
//! Every descriptor carries `RS`, so the device writes `DD` back for each. Cleaning looks at
//! one descriptor per batch of [`TxConfig::clean_batch`] (ixy's scheme): when the last
//! descriptor of the oldest full batch is done, the device (which completes in order) is done
//! with the whole batch, and its buffers go back to their pools with one
//! [`BufferPool::put_batch`] (on the calling core's cache: a buffer received on one core and
//! sent from another goes back safely; ixy issue #30 came from a per-queue free list shared
//! without synchronisation). [`TxRing::clean_done`] and [`TxRing::reclaim`] clean descriptor
//! by descriptor, for idle times.
//!
//! # When traffic stops
//! Batch cleaning leaves up to a batch in flight, and a device with a write-back threshold
//! (82599 `TXDCTL.WTHRESH`) holds back the `DD` of fewer descriptors than the threshold (it
//! writes them back when the threshold is reached, on its interrupt throttle timer, or when
//! asked, datasheet 7.2.3.5.1). [`TxRing::clean_idle`], the idle poll, cleans descriptor by
//! descriptor and asks for the held-back write-backs when fewer than the threshold remain,
//! so [`TxRing::in_flight`] drains to 0 once the device has sent everything.
//!
//! # Hangs
//! [`TxRing::check_stall`] applies the rule of [`crate::tx_stall`] (head not moving over a
//! timeout with descriptors pending); the driver calls it where a hang would show (a full
//! ring, an idle ring still holding descriptors) and decides what to do about it.

use std::mem;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::RegisterIo;
use userpci_framework::dma::{BufferPool, DmaArray, DmaDirection, DmaSpace, PoolBuffer};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::Clock;

use crate::control::{QueueControl, Stopper};
use crate::desc::{AdvTxDesc, AdvTxRead, TXD_STAT_DD, TX_WB_STATUS_OFFSET};
use crate::error::{check_ring_size, Error, Result};
use crate::stats::TxRingStats;
use crate::tx_clean::{clean_batches, in_flight, slot_ranges};
use crate::tx_stall::{HeadReading, StallCheck, StallWatch};

/// What a driver tells a TX ring about its device and queue.
#[derive(Clone, Debug)]
pub struct TxConfig {
    /// The function, for messages.
    pub device: PciAddress,
    /// The queue's index, for messages.
    pub queue: u16,
    /// Descriptors in the ring: a power of two, at least [`crate::MIN_RING_SIZE`].
    pub size: usize,
    /// Byte offset of the queue's tail register (`TDT(n)`).
    pub tail_reg: usize,
    /// Byte offset of the queue's head register (`TDH(n)`), read when the ring is dropped.
    pub head_reg: usize,
    /// Largest packet the ring sends (the chip's largest frame, at most 65535: `DTALEN` is
    /// 16 bits); longer ones are dropped and counted.
    pub max_len: usize,
    /// Descriptors cleaned at once: at least 1, at most half the ring (ixy: 32).
    pub clean_batch: usize,
    /// The queue's enable register (`TXDCTL(n)`), cleared when the ring is dropped.
    pub control: QueueControl,
    /// The function's clock, for the drain's and the stop's deadlines.
    pub clock: Arc<dyn Clock>,
}

/// A TX ring: descriptors, the buffer of each in-flight slot, the counters. Generic over the
/// register access `R` (see [`crate::RxRing`]).
///
/// Dropping it waits (with the deadline of [`QueueControl::stop_timeout`]) for the device to
/// finish what was queued (head = tail), clears the enable bit and waits for it to read 0,
/// then frees the buffers; if the device does not finish in time they are leaked rather than
/// reused while it may still read them.
pub struct TxRing<R: RegisterIo> {
    regs: R,
    tail_reg: usize,
    head_reg: usize,
    max_len: usize,
    descs: DmaArray<AdvTxDesc>,
    /// The buffer of each in-flight slot.
    bufs: Vec<Option<PoolBuffer>>,
    tail: usize,
    clean: usize,
    mask: usize,
    batch: usize,
    stats: TxRingStats,
    device: PciAddress,
    queue: u16,
    control: QueueControl,
    clock: Arc<dyn Clock>,
    stall: StallWatch,
}

impl<R: RegisterIo> TxRing<R> {
    /// Allocates the descriptor ring in `space` (empty: nothing in flight). The driver
    /// programs the ring's base ([`TxRing::iova`]) and length into the device, with head =
    /// tail = 0.
    pub fn new(space: &Arc<DmaSpace>, regs: R, config: TxConfig) -> Result<Self> {
        check_ring_size(config.device, "TX", config.queue, config.size)?;
        let invalid = |what, value: usize, expected| Error::InvalidRing {
            device: config.device,
            direction: "TX",
            queue: config.queue,
            what,
            value: value as u64,
            expected,
        };
        if config.clean_batch == 0 || config.clean_batch > config.size / 2 {
            return Err(invalid(
                "clean batch",
                config.clean_batch,
                "1..=half the ring size",
            ));
        }
        if config.max_len == 0 || config.max_len > usize::from(u16::MAX) {
            return Err(invalid("maximum length", config.max_len, "1..=65535"));
        }
        let descs = space.allocate_array::<AdvTxDesc>(config.size, DmaDirection::Bidirectional)?;
        Ok(TxRing {
            regs,
            tail_reg: config.tail_reg,
            head_reg: config.head_reg,
            max_len: config.max_len,
            descs,
            bufs: (0..config.size).map(|_| None).collect(),
            tail: 0,
            clean: 0,
            mask: config.size - 1,
            batch: config.clean_batch,
            stats: TxRingStats::default(),
            device: config.device,
            queue: config.queue,
            control: config.control,
            clock: config.clock,
            stall: StallWatch::new(None),
        })
    }

    /// Bus address of the descriptor ring (for `TDBAL` / `TDBAH`).
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

    /// The ring's counters.
    pub fn stats(&self) -> TxRingStats {
        self.stats
    }

    /// The register access the ring was given.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// Descriptors handed to the device and not cleaned yet.
    pub fn in_flight(&self) -> usize {
        in_flight(self.tail, self.clean, self.mask)
    }

    /// Cleans finished batches, then sends packets from the front of `packets`, as many as
    /// the ring has room for; the rest stay in `packets`, in order. Packets of length zero
    /// or above `max_len` are dropped and counted (`invalid_length`). Returns the number of
    /// packets placed in the ring; the tail register is written once if any were.
    pub fn send(&mut self, packets: &mut Vec<PoolBuffer>) -> usize {
        self.clean_batches();
        let room = self.mask - self.in_flight();
        let take = room.min(packets.len());
        let mut sent = 0;
        for buf in packets.drain(..take) {
            let len = buf.len();
            if len == 0 || len > self.max_len {
                self.stats.invalid_length += 1;
                continue; // dropped: back to its pool
            }
            let desc = AdvTxRead::packet(buf.iova(), len as u16);
            self.descs.set(self.tail, desc.into());
            // The slot is free (cleaned); a leftover buffer would only be one the device
            // is done with, and dropping it returns it to its pool.
            self.bufs[self.tail] = Some(buf);
            self.tail = (self.tail + 1) & self.mask;
            self.stats.packets += 1;
            self.stats.bytes += len as u64;
            sent += 1;
        }
        if sent > 0 {
            // `write32` fences (release) first: the descriptors are visible before the tail.
            self.regs.write32(self.tail_reg, self.tail as u32);
        }
        sent
    }

    /// Cleans every whole batch the device has finished (checking `DD` on the last
    /// descriptor of each); returns the descriptors cleaned. Memory only.
    pub fn clean_batches(&mut self) -> usize {
        let descs = &self.descs;
        let new_clean = clean_batches(self.tail, self.clean, self.mask, self.batch, |slot| {
            let is_done = done(descs, slot);
            // Acquire: the buffers are reused only after DD was seen set.
            fence(Ordering::Acquire);
            is_done
        });
        self.free_up_to(new_clean)
    }

    /// Cleans the run of done descriptors at the oldest in-flight one, descriptor by
    /// descriptor: for idle times, when fewer than a batch are in flight. Memory only.
    pub fn clean_done(&mut self) -> usize {
        let mut end = self.clean;
        while end != self.tail && done(&self.descs, end) {
            end = (end + 1) & self.mask;
        }
        // Acquire: the buffers are reused only after DD was seen set.
        fence(Ordering::Acquire);
        self.free_up_to(end)
    }

    /// [`TxRing::clean_done`]; when descriptors remain in flight, `flush` asks the device
    /// for the write-backs it holds back (82599: `TXDCTL.SWFLSH`, with `WTHRESH` > 0) and
    /// the ring looks once more. Returns the descriptors cleaned.
    pub fn reclaim(&mut self, flush: impl FnOnce(&R)) -> usize {
        let mut cleaned = self.clean_done();
        if self.in_flight() > 0 {
            flush(&self.regs);
            cleaned += self.clean_done();
        }
        cleaned
    }

    /// The idle poll, when the application has nothing to send: cleans the run of done
    /// descriptors ([`TxRing::clean_done`]); when fewer than `write_back_threshold` remain in
    /// flight, the device may be holding their write-backs back (82599: fewer than
    /// `TXDCTL.WTHRESH` accumulated), so `flush` asks for them (`TXDCTL.SWFLSH`) and the
    /// ring looks once more. With more in flight the device has not processed them all yet
    /// and writes them back on its own: no flush. Nothing in flight: memory only, no
    /// register access. Returns the descriptors cleaned.
    pub fn clean_idle(&mut self, write_back_threshold: usize, flush: impl FnOnce(&R)) -> usize {
        if self.in_flight() == 0 {
            return 0;
        }
        let mut cleaned = self.clean_done();
        let left = self.in_flight();
        if left > 0 && left < write_back_threshold {
            flush(&self.regs);
            self.stats.idle_flushes += 1;
            cleaned += self.clean_done();
        }
        cleaned
    }

    /// Reports hangs with [`TxRing::check_stall`] once the head has not moved for `timeout`
    /// (`None`, the default: never).
    pub fn set_stall_timeout(&mut self, timeout: Option<Duration>) {
        self.stall = StallWatch::new(timeout);
    }

    /// One look for a hang at time `now` (the rule of [`crate::tx_stall`]): memory only,
    /// except when a window of no progress ends; then the head register is read once and
    /// `may_send` is asked whether the device may transmit now (82599: link up). A head
    /// reading all ones or past the ring is excused. A head equal to the tail (the device
    /// processed everything) is a reading like any other: if it stays there for two windows
    /// while nothing is cleaned, the write-backs were lost (the idle poll asks for held-back
    /// ones each time), and the ring would never drain. A hang is counted in
    /// [`TxRingStats::hangs`].
    pub fn check_stall(&mut self, now: Duration, may_send: impl FnOnce(&R) -> bool) -> StallCheck {
        let (regs, head_reg, size) = (&self.regs, self.head_reg, self.descs.len());
        let check = self
            .stall
            .observe(now, self.stats.cleaned, self.in_flight(), || {
                let head = regs.read32(head_reg);
                let index = head as usize;
                if head == u32::MAX || index >= size || !may_send(regs) {
                    HeadReading::Excused
                } else {
                    HeadReading::Pending(head)
                }
            });
        if let StallCheck::Hung { .. } = check {
            self.stats.hangs += 1;
        }
        check
    }

    /// After a device reset (the device's ring is empty again, head = tail = 0): frees every
    /// buffer the ring held and starts over at slot 0. Returns the packets dropped that way
    /// (handed to the device, not known to be sent).
    pub fn reset(&mut self) -> usize {
        let dropped = BufferPool::put_batch(&mut self.bufs);
        self.tail = 0;
        self.clean = 0;
        self.stall.restart();
        dropped
    }

    /// Frees the slots from `clean` up to `new_clean` (batched, per run of one pool) and
    /// moves `clean` there.
    #[inline]
    fn free_up_to(&mut self, new_clean: usize) -> usize {
        if new_clean == self.clean {
            return 0;
        }
        let (first, second) = slot_ranges(self.clean, new_clean, self.mask);
        let cleaned = first.len() + second.len();
        BufferPool::put_batch(&mut self.bufs[first]);
        BufferPool::put_batch(&mut self.bufs[second]);
        self.clean = new_clean;
        self.stats.cleaned += cleaned as u64;
        cleaned
    }
}

/// `DD` of the write-back in `slot` (the status dword alone).
#[inline(always)]
fn done(descs: &DmaArray<AdvTxDesc>, slot: usize) -> bool {
    descs
        .region()
        .read::<u32>(slot * mem::size_of::<AdvTxDesc>() + TX_WB_STATUS_OFFSET)
        & TXD_STAT_DD
        != 0
}

impl<R: RegisterIo> Drop for TxRing<R> {
    fn drop(&mut self) {
        let stopper = Stopper {
            regs: &self.regs,
            clock: self.clock.as_ref(),
            device: self.device,
            control: self.control,
        };
        let drained = stopper.drain(self.head_reg, self.tail_reg);
        // Disable even when the drain timed out; the buffers are freed only if both worked.
        let stopped = stopper.disable();
        if let Err(err) = drained.and(stopped) {
            tracing::error!(device = %self.device, queue = self.queue, %err,
                "TX queue did not stop; leaking its buffers");
            mem::forget(mem::take(&mut self.bufs));
        }
    }
}

impl<R: RegisterIo> std::fmt::Debug for TxRing<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxRing")
            .field("device", &self.device)
            .field("queue", &self.queue)
            .field("tail", &self.tail)
            .field("clean", &self.clean)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
