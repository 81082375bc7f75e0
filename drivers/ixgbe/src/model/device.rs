//! The model's life cycle (power-on, `CTRL.RST`, `CTRL.LRST`, function and bus resets), the
//! link state machine and the timers: the part that drives the others, on top of them.

use std::time::Duration;

use userpci_framework::backend::sim::{ModelContext, ResetKind};
use userpci_framework::Result;

use super::config::IxgbeModelConfig;
use super::frame::{FrameFifo, MAX_FRAME};
use super::hostile::Hostile;
use super::regs::{
    block, rx_reg, BAR0_SIZE, DCA_RXCTRL_POWER_ON, EEC_POWER_ON, HLREG0_POWER_ON, MAXFRS,
    MAXFRS_POWER_ON, SRRCTL_POWER_ON,
};
use super::shared::{
    Faults, Interrupts, IxgbeModelStats, Link, TimerKind, TxQueueState, RX_PACKET_BUFFER,
};
use super::sink::TxSink;
use super::state::{GeneratorState, IxgbeModel};
use super::wire::{ps, Wire};
use crate::spec::queue::{MAX_QUEUES, RDRXCTL, RDRXCTL_DMAIDONE, RXPBSIZE, TXPBSIZE};
use crate::spec::regs::{
    AUTOC, AUTOC_LMS_10G_SERIAL, CTRL, CTRL_LRST, CTRL_RST, EEC, EEC_ARD, EICR_LSC, HLREG0, RAH,
    RAL,
};

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
            wire_poll_at: None,
            wire_poll_epoch: 0,
            wire_idle_polls: 0,
            tx_wire_free_ps: 0,
            tx_resume_armed: false,
            sink: TxSink::new(config.sink_keep),
            faults: Faults::default(),
            hostile: Hostile::default(),
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
        // Frames already on the wire keep it busy: `tx_wire_free_ps` stays.
        self.wire_poll_at = None;
        self.wire_idle_polls = 0;
        self.tx_resume_armed = false;
        self.faults.tx_hang = false;
        self.announce_sending();
    }

    /// Every register at its power-on value, as after the EEPROM auto-read (`EEC.ARD` and
    /// `RDRXCTL.DMAIDONE` set, `RAL(0)`/`RAH(0)` holding the configured MAC).
    pub(crate) fn registers_power_on(&mut self) {
        self.regs.fill(0);
        self.set_reg(EEC, EEC_POWER_ON);
        self.set_reg(RDRXCTL, RDRXCTL_DMAIDONE);
        self.set_reg(HLREG0, HLREG0_POWER_ON);
        self.set_reg(MAXFRS, MAXFRS_POWER_ON);
        self.set_reg(AUTOC, AUTOC_LMS_10G_SERIAL);
        self.set_reg(RXPBSIZE(0), 512 << 10);
        self.set_reg(TXPBSIZE(0), 160 << 10);
        for q in 0..MAX_QUEUES {
            self.set_reg(rx_reg(q, block::SRRCTL), SRRCTL_POWER_ON);
            self.set_reg(rx_reg(q, 0x0C), DCA_RXCTRL_POWER_ON);
        }
        let mac = self.config.mac;
        let ral = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
        let rah = u32::from_le_bytes([mac[4], mac[5], 0, 0]) | crate::spec::regs::RAH_AV;
        self.set_reg(RAL(0), ral);
        self.set_reg(RAH(0), rah);
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
        if up {
            self.link.up_since_ps = ps(ctx.now());
            self.wire_idle_polls = 0;
        }
        self.stats.link_changes += 1;
        self.announce_sending();
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

    /// A timer fell due.
    pub(crate) fn timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        self.stats.timers += 1;
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
                if aux == self.wire_poll_epoch & 0xFF_FFFF {
                    self.wire_poll_at = None;
                    let received = self.poll_wire(ctx);
                    let in_flight = self.wire.as_ref().is_some_and(|w| w.pending() > 0);
                    if received == 0 && !in_flight {
                        self.wire_idle_polls = self.wire_idle_polls.saturating_add(1);
                    }
                    self.arm_wire_poll(ctx);
                }
            }
            TimerKind::TxResume => {
                self.tx_resume_armed = false;
                self.process_all_tx(ctx);
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
