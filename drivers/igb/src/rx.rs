//! RX queues: the shared ring engine's [`RxRing`] (advanced descriptors, batched refill,
//! untrusted write-back checks) plus what is the 82576's or this driver's: the reset gate
//! and generation, and the MSI-X arming of adaptive receive.
//!
//! The engine drops, counts and gives back to the device every write-back it does not trust
//! (zero or oversized length, `EOP` clear, a skipped descriptor, and the 82576's frame error
//! bits `CE | SE | SEQ | CXE | RXE`, [`crate::spec::desc::RX_ERR_FRAME_MASK`]); nothing here
//! panics or allocates.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::{InterruptVector, PciFunction};
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::runtime::{yield_now, CoreLocal, InterruptWaiter};
use userpci_intel_ring::{QueueControl, RxConfig, RxRing};

use crate::counters::RxQueueStats;
use crate::error::Result;
use crate::init::RX_DROP_ERRORS;
use crate::shared::Shared;
use crate::spec::{queue as qreg, regs};

/// How long a stopping queue may take to report `RXDCTL.ENABLE` = 0.
pub const QUEUE_STOP_TIMEOUT: Duration = Duration::from_millis(100);

/// The engine's configuration of RX queue `queue` of `s`.
pub(crate) fn ring_config<F: PciFunction>(s: &Shared<F>, queue: u16, size: usize) -> RxConfig {
    let q = usize::from(queue);
    RxConfig {
        device: s.device,
        queue,
        size,
        tail_reg: qreg::RDT(q),
        mac_error_mask: RX_DROP_ERRORS,
        control: QueueControl {
            control_reg: qreg::RXDCTL(q),
            enable: qreg::RXDCTL_ENABLE,
            stop_timeout: QUEUE_STOP_TIMEOUT,
        },
        clock: Arc::clone(s.function.clock()),
    }
}

/// The part of an RX queue that lives in the device handle until a core takes it.
pub(crate) struct RxPart<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) ring: RxRing<F::Registers>,
    /// MSI-X vector and its `EIMS` bit (interrupt mode).
    pub(crate) irq: Option<(InterruptVector, u32)>,
    /// The reset generation the ring was last started for.
    pub(crate) generation: u64,
}

impl<F: PciFunction> RxPart<F> {
    /// After a recovery (the queue enabled again, empty): every slot back in read format with
    /// a buffer, the ring handed to the device.
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
/// fn hand_over(q: userpci_igb::RxQueue<userpci_framework::backend::sim::SimFunction>) {
///     on_another_core(q); // error: `*const ()` cannot be sent between threads safely
/// }
/// ```
pub struct RxQueue<F: PciFunction> {
    part: RxPart<F>,
    interrupts_armed: u64,
    resets: u64,
    _core: CoreLocal,
}

impl<F: PciFunction> RxQueue<F> {
    pub(crate) fn new(part: RxPart<F>, core: CoreLocal) -> Self {
        RxQueue {
            part,
            interrupts_armed: 0,
            resets: 0,
            _core: core,
        }
    }

    /// The queue's index.
    pub fn index(&self) -> u16 {
        self.part.ring.queue()
    }

    /// Descriptors in the ring.
    pub fn ring_size(&self) -> usize {
        self.part.ring.len()
    }

    /// The counters of this queue.
    pub fn stats(&self) -> RxQueueStats {
        let r = self.part.ring.stats();
        RxQueueStats {
            packets: r.packets,
            bytes: r.bytes,
            bad_length: r.bad_length,
            multi_descriptor: r.multi_descriptor,
            mac_errors: r.mac_errors,
            not_written: r.not_written,
            alloc_failures: r.alloc_failures,
            interrupts_armed: self.interrupts_armed,
        }
    }

    /// The pool the ring is refilled from.
    pub fn pool(&self) -> &Arc<BufferPool> {
        self.part.ring.pool()
    }

    /// The queue's MSI-X vector (interrupt mode).
    pub fn interrupt_vector(&self) -> Option<&InterruptVector> {
        self.part.irq.as_ref().map(|(v, _)| v)
    }

    /// Times the ring was restarted after a coordinated reset.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Receives up to `max` packets into `out`, never more than its spare capacity (so `out`
    /// never grows: reserve capacity once). Each packet is a [`PoolBuffer`] whose `len()` is
    /// the frame length (CRC stripped); send it as is, or drop it to return it to the pool.
    /// Returns the number of packets pushed.
    ///
    /// While the device is being reset ([`crate::IgbParticipant`]) it receives nothing and
    /// touches nothing; the first call after the recovery restarts the ring.
    #[inline]
    pub fn rx_batch(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize {
        let gate = &self.part.shared.gate;
        let Some(generation) = gate.enter() else {
            return 0;
        };
        if generation != self.part.generation {
            self.part.restart(generation);
            self.resets += 1;
        }
        let received = self.part.ring.receive(out, max);
        self.part.shared.gate.exit();
        received
    }

    /// Interrupt mode: receives like [`RxQueue::rx_batch`]; when nothing arrived, arms the
    /// queue's vector (`EIMS`) and looks at the ring **once more**, so that a frame that
    /// arrived between the empty poll and the arming is not left waiting for an interrupt
    /// that will not come. [`RxPoll::Armed`] means the ring was empty after arming: sleep on
    /// [`RxQueue::interrupt_vector`]. Without interrupts it never arms.
    pub fn rx_batch_or_arm(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> RxPoll {
        if max.min(out.capacity() - out.len()) == 0 {
            return RxPoll::Received(0); // no room: nothing to wait for
        }
        let n = self.rx_batch(out, max);
        if n > 0 {
            return RxPoll::Received(n);
        }
        let Some((_, bit)) = self.part.irq else {
            return RxPoll::Received(0);
        };
        let shared = &self.part.shared;
        if shared.gate.enter().is_none() {
            return RxPoll::Received(0); // being reset: no register access
        }
        // EIMS is write-1-to-set: no read-modify-write, so cores arming their own queues'
        // vectors do not race.
        shared.write(regs::EIMS, bit);
        shared.gate.exit();
        self.interrupts_armed += 1;
        match self.rx_batch(out, max) {
            0 => RxPoll::Armed,
            n => {
                self.disarm();
                RxPoll::Received(n)
            }
        }
    }

    /// Masks the queue's vector again (`EIMC`, write-1-to-clear). On hardware the vector
    /// masked itself when it fired (`EIAM`); QEMU's model does not, and would keep
    /// interrupting while the core polls.
    fn disarm(&self) {
        let Some((_, bit)) = self.part.irq else {
            return;
        };
        let shared = &self.part.shared;
        if shared.gate.enter().is_some() {
            shared.write(regs::EIMC, bit);
            shared.gate.exit();
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
            if empty < spin_polls || self.part.irq.is_none() {
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
                RxPoll::Received(_) => {}
                RxPoll::Armed => {
                    waiter.wait().await?;
                    self.disarm();
                }
            }
            empty = 0;
        }
    }
}

impl<F: PciFunction> std::fmt::Debug for RxQueue<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("device", &self.part.shared.device)
            .field("index", &self.index())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
