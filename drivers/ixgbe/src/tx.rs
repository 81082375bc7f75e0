//! TX queues: a ring of advanced transmit data descriptors (datasheet 7.2.3.2.4) and the pool
//! buffers being sent.
//!
//! # Ring ownership
//! Slots `clean..tail` are in flight (the device owns their descriptors, the ring keeps their
//! buffers); slots `tail..clean-1` are free; one slot always stays empty so that
//! `tail == clean` means "nothing in flight". [`TxQueue::tx_batch`] fills descriptors at `tail`
//! and writes `TDT` **once per batch**.
//!
//! # Cleaning in batches
//! Every descriptor carries `RS`, so the device writes `DD` back for each. Cleaning looks at
//! one descriptor per batch of [`TX_CLEAN_BATCH`] (ixy's scheme): when the last descriptor of
//! the oldest full batch is done, the device (which completes in order) is done with the whole
//! batch, and its buffers are dropped, which returns them to their pool on the calling core's
//! cache. A buffer received on one core and sent from another therefore goes back safely
//! (ixy issue #30 came from a per-queue free list shared without synchronisation).
//! [`TxQueue::reclaim`] cleans descriptor by descriptor, for idle times.

use std::mem;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::dma::{DmaArray, PoolBuffer};
use userpci_framework::runtime::CoreLocal;
use userpci_framework::time::poll_until;

use crate::device::Shared;
use crate::spec::desc::{AdvTxDesc, AdvTxRead, TXD_STAT_DD, TX_WB_STATUS_OFFSET};
use crate::spec::queue as qreg;
use crate::stats::TxQueueStats;

/// Descriptors cleaned at once (ixy's `TX_CLEAN_BATCH`); smaller for rings of fewer than 64
/// descriptors (half the ring).
pub const TX_CLEAN_BATCH: usize = 32;

/// Largest frame the driver sends: 15.5 KiB, the 82599's largest jumbo frame.
pub const TX_MAX_LEN: usize = 15872;

/// How long a stopping queue may take to finish its descriptors and report
/// `TXDCTL.ENABLE` = 0.
const QUEUE_STOP_TIMEOUT: Duration = Duration::from_millis(100);

/// Descriptors in flight between `clean` and `tail` in a ring of `mask + 1` slots.
#[inline(always)]
pub(crate) const fn in_flight(tail: usize, clean: usize, mask: usize) -> usize {
    tail.wrapping_sub(clean) & mask
}

/// The batch cleaning rule, apart from the ring so it can be tested on its own: starting at
/// `clean`, while a whole batch of `batch` descriptors is in flight and `done(last of the
/// batch)` holds, the batch is cleaned. Returns the new `clean` index; `free(slot)` is called
/// for each cleaned slot, in order.
#[inline(always)]
pub(crate) fn clean_batches(
    tail: usize,
    mut clean: usize,
    mask: usize,
    batch: usize,
    mut done: impl FnMut(usize) -> bool,
    mut free: impl FnMut(usize),
) -> usize {
    while in_flight(tail, clean, mask) >= batch {
        let last = (clean + batch - 1) & mask;
        if !done(last) {
            break;
        }
        for i in 0..batch {
            free((clean + i) & mask);
        }
        clean = (clean + batch) & mask;
    }
    clean
}

/// The part of a TX queue that lives in the device handle until a core takes it.
pub(crate) struct TxRing<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) index: u16,
    pub(crate) ring: DmaArray<AdvTxDesc>,
    /// The buffer of each in-flight slot.
    pub(crate) bufs: Vec<Option<PoolBuffer>>,
}

/// `DD` of the write-back in `slot` (the status dword alone).
#[inline(always)]
fn done(ring: &DmaArray<AdvTxDesc>, slot: usize) -> bool {
    ring.region()
        .read::<u32>(slot * mem::size_of::<AdvTxDesc>() + TX_WB_STATUS_OFFSET)
        & TXD_STAT_DD
        != 0
}

/// One TX queue, used by one core.
///
/// It is `!Send`: handing it to another core does not compile.
///
/// ```compile_fail
/// fn on_another_core<T: Send>(_: T) {}
/// fn hand_over(q: userpci_ixgbe::TxQueue<userpci_framework::backend::sim::SimFunction>) {
///     on_another_core(q); // error: `*const ()` cannot be sent between threads safely
/// }
/// ```
pub struct TxQueue<F: PciFunction> {
    ring: TxRing<F>,
    tail: usize,
    clean: usize,
    mask: usize,
    batch: usize,
    stats: TxQueueStats,
    /// The reset generation the ring was last emptied for (see [`crate::participant`]).
    generation: u64,
    reset_dropped: u64,
    _core: CoreLocal,
}

