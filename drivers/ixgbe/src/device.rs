//! The device handle: options, bring-up, and what is shared with the queues.
//!
//! [`IxgbeDevice::new`] runs the datasheet's initialisation ([`crate::init`]) and leaves every
//! configured queue running with its ring filled. The queues are then taken, one per core,
//! with [`IxgbeDevice::take_rx_queue`] / [`IxgbeDevice::take_tx_queue`] *on the core that will
//! use them*: the handles are `!Send` ([`CoreLocal`]), the device is `Send + Sync` (share it
//! in an `Arc`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use userpci_framework::device::{InterruptVector, PciFunction, RegisterIo};
use userpci_framework::dma::BufferPool;
use userpci_framework::pci::PciAddress;
use userpci_framework::runtime::CoreLocal;
use userpci_framework::time::Clock;

use crate::error::{Error, Result};
use crate::link::LinkStatus;
use crate::rx::{RxQueue, RxRing};
use crate::spec::regs;
use crate::stats::{DeviceStats, HwCounters};
use crate::tx::{TxQueue, TxRing};

/// Intel's PCI vendor ID.
pub const INTEL_VENDOR_ID: u16 = 0x8086;

/// PCI device IDs of 82599 functions (Linux `ixgbe_type.h`, `IXGBE_DEV_ID_82599_*`).
pub const IXGBE_82599_DEVICE_IDS: &[u16] = &[
    0x10F7, // KX4
    0x10F8, // combined backplane
    0x10F9, // CX4
    0x10FB, // SFP (82599ES, X520)
    0x10FC, // XAUI / LOM
    0x1507, // SFP EM
    0x1514, // KX4 mezzanine
    0x1517, // KR
    0x151C, // T3 LOM
    0x1529, // SFP FCoE
    0x152A, // backplane FCoE
    0x154D, // SFP SF2
    0x154F, // bypass
    0x1557, // SFP SF QP
    0x1558, // QSFP SF QP
];

/// Queues of each direction this driver configures at most: RSS spreads over at most 16 RX
/// queues (4-bit `RETA` entries) and the per-queue statistics cover 16 queues.
pub const MAX_QUEUES: u16 = 16;

/// MSI-X interrupts for the RX queues (one vector per RX queue, vector `i` for queue `i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOptions {
    /// Minimum interval between two interrupts of a vector (`EITR.ITR_INTERVAL`, 2 µs units,
    /// at most 1022 µs); 0 disables throttling.
    pub itr_us: u32,
}

impl Default for InterruptOptions {
    /// 40 µs (25,000 interrupts per second per queue at most), a common moderation value.
    fn default() -> Self {
        InterruptOptions { itr_us: 40 }
    }
}

/// How to bring the device up.
#[derive(Clone, Debug)]
pub struct IxgbeOptions {
    /// RX queues (1..=16). With more than one, RSS spreads flows over them.
    pub rx_queues: u16,
    /// TX queues (1..=16).
    pub tx_queues: u16,
    /// Descriptors per RX ring: a power of two, 8..=4096 (`RDLEN` must be a multiple of 128
    /// bytes, 8 descriptors; 4096 is DPDK's limit for this NIC).
    pub rx_ring_size: usize,
    /// Descriptors per TX ring: as `rx_ring_size`.
    pub tx_ring_size: usize,
    /// Pool the RX rings are filled from. `None`: the driver creates one of
    /// [`IxgbeOptions::buffer_size`]-byte buffers, sized for every ring plus the same again
    /// for buffers in the application's hands.
    pub pool: Option<Arc<BufferPool>>,
    /// Buffer size of the pool the driver creates (at least 1024; `SRRCTL.BSIZEPACKET` is
    /// the buffer size rounded down to whole KiB, so 2048 holds a 1518-byte frame).
    pub buffer_size: usize,
    /// Per-thread cache of the pool the driver creates.
    pub pool_cache: usize,
    /// Unicast and multicast promiscuous mode (`FCTRL.UPE | FCTRL.MPE`), as ixy does.
    pub promiscuous: bool,
    /// Program RSS (`MRQC`, `RETA`, `RSSRK`) when there is more than one RX queue.
    pub rss: bool,
    /// How long to wait for the link at the end of initialisation (ixy: 10 s).
    pub link_timeout: Duration,
    /// Fail with [`Error::LinkDown`] when the link is not up by then (otherwise warn and go
    /// on: the link may come up later).
    pub require_link: bool,
    /// MSI-X interrupts for the RX queues; `None`: polling only.
    pub interrupts: Option<InterruptOptions>,
}

