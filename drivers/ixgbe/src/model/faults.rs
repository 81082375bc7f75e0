//! Fault injection and the model's own counters.
//!
//! Faults are set on the model through `SimBus::with_model::<IxgbeModel, _>` (or
//! `with_model_ctx` for the link flap, which needs the clock):
//!
//! - [`IxgbeModel::link_flap`]: the link goes down for a virtual duration, `EICR.LSC` both
//!   ways.
//! - [`IxgbeModel::hang_tx`]: transmit stops (descriptors are neither read nor written back,
//!   `TDH` stays) until a reset (`CTRL.RST`, FLR, bus reset) or
//!   [`IxgbeModel::clear_faults`]; the next `TDT` write (or link up) resumes.
//! - [`IxgbeModel::corrupt_next_rx_writeback`]: the next received frame's write-back is
//!   wrong in one way ([`RxCorruption`]); one-shot, armed across resets until it fires.
//!
//! Bus-level faults (surprise removal, a hung function) are the simulated bus's
//! (`SimBus::inject`).

use super::rx::RxDrop;
use super::traffic::TxSink;
use super::IxgbeModel;

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
    /// Frames offered to the receive side (generator, wire, [`IxgbeModel::receive_frame`]).
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
    /// TX kicks ignored because of [`IxgbeModel::hang_tx`].
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

impl IxgbeModel {
    /// Stops transmit processing (see the module documentation).
    pub fn hang_tx(&mut self) {
        self.faults.tx_hang = true;
    }

    /// Corrupts the next RX write-back (one-shot).
    pub fn corrupt_next_rx_writeback(&mut self, corruption: RxCorruption) {
        self.faults.rx_corruption = Some(corruption);
    }

    /// Clears every injected fault (a link flap in progress runs to its end).
    pub fn clear_faults(&mut self) {
        self.faults = Faults::default();
    }

    /// The model's counters.
    pub fn stats(&self) -> IxgbeModelStats {
        self.stats
    }

    /// What the port transmitted.
    pub fn sink(&self) -> &TxSink {
        &self.sink
    }

    /// The sink, to clear its kept frames.
    pub fn sink_mut(&mut self) -> &mut TxSink {
        &mut self.sink
    }

    /// Frames waiting in the receive packet buffer for descriptors.
    pub fn rx_buffered(&self) -> usize {
        self.rx_fifo.len()
    }
}