impl<F: PciFunction> TxQueue<F> {
    pub(crate) fn new(ring: TxRing<F>, core: CoreLocal) -> Self {
        let size = ring.ring.len();
        let generation = ring.shared.gate.generation();
        TxQueue {
            ring,
            tail: 0,
            clean: 0,
            mask: size - 1,
            batch: TX_CLEAN_BATCH.min(size / 2),
            stats: TxQueueStats::default(),
            generation,
            reset_dropped: 0,
            _core: core,
        }
    }

    /// The queue's index.
    pub fn index(&self) -> u16 {
        self.ring.index
    }

    /// Descriptors in the ring.
    pub fn ring_size(&self) -> usize {
        self.ring.ring.len()
    }

    /// The counters of this queue.
    pub fn stats(&self) -> TxQueueStats {
        self.stats
    }

    /// Descriptors handed to the device and not cleaned yet.
    pub fn in_flight(&self) -> usize {
        in_flight(self.tail, self.clean, self.mask)
    }

    /// Cleans finished batches, then sends packets from the front of `packets`, as many as
    /// the ring has room for; the rest stay in `packets`, in order. Packets of length zero
    /// or above [`TX_MAX_LEN`] are dropped and counted (`invalid_length`). Returns the number
    /// of packets placed in the ring; `TDT` is written once if any were. A buffer received
    /// from an RX queue can be sent as is (zero copy). Allocates nothing.
    ///
    /// While the device is being reset ([`crate::IxgbeParticipant`]) it sends nothing (every
    /// packet stays in `packets`) and touches nothing.
    pub fn tx_batch(&mut self, packets: &mut Vec<PoolBuffer>) -> usize {
        let Some(generation) = self.ring.shared.gate.enter() else {
            return 0;
        };
        self.catch_up(generation);
        let sent = self.send(packets);
        self.ring.shared.gate.exit();
        sent
    }

    /// Packets handed to the device before a coordinated reset and not known to be sent:
    /// returned to their pool by the recovery, not re-sent.
    pub fn reset_dropped(&self) -> u64 {
        self.reset_dropped
    }

    /// After a coordinated reset the device's ring is empty (`TDH` = `TDT` = 0): frees what
    /// the ring held and starts over at slot 0.
    fn catch_up(&mut self, generation: u64) {
        if generation == self.generation {
            return;
        }
        for slot in &mut self.ring.bufs {
            if slot.take().is_some() {
                self.reset_dropped += 1;
            }
        }
        self.tail = 0;
        self.clean = 0;
        self.generation = generation;
    }

    fn send(&mut self, packets: &mut Vec<PoolBuffer>) -> usize {
        self.clean_batches();
        let room = self.mask - self.in_flight();
        let take = room.min(packets.len());
        let mut sent = 0;
        for buf in packets.drain(..take) {
            let len = buf.len();
            if len == 0 || len > TX_MAX_LEN {
                self.stats.invalid_length += 1;
                continue; // dropped: back to its pool
            }
            let desc = AdvTxRead::packet(buf.iova(), len as u16);
            self.ring.ring.set(self.tail, desc.into());
            // The slot is free (cleaned); a leftover buffer would only be one the device
            // is done with, and dropping it returns it to its pool.
            self.ring.bufs[self.tail] = Some(buf);
            self.tail = (self.tail + 1) & self.mask;
            self.stats.packets += 1;
            self.stats.bytes += len as u64;
            sent += 1;
        }
        if sent > 0 {
            // `write32` fences (release) first: the descriptors are visible before TDT.
            self.ring
                .shared
                .write(qreg::TDT(usize::from(self.ring.index)), self.tail as u32);
        }
        sent
    }

    /// Cleans every whole batch the device has finished (checking `DD` on the last
    /// descriptor of each); returns the descriptors cleaned.
    pub fn clean_batches(&mut self) -> usize {
        // Memory only; after a reset, catch up first so old descriptors are not looked at.
        self.catch_up(self.ring.shared.gate.generation());
        let descs = &self.ring.ring;
        let bufs = &mut self.ring.bufs;
        let mut cleaned = 0;
        let new_clean = clean_batches(
            self.tail,
            self.clean,
            self.mask,
            self.batch,
            |slot| {
                let is_done = done(descs, slot);
                // Acquire: the buffers are reused only after DD was seen set.
                fence(Ordering::Acquire);
                is_done
            },
            |slot| {
                cleaned += 1;
                drop(bufs[slot].take());
            },
        );
        self.clean = new_clean;
        self.stats.cleaned += cleaned as u64;
        cleaned
    }

    /// Cleans descriptor by descriptor, up to the first one not done: for idle times, when
    /// fewer than a batch are in flight. With `WTHRESH` > 0 the device holds back write-backs
    /// until it has several, so when descriptors remain in flight this asks for the pending
    /// ones (`TXDCTL.SWFLSH`) and looks again. Returns the descriptors cleaned.
    pub fn reclaim(&mut self) -> usize {
        let Some(generation) = self.ring.shared.gate.enter() else {
            return 0;
        };
        self.catch_up(generation);
        let mut cleaned = self.clean_done();
        if self.in_flight() > 0 {
            let q = usize::from(self.ring.index);
            self.ring
                .shared
                .modify(qreg::TXDCTL(q), qreg::TXDCTL_SWFLSH, 0);
            cleaned += self.clean_done();
        }
        self.ring.shared.gate.exit();
        cleaned
    }