impl Default for IxgbeOptions {
    fn default() -> Self {
        IxgbeOptions {
            rx_queues: 1,
            tx_queues: 1,
            rx_ring_size: 512,
            tx_ring_size: 512,
            pool: None,
            buffer_size: 2048,
            pool_cache: 64,
            promiscuous: true,
            rss: true,
            link_timeout: Duration::from_secs(10),
            require_link: false,
            interrupts: None,
        }
    }
}

/// What the device handle and its queues share.
pub(crate) struct Shared<F: PciFunction> {
    pub(crate) function: F,
    pub(crate) regs: F::Registers,
    pub(crate) device: PciAddress,
    /// Hardware counters accumulated in software (they clear on read).
    pub(crate) counters: Mutex<HwCounters>,
    /// Coordinated resets: whether the data path may touch the device, and the filter
    /// settings to restore (see [`crate::participant`]).
    pub(crate) gate: crate::participant::ResetGate,
}

impl<F: PciFunction> Shared<F> {
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.function.clock().as_ref()
    }

    pub(crate) fn read(&self, offset: usize) -> u32 {
        self.regs.read32(offset)
    }

    pub(crate) fn write(&self, offset: usize, value: u32) {
        self.regs.write32(offset, value)
    }

    /// Read-modify-write: sets `set`, then clears `clear`.
    pub(crate) fn modify(&self, offset: usize, set: u32, clear: u32) {
        let value = self.read(offset);
        self.write(offset, (value | set) & !clear);
    }

    pub(crate) fn counters(&self) -> MutexGuard<'_, HwCounters> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An initialised 82599 function. `Send + Sync`; its queues are taken one per core.
pub struct IxgbeDevice<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) pool: Arc<BufferPool>,
    pub(crate) mac: [u8; 6],
    pub(crate) rx_queues: Mutex<Vec<Option<RxRing<F>>>>,
    pub(crate) tx_queues: Mutex<Vec<Option<TxRing<F>>>>,
    pub(crate) vectors: Vec<InterruptVector>,
    pub(crate) options: IxgbeOptions,
    /// Bus addresses of the RX and TX descriptor rings, per queue: a recovery after a reset
    /// programs the same rings again.
    pub(crate) rx_ring_iovas: Vec<u64>,
    pub(crate) tx_ring_iovas: Vec<u64>,
}

impl<F: PciFunction> IxgbeDevice<F> {
    /// Resets and initialises the function (datasheet 4.6, see [`crate::init`]) and starts
    /// its queues.
    pub fn new(function: F, options: IxgbeOptions) -> Result<Self> {
        crate::init::bring_up(function, options)
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.shared.device
    }

    /// The function.
    pub fn function(&self) -> &F {
        &self.shared.function
    }

    /// The options the device was brought up with (`pool` is the pool in use).
    pub fn options(&self) -> &IxgbeOptions {
        &self.options
    }

    /// The pool the RX rings are filled from (also fine for TX buffers).
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// The MAC address, read from `RAL(0)` / `RAH(0)` (loaded from the EEPROM at reset).
    pub fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    /// Link state and speed from `LINKS`.
    pub fn link(&self) -> LinkStatus {
        crate::link::read(&self.shared)
    }

    /// Waits for the link to come up, at most `timeout` (polled on the function's clock).
    pub fn wait_for_link(&self, timeout: Duration) -> Result<LinkStatus> {
        crate::link::wait(&self.shared, timeout)
    }

