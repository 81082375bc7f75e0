//! A [`Wire`]: the cable between two ports.
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

use bytemuck::{Pod, Zeroable};
use userpci_framework::{Error, Result};

use super::frame::FrameFifo;

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
