//! What feeds a port and what it feeds: the generator, and the service of the [`Wire`] a
//! port is on ([`connect`], the poll that takes the peer's frames in). The wire itself is in
//! [`super::wire`], the transmit sink in [`super::sink`]; both are re-exported here.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::{ModelContext, SimBus};
use userpci_framework::pci::PciAddress;
use userpci_framework::Result;

use super::config::GeneratorConfig;
use super::frame::FCS_LEN;
use super::shared::TimerKind;
pub use super::sink::{SentFrame, TxSink};
pub use super::state::GeneratorState;
use super::state::IxgbeModel;
use super::wire::{from_ps, ps, wire_time_ps, WIRE_IDLE_POLL};
pub use super::wire::{Wire, WirePort, WireSide, WireStats, WIRE_BYTES};
use crate::spec::queue::{DMATXCTL, DMATXCTL_TE, RXCTRL, RXCTRL_RXEN};

/// Links the models at `a` and `b` of `bus` with a new wire (side A at `a`). Either model's
/// previous wire, if any, is let go.
pub fn connect(bus: &SimBus, a: PciAddress, b: PciAddress) -> Result<Arc<Wire>> {
    let wire = Wire::new(&format!("{a}<->{b}"));
    let port_a = Wire::attach(&wire, WireSide::A)?;
    let port_b = Wire::attach(&wire, WireSide::B)?;
    bus.with_model(a, |m: &mut IxgbeModel| m.attach_wire(port_a))?;
    bus.with_model(b, |m: &mut IxgbeModel| m.attach_wire(port_b))?;
    Ok(wire)
}

impl IxgbeModel {
    /// Starts `config` as the traffic source (replacing any other, from frame 0). Frames flow
    /// once the receiver is enabled and the link is up, one every `config.interval()` or the
    /// frame's time on a 10 Gb/s wire if that is longer (a generator is the far end of a
    /// 10 Gb/s link, so it never exceeds line rate); while the link is down the generator
    /// pauses (its peer cannot send either).
    pub fn start_generator(
        &mut self,
        ctx: &mut ModelContext<'_>,
        config: GeneratorConfig,
    ) -> Result<()> {
        config.validate()?;
        self.generator = GeneratorState {
            config: Some(config),
            sent: 0,
            running: false,
            epoch: self.generator.epoch.wrapping_add(1),
        };
        self.rx_ready(ctx);
        Ok(())
    }

    /// Starts what waits for the receiver and the link: the generator, the wire poll.
    pub(crate) fn rx_ready(&mut self, ctx: &mut ModelContext<'_>) {
        if !self.link.up || self.reg(RXCTRL) & RXCTRL_RXEN == 0 {
            return;
        }
        self.start_generator_if_ready(ctx);
        self.arm_wire_poll(ctx);
    }

    /// Stops and removes the generator.
    pub fn stop_generator(&mut self) {
        self.generator.config = None;
        self.generator.running = false;
        self.generator.epoch = self.generator.epoch.wrapping_add(1);
    }

    /// The generator's progress.
    pub fn generator(&self) -> GeneratorState {
        self.generator
    }

    pub(crate) fn start_generator_if_ready(&mut self, ctx: &mut ModelContext<'_>) {
        let Some(config) = self.generator.config else {
            return;
        };
        if self.generator.running || self.generator.finished() {
            return;
        }
        self.generator.running = true;
        self.generator.epoch = self.generator.epoch.wrapping_add(1);
        let epoch = self.generator.epoch;
        self.schedule(
            ctx,
            generator_interval(&config),
            TimerKind::Generator,
            epoch,
        );
    }

    /// The generator's timer: sends the next frame and schedules the one after.
    pub(crate) fn generator_tick(&mut self, ctx: &mut ModelContext<'_>) {
        let Some(config) = self.generator.config else {
            return;
        };
        if !self.generator.running {
            return;
        }
        if !self.link.up || self.generator.finished() {
            self.generator.running = false; // resumes when the link comes back
            return;
        }
        let mut frame = std::mem::take(&mut self.scratch);
        config.frame(self.generator.sent, self.config.mac, &mut frame);
        self.generator.sent += 1;
        self.receive(ctx, &frame, true);
        self.scratch = frame;
        if self.generator.finished() {
            self.generator.running = false;
        } else {
            let epoch = self.generator.epoch;
            self.schedule(
                ctx,
                generator_interval(&config),
                TimerKind::Generator,
                epoch,
            );
        }
    }

