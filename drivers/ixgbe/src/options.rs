//! What the driver accepts: the 82599's PCI ids, the queue limits and the bring-up options.
//! A leaf apart from [`crate::spec`] (the ID table).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::dma::BufferPool;
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{ResetCause, ResetCoordinator, ResetRequest};

/// Intel's PCI vendor ID.
pub const INTEL_VENDOR_ID: u16 = 0x8086;

/// PCI device IDs of 82599 functions: [`crate::spec::ids::DEVICE_IDS_82599`] (Linux's
/// 82599 family), the IDs alone.
pub const IXGBE_82599_DEVICE_IDS: &[u16] = &crate::spec::ids::DEVICE_ID_VALUES_82599;

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
    /// Fail with [`Error::LinkDown`](crate::Error::LinkDown) when the link is not up by then (otherwise warn and go
    /// on: the link may come up later).
    pub require_link: bool,
    /// MSI-X interrupts for the RX queues and link changes; `None`: polling only.
    pub interrupts: Option<InterruptOptions>,
    /// A TX queue whose head (`TDH`) does not move for this long while it holds descriptors
    /// (and the link is up) is hung ([`crate::TxQueue::tx_batch`] watches it); `None`: no
    /// watch. Linux's watchdog needs two checks about 2 s apart; the default is 1 s. Keep it
    /// well above the device's legitimate pauses: a full packet buffer moves the head once
    /// per frame time, but received pause frames (flow control, not set up by this driver)
    /// stop transmission for up to 65535 quanta, 3.4 ms at 10 Gb/s, each.
    pub tx_hang_timeout: Option<Duration>,
    /// Who performs the reset a hung TX queue needs: normally the reset coordinator
    /// ([`ResetHandler::coordinator`]) with an [`crate::IxgbeParticipant`] registered for the
    /// device. `None`: the hang is counted and logged, nothing else.
    pub reset_handler: Option<ResetHandler>,
}

/// Where the driver sends the resets it finds it needs (a hung TX queue); see
/// [`IxgbeOptions::reset_handler`].
#[derive(Clone)]
pub struct ResetHandler(Arc<dyn Fn(PciAddress, ResetCause) -> bool + Send + Sync>);

impl ResetHandler {
    /// A handler from a function that returns whether it took care of the reset.
    pub fn new(handler: impl Fn(PciAddress, ResetCause) -> bool + Send + Sync + 'static) -> Self {
        ResetHandler(Arc::new(handler))
    }

    /// Sends every reset to `coordinator`, the scope left to its plan (FLR when the function
    /// has one: a TX hang is the function's own fault). The handler holds the coordinator
    /// weakly: the coordinator holds the participant, which holds the device, which holds
    /// this handler, and a strong reference would keep all of them alive for good. Once the
    /// coordinator is dropped the handler refuses.
    pub fn coordinator(coordinator: &Arc<ResetCoordinator>) -> Self {
        let coordinator = Arc::downgrade(coordinator);
        ResetHandler::new(move |device, cause| {
            let Some(coordinator) = coordinator.upgrade() else {
                tracing::error!(%device, ?cause, "reset coordinator gone: no reset");
                return false;
            };
            match coordinator.request(ResetRequest::new(device, cause)) {
                Ok(outcome) => outcome.report.all_recovered(),
                Err(err) => {
                    tracing::error!(%device, ?cause, %err, "reset coordinator refused the reset");
                    false
                }
            }
        })
    }

    pub(crate) fn call(&self, device: PciAddress, cause: ResetCause) -> bool {
        (self.0)(device, cause)
    }
}

impl fmt::Debug for ResetHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetHandler(..)")
    }
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
            tx_hang_timeout: Some(Duration::from_secs(1)),
            reset_handler: None,
        }
    }
}
