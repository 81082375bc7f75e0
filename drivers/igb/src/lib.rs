//! userpci Intel 82576 (igb) driver. Written against
//! `userpci_framework::device::PciFunction`, so the same code drives a real 82576 through
//! VFIO and QEMU's `-device igb` in the VM tier. Its data path is the shared Intel ring engine
//! ([`userpci_intel_ring`]), the 82599 driver's too; everything device-specific (init, link,
//! interrupts, statistics, RSS registers) is here.
//!
//! | module | contents |
//! |---|---|
//! | [`spec`] | registers, bit fields and the 82576's write-back bits as types, QEMU's departures |
//! | [`IgbDevice`] | bring-up per datasheet 4.5 ([`init`]), link, statistics, promiscuous mode |
//! | [`RxQueue`] / [`TxQueue`] | the batched, allocation-free data path on the ring engine, one queue per core |
//! | [`rss`] | RSS key, redirection table and hash fields; a Toeplitz hash to predict queues |
//! | [`IgbParticipant`] | coordinated resets: quiesce, recover restoring MAC, filters, RSS, queues, MSI-X |
//! | [`DeviceStats`] / [`RxQueueStats`] / [`TxQueueStats`] | counters: hardware ones accumulated, software ones per queue |
//! | [`Error`] | the crate's one error type |
//!
//! Files depend one way: `spec`, `error`, `gate`, `counters`, `options` are leaves;
//! `shared` (the state the handle, queues and participant share) sits on them; `stats`,
//! `phy`, `link`, `rss`, `irq`, `init`, `rx`, `tx` on `shared`; `device` on those;
//! `participant` and `net_port` on `device`.
//!
//! # Datasheet sections followed
//! *Intel 82576EB Gigabit Ethernet Controller Datasheet*: 4.5 initialisation (4.5.4
//! interrupts off, 4.5.5 global reset, 4.5.7 link setup, 4.5.8 statistics, 4.5.9 receive,
//! 4.5.10 transmit), 7.1 receive (7.1.1.7 RSS, 7.1.5 advanced descriptors), 7.2 transmit
//! (advanced data descriptors), 7.3 interrupts (MSI-X, `IVAR`, `EITR`), chapter 8 for every
//! register ([`spec`] has the table). Where QEMU's model departs from the datasheet is listed
//! in [`spec`]'s documentation; the driver follows the datasheet and copes with the model.
//!
//! ```no_run
//! # use userpci_framework::device::PciFunction;
//! # fn demo<F: PciFunction>(function: F) -> userpci_igb::Result<()> {
//! use userpci_igb::{IgbDevice, IgbOptions};
//!
//! let dev = IgbDevice::new(function, IgbOptions::default())?;
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

mod counters;
mod device;
mod error;
mod gate;
pub mod init;
mod irq;
mod link;
mod net_port;
mod options;
mod participant;
mod phy;
pub mod rss;
mod rx;
mod shared;
mod stats;
mod tx;

pub use counters::{DeviceStats, QueueHwStats, RxQueueStats, TxQueueStats};
pub use device::{IgbDevice, IGB_82576_COPPER_IDS, IGB_82576_DEVICE_IDS, INTEL_VENDOR_ID};
pub use error::{Error, Result};
pub use gate::{ResetInfo, ResetState};
pub use link::{LinkStatus, MacDisplay};
pub use options::{IgbOptions, InterruptOptions, MAX_QUEUES, MAX_RING_SIZE, MIN_RING_SIZE};
pub use participant::{IgbParticipant, IgbResetOptions};
pub use rx::{RxPoll, RxQueue};
pub use spec::regs::LinkSpeed;
pub use tx::{TxQueue, TX_CLEAN_BATCH, TX_MAX_LEN};
