//! TX queues of the 82599: the ring engine's [`TxRing`] (advanced transmit data descriptors,
//! datasheet 7.2.3.2.4; batch send with one `TDT` write, `DD`-based cleaning of whole batches
//! of [`TX_CLEAN_BATCH`] with batched returns to the pool: see `userpci_intel_ring::tx`) with
//! what is the 82599's: `TDT(n)` / `TDH(n)`, `TXDCTL(n)` as the queue enable, `TXDCTL.SWFLSH`
//! to flush held-back write-backs, the largest frame, the reset gate and generation.
//!
//! A buffer received on one core and sent from another goes back to its pool on the cleaning
//! core's cache, safely (ixy issue #30 came from a per-queue free list shared without
//! synchronisation). [`TxQueue::reclaim`] cleans descriptor by descriptor, for idle times.
//!
//! # When traffic stops
//! `TXDCTL.WTHRESH` is 4: the device writes `DD` back four descriptors at a time (or on
//! `TXDCTL.SWFLSH`; its other trigger, the throttle timer of the queue's interrupt, does not
//! run: TX queues have no vector). [`TxQueue::tx_batch`] with nothing to send is the idle
//! poll: it cleans descriptor by descriptor and, when fewer than four descriptors remain,
//! flushes their held-back write-backs (`userpci_intel_ring::TxRing::clean_idle`), so
//! [`TxQueue::in_flight`] drains to 0 once the device has sent everything, without a call
//! to `reclaim`.
//!
//! # Hangs
//! Where a hang shows, a full ring (packets left over) and an idle ring still holding
//! descriptors, `tx_batch` also watches the head: when `TDH` has not moved over
//! [`crate::IxgbeOptions::tx_hang_timeout`] with descriptors pending and the link up (the
//! 82599 stops transmit DMA while the link is down, which is not a hang), the queue is hung
//! (the rule: `userpci_intel_ring::tx_stall`). It is counted ([`TxQueue::hangs`]), logged,
//! and, once the queue has left the data path, reported to
//! [`crate::IxgbeOptions::reset_handler`] as a [`ResetCause::Timeout`]: normally the reset
//! coordinator, which quiesces, resets (FLR) and recovers the device through its
//! [`crate::IxgbeParticipant`] before `tx_batch` returns. The packets the ring held are
//! then dropped (see [`TxQueue::reset_dropped`]); those still in the caller's vector are
//! sent by the next call.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_framework::dma::PoolBuffer;
use userpci_framework::reset::ResetCause;
use userpci_framework::runtime::CoreLocal;
use userpci_intel_ring::{QueueControl, StallCheck, TxConfig, TxRing};

use crate::shared::Shared;
use crate::spec::queue as qreg;
use crate::spec::regs;
use crate::stats::TxQueueStats;

/// Descriptors cleaned at once (ixy's `TX_CLEAN_BATCH`); smaller for rings of fewer than 64
/// descriptors (half the ring).
pub const TX_CLEAN_BATCH: usize = 32;

/// Largest frame the driver sends: 15.5 KiB, the 82599's largest jumbo frame.
pub const TX_MAX_LEN: usize = 15872;

/// `TXDCTL.WTHRESH` (7.2.3.5.1): the device writes `DD` back for four descriptors at a
/// time (DPDK's default, which ixy uses too), holding back the write-backs of fewer.
pub(crate) const TX_WTHRESH: u32 = 4;

/// How long a stopping queue may take to finish its descriptors and report
/// `TXDCTL.ENABLE` = 0.
const QUEUE_STOP_TIMEOUT: Duration = Duration::from_millis(100);

/// The engine's configuration of TX queue `queue` of an 82599 with `size` descriptors.
pub(crate) fn ring_config<F: PciFunction>(s: &Shared<F>, queue: u16, size: usize) -> TxConfig {
    let q = usize::from(queue);
    TxConfig {
        device: s.device,
        queue,
        size,
        tail_reg: qreg::TDT(q),
        head_reg: qreg::TDH(q),
        max_len: TX_MAX_LEN,
        clean_batch: TX_CLEAN_BATCH.min(size / 2),
        control: QueueControl {
            control_reg: qreg::TXDCTL(q),
            enable: qreg::TXDCTL_ENABLE,
            stop_timeout: QUEUE_STOP_TIMEOUT,
        },
        clock: Arc::clone(s.function.clock()),
    }
}

/// The part of a TX queue that lives in the device handle until a core takes it (the ring's
/// drop drains and stops the queue before freeing the buffers).
pub(crate) struct TxParts<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) ring: TxRing<F::Registers>,
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
    parts: TxParts<F>,
    /// The reset generation the ring was last emptied for (see [`crate::IxgbeParticipant`]).
    generation: u64,
    reset_dropped: u64,
    _core: CoreLocal,
}

