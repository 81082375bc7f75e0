//! RX queues: a ring of advanced receive descriptors (datasheet 7.1.6) and the pool buffers
//! the descriptors point at.
//!
//! # Ring ownership
//! Every slot always holds a pool buffer. After start, `RDH` = 0 and `RDT` = N-1: the device
//! owns the descriptors from `RDH` up to `RDT - 1`, the driver the one at `RDT`. The driver
//! looks at slot `next`; once it has consumed a run of descriptors (delivered or dropped,
//! each given back in read format with a buffer) it writes `RDT` = last consumed, **once per
//! batch** (one MMIO write; `RegisterIo::write32` issues the release fence that makes the
//! descriptor writes visible before the doorbell).
//!
//! # Untrusted write-backs
//! `DD` is read first (the status dword alone), then an acquire fence, then the rest of the
//! descriptor. What the device wrote is then checked, and a bad descriptor is counted in
//! [`RxQueueStats`] and given back to the device with the same buffer, never delivered:
//! - `PKT_LEN` of zero or larger than the buffer (no out-of-bounds slice is ever made);
//! - `EOP` clear: a packet spread over several descriptors (unsupported); its descriptors are
//!   dropped up to and including the one with `EOP`;
//! - `RXE` set (MAC error);
//! - a descriptor the device skipped: `DD` clear here but set on the next one (the device
//!   writes back in order, so the next one being done means this one never will be).
//!
//! Nothing on this path panics or allocates; when the pool is empty the descriptor stays in
//! the ring (`alloc_failures`) and is delivered once buffers come back.

use std::mem;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::{InterruptVector, PciFunction};
use userpci_framework::dma::{BufferPool, DmaArray, PoolBuffer};
use userpci_framework::runtime::{yield_now, CoreLocal, InterruptWaiter};
use userpci_framework::time::poll_until;

use crate::device::Shared;
use crate::error::Result;
use crate::spec::desc::{AdvRxDesc, AdvRxWriteback, RXD_ERR_RXE, RXD_STAT_DD, RX_WB_STATUS_OFFSET};
use crate::spec::{queue as qreg, regs};
use crate::stats::RxQueueStats;

/// How long a stopping queue may take to report `RXDCTL.ENABLE` = 0.
const QUEUE_STOP_TIMEOUT: Duration = Duration::from_millis(100);

/// The part of an RX queue that lives in the device handle until a core takes it: the ring,
/// its buffers and the interrupt. Dropping it stops the queue before freeing the buffers.
pub(crate) struct RxRing<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) index: u16,
    pub(crate) ring: DmaArray<AdvRxDesc>,
    /// One buffer per slot; `None` only while a slot is being refilled, or after `stop`.
    pub(crate) bufs: Vec<Option<PoolBuffer>>,
    pub(crate) pool: Arc<BufferPool>,
    /// MSI-X vector and its `EIMS` bit (interrupt mode).
    pub(crate) irq: Option<(InterruptVector, u32)>,
    /// The reset generation the ring was last started for (see [`crate::participant`]).
    pub(crate) generation: u64,
}

impl<F: PciFunction> RxRing<F> {
    /// After a reset (the queue re-enabled empty, `RDH` = `RDT` = 0): every slot back in
    /// read format with the buffer it holds (an empty slot gets one from the pool), then the
    /// ring to the device (`RDT` = N - 1, or up to the first slot the pool could not fill).
    /// Written-back descriptors not taken before the reset are dropped with it.
    pub(crate) fn restart(&mut self, generation: u64) {
        let n = self.bufs.len();
        let mut filled = n;
        for slot in 0..n {
            if self.bufs[slot].is_none() {
                self.bufs[slot] = self.pool.get();
            }
            match &self.bufs[slot] {
                Some(buf) => self.ring.set(slot, AdvRxDesc::new_read(buf.iova())),
                None => {
                    filled = filled.min(slot);
                }
            }
        }
        self.generation = generation;
        self.shared
            .write(qreg::RDT(usize::from(self.index)), filled.min(n - 1) as u32);
    }

    /// Writes slot `slot` in read format for the buffer it holds.
    fn give_back(&self, slot: usize) {
        if let Some(buf) = &self.bufs[slot] {
            self.ring.set(slot, AdvRxDesc::new_read(buf.iova()));
        }
    }

    /// The status dword of slot `slot`, read alone (the device writes it with the rest).
    #[inline(always)]
    fn status(&self, slot: usize) -> u32 {
        self.ring
            .region()
            .read::<u32>(slot * mem::size_of::<AdvRxDesc>() + RX_WB_STATUS_OFFSET)
    }
}

