//! What is on the other end of the cable: the [`Wire`] that links two ports, the transmit
//! [`TxSink`], and the generator's state.
//!
//! # Wires
//! A [`Wire`] is a pair of frame queues, one per direction, shared by the two ports through an
//! `Arc`. A port transmits by pushing into its direction (inside its `TDT` write: nothing else
//! runs then); the other port takes the frames out while it is being serviced: on each of its
//! register accesses and on a poll timer (`wire_poll`, 10 µs by default) that runs while its
//! receiver is enabled. A port cannot set a timer on its peer (a model only schedules its own
//! timers), which is why the receiving side polls; with both ports on one bus the order of
//! events is still fixed by the virtual clock, so runs are deterministic.
//!
//! Two ways to link ports:
//! - [`connect`] (preferred, explicit): after the bus is built,
//!   `connect(&bus, a, b)` attaches both models to a new wire.
//! - The `wire = "name"` parameter: [`Wire::join`] looks the name up in a process-wide table
//!   of wires that still wait for their second port; the first port with a name creates the
//!   wire, the second completes it (and the name is free again). Names are process-wide, so
//!   tests that build buses concurrently must use distinct names.
//!
//! A direction holds [`WIRE_BYTES`] of frames; a frame sent when it is full, or when the other
//! side has no port attached, is lost and counted ([`WireStats::dropped`]).

use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytemuck::{Pod, Zeroable};
use userpci_framework::backend::sim::SimBus;
use userpci_framework::pci::PciAddress;
use userpci_framework::{Error, Result};

use super::config::GeneratorConfig;
use super::frame::FrameFifo;
use super::IxgbeModel;

/// Bytes of frames (with a small per-frame overhead) each direction of a wire holds.
pub const WIRE_BYTES: usize = 256 * 1024;

/// One end of a [`Wire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireSide {
    /// The first end.
    A,
    /// The second end.
    B,
}

