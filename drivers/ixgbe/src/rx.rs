//! RX queues of the 82599: the ring engine's [`RxRing`] (advanced receive descriptors,
//! datasheet 7.1.6; batch receive with the write-back checks, batched refills: see
//! `userpci_intel_ring::rx`) with what is the 82599's: `RDT(n)` as the tail, `RXDCTL(n)` as
//! the queue enable, `RXE` (bit 29) as the MAC error bit, the reset gate and generation, and
//! MSI-X arming (`EIMS`).
//!
//! While the device is being reset ([`crate::IxgbeParticipant`]) a queue receives nothing and
//! touches nothing; the first call after the recovery restarts the ring.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::{InterruptVector, PciFunction};
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::runtime::{yield_now, CoreLocal, InterruptWaiter};
use userpci_intel_ring::{QueueControl, RxConfig, RxRing};

use crate::error::Result;
use crate::shared::Shared;
use crate::spec::desc::RXD_ERR_RXE;
use crate::spec::{queue as qreg, regs};
use crate::stats::RxQueueStats;

/// How long a stopping queue may take to report `RXDCTL.ENABLE` = 0.
const QUEUE_STOP_TIMEOUT: Duration = Duration::from_millis(100);

/// The engine's configuration of RX queue `queue` of an 82599 with `size` descriptors.
pub(crate) fn ring_config<F: PciFunction>(s: &Shared<F>, queue: u16, size: usize) -> RxConfig {
    let q = usize::from(queue);
    RxConfig {
        device: s.device,
        queue,
        size,
        tail_reg: qreg::RDT(q),
        mac_error_mask: RXD_ERR_RXE,
        control: QueueControl {
            control_reg: qreg::RXDCTL(q),
            enable: qreg::RXDCTL_ENABLE,
            stop_timeout: QUEUE_STOP_TIMEOUT,
        },
        clock: Arc::clone(s.function.clock()),
    }
}

/// The part of an RX queue that lives in the device handle until a core takes it: the ring
/// (whose drop stops the queue before freeing the buffers) and the interrupt.
pub(crate) struct RxParts<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) ring: RxRing<F::Registers>,
    /// MSI-X vector and its `EIMS` bit (interrupt mode).
    pub(crate) irq: Option<(InterruptVector, u32)>,
    /// The reset generation the ring was last started for (see [`crate::IxgbeParticipant`]).
    pub(crate) generation: u64,
}

impl<F: PciFunction> RxParts<F> {
    /// After a reset (the queue re-enabled empty, `RDH` = `RDT` = 0): every slot back in
    /// read format with the buffer it holds (an empty slot gets one from the pool), then the
    /// ring to the device (`RDT` = N - 1, or up to the first slot the pool could not fill).
    /// Written-back descriptors not taken before the reset are dropped with it.
    pub(crate) fn restart(&mut self, generation: u64) {
        self.ring.restart();
        self.generation = generation;
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
    parts: RxParts<F>,
    interrupts_armed: u64,
    resets: u64,
    _core: CoreLocal,
}

impl<F: PciFunction> RxQueue<F> {
    pub(crate) fn new(parts: RxParts<F>, core: CoreLocal) -> Self {
        RxQueue {
            parts,
            interrupts_armed: 0,
            resets: 0,
            _core: core,
        }
    }

    /// The queue's index.
    pub fn index(&self) -> u16 {
        self.parts.ring.queue()
    }

    /// Descriptors in the ring.
    pub fn ring_size(&self) -> usize {
        self.parts.ring.len()
    }

    /// The counters of this queue.
    pub fn stats(&self) -> RxQueueStats {
        RxQueueStats::new(self.parts.ring.stats(), self.interrupts_armed)
    }

    /// The pool the ring is refilled from.
    pub fn pool(&self) -> &Arc<BufferPool> {
        self.parts.ring.pool()
    }

    /// The queue's MSI-X vector (interrupt mode).
    pub fn interrupt_vector(&self) -> Option<&InterruptVector> {
        self.parts.irq.as_ref().map(|(v, _)| v)
    }

    /// Receives up to `max` packets into `out`, never more than its spare capacity (so `out`
    /// never grows: reserve capacity once). Each packet is a [`PoolBuffer`] whose `len()` is
    /// the frame length (CRC stripped); send it as is, or drop it to return it to the pool.
    /// Returns the number of packets pushed.
    ///
    /// While the device is being reset ([`crate::IxgbeParticipant`]) it receives nothing and
    /// touches nothing; the first call after the recovery restarts the ring.
    #[inline]
    pub fn rx_batch(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize {
        let Some(generation) = self.parts.shared.gate.enter() else {
            return 0;
        };
        if generation != self.parts.generation {
            self.parts.restart(generation);
            self.resets += 1;
        }
        let received = self.parts.ring.receive(out, max);
        self.parts.shared.gate.exit();
        received
    }

    /// Times the ring was restarted after a coordinated reset.
    pub fn resets(&self) -> u64 {
        self.resets
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
        let Some((_, bit)) = self.parts.irq else {
            return RxPoll::Received(0);
        };
        if self.parts.shared.gate.enter().is_none() {
            return RxPoll::Received(0); // being reset: no register access
        }
        // EIMS is write-1-to-set: no read-modify-write, so cores arming their own queues'
        // vectors do not race.
        self.parts.shared.write(regs::EIMS, bit);
        self.parts.shared.gate.exit();
        self.interrupts_armed += 1;
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
            if empty < spin_polls || self.parts.irq.is_none() {
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

impl<F: PciFunction> std::fmt::Debug for RxQueue<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("device", &self.parts.shared.device)
            .field("ring", &self.parts.ring)
            .finish_non_exhaustive()
    }
}