    /// Plugs the port into a wire (replacing any other).
    pub fn attach_wire(&mut self, port: WirePort) {
        self.wire = Some(port);
        self.announce_sending();
    }

    /// Unplugs the port.
    pub fn detach_wire(&mut self) -> Option<WirePort> {
        self.wire.take()
    }

    /// The wire the port is on.
    pub fn wire(&self) -> Option<&WirePort> {
        self.wire.as_ref()
    }

    /// Tells the wire whether this port can send now (link up, `DMATXCTL.TE`), so that its
    /// peer knows how often to look.
    pub(crate) fn announce_sending(&self) {
        if let Some(port) = &self.wire {
            port.set_sending(self.link.up && self.reg(DMATXCTL) & DMATXCTL_TE != 0);
        }
    }

    /// Sets the wire poll timer if the port is on a wire, its receiver is enabled and its
    /// link is up: for the next frame's time if one is on the way; else, while the peer can
    /// send, `wire_poll` from now, doubled for each poll in a row that found nothing, up to
    /// [`WIRE_IDLE_POLL`] (or `wire_poll` if longer); else that longest interval. A timer
    /// already set for no later stays.
    pub(crate) fn arm_wire_poll(&mut self, ctx: &mut ModelContext<'_>) {
        let rx_enabled = self.reg(RXCTRL) & RXCTRL_RXEN != 0;
        let Some(port) = &self.wire else {
            return;
        };
        if !rx_enabled || !self.link.up {
            return;
        }
        let now = ctx.now();
        let longest = self.config.wire_poll.max(WIRE_IDLE_POLL);
        let at = match port.next_start_ps() {
            Some(start) => from_ps(start).max(now),
            None if port.peer_sending() => {
                let backoff = 1u32 << self.wire_idle_polls.min(31);
                now + self.config.wire_poll.saturating_mul(backoff).min(longest)
            }
            None => now + longest,
        };
        if self.wire_poll_at.is_some_and(|armed| armed <= at) {
            return;
        }
        self.wire_poll_at = Some(at);
        self.wire_poll_epoch = self.wire_poll_epoch.wrapping_add(1);
        let epoch = self.wire_poll_epoch;
        self.schedule(ctx, at - now, TimerKind::WirePoll, epoch);
    }

    /// Receives what the peer sent and is due; how many frames that was. Called on every
    /// register access and by the poll timer. A frame that started while this port's link was
    /// down is lost.
    pub(crate) fn poll_wire(&mut self, ctx: &mut ModelContext<'_>) -> usize {
        let waiting = self.wire.as_ref().map_or(0, WirePort::pending);
        let now_ps = ps(ctx.now());
        let mut taken = 0;
        for _ in 0..waiting {
            let mut frame = std::mem::take(&mut self.scratch);
            let got = self
                .wire
                .as_ref()
                .and_then(|port| port.receive(&mut frame, now_ps));
            match got {
                Some((_, start_ps)) if self.link.up && start_ps < self.link.up_since_ps => {
                    self.lost_link_down();
                }
                Some((fcs_ok, _)) => {
                    self.receive(ctx, &frame, fcs_ok);
                }
                None => {}
            }
            self.scratch = frame;
            if got.is_none() {
                break;
            }
            taken += 1;
        }
        if taken > 0 {
            self.wire_idle_polls = 0;
        }
        taken
    }
}

/// The generator's interval between frames: what its rate asks, but never shorter than the
/// frame's time on a 10 Gb/s wire (its FCS, preamble and gap included).
fn generator_interval(config: &GeneratorConfig) -> Duration {
    let on_wire = from_ps(wire_time_ps((config.frame_len + FCS_LEN) as u64));
    config.interval().max(on_wire)
}