    /// Cleans the run of done descriptors at `clean`, one by one.
    fn clean_done(&mut self) -> usize {
        let mut cleaned = 0;
        while self.clean != self.tail && done(&self.ring.ring, self.clean) {
            fence(Ordering::Acquire);
            drop(self.ring.bufs[self.clean].take());
            self.clean = (self.clean + 1) & self.mask;
            cleaned += 1;
        }
        self.stats.cleaned += cleaned as u64;
        cleaned
    }
}

impl<F: PciFunction> Drop for TxRing<F> {
    /// Waits for the device to finish what was queued (`TDH` = `TDT`), clears
    /// `TXDCTL.ENABLE` and waits for it to read 0, then frees the buffers. If the device does
    /// not finish in time the buffers are leaked rather than reused while it may read them.
    fn drop(&mut self) {
        let shared = &self.shared;
        let q = usize::from(self.index);
        let drained = poll_until(
            shared.clock(),
            shared.device,
            "TDH=TDT (TX queue drain)",
            QUEUE_STOP_TIMEOUT,
            || {
                let head = shared.read(qreg::TDH(q));
                Ok((head == u32::MAX || head == shared.read(qreg::TDT(q))).then_some(()))
            },
        );
        shared.modify(qreg::TXDCTL(q), 0, qreg::TXDCTL_ENABLE);
        let stopped = drained.and_then(|()| {
            poll_until(
                shared.clock(),
                shared.device,
                "TXDCTL.ENABLE=0 (queue stop)",
                QUEUE_STOP_TIMEOUT,
                || {
                    let v = shared.read(qreg::TXDCTL(q));
                    Ok((v == u32::MAX || v & qreg::TXDCTL_ENABLE == 0).then_some(()))
                },
            )
        });
        if let Err(err) = stopped {
            tracing::error!(device = %shared.device, queue = q, %err,
                "TX queue did not stop; leaking its buffers");
            mem::forget(mem::take(&mut self.bufs));
        }
    }
}

impl<F: PciFunction> std::fmt::Debug for TxQueue<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("device", &self.ring.shared.device)
            .field("index", &self.ring.index)
            .field("tail", &self.tail)
            .field("clean", &self.clean)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the cleaning rule on a ring of `size` with the device done up to (excluding)
    /// `device_done` descriptors after `clean`.
    fn run(
        size: usize,
        tail: usize,
        clean: usize,
        device_done: usize,
        batch: usize,
    ) -> (usize, Vec<usize>, Vec<usize>) {
        let mask = size - 1;
        let mut checked = Vec::new();
        let mut freed = Vec::new();
        let new = clean_batches(
            tail,
            clean,
            mask,
            batch,
            |slot| {
                checked.push(slot);
                (slot.wrapping_sub(clean) & mask) < device_done
            },
            |slot| freed.push(slot),
        );
        (new, checked, freed)
    }

    #[test]
    fn nothing_is_cleaned_below_a_batch() {
        let (new, checked, freed) = run(512, 31, 0, 31, 32);
        assert_eq!(new, 0);
        assert!(checked.is_empty(), "DD not even looked at");
        assert!(freed.is_empty());
    }

    #[test]
    fn a_finished_batch_is_cleaned_by_looking_at_its_last_descriptor() {
        let (new, checked, freed) = run(512, 40, 0, 40, 32);
        assert_eq!(new, 32);
        assert_eq!(checked, vec![31], "only the last descriptor of the batch");
        assert_eq!(freed, (0..32).collect::<Vec<_>>());
    }

    #[test]
    fn an_unfinished_batch_stays() {
        let (new, checked, freed) = run(512, 64, 0, 31, 32);
        assert_eq!(new, 0);
        assert_eq!(checked, vec![31]);
        assert!(freed.is_empty());
    }

    #[test]
    fn several_batches_and_wrap_around() {
        // Ring of 128, clean at 100, 96 in flight (wrapping), device done with 70.
        let (new, checked, freed) = run(128, (100 + 96) & 127, 100, 70, 32);
        assert_eq!(new, (100 + 64) & 127, "two whole batches");
        assert_eq!(
            checked,
            vec![(100 + 31) & 127, (100 + 63) & 127, (100 + 95) & 127]
        );
        let want: Vec<usize> = (0..64).map(|i| (100 + i) & 127).collect();
        assert_eq!(freed, want);
    }

    #[test]
    fn in_flight_wraps() {
        assert_eq!(in_flight(5, 5, 7), 0);
        assert_eq!(in_flight(2, 6, 7), 4);
        assert_eq!(in_flight(7, 0, 7), 7);
    }
}