impl<F: PciFunction> Drop for RxRing<F> {
    /// 4.6.7.1: clear `RXDCTL.ENABLE` and wait until the device reports the queue stopped;
    /// only then may the buffers go back to the pool. If it never stops, the buffers are
    /// leaked rather than reused while the device may still write into them.
    fn drop(&mut self) {
        let shared = &self.shared;
        let q = usize::from(self.index);
        shared.modify(qreg::RXDCTL(q), 0, qreg::RXDCTL_ENABLE);
        let stopped = poll_until(
            shared.clock(),
            shared.device,
            "RXDCTL.ENABLE=0 (queue stop)",
            QUEUE_STOP_TIMEOUT,
            || {
                let v = shared.read(qreg::RXDCTL(q));
                Ok((v == u32::MAX || v & qreg::RXDCTL_ENABLE == 0).then_some(()))
            },
        );
        if let Err(err) = stopped {
            tracing::error!(device = %shared.device, queue = q, %err,
                "RX queue did not stop; leaking its buffers");
            mem::forget(mem::take(&mut self.bufs));
        }
    }
}

/// What [`RxQueue::rx_batch_or_arm`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxPoll {
    /// This many packets were received.
    Received(usize),
    /// Nothing arrived and the queue's interrupt is armed: safe to sleep on its vector.
    Armed,
}

/// One RX queue, polled by one core.
///
/// It is `!Send`: handing it to another core does not compile.
///
/// ```compile_fail
/// fn on_another_core<T: Send>(_: T) {}
/// fn hand_over(q: userpci_ixgbe::RxQueue<userpci_framework::backend::sim::SimFunction>) {
///     on_another_core(q); // error: `*const ()` cannot be sent between threads safely
/// }
/// ```
pub struct RxQueue<F: PciFunction> {
    ring: RxRing<F>,
    next: usize,
    mask: usize,
    /// Inside a multi-descriptor packet being dropped (until its `EOP`).
    discarding: bool,
    stats: RxQueueStats,
    resets: u64,
    _core: CoreLocal,
}

