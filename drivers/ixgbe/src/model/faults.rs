//! Fault injection and the model's own counters, as the tests reach them (the records
//! themselves, [`RxCorruption`] and [`IxgbeModelStats`], are in `shared.rs`).
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

use super::hostile::HostileHook;
use super::shared::Faults;
pub use super::shared::{IxgbeModelStats, RxCorruption};
use super::sink::TxSink;
use super::state::IxgbeModel;

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

impl IxgbeModel {
    /// Sets (or with `None` removes) the hostile hook; see [`super::hostile`]. It stays set
    /// across resets.
    pub fn set_hostile(&mut self, hook: Option<HostileHook>) {
        self.hostile.set_hook(hook);
    }

    /// How many writes and reads the hostile hook was offered since construction.
    pub fn hostile_writes(&self) -> u64 {
        self.hostile.offered()
    }
}