impl<F: PciFunction> TxQueue<F> {
    pub(crate) fn new(parts: TxParts<F>, core: CoreLocal) -> Self {
        let generation = parts.shared.gate.generation();
        TxQueue {
            parts,
            generation,
            reset_dropped: 0,
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
    pub fn stats(&self) -> TxQueueStats {
        self.parts.ring.stats().into()
    }

    /// Descriptors handed to the device and not cleaned yet.
    pub fn in_flight(&self) -> usize {
        self.parts.ring.in_flight()
    }

    /// Cleans finished batches, then sends packets from the front of `packets`, as many as
    /// the ring has room for; the rest stay in `packets`, in order. Packets of length zero
    /// or above [`TX_MAX_LEN`] are dropped and counted (`invalid_length`). Returns the number
    /// of packets placed in the ring; `TDT` is written once if any were. A buffer received
    /// from an RX queue can be sent as is (zero copy). Allocates nothing.
    ///
    /// With `packets` empty it is the idle poll: it cleans whatever the device finished,
    /// down to the last descriptor, and asks for held-back write-backs (`TXDCTL.SWFLSH`)
    /// when fewer than `WTHRESH` remain, so the ring drains when traffic stops (see the
    /// module documentation). A full ring and an idle ring still holding descriptors are also
    /// watched for a hang, which may run a coordinated reset before this returns.
    ///
    /// While the device is being reset ([`crate::IxgbeParticipant`]) it sends nothing (every
    /// packet stays in `packets`) and touches nothing.
    #[inline]
    pub fn tx_batch(&mut self, packets: &mut Vec<PoolBuffer>) -> usize {
        let Some(generation) = self.parts.shared.gate.enter() else {
            return 0;
        };
        self.catch_up(generation);
        let (sent, stalled) = if packets.is_empty() {
            (0, self.idle())
        } else {
            let sent = self.parts.ring.send(packets);
            // Packets left over: the ring is full, which is where a hang shows first.
            let stalled = !packets.is_empty() && self.stalled();
            (sent, stalled)
        };
        self.parts.shared.gate.exit();
        if stalled {
            // Outside the data path: the coordinator's quiesce waits for every core to leave.
            self.request_reset();
        }
        sent
    }

    /// The idle poll: drains the ring (with a flush of held-back write-backs), then, while
    /// descriptors remain, watches for a hang. Whether the queue is hung.
    #[inline]
    fn idle(&mut self) -> bool {
        if self.parts.ring.in_flight() == 0 {
            return false;
        }
        let txdctl = qreg::TXDCTL(usize::from(self.parts.ring.queue()));
        self.parts.ring.clean_idle(TX_WTHRESH as usize, |regs| {
            regs.write32(txdctl, regs.read32(txdctl) | qreg::TXDCTL_SWFLSH);
        });
        self.parts.ring.in_flight() > 0 && self.stalled()
    }

    /// One look for a hang (a clock reading; `TDH` and `LINKS` once per timeout while the
    /// ring makes no progress). Whether the queue is hung.
    #[cold]
    fn stalled(&mut self) -> bool {
        if self.parts.ring.in_flight() == 0 {
            return false;
        }
        let now = self.parts.shared.clock().now();
        match self.parts.ring.check_stall(now, |regs| {
            let links = regs.read32(regs::LINKS);
            links != u32::MAX && links & regs::LINKS_UP != 0
        }) {
            StallCheck::Fine => false,
            StallCheck::Hung { head, stalled } => {
                tracing::error!(device = %self.parts.shared.device, queue = self.index(), head,
                    in_flight = self.parts.ring.in_flight(), stalled_ms = stalled.as_millis() as u64,
                    "TX queue hung: TDH does not move while descriptors are pending");
                true
            }
        }
    }

    /// Reports a hang to the reset handler, if there is one (outside the data path).
    #[cold]
    fn request_reset(&mut self) {
        let device = self.parts.shared.device;
        match &self.parts.shared.reset_handler {
            Some(handler) => {
                if handler.call(device, ResetCause::Timeout) {
                    tracing::warn!(%device, queue = self.index(), "reset after a TX hang done");
                } else {
                    tracing::error!(%device, queue = self.index(), "reset after a TX hang not done");
                }
            }
            None => {
                tracing::error!(%device, queue = self.index(),
                    "TX queue hung and no reset handler configured: reported only");
            }
        }
    }

    /// Hangs this queue has seen (each reported to the reset handler, if any).
    pub fn hangs(&self) -> u64 {
        self.parts.ring.stats().hangs
    }

    /// Packets handed to the device before a coordinated reset and not known to be sent:
    /// returned to their pool by the recovery, not re-sent.
    pub fn reset_dropped(&self) -> u64 {
        self.reset_dropped
    }

    /// After a coordinated reset the device's ring is empty (`TDH` = `TDT` = 0): frees what
    /// the ring held and starts over at slot 0.
    #[inline(always)]
    fn catch_up(&mut self, generation: u64) {
        if generation != self.generation {
            self.reset_dropped += self.parts.ring.reset() as u64;
            self.generation = generation;
        }
    }

    /// Cleans every whole batch the device has finished (checking `DD` on the last
    /// descriptor of each); returns the descriptors cleaned.
    pub fn clean_batches(&mut self) -> usize {
        // Memory only; after a reset, catch up first so old descriptors are not looked at.
        self.catch_up(self.parts.shared.gate.generation());
        self.parts.ring.clean_batches()
    }

    /// Cleans descriptor by descriptor, up to the first one not done: for idle times, when
    /// fewer than a batch are in flight. With `WTHRESH` > 0 the device holds back write-backs
    /// until it has several, so when descriptors remain in flight this asks for the pending
    /// ones (`TXDCTL.SWFLSH`) and looks again. Returns the descriptors cleaned.
    pub fn reclaim(&mut self) -> usize {
        let Some(generation) = self.parts.shared.gate.enter() else {
            return 0;
        };
        self.catch_up(generation);
        let txdctl = qreg::TXDCTL(usize::from(self.parts.ring.queue()));
        let cleaned = self.parts.ring.reclaim(|regs| {
            regs.write32(txdctl, regs.read32(txdctl) | qreg::TXDCTL_SWFLSH);
        });
        self.parts.shared.gate.exit();
        cleaned
    }
}

impl<F: PciFunction> std::fmt::Debug for TxQueue<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("device", &self.parts.shared.device)
            .field("ring", &self.parts.ring)
            .finish_non_exhaustive()
    }
}