impl<F: PciFunction> RxQueue<F> {
    pub(crate) fn new(ring: RxRing<F>, core: CoreLocal) -> Self {
        let mask = ring.ring.len() - 1;
        RxQueue {
            ring,
            next: 0,
            mask,
            discarding: false,
            stats: RxQueueStats::default(),
            resets: 0,
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
    pub fn stats(&self) -> RxQueueStats {
        self.stats
    }

    /// The pool the ring is refilled from.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.ring.pool
    }

    /// The queue's MSI-X vector (interrupt mode).
    pub fn interrupt_vector(&self) -> Option<&InterruptVector> {
        self.ring.irq.as_ref().map(|(v, _)| v)
    }

    /// Receives up to `max` packets into `out`, never more than its spare capacity (so `out`
    /// never grows: reserve capacity once). Each packet is a [`PoolBuffer`] whose `len()` is
    /// the frame length (CRC stripped); send it as is, or drop it to return it to the pool.
    /// Returns the number of packets pushed.
    ///
    /// While the device is being reset ([`crate::IxgbeParticipant`]) it receives nothing and
    /// touches nothing; the first call after the recovery restarts the ring.
    pub fn rx_batch(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize {
        let Some(generation) = self.ring.shared.gate.enter() else {
            return 0;
        };
        if generation != self.ring.generation {
            self.ring.restart(generation);
            self.next = 0;
            self.discarding = false;
            self.resets += 1;
        }
        let received = self.receive(out, max);
        self.ring.shared.gate.exit();
        received
    }

    /// Times the ring was restarted after a coordinated reset.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    fn receive(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize {
        let max = max.min(out.capacity() - out.len());
        let mut received = 0;
        let mut slot = self.next;
        // At most the descriptors the device can own (N - 1): each consumed slot is given
        // back in read format, so a second lap would only meet read-format slots anyway.
        let mut budget = self.mask;
        while received < max && budget > 0 {
            let status = self.ring.status(slot);
            if status & RXD_STAT_DD == 0 {
                if !self.skipped(slot) {
                    break;
                }
                self.stats.not_written += 1;
                self.ring.give_back(slot);
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
            let rdt = (slot + self.mask) & self.mask;
            self.ring
                .shared
                .write(qreg::RDT(usize::from(self.ring.index)), rdt as u32);
        }
        received
    }

    /// True when the device skipped `slot`: its `DD` is clear while the next slot's is set.
    /// Re-reads `slot` after seeing the next one done, since both may have been written in
    /// between the two reads.
    #[inline]
    fn skipped(&self, slot: usize) -> bool {
        let after = (slot + 1) & self.mask;
        if self.ring.status(after) & RXD_STAT_DD == 0 {
            return false;
        }
        fence(Ordering::Acquire);
        self.ring.status(slot) & RXD_STAT_DD == 0
    }

    /// Checks the written-back descriptor in `slot` and takes its packet, or drops it.
    #[inline]
    fn take_packet(&mut self, slot: usize) -> Take {
        let wb = self.ring.ring.get(slot).writeback();
        let capacity = self.ring.bufs[slot]
            .as_ref()
            .map_or(0, PoolBuffer::capacity);
        let (verdict, discarding) = check_writeback(&wb, capacity, self.discarding);
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
                self.ring.give_back(slot);
                return Take::Dropped;
            }
        };
        let Some(fresh) = self.ring.pool.get() else {
            self.stats.alloc_failures += 1;
            return Take::NoBuffer;
        };
        self.ring.ring.set(slot, AdvRxDesc::new_read(fresh.iova()));
        match self.ring.bufs[slot].replace(fresh) {
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

    /// Interrupt mode: receives like [`RxQueue::rx_batch`]; when nothing arrived, arms the
    /// queue's interrupt (`EIMS`) and looks at the ring **once more**, so packets that arrived
    /// between the empty poll and the arming are not left waiting for an interrupt that will
    /// not come (ixy issue #21). [`RxPoll::Armed`] means the ring was empty after arming:
    /// sleep on [`RxQueue::interrupt_vector`]. Without interrupts it never arms.
    pub fn rx_batch_or_arm(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> RxPoll {
        if max.min(out.capacity() - out.len()) == 0 {
            return RxPoll::Received(0); // no room: nothing to wait for
        }
        let n = self.rx_batch(out, max);
        if n > 0 {
            return RxPoll::Received(n);
        }
        let Some((_, bit)) = self.ring.irq else {
            return RxPoll::Received(0);
        };
        if self.ring.shared.gate.enter().is_none() {
            return RxPoll::Received(0); // being reset: no register access
        }
        // EIMS is write-1-to-set: no read-modify-write, so cores arming their own queues'
        // vectors do not race.
        self.ring.shared.write(regs::EIMS, bit);
        self.ring.shared.gate.exit();
        self.stats.interrupts_armed += 1;
        match self.rx_batch(out, max) {
            0 => RxPoll::Armed,
            n => RxPoll::Received(n),
        }
    }

    /// Adaptive receive on the framework runtime: polls, yielding to the reactor between
    /// empty polls, for `spin_polls` empty polls; then arms the interrupt (with the re-check
    /// of [`RxQueue::rx_batch_or_arm`]) and awaits `waiter`, which must watch this queue's
    /// vector. Returns as soon as at least one packet was received. Without interrupts it
    /// keeps polling and yielding.
    pub async fn rx_batch_wait(
        &mut self,
        waiter: &mut InterruptWaiter,
        out: &mut Vec<PoolBuffer>,
        max: usize,
        spin_polls: u32,
    ) -> Result<usize> {
        let mut empty = 0u32;
        loop {
            if empty < spin_polls || self.ring.irq.is_none() {
                let n = self.rx_batch(out, max);
                if n > 0 {
                    return Ok(n);
                }
                empty = empty.saturating_add(1);
                yield_now().await;
                continue;
            }
            match self.rx_batch_or_arm(out, max) {
                RxPoll::Received(n) if n > 0 => return Ok(n),
                _ => {}
            }
            waiter.wait().await?;
            empty = 0;
        }
    }
}

enum Take {
    Packet(PoolBuffer),
    Dropped,
    NoBuffer,
}

/// Why a written-back descriptor is not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// First descriptor of a packet spread over several (`EOP` clear).
    MultiDescriptorStart,
    /// A later descriptor of such a packet, up to and including its `EOP`.
    MultiDescriptorRest,
    /// `PKT_LEN` zero or larger than the buffer.
    BadLength,
    /// `RXE` set.
    MacError,
}

/// What to do with a written-back descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A whole packet of this many bytes, within the buffer.
    Deliver(usize),
    /// Drop it (and give the buffer back to the device).
    Drop(DropReason),
}

/// Checks a write-back whose `DD` is set, for a buffer of `capacity` bytes. `discarding` is
/// true while inside a multi-descriptor packet; returns the verdict and the new `discarding`.
/// Total: any 16 bytes give a verdict, and `Deliver(len)` always has `0 < len <= capacity`.
pub(crate) fn check_writeback(
    wb: &AdvRxWriteback,
    capacity: usize,
    discarding: bool,
) -> (Verdict, bool) {
    if discarding {
        return (Verdict::Drop(DropReason::MultiDescriptorRest), !wb.eop());
    }
    if !wb.eop() {
        return (Verdict::Drop(DropReason::MultiDescriptorStart), true);
    }
    let len = usize::from(wb.length);
    if len == 0 || len > capacity {
        return (Verdict::Drop(DropReason::BadLength), false);
    }
    if wb.status_error & RXD_ERR_RXE != 0 {
        return (Verdict::Drop(DropReason::MacError), false);
    }
    (Verdict::Deliver(len), false)
}

impl<F: PciFunction> std::fmt::Debug for RxQueue<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("device", &self.ring.shared.device)
            .field("index", &self.ring.index)
            .field("next", &self.next)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wb(bytes: [u8; 16]) -> AdvRxWriteback {
        bytemuck::cast(bytes)
    }

