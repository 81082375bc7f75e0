//! A driver-neutral view of an Ethernet port, for tools and applications that run on any
//! userpci NIC driver (the 82599 and the 82576 today), in the manner of DPDK's ethdev burst
//! API: batch receive and batch send of pool buffers, and the counters every port has.
//!
//! Drivers implement these traits on their own device and queue types. Users stay generic
//! over them (`fn run<P: NetPort>(port: &P)`), so the data path is monomorphised: a call
//! through [`NetRx::rx_batch`] costs what the driver's own method costs, never a virtual call.
//! The queue handles keep the drivers' guarantees: `!Send` (one core each), no allocation,
//! no lock.

use std::sync::Arc;

use crate::dma::{BufferPool, PoolBuffer};
use crate::pci::PciAddress;

/// Counters of a whole port, read from the device (its clear-on-read registers accumulated
/// in software since initialisation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Good packets received.
    pub rx_packets: u64,
    /// Good octets received.
    pub rx_bytes: u64,
    /// Good packets transmitted.
    pub tx_packets: u64,
    /// Good octets transmitted.
    pub tx_bytes: u64,
    /// Packets the device dropped for want of buffer space (descriptors or packet buffer).
    pub rx_missed: u64,
}

/// Software counters of one RX queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// Packets handed to the application.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Descriptors dropped because the device's write-back was bad (length, EOP, MAC error,
    /// a skipped descriptor).
    pub dropped: u64,
    /// Times the pool had no buffer to refill a descriptor.
    pub alloc_failures: u64,
}

/// Software counters of one TX queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounters {
    /// Packets placed in the ring.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets refused for their length (zero or above the driver's maximum): freed unsent.
    pub invalid_length: u64,
    /// Descriptors whose buffers were freed after the device reported them done.
    pub cleaned: u64,
}

/// One RX queue of a port, polled by one core.
pub trait NetRx {
    /// Receives up to `max` packets into `out`, never more than its spare capacity (so `out`
    /// never grows). Each packet's `len()` is the frame length without FCS. Returns the
    /// number pushed.
    fn rx_batch(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize;

    /// The queue's counters.
    fn counters(&self) -> RxCounters;
}

/// One TX queue of a port, used by one core.
pub trait NetTx {
    /// Sends packets from the front of `packets`, as many as the ring has room for; the rest
    /// stay in `packets`, in order. Returns the number placed in the ring.
    fn tx_batch(&mut self, packets: &mut Vec<PoolBuffer>) -> usize;

    /// Frees the buffers of every descriptor the device has finished, including those below
    /// a cleaning batch (for idle times and the end of a run). Returns the descriptors freed.
    fn reclaim(&mut self) -> usize;

    /// Descriptors handed to the device and not cleaned yet.
    fn in_flight(&self) -> usize;

    /// The queue's counters.
    fn counters(&self) -> TxCounters;
}

/// An initialised Ethernet port whose queues are taken one per core.
pub trait NetPort: Send + Sync {
    /// The driver's RX queue handle.
    type Rx: NetRx;
    /// The driver's TX queue handle.
    type Tx: NetTx;
    /// The driver's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The driver's name (`"ixgbe"`, `"igb"`), for reports.
    fn driver_name(&self) -> &'static str;

    /// The PCI function.
    fn address(&self) -> PciAddress;

    /// The port's MAC address.
    fn mac_address(&self) -> [u8; 6];

    /// Link speed in Mbit/s when the link is up, `None` when it is down.
    fn link_speed_mbps(&self) -> Option<u32>;

    /// The pool the RX rings are filled from (also fine for TX buffers).
    fn pool(&self) -> &Arc<BufferPool>;

    /// The port's counters (reads and accumulates the device's clear-on-read registers).
    fn counters(&self) -> PortCounters;

    /// Takes RX queue `queue` for the calling core.
    fn take_rx_queue(&self, queue: u16) -> Result<Self::Rx, Self::Error>;

    /// Takes TX queue `queue` for the calling core.
    fn take_tx_queue(&self, queue: u16) -> Result<Self::Tx, Self::Error>;
}
