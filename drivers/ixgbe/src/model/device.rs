//! The model's state, its life cycle (power-on, `CTRL.RST`, `CTRL.LRST`, function and bus
//! resets), the link state machine and the timers.

use std::time::Duration;

use userpci_framework::backend::sim::{ModelContext, ResetKind};
use userpci_framework::Result;

use super::config::IxgbeModelConfig;
use super::faults::{Faults, IxgbeModelStats};
use super::frame::{FrameFifo, MAX_FRAME};
use super::interrupts::Interrupts;
use super::regs::BAR0_SIZE;
use super::rx::RxMeta;
use super::traffic::{GeneratorState, TxSink, Wire, WirePort};
use super::tx::TxQueueState;
use crate::spec::queue::{MAX_QUEUES, RDRXCTL, RDRXCTL_DMAIDONE, RXCTRL, RXCTRL_RXEN};
use crate::spec::regs::{CTRL, CTRL_LRST, CTRL_RST, EEC, EEC_ARD, EICR_LSC};

/// The receive packet buffer can hold at most this much (`RXPBSIZE(0)` up to 512 KiB).
pub const RX_PACKET_BUFFER: usize = 512 * 1024;

/// The link as the MAC sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// `LINKS.LINK_UP`.
    pub up: bool,
    /// Auto-negotiation / link training is under way; the link comes up when it ends.
    pub training: bool,
    /// A link flap holds the link down until it ends.
    pub flapping: bool,
    /// The link comes up when the flap ends (it was up, or training ended during the flap).
    pub(crate) up_after_flap: bool,
    /// Bumped by every change of plan, so that older link timers are ignored.
    pub(crate) epoch: u32,
    /// Likewise for flaps.
    pub(crate) flap_epoch: u32,
}

/// What a timer is for (the top byte of its token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TimerKind {
    /// `CTRL.RST` self-clears.
    ResetDone = 1,
    /// `EEC.ARD` and `RDRXCTL.DMAIDONE` are set.
    AutoReadDone,
    /// `CTRL.LRST` self-clears; link training restarts.
    LinkResetDone,
    /// Link training ends (aux: link epoch).
    LinkUp,
    /// A link flap ends (aux: link epoch).
    FlapEnd,
    /// An interrupt throttle interval ends (aux: vector).
    Itr,
    /// Accumulated TX write-backs are flushed (aux: queue).
    TxFlush,
    /// The generator's next frame (aux: generator epoch).
    Generator,
    /// A wire port looks for frames from its peer.
    WirePoll,
}

impl TimerKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => TimerKind::ResetDone,
            2 => TimerKind::AutoReadDone,
            3 => TimerKind::LinkResetDone,
            4 => TimerKind::LinkUp,
            5 => TimerKind::FlapEnd,
            6 => TimerKind::Itr,
            7 => TimerKind::TxFlush,
            8 => TimerKind::Generator,
            9 => TimerKind::WirePoll,
            _ => return None,
        })
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
    pub(crate) wire_poll_armed: bool,
    pub(crate) sink: TxSink,
    pub(crate) faults: Faults,
    pub(crate) stats: IxgbeModelStats,
}

impl std::fmt::Debug for IxgbeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IxgbeModel")
            .field("mac", &super::config::format_mac(self.config.mac))
            .field("link", &self.link)
            .field("rx_buffered", &self.rx_fifo.len())
            .field("wire", &self.wire.as_ref().map(|w| w.wire().name()))
            .finish()
    }
}

