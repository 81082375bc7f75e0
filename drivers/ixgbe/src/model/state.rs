//! The model's state: [`IxgbeModel`]'s fields, built of the leaves below it (the shared
//! records, the configuration, the frame queues, the wire and the sink), with the primitives
//! every part uses (register storage, counters, timers). What the model does is in the files
//! above: [`super::interrupts`], [`super::rx`], [`super::tx`], [`super::traffic`],
//! [`super::faults`], then the life cycle (`device.rs`) and the register dispatch (`mmio.rs`).

use std::time::Duration;

use userpci_framework::backend::sim::ModelContext;

use super::config::{format_mac, GeneratorConfig, IxgbeModelConfig};
use super::frame::FrameFifo;
use super::hostile::Hostile;
use super::shared::{Faults, Interrupts, IxgbeModelStats, Link, RxMeta, TimerKind, TxQueueState};
use super::sink::TxSink;
use super::wire::WirePort;
use crate::spec::stats;

/// The generator's progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneratorState {
    /// The configuration, if a generator is set.
    pub config: Option<GeneratorConfig>,
    /// Frames sent so far (frame numbers `0..sent`).
    pub sent: u64,
    /// A frame is scheduled (the receiver is enabled and the link is up).
    pub running: bool,
    /// Bumped whenever the schedule restarts, so that an older timer is ignored.
    pub(crate) epoch: u32,
}

impl GeneratorState {
    /// All frames sent.
    pub fn finished(&self) -> bool {
        self.config
            .is_some_and(|c| c.count != 0 && self.sent >= c.count)
    }
}

/// A model of one port of an Intel 82599ES 10 GbE controller. See the
/// [module documentation](super).
pub struct IxgbeModel {
    pub(crate) config: IxgbeModelConfig,
    /// BAR0, one entry per dword.
    pub(crate) regs: Vec<u32>,
    /// Bumped by every reset: timers set before it are ignored.
    pub(crate) generation: u32,
    pub(crate) link: Link,
    pub(crate) irq: Interrupts,
    /// The receive packet buffer: frames accepted by the filters, waiting for descriptors.
    pub(crate) rx_fifo: FrameFifo<RxMeta>,
    /// A frame from the generator or the wire, before it is received.
    pub(crate) scratch: Vec<u8>,
    /// The frame being assembled from TX descriptors.
    pub(crate) tx_frame: Vec<u8>,
    pub(crate) tx_queues: Vec<TxQueueState>,
    pub(crate) generator: GeneratorState,
    pub(crate) wire: Option<WirePort>,
    /// When the wire poll timer is set for, if it is.
    pub(crate) wire_poll_at: Option<Duration>,
    /// Bumped whenever the wire poll is set again, so that an older timer is ignored.
    pub(crate) wire_poll_epoch: u32,
    /// Wire polls in a row that found nothing: the idle interval doubles with each.
    pub(crate) wire_idle_polls: u32,
    /// When the wire is free for this port's next frame (virtual time, picoseconds): the
    /// previous frame, its preamble and the inter-frame gap are through.
    pub(crate) tx_wire_free_ps: u64,
    /// A [`TimerKind::TxResume`] timer is set.
    pub(crate) tx_resume_armed: bool,
    pub(crate) sink: TxSink,
    pub(crate) faults: Faults,
    /// The hostile-write hook (tests).
    pub(crate) hostile: Hostile,
    pub(crate) stats: IxgbeModelStats,
}

impl std::fmt::Debug for IxgbeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IxgbeModel")
            .field("mac", &format_mac(self.config.mac))
            .field("link", &self.link)
            .field("rx_buffered", &self.rx_fifo.len())
            .field("wire", &self.wire.as_ref().map(|w| w.wire().name()))
            .finish()
    }
}

impl IxgbeModel {
    /// The stored value of `offset` (dword aligned, in range).
    #[inline]
    pub(crate) fn reg(&self, offset: usize) -> u32 {
        self.regs[offset / 4]
    }

    #[inline]
    pub(crate) fn set_reg(&mut self, offset: usize, value: u32) {
        self.regs[offset / 4] = value;
    }

    /// Adds to a 32-bit counter (wrapping, as the hardware's do).
    #[inline]
    pub(crate) fn count(&mut self, offset: usize, n: u32) {
        let slot = &mut self.regs[offset / 4];
        *slot = slot.wrapping_add(n);
    }

    /// Adds to a 36-bit counter split into a low register and a 4-bit high register.
    pub(crate) fn count36(&mut self, low: usize, high: usize, n: u64) {
        let value =
            (u64::from(self.reg(high) & stats::OCTETS_HIGH_MASK) << 32) | u64::from(self.reg(low));
        let value = value.wrapping_add(n) & 0xF_FFFF_FFFF;
        self.set_reg(low, value as u32);
        self.set_reg(high, (value >> 32) as u32);
    }

    /// Sets a timer of this model's current generation.
    pub(crate) fn schedule(
        &mut self,
        ctx: &mut ModelContext<'_>,
        after: Duration,
        kind: TimerKind,
        aux: u32,
    ) {
        let token = (u64::from(kind as u8) << 56)
            | (u64::from(aux & 0xFF_FFFF) << 32)
            | u64::from(self.generation);
        ctx.schedule(after, token);
    }
}