    /// A write-back with `status_error` and `length`, everything else zero.
    fn fixture(status_error: u32, length: u16) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[8..12].copy_from_slice(&status_error.to_le_bytes());
        b[12..14].copy_from_slice(&length.to_le_bytes());
        b
    }

    const DD_EOP: u32 = 0x3;

    #[test]
    fn good_packet_is_delivered_with_its_length() {
        let (v, d) = check_writeback(&wb(fixture(DD_EOP, 60)), 2048, false);
        assert_eq!((v, d), (Verdict::Deliver(60), false));
        let (v, _) = check_writeback(&wb(fixture(DD_EOP, 2048)), 2048, false);
        assert_eq!(v, Verdict::Deliver(2048), "exactly the buffer");
    }

    #[test]
    fn lengths_outside_the_buffer_are_dropped() {
        for len in [0u16, 2049, 9000, u16::MAX] {
            let (v, d) = check_writeback(&wb(fixture(DD_EOP, len)), 2048, false);
            assert_eq!(v, Verdict::Drop(DropReason::BadLength), "length {len}");
            assert!(!d);
        }
        // A slot without a buffer (capacity 0) never delivers.
        let (v, _) = check_writeback(&wb(fixture(DD_EOP, 1)), 0, false);
        assert_eq!(v, Verdict::Drop(DropReason::BadLength));
    }

    #[test]
    fn mac_errors_are_dropped() {
        let (v, _) = check_writeback(&wb(fixture(DD_EOP | RXD_ERR_RXE, 60)), 2048, false);
        assert_eq!(v, Verdict::Drop(DropReason::MacError));
        // Checksum error bits alone are not MAC errors: the frame is delivered.
        let (v, _) = check_writeback(&wb(fixture(DD_EOP | 0xC000_0000, 60)), 2048, false);
        assert_eq!(v, Verdict::Deliver(60));
    }

    #[test]
    fn multi_descriptor_packets_are_dropped_up_to_their_eop() {
        // First part (EOP clear), middle part, last part (EOP): three drops, one counted.
        let (v, d) = check_writeback(&wb(fixture(0x1, 2048)), 2048, false);
        assert_eq!(
            (v, d),
            (Verdict::Drop(DropReason::MultiDescriptorStart), true)
        );
        let (v, d) = check_writeback(&wb(fixture(0x1, 2048)), 2048, d);
        assert_eq!(
            (v, d),
            (Verdict::Drop(DropReason::MultiDescriptorRest), true)
        );
        let (v, d) = check_writeback(&wb(fixture(DD_EOP, 100)), 2048, d);
        assert_eq!(
            (v, d),
            (Verdict::Drop(DropReason::MultiDescriptorRest), false)
        );
        // The next packet is whole again.
        let (v, d) = check_writeback(&wb(fixture(DD_EOP, 100)), 2048, d);
        assert_eq!((v, d), (Verdict::Deliver(100), false));
    }

    #[test]
    fn any_sixteen_bytes_give_a_verdict_within_bounds() {
        // A cheap deterministic sweep over patterns: no panic, and Deliver stays in bounds.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&x.to_le_bytes());
            bytes[8..].copy_from_slice(&x.rotate_left(29).to_le_bytes());
            let capacity = (x >> 52) as usize; // 0..4096
            for discarding in [false, true] {
                if let (Verdict::Deliver(len), _) =
                    check_writeback(&wb(bytes), capacity, discarding)
                {
                    assert!(len > 0 && len <= capacity);
                }
            }
        }
    }
}
