//! The small state the model's parts share, importing no sibling: the link, timer kinds,
//! the interrupt, transmit-queue and packet-buffer records, armed faults and the model's
//! counters. [`super::state`] builds the model from these; the behaviour lives above it.

use std::time::Duration;

use bytemuck::{Pod, Zeroable};

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
    /// When the link last came up (virtual time, picoseconds): a frame that reached the wire
    /// earlier was lost.
    pub(crate) up_since_ps: u64,
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
    /// A wire port looks for frames from its peer (aux: poll epoch).
    WirePoll,
    /// The transmit packet buffer has room again: transmission resumes.
    TxResume,
}

impl TimerKind {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
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
            10 => TimerKind::TxResume,
            _ => return None,
        })
    }
}

/// MSI-X vectors of the function.
pub const MSIX_VECTORS: usize = 64;

/// The interrupt state that is not a plain register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interrupts {
    /// Cause bit per vector (MSI-X) or per `EICR.RTxQ` bit (other modes).
    pub(crate) pending: u64,
    /// `EICR` bits 30:16.
    pub(crate) other: u32,
    /// `EIMS_EX` (`EIMS` bits 15:0 are its low bits).
    pub(crate) mask: u64,
    /// `EIMS` bits 31:16.
    pub(crate) mask_other: u32,
    /// When each vector last fired.
    pub(crate) last_fire: [Option<Duration>; MSIX_VECTORS],
    /// Vectors with a throttle timer set.
    pub(crate) throttled: u64,
}

impl Default for Interrupts {
    fn default() -> Self {
        Interrupts {
            pending: 0,
            other: 0,
            mask: 0,
            mask_other: 0,
            last_fire: [None; MSIX_VECTORS],
            throttled: 0,
        }
    }
}

/// Per-queue transmit state beyond the registers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TxQueueState {
    /// Descriptors processed and not yet written back (`WTHRESH` > 0).
    pub(crate) accumulated: u32,
    /// The first of them.
    pub(crate) accumulated_from: u32,
    /// A flush timer is set.
    pub(crate) flush_timer: bool,
}

impl TxQueueState {
    /// The queue was disabled: pending write-backs are forgotten.
    pub(crate) fn disable(&mut self) {
        self.accumulated = 0;
    }
}

/// Per-frame record in the packet buffer.
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct RxMeta {
    pub(crate) queue: u32,
    pub(crate) rss_hash: u32,
    /// `RSS Type` and `Packet Type` as in the first write-back dword.
    pub(crate) pkt_info: u32,
}

/// Why a frame was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// The link is down.
    LinkDown,
    /// `RXCTRL.RXEN` is clear.
    ReceiverDisabled,
    /// Sent without a valid FCS (`CRCERRS`).
    CrcError,
    /// Shorter than 64 bytes with FCS (`RUC`).
    Undersize,
    /// Longer than the maximum frame size (`ROC`).
    Oversize,
    /// No L2 filter accepted it.
    Filtered,
    /// The packet buffer is full (`MPC`).
    Missed,
}

/// How the next RX write-back is corrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxCorruption {
    /// The first descriptor's `PKT_LEN` is one more than its buffer (`SRRCTL.BSIZEPACKET`).
    LengthBeyondBuffer,
    /// The first descriptor is written without `DD` (everything else as usual).
    NoDd,
    /// The packet's last descriptor is written without `EOP`.
    NoEop,
}

/// The faults armed on a model.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Faults {
    pub(crate) tx_hang: bool,
    pub(crate) rx_corruption: Option<RxCorruption>,
}

/// What the model has seen and done since it was built (resets do not clear it). The
/// device's own statistics registers are clear-on-read and reset; these are for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IxgbeModelStats {
    /// Frames offered to the receive side (generator, wire, [`IxgbeModel::receive_frame`](super::IxgbeModel::receive_frame)).
    pub rx_offered: u64,
    /// Lost: the link was down.
    pub rx_link_down: u64,
    /// Dropped: `RXCTRL.RXEN` clear.
    pub rx_disabled: u64,
    /// Dropped by the MAC: bad FCS, undersize, oversize.
    pub rx_errors: u64,
    /// Rejected by the L2 filters.
    pub rx_filtered: u64,
    /// Missed, the packet buffer being full (`MPC`).
    pub rx_missed: u64,
    /// Dropped from the packet buffer: queue disabled, no descriptor with `DROP_EN`, DMA
    /// fault (`QPRDC`).
    pub rx_queue_drops: u64,
    /// Frames written to host memory.
    pub rx_delivered: u64,
    /// RX descriptors written back.
    pub rx_descriptors: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Bytes transmitted (without FCS).
    pub tx_bytes: u64,
    /// TX descriptors processed.
    pub tx_descriptors: u64,
    /// TX context descriptors processed.
    pub tx_context_descriptors: u64,
    /// TX packets consumed but not sent (TSO, too long, unknown descriptor type).
    pub tx_dropped: u64,
    /// TX kicks ignored because of [`IxgbeModel::hang_tx`](super::IxgbeModel::hang_tx).
    pub tx_hang_ignored: u64,
    /// Descriptor or buffer accesses the IOMMU refused.
    pub dma_faults: u64,
    /// Register writes the datasheet forbids: `RDH`/`TDH` of an enabled queue, ring
    /// indices past the ring.
    pub protocol_violations: u64,
    /// MSI-X messages sent (the bus drops those of disabled vectors).
    pub interrupts: u64,
    /// `CTRL.RST` resets.
    pub software_resets: u64,
    /// `CTRL.LRST` link resets.
    pub link_resets: u64,
    /// Function-level resets.
    pub function_resets: u64,
    /// Bus (or slot) resets.
    pub bus_resets: u64,
    /// Link up / down transitions.
    pub link_changes: u64,
    /// Injected link flaps.
    pub link_flaps: u64,
    /// Timers that fell due for the model (every kind, stale ones included): its share of the
    /// simulated bus's events.
    pub timers: u64,
    /// Times transmission stopped because the packet buffer held as much as the wire could
    /// take (`TXPBSIZE(0)`), to resume at line rate.
    pub tx_wire_waits: u64,
}

impl IxgbeModelStats {
    pub(crate) fn count_rx_drop(&mut self, why: RxDrop) {
        match why {
            RxDrop::LinkDown => self.rx_link_down += 1,
            RxDrop::ReceiverDisabled => self.rx_disabled += 1,
            RxDrop::CrcError | RxDrop::Undersize | RxDrop::Oversize => self.rx_errors += 1,
            RxDrop::Filtered => self.rx_filtered += 1,
            RxDrop::Missed => self.rx_missed += 1,
        }
    }
}
