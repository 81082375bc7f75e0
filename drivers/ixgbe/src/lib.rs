//! userpci Intel 82599 (ixgbe) driver. Written against
//! `userpci_framework::device::PciFunction`, so the same code drives the 82599 model and a real
//! NIC.
//!
//! | module | contents |
//! |---|---|
//! | [`spec`] | registers, bit fields and descriptors as types, shared with the device model |
//! | [`IxgbeDevice`] | bring-up per datasheet 4.6 ([`init`]), link (changes from `EICR.LSC` in interrupt mode, polled otherwise), statistics, promiscuous mode |
//! | [`RxQueue`] / [`TxQueue`] | the batched, allocation-free data path, one queue per core, on the shared Intel ring engine (`userpci_intel_ring`); TX drains when traffic stops and watches for hangs |
//! | [`IxgbeParticipant`] | coordinated resets, in polling and MSI-X mode; a hung TX queue asks for one through [`ResetHandler`] |
//! | [`stats`] | hardware counters accumulated in software, per-queue software counters |
//! | [`Error`] | the crate's one error type |
//!
//! ```no_run
//! # use userpci_framework::device::PciFunction;
//! # fn demo<F: PciFunction>(function: F) -> userpci_ixgbe::Result<()> {
//! use userpci_ixgbe::{IxgbeDevice, IxgbeOptions};
//!
//! let dev = IxgbeDevice::new(function, IxgbeOptions::default())?;
//! let mut rx = dev.take_rx_queue(0)?;
//! let mut tx = dev.take_tx_queue(0)?;
//! let mut batch = Vec::with_capacity(32);
//! loop {
//!     rx.rx_batch(&mut batch, 32);
//!     tx.tx_batch(&mut batch); // forward, zero copy; what did not fit stays in `batch`
//! }
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod spec;

#[cfg(feature = "model")]
pub mod model;

// Files in dependency order: each uses only those above it (issue 13).
mod device;
mod error;
mod gate;
pub mod init;
mod irq;
mod link;
mod net_port;
mod options;
mod participant;
mod rx;
mod shared;
pub mod stats;
mod tx;

pub use device::IxgbeDevice;
pub use error::{Error, Result};
pub use gate::{ResetInfo, ResetState};
pub use link::{LinkStatus, MacDisplay};
pub use options::{
    InterruptOptions, IxgbeOptions, ResetHandler, INTEL_VENDOR_ID, IXGBE_82599_DEVICE_IDS,
    MAX_QUEUES,
};
pub use participant::{IxgbeParticipant, IxgbeResetOptions};
pub use rx::{RxPoll, RxQueue};
pub use spec::regs::LinkSpeed;
pub use stats::{DeviceStats, QueueHwStats, RxQueueStats, TxQueueStats};
pub use tx::{TxQueue, TX_CLEAN_BATCH, TX_MAX_LEN};