impl IxgbeModel {
    /// A model at power-on. Joins the configured wire, if any.
    pub fn new(config: IxgbeModelConfig) -> Result<Self> {
        config.validate()?;
        let wire = match &config.wire {
            Some(name) => Some(Wire::join(name)?),
            None => None,
        };
        let mut model = IxgbeModel {
            regs: vec![0; BAR0_SIZE / 4],
            generation: 0,
            link: Link::default(),
            irq: Interrupts::default(),
            rx_fifo: FrameFifo::new(RX_PACKET_BUFFER),
            scratch: Vec::with_capacity(MAX_FRAME),
            tx_frame: Vec::with_capacity(MAX_FRAME),
            tx_queues: vec![TxQueueState::default(); MAX_QUEUES],
            generator: GeneratorState {
                config: config.generator,
                ..GeneratorState::default()
            },
            wire,
            wire_poll_armed: false,
            sink: TxSink::new(config.sink_keep),
            faults: Faults::default(),
            stats: IxgbeModelStats::default(),
            config,
        };
        model.power_on();
        Ok(model)
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &IxgbeModelConfig {
        &self.config
    }

    /// Back to the power-on state (after the EEPROM auto-read). The wire, the sink, the
    /// generator's progress, the counters of [`IxgbeModel::stats`] and armed one-shot faults
    /// stay; a TX hang ends.
    pub(crate) fn power_on(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.registers_power_on();
        self.rx_fifo.clear();
        self.rx_fifo.set_limit(RX_PACKET_BUFFER);
        self.link = Link {
            epoch: self.link.epoch.wrapping_add(1),
            flap_epoch: self.link.flap_epoch.wrapping_add(1),
            ..Link::default()
        };
        self.irq = Interrupts::default();
        for queue in &mut self.tx_queues {
            *queue = TxQueueState::default();
        }
        self.generator.running = false;
        self.generator.epoch = self.generator.epoch.wrapping_add(1);
        self.wire_poll_armed = false;
        self.faults.tx_hang = false;
    }

    /// A function-level or bus reset: power-on at once (the bus waits 100 ms before the next
    /// access, by which time the hardware has long read its EEPROM).
    pub(crate) fn function_reset(&mut self, kind: ResetKind) {
        match kind {
            ResetKind::FunctionLevel => self.stats.function_resets += 1,
            ResetKind::Bus => self.stats.bus_resets += 1,
        }
        self.power_on();
    }

    /// `CTRL.RST` (datasheet 4.6.3.2): the device resets at once; `CTRL.RST` (and `LRST` if
    /// written with it) read 1 for `reset_delay`, then `EEC.ARD` and `RDRXCTL.DMAIDONE` read 0
    /// for a further `auto_read_delay`.
    pub(crate) fn software_reset(&mut self, ctx: &mut ModelContext<'_>, with_lrst: bool) {
        self.stats.software_resets += 1;
        self.power_on();
        let busy = CTRL_RST | if with_lrst { CTRL_LRST } else { 0 };
        self.set_reg(CTRL, busy);
        self.set_reg(EEC, self.reg(EEC) & !EEC_ARD);
        self.set_reg(RDRXCTL, self.reg(RDRXCTL) & !RDRXCTL_DMAIDONE);
        self.schedule(ctx, self.config.reset_delay, TimerKind::ResetDone, 0);
    }

    /// `CTRL.LRST` alone: the link goes down and trains again once the bit self-clears.
    pub(crate) fn link_reset(&mut self, ctx: &mut ModelContext<'_>) {
        self.stats.link_resets += 1;
        self.link.training = false;
        self.link.up_after_flap = false;
        self.link.epoch = self.link.epoch.wrapping_add(1);
        self.set_link(ctx, false);
        self.schedule(ctx, self.config.reset_delay, TimerKind::LinkResetDone, 0);
    }

    /// `AUTOC.RESTART_AN` (or `AUTOC.FLU` set): the link goes down if it was up and comes up
    /// after `link_delay` (10 Gb/s serial, 4.6.4).
    pub(crate) fn restart_link(&mut self, ctx: &mut ModelContext<'_>) {
        self.set_link(ctx, false);
        self.link.up_after_flap = false;
        self.link.training = true;
        self.link.epoch = self.link.epoch.wrapping_add(1);
        let epoch = self.link.epoch;
        self.schedule(ctx, self.config.link_delay, TimerKind::LinkUp, epoch);
    }

    /// Changes `LINKS.LINK_UP` / `STATUS.LINK_UP`, raising `EICR.LSC` on a change.
    pub(crate) fn set_link(&mut self, ctx: &mut ModelContext<'_>, up: bool) {
        if self.link.up == up {
            return;
        }
        self.link.up = up;
        self.stats.link_changes += 1;
        self.set_other_cause(ctx, EICR_LSC);
        if up {
            self.process_all_tx(ctx);
            self.rx_ready(ctx);
        }
    }

    /// The receiver was just enabled (`RXCTRL.RXEN` 0 to 1).
    pub(crate) fn receiver_enabled(&mut self, ctx: &mut ModelContext<'_>) {
        self.drain_rx(ctx);
        self.rx_ready(ctx);
    }

    /// Starts what waits for the receiver and the link: the generator, the wire poll.
    pub(crate) fn rx_ready(&mut self, ctx: &mut ModelContext<'_>) {
        if !self.link.up || self.reg(RXCTRL) & RXCTRL_RXEN == 0 {
            return;
        }
        self.start_generator_if_ready(ctx);
        self.arm_wire_poll(ctx);
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

    /// A timer fell due.
    pub(crate) fn timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        if token as u32 != self.generation {
            return; // set before a reset
        }
        let aux = ((token >> 32) & 0xFF_FFFF) as u32;
        let Some(kind) = TimerKind::from_u8((token >> 56) as u8) else {
            return;
        };
        match kind {
            TimerKind::ResetDone => {
                self.set_reg(CTRL, self.reg(CTRL) & !(CTRL_RST | CTRL_LRST));
                self.schedule(ctx, self.config.auto_read_delay, TimerKind::AutoReadDone, 0);
            }
            TimerKind::AutoReadDone => {
                self.set_reg(EEC, self.reg(EEC) | EEC_ARD);
                self.set_reg(RDRXCTL, self.reg(RDRXCTL) | RDRXCTL_DMAIDONE);
            }
            TimerKind::LinkResetDone => {
                self.set_reg(CTRL, self.reg(CTRL) & !CTRL_LRST);
                self.restart_link(ctx);
            }
            TimerKind::LinkUp => {
                if aux == self.link.epoch & 0xFF_FFFF && self.link.training {
                    self.link.training = false;
                    if self.link.flapping {
                        self.link.up_after_flap = true;
                    } else {
                        self.set_link(ctx, true);
                    }
                }
            }
            TimerKind::FlapEnd => {
                if aux == self.link.flap_epoch & 0xFF_FFFF && self.link.flapping {
                    self.link.flapping = false;
                    if std::mem::take(&mut self.link.up_after_flap) {
                        self.set_link(ctx, true);
                    }
                }
            }
            TimerKind::Itr => self.itr_expired(ctx, aux as usize),
            TimerKind::TxFlush => {
                let q = aux as usize;
                if q < MAX_QUEUES {
                    self.tx_queues[q].flush_timer = false;
                    self.flush_tx_writebacks(ctx, q);
                }
            }
            TimerKind::Generator => {
                if aux == self.generator.epoch & 0xFF_FFFF {
                    self.generator_tick(ctx);
                }
            }
            TimerKind::WirePoll => {
                self.wire_poll_armed = false;
                self.poll_wire(ctx);
                self.arm_wire_poll(ctx);
            }
        }
    }

    /// Fault injection: the link goes down for `down_for` of virtual time (a cable pulled
    /// and put back), with `EICR.LSC` both ways. It comes back up at the end if it was up, or
    /// if link training (which goes on meanwhile) finished during the flap. Called through
    /// `SimBus::with_model_ctx`.
    pub fn link_flap(&mut self, ctx: &mut ModelContext<'_>, down_for: Duration) {
        self.link.up_after_flap |= self.link.up;
        self.set_link(ctx, false);
        self.stats.link_flaps += 1;
        self.link.flapping = true;
        self.link.flap_epoch = self.link.flap_epoch.wrapping_add(1);
        let epoch = self.link.flap_epoch;
        self.schedule(ctx, down_for, TimerKind::FlapEnd, epoch);
    }

    /// The link state.
    pub fn link(&self) -> Link {
        self.link
    }
}
