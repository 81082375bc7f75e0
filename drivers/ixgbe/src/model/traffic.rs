//! What feeds a port and what it feeds: the generator, and the service of the [`Wire`] a
//! port is on ([`connect`], the poll that takes the peer's frames in). The wire itself is in
//! [`super::wire`], the transmit sink in [`super::sink`]; both are re-exported here.

use std::sync::Arc;

use userpci_framework::backend::sim::{ModelContext, SimBus};
use userpci_framework::pci::PciAddress;
use userpci_framework::Result;

use super::config::GeneratorConfig;
use super::shared::TimerKind;
pub use super::sink::{SentFrame, TxSink};
pub use super::state::GeneratorState;
use super::state::IxgbeModel;
pub use super::wire::{Wire, WirePort, WireSide, WireStats, WIRE_BYTES};
use crate::spec::queue::{RXCTRL, RXCTRL_RXEN};

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
    /// once the receiver is enabled and the link is up, one every `config.interval()`; while
    /// the link is down the generator pauses (its peer cannot send either).
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
        self.schedule(ctx, config.interval(), TimerKind::Generator, epoch);
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
            self.schedule(ctx, config.interval(), TimerKind::Generator, epoch);
        }
    }

    /// Plugs the port into a wire (replacing any other).
    pub fn attach_wire(&mut self, port: WirePort) {
        self.wire = Some(port);
    }

    /// Unplugs the port.
    pub fn detach_wire(&mut self) -> Option<WirePort> {
        self.wire.take()
    }

    /// The wire the port is on.
    pub fn wire(&self) -> Option<&WirePort> {
        self.wire.as_ref()
    }

    /// Sets the wire poll timer if the port is on a wire and its receiver is enabled.
    pub(crate) fn arm_wire_poll(&mut self, ctx: &mut ModelContext<'_>) {
        let rx_enabled = self.reg(RXCTRL) & RXCTRL_RXEN != 0;
        if self.wire.is_none() || self.wire_poll_armed || !rx_enabled {
            return;
        }
        self.wire_poll_armed = true;
        self.schedule(ctx, self.config.wire_poll, TimerKind::WirePoll, 0);
    }

    /// Receives what the peer sent. Called on every register access and by the poll timer.
    pub(crate) fn poll_wire(&mut self, ctx: &mut ModelContext<'_>) {
        let waiting = self.wire.as_ref().map_or(0, WirePort::pending);
        for _ in 0..waiting {
            let mut frame = std::mem::take(&mut self.scratch);
            let got = self.wire.as_ref().and_then(|port| port.receive(&mut frame));
            if let Some(fcs_ok) = got {
                self.receive(ctx, &frame, fcs_ok);
            }
            self.scratch = frame;
            if got.is_none() {
                break;
            }
        }
    }
}