    /// Unicast and multicast promiscuous mode on or off (`FCTRL.UPE`, `FCTRL.MPE`).
    pub fn set_promiscuous(&self, on: bool) {
        let bits = regs::FCTRL_UPE | regs::FCTRL_MPE;
        if on {
            self.shared.modify(regs::FCTRL, bits, 0);
        } else {
            self.shared.modify(regs::FCTRL, 0, bits);
        }
        self.shared.gate.set_filter_bits(bits, on);
        tracing::debug!(device = %self.shared.device, on, "promiscuous mode");
    }

    /// Multicast promiscuous mode alone (`FCTRL.MPE`): accept every multicast frame.
    pub fn set_multicast_promiscuous(&self, on: bool) {
        if on {
            self.shared.modify(regs::FCTRL, regs::FCTRL_MPE, 0);
        } else {
            self.shared.modify(regs::FCTRL, 0, regs::FCTRL_MPE);
        }
        self.shared.gate.set_filter_bits(regs::FCTRL_MPE, on);
    }

    /// Whether unicast promiscuous mode is on.
    pub fn is_promiscuous(&self) -> bool {
        self.shared.read(regs::FCTRL) & regs::FCTRL_UPE != 0
    }

    /// Reads the hardware counters (they clear on read), adds them to the totals kept since
    /// initialisation, and returns the totals.
    pub fn stats(&self) -> DeviceStats {
        crate::stats::update(&self.shared)
    }

    /// Where the device stands with respect to coordinated resets
    /// ([`crate::IxgbeParticipant`]).
    pub fn reset_state(&self) -> crate::ResetState {
        self.shared.gate.state()
    }

    /// What the reset participant did so far.
    pub fn reset_info(&self) -> crate::ResetInfo {
        self.shared.gate.snapshot()
    }

    /// Number of RX queues configured.
    pub fn rx_queue_count(&self) -> u16 {
        self.options.rx_queues
    }

    /// Number of TX queues configured.
    pub fn tx_queue_count(&self) -> u16 {
        self.options.tx_queues
    }

    /// The MSI-X vector of RX queue `queue`, when interrupts are enabled.
    pub fn rx_interrupt(&self, queue: u16) -> Option<&InterruptVector> {
        self.vectors.get(usize::from(queue))
    }

    /// Takes RX queue `queue` for the calling core. The handle is `!Send`: call this on the
    /// core that will poll the queue. Dropping the handle stops the queue
    /// (`RXDCTL.ENABLE` = 0) and returns its buffers to the pool.
    pub fn take_rx_queue(&self, queue: u16) -> Result<RxQueue<F>> {
        let ring =
            take(&self.rx_queues, queue).map_err(|reason| self.queue_error("RX", queue, reason))?;
        Ok(RxQueue::new(ring, CoreLocal::new()))
    }

    /// Takes TX queue `queue` for the calling core (see [`IxgbeDevice::take_rx_queue`]).
    /// Dropping the handle waits (with a deadline) for the device to finish the queue's
    /// descriptors, stops it and frees the buffers still held.
    pub fn take_tx_queue(&self, queue: u16) -> Result<TxQueue<F>> {
        let ring =
            take(&self.tx_queues, queue).map_err(|reason| self.queue_error("TX", queue, reason))?;
        Ok(TxQueue::new(ring, CoreLocal::new()))
    }

    fn queue_error(&self, direction: &'static str, queue: u16, reason: &'static str) -> Error {
        Error::Queue {
            device: self.shared.device,
            direction,
            queue,
            reason,
        }
    }
}

fn take<T>(slots: &Mutex<Vec<Option<T>>>, queue: u16) -> std::result::Result<T, &'static str> {
    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
    match slots.get_mut(usize::from(queue)) {
        None => Err("was not configured"),
        Some(slot) => slot.take().ok_or("was taken already"),
    }
}

impl<F: PciFunction> std::fmt::Debug for IxgbeDevice<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IxgbeDevice")
            .field("device", &self.shared.device)
            .field(
                "mac",
                &format_args!("{}", crate::link::MacDisplay(self.mac)),
            )
            .field("rx_queues", &self.options.rx_queues)
            .field("tx_queues", &self.options.tx_queues)
            .finish_non_exhaustive()
    }
}