impl WireSide {
    fn index(self) -> usize {
        match self {
            WireSide::A => 0,
            WireSide::B => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct WireMeta {
    /// 1 when the frame went out with a valid FCS (`IFCS` set).
    pub(crate) fcs_ok: u32,
}

#[derive(Debug)]
struct Direction {
    fifo: FrameFifo<WireMeta>,
    sent: u64,
    dropped: u64,
}

#[derive(Debug)]
struct WireInner {
    /// `dirs[i]`: frames sent by side `i`.
    dirs: [Direction; 2],
    attached: [bool; 2],
}

/// Counters of a wire, per sending side (`[A, B]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames put on the wire by each side.
    pub sent: [u64; 2],
    /// Frames lost: the direction was full or nobody was attached on the other side.
    pub dropped: [u64; 2],
    /// Frames sent and not yet taken by the other side.
    pub in_flight: [usize; 2],
}

/// A cable between two ports. See the [module documentation](self).
#[derive(Debug)]
pub struct Wire {
    name: String,
    inner: Mutex<WireInner>,
}

/// Wires created by name that wait for their second port.
static WAITING: Mutex<Vec<(String, Weak<Wire>)>> = Mutex::new(Vec::new());

impl Wire {
    /// A new wire with both ends free.
    pub fn new(name: &str) -> Arc<Wire> {
        let direction = || Direction {
            fifo: FrameFifo::new(WIRE_BYTES),
            sent: 0,
            dropped: 0,
        };
        Arc::new(Wire {
            name: name.to_string(),
            inner: Mutex::new(WireInner {
                dirs: [direction(), direction()],
                attached: [false, false],
            }),
        })
    }

    /// Joins the wire called `name` that waits for a second port, or creates it (see the
    /// module documentation).
    pub fn join(name: &str) -> Result<WirePort> {
        let mut waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.retain(|(_, wire)| wire.strong_count() > 0);
        if let Some(pos) = waiting.iter().position(|(n, _)| n == name) {
            let (_, weak) = waiting.remove(pos);
            if let Some(wire) = weak.upgrade() {
                return Wire::attach(&wire, WireSide::B);
            }
        }
        let wire = Wire::new(name);
        let port = Wire::attach(&wire, WireSide::A)?;
        waiting.push((name.to_string(), Arc::downgrade(&wire)));
        Ok(port)
    }

    /// Takes `side` of `wire` for a port.
    pub fn attach(wire: &Arc<Wire>, side: WireSide) -> Result<WirePort> {
        let mut inner = wire.lock();
        let taken = &mut inner.attached[side.index()];
        if *taken {
            return Err(Error::Topology(format!(
                "wire {:?}: side {side:?} already has a port",
                wire.name
            )));
        }
        *taken = true;
        Ok(WirePort {
            wire: Arc::clone(wire),
            side,
        })
    }

    /// The wire's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wire's counters.
    pub fn stats(&self) -> WireStats {
        let inner = self.lock();
        WireStats {
            sent: [inner.dirs[0].sent, inner.dirs[1].sent],
            dropped: [inner.dirs[0].dropped, inner.dirs[1].dropped],
            in_flight: [inner.dirs[0].fifo.len(), inner.dirs[1].fifo.len()],
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WireInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A port's hold on one end of a [`Wire`]; frees the end when dropped.
#[derive(Debug)]
pub struct WirePort {
    wire: Arc<Wire>,
    side: WireSide,
}

impl WirePort {
    /// The wire.
    pub fn wire(&self) -> &Arc<Wire> {
        &self.wire
    }

    /// The end this port holds.
    pub fn side(&self) -> WireSide {
        self.side
    }

    /// Puts a frame on the wire; `false` when it was lost.
    pub(crate) fn send(&self, frame: &[u8], fcs_ok: bool) -> bool {
        let mut inner = self.wire.lock();
        let me = self.side.index();
        let peer_attached = inner.attached[1 - me];
        let dir = &mut inner.dirs[me];
        dir.sent += 1;
        let meta = WireMeta {
            fcs_ok: u32::from(fcs_ok),
        };
        if peer_attached && dir.fifo.push(meta, frame) {
            true
        } else {
            dir.dropped += 1;
            false
        }
    }

    /// Takes the oldest frame the peer sent into `out` (replacing its contents); whether it
    /// carried a valid FCS, or `None` when nothing waits. Does not allocate when `out` has
    /// room for a maximum frame.
    pub(crate) fn receive(&self, out: &mut Vec<u8>) -> Option<bool> {
        let mut inner = self.wire.lock();
        let dir = &mut inner.dirs[1 - self.side.index()];
        let (meta, frame) = dir.fifo.peek()?;
        out.clear();
        out.extend_from_slice(frame);
        let fcs_ok = meta.fcs_ok != 0;
        dir.fifo.pop();
        Some(fcs_ok)
    }

    /// Frames the peer sent that wait to be received.
    pub(crate) fn pending(&self) -> usize {
        self.wire.lock().dirs[1 - self.side.index()].fifo.len()
    }
}

impl Drop for WirePort {
    fn drop(&mut self) {
        let mut inner = self.wire.lock();
        inner.attached[self.side.index()] = false;
    }
}

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

// ---------------------------------------------------------------------------------------------
// Sink
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct SinkMeta {
    queue: u16,
    fcs: u16,
}

/// A transmitted frame kept by the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentFrame<'a> {
    /// The TX queue it was sent from.
    pub queue: u16,
    /// Whether the device appended an FCS (`IFCS`); not included in `data`.
    pub fcs: bool,
    /// The frame as it went on the wire (after padding), without FCS.
    pub data: &'a [u8],
}

/// Everything the port transmitted: counts, and the last `sink_keep` frames.
#[derive(Debug)]
pub struct TxSink {
    keep: usize,
    frames: FrameFifo<SinkMeta>,
    sent: u64,
    bytes: u64,
}

impl TxSink {
    pub(crate) fn new(keep: usize) -> Self {
        let per_frame = FrameFifo::<SinkMeta>::record_size(super::frame::MAX_FRAME);
        TxSink {
            keep,
            frames: FrameFifo::new(keep.max(1) * per_frame),
            sent: 0,
            bytes: 0,
        }
    }

    pub(crate) fn record(&mut self, queue: u16, fcs: bool, frame: &[u8]) {
        self.sent += 1;
        self.bytes += frame.len() as u64;
        if self.keep == 0 {
            return;
        }
        while self.frames.len() >= self.keep
            || (!self.frames.is_empty() && !self.frames.fits(frame.len()))
        {
            self.frames.pop();
        }
        let meta = SinkMeta {
            queue,
            fcs: u16::from(fcs),
        };
        self.frames.push(meta, frame);
    }

    /// Frames transmitted since the model was built (resets do not clear it).
    pub fn frames_sent(&self) -> u64 {
        self.sent
    }

    /// Bytes transmitted (frames without FCS).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    /// The kept frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = SentFrame<'_>> {
        self.frames.iter().map(|(meta, data)| SentFrame {
            queue: meta.queue,
            fcs: meta.fcs != 0,
            data,
        })
    }

    /// The newest kept frame.
    pub fn last(&self) -> Option<SentFrame<'_>> {
        self.frames().last()
    }

    /// Forgets the kept frames (the counts stay).
    pub fn clear(&mut self) {
        self.frames.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The model's side: generator and wire service
// ---------------------------------------------------------------------------------------------

impl IxgbeModel {
    /// Starts `config` as the traffic source (replacing any other, from frame 0). Frames flow
    /// once the receiver is enabled and the link is up, one every `config.interval()`; while
    /// the link is down the generator pauses (its peer cannot send either).
    pub fn start_generator(
        &mut self,
        ctx: &mut userpci_framework::backend::sim::ModelContext<'_>,
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

    pub(crate) fn start_generator_if_ready(
        &mut self,
        ctx: &mut userpci_framework::backend::sim::ModelContext<'_>,
    ) {
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
            config.interval(),
            super::device::TimerKind::Generator,
            epoch,
        );
    }

    /// The generator's timer: sends the next frame and schedules the one after.
    pub(crate) fn generator_tick(
        &mut self,
        ctx: &mut userpci_framework::backend::sim::ModelContext<'_>,
    ) {
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
                config.interval(),
                super::device::TimerKind::Generator,
                epoch,
            );
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
    pub(crate) fn arm_wire_poll(
        &mut self,
        ctx: &mut userpci_framework::backend::sim::ModelContext<'_>,
    ) {
        let rx_enabled =
            self.reg(crate::spec::queue::RXCTRL) & crate::spec::queue::RXCTRL_RXEN != 0;
        if self.wire.is_none() || self.wire_poll_armed || !rx_enabled {
            return;
        }
        self.wire_poll_armed = true;
        self.schedule(
            ctx,
            self.config.wire_poll,
            super::device::TimerKind::WirePoll,
            0,
        );
    }

    /// Receives what the peer sent. Called on every register access and by the poll timer.
    pub(crate) fn poll_wire(
        &mut self,
        ctx: &mut userpci_framework::backend::sim::ModelContext<'_>,
    ) {
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
