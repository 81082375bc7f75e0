//! TX queues: the shared ring engine's [`TxRing`] (batch send with one `TDT` write, `DD`
//! cleaning in batches, batched returns to the pool) plus the reset gate and generation.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::dma::PoolBuffer;
use userpci_framework::runtime::CoreLocal;
use userpci_intel_ring::{QueueControl, TxConfig, TxRing};

use crate::counters::TxQueueStats;
use crate::shared::Shared;
use crate::spec::queue as qreg;

/// Descriptors cleaned at once (ixy's batch); smaller for rings of fewer than 64
/// descriptors (half the ring).
pub const TX_CLEAN_BATCH: usize = 32;

/// Largest frame the driver sends: 9728 bytes, the 82576's largest jumbo frame (a frame
/// must also fit the one pool buffer its descriptor points at).
pub const TX_MAX_LEN: usize = 9728;

/// How long a stopping queue may take to finish its descriptors and report
/// `TXDCTL.ENABLE` = 0.
pub const QUEUE_STOP_TIMEOUT: Duration = Duration::from_millis(100);

/// The engine's configuration of TX queue `queue` of `s`.
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

/// The part of a TX queue that lives in the device handle until a core takes it.
pub(crate) struct TxPart<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) ring: TxRing<F::Registers>,
}

/// One TX queue, used by one core.
///
/// It is `!Send`: handing it to another core does not compile.
///
/// ```compile_fail
/// fn on_another_core<T: Send>(_: T) {}
/// fn hand_over(q: userpci_igb::TxQueue<userpci_framework::backend::sim::SimFunction>) {
///     on_another_core(q); // error: `*const ()` cannot be sent between threads safely
/// }
/// ```
pub struct TxQueue<F: PciFunction> {
    part: TxPart<F>,
    /// The reset generation the ring was last emptied for.
    generation: u64,
    reset_dropped: u64,
    _core: CoreLocal,
}

impl<F: PciFunction> TxQueue<F> {
    pub(crate) fn new(part: TxPart<F>, core: CoreLocal) -> Self {
        let generation = part.shared.gate.generation();
        TxQueue {
            part,
            generation,
            reset_dropped: 0,
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
    pub fn stats(&self) -> TxQueueStats {
        let r = self.part.ring.stats();
        TxQueueStats {
            packets: r.packets,
            bytes: r.bytes,
            invalid_length: r.invalid_length,
            cleaned: r.cleaned,
        }
    }

    /// Descriptors handed to the device and not cleaned yet.
    pub fn in_flight(&self) -> usize {
        self.part.ring.in_flight()
    }

    /// Packets handed to the device before a coordinated reset and not known to be sent:
    /// returned to their pool by the recovery, not re-sent.
    pub fn reset_dropped(&self) -> u64 {
        self.reset_dropped
    }

    /// Cleans finished batches, then sends packets from the front of `packets`, as many as
    /// the ring has room for; the rest stay in `packets`, in order. Packets of length zero
    /// or above [`TX_MAX_LEN`] are dropped and counted (`invalid_length`). Returns the
    /// number of packets placed in the ring; `TDT` is written once if any were. A buffer
    /// received from an RX queue can be sent as is (zero copy). Allocates nothing.
    ///
    /// While the device is being reset ([`crate::IgbParticipant`]) it sends nothing (every
    /// packet stays in `packets`) and touches nothing.
    #[inline]
    pub fn tx_batch(&mut self, packets: &mut Vec<PoolBuffer>) -> usize {
        let Some(generation) = self.part.shared.gate.enter() else {
            return 0;
        };
        self.catch_up(generation);
        let sent = self.part.ring.send(packets);
        self.part.shared.gate.exit();
        sent
    }

    /// Cleans every whole batch the device has finished; returns the descriptors cleaned.
    pub fn clean_batches(&mut self) -> usize {
        // Memory only; after a reset, catch up first so old descriptors are not looked at.
        self.catch_up(self.part.shared.gate.generation());
        self.part.ring.clean_batches()
    }

    /// Cleans descriptor by descriptor, up to the first one not done: for idle times, when
    /// fewer than a batch are in flight. `TXDCTL.WTHRESH` is 1, so the device writes every
    /// `DD` back at once and there is nothing to flush. Returns the descriptors cleaned.
    pub fn reclaim(&mut self) -> usize {
        let Some(generation) = self.part.shared.gate.enter() else {
            return 0;
        };
        self.catch_up(generation);
        let cleaned = self.part.ring.reclaim(|_| {});
        self.part.shared.gate.exit();
        cleaned
    }

    /// After a coordinated reset the device's ring is empty (`TDH` = `TDT` = 0): frees what
    /// the ring held and starts over at slot 0.
    fn catch_up(&mut self, generation: u64) {
        if generation != self.generation {
            self.reset_dropped += self.part.ring.reset() as u64;
            self.generation = generation;
        }
    }
}

impl<F: PciFunction> std::fmt::Debug for TxQueue<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("device", &self.part.shared.device)
            .field("index", &self.index())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
