//! A [`Wire`]: the cable between two ports, and its timing at the link speed.
//!
//! # Wires
//! A [`Wire`] is a pair of frame queues, one per direction, shared by the two ports through an
//! `Arc`. A port transmits by pushing into its direction (inside its `TDT` write or its
//! transmit timer: nothing else runs then); the other port takes the frames out while it is
//! being serviced: on each of its register accesses and on a poll timer that runs while its
//! receiver is enabled and its link is up. A port cannot set a timer on its peer (a model only
//! schedules its own timers), which is why the receiving side polls; with both ports on one
//! bus the order of events is still fixed by the virtual clock, so runs are deterministic.
//!
//! # Line rate
//! Each frame carries the virtual time its first bit goes on the wire; the receiver takes it
//! no earlier. The sender starts a frame only when the previous one, its preamble and SFD
//! (8 bytes) and the inter-frame gap (12 bytes) are through: a frame of `n` bytes with its
//! FCS holds the wire [`wire_time_ps`]`(n)` = `(n + 20) × 8` bits at [`LINE_RATE_BPS`], so no
//! direction ever carries more than 10 Gb/s (14.88 Mpps of 64-byte frames, 812 744 pps of
//! 1518-byte ones). The sender's transmit path holds frames ahead of the wire only as far as
//! its `TXPBSIZE(0)` packet buffer lasts, then waits for it (see the transmit module).
//!
//! The receiver polls at the next frame's time when one is on the way, every `wire_poll` when
//! the peer can send (link up and `DMATXCTL.TE`), and at most every [`WIRE_IDLE_POLL`] when it
//! cannot, so that a port whose peer is down or being brought up costs few timers. A frame
//! whose time fell while the receiver's link was down is lost, as on a real cable, however
//! late the receiver looks.
//!
//! Two ways to link ports:
//! - [`connect`](super::traffic::connect) (preferred, explicit): after the bus is built,
//!   `connect(&bus, a, b)` attaches both models to a new wire.
//! - The `wire = "name"` parameter: [`Wire::join`] looks the name up in a process-wide table
//!   of wires that still wait for their second port; the first port with a name creates the
//!   wire, the second completes it (and the name is free again). Names are process-wide, so
//!   tests that build buses concurrently must use distinct names.
//!
//! A direction holds [`WIRE_BYTES`] of frames; a frame sent when it is full, or when the other
//! side has no port attached, is lost and counted ([`WireStats::dropped`]).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use userpci_framework::{Error, Result};

use super::frame::FrameFifo;

/// The link speed: 10 Gb/s, what the model's link always trains to.
pub const LINE_RATE_BPS: u64 = 10_000_000_000;
/// Picoseconds per bit at [`LINE_RATE_BPS`].
pub const PS_PER_BIT: u64 = 1_000_000_000_000 / LINE_RATE_BPS;
/// What a frame costs on the wire beyond its bytes and FCS: preamble and SFD (8 bytes) and the
/// inter-frame gap (12 bytes).
pub const WIRE_OVERHEAD_BYTES: u64 = 8 + 12;
/// How often a receiver looks at the most for frames while its peer cannot send (its link is
/// down or its transmitter off), whatever the `wire_poll` parameter says.
pub const WIRE_IDLE_POLL: Duration = Duration::from_micros(10);

/// Picoseconds a frame of `len_with_fcs` bytes holds the wire, preamble, SFD and the gap
/// after it included.
pub const fn wire_time_ps(len_with_fcs: u64) -> u64 {
    (len_with_fcs + WIRE_OVERHEAD_BYTES) * 8 * PS_PER_BIT
}

/// The most frames per second a direction carries of frames `len_with_fcs` bytes long.
pub const fn line_rate_pps(len_with_fcs: u64) -> u64 {
    1_000_000_000_000 / wire_time_ps(len_with_fcs)
}

/// A virtual time in picoseconds.
pub(crate) fn ps(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX / 1000) * 1000
}

/// Picoseconds as a virtual time, rounded up to the clock's nanoseconds.
pub(crate) fn from_ps(ps: u64) -> Duration {
    Duration::from_nanos(ps.div_ceil(1000))
}

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
    /// When its first bit is on the wire (virtual time, picoseconds).
    pub(crate) start_ps: u64,
    /// 1 when the frame went out with a valid FCS (`IFCS` set).
    pub(crate) fcs_ok: u32,
    pub(crate) _pad: u32,
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
    /// `sending[i]`: side `i`'s port can put frames on the wire (link up, `DMATXCTL.TE`).
    sending: [bool; 2],
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
                sending: [false, false],
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

    /// Puts a frame on the wire, its first bit at `start_ps`; `false` when it was lost.
    pub(crate) fn send(&self, frame: &[u8], fcs_ok: bool, start_ps: u64) -> bool {
        let mut inner = self.wire.lock();
        let me = self.side.index();
        let peer_attached = inner.attached[1 - me];
        let dir = &mut inner.dirs[me];
        dir.sent += 1;
        let meta = WireMeta {
            start_ps,
            fcs_ok: u32::from(fcs_ok),
            _pad: 0,
        };
        if peer_attached && dir.fifo.push(meta, frame) {
            true
        } else {
            dir.dropped += 1;
            false
        }
    }

    /// Takes the oldest frame the peer sent, if its time has come by `now_ps`, into `out`
    /// (replacing its contents): whether it carried a valid FCS, and when it started. `None`
    /// when nothing is due. Does not allocate when `out` has room for a maximum frame.
    pub(crate) fn receive(&self, out: &mut Vec<u8>, now_ps: u64) -> Option<(bool, u64)> {
        let mut inner = self.wire.lock();
        let dir = &mut inner.dirs[1 - self.side.index()];
        let (meta, frame) = dir.fifo.peek()?;
        if meta.start_ps > now_ps {
            return None;
        }
        out.clear();
        out.extend_from_slice(frame);
        dir.fifo.pop();
        Some((meta.fcs_ok != 0, meta.start_ps))
    }

    /// Frames the peer sent that wait to be received, due or not.
    pub(crate) fn pending(&self) -> usize {
        self.wire.lock().dirs[1 - self.side.index()].fifo.len()
    }

    /// When the oldest frame the peer sent starts (picoseconds), if one waits.
    pub(crate) fn next_start_ps(&self) -> Option<u64> {
        let inner = self.wire.lock();
        inner.dirs[1 - self.side.index()]
            .fifo
            .peek()
            .map(|(meta, _)| meta.start_ps)
    }

    /// Tells the peer whether this port can send now.
    pub(crate) fn set_sending(&self, sending: bool) {
        self.wire.lock().sending[self.side.index()] = sending;
    }

    /// Whether the peer can send now (attached, link up, transmitter on).
    pub(crate) fn peer_sending(&self) -> bool {
        let inner = self.wire.lock();
        let peer = 1 - self.side.index();
        inner.attached[peer] && inner.sending[peer]
    }
}

impl Drop for WirePort {
    fn drop(&mut self) {
        let mut inner = self.wire.lock();
        inner.attached[self.side.index()] = false;
        inner.sending[self.side.index()] = false;
    }
}
