//! The device handle: options, bring-up, and what is shared with the queues.
//!
//! [`IxgbeDevice::new`] runs the datasheet's initialisation ([`crate::init`]) and leaves every
//! configured queue running with its ring filled. The queues are then taken, one per core,
//! with [`IxgbeDevice::take_rx_queue`] / [`IxgbeDevice::take_tx_queue`] *on the core that will
//! use them*: the handles are `!Send` ([`CoreLocal`]), the device is `Send + Sync` (share it
//! in an `Arc`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use userpci_framework::device::{InterruptVector, PciFunction};
use userpci_framework::dma::BufferPool;
use userpci_framework::pci::PciAddress;
use userpci_framework::runtime::CoreLocal;

use crate::error::{Error, Result};
use crate::gate::{ResetInfo, ResetState};
use crate::init::DeviceParts;
use crate::link::{LinkStatus, MacDisplay};
use crate::options::IxgbeOptions;
use crate::rx::RxQueue;
use crate::spec::regs;
use crate::stats::DeviceStats;
use crate::tx::TxQueue;

/// An initialised 82599 function. `Send + Sync`; its queues are taken one per core.
pub struct IxgbeDevice<F: PciFunction> {
    /// What bring-up built: the shared state, the pool, the queues not taken yet.
    pub(crate) parts: DeviceParts<F>,
}

impl<F: PciFunction> IxgbeDevice<F> {
    /// Resets and initialises the function (datasheet 4.6, see [`crate::init`]) and starts
    /// its queues.
    pub fn new(function: F, options: IxgbeOptions) -> Result<Self> {
        Ok(IxgbeDevice {
            parts: crate::init::bring_up(function, options)?,
        })
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.parts.shared.device
    }

    /// The function.
    pub fn function(&self) -> &F {
        &self.parts.shared.function
    }

    /// The options the device was brought up with (`pool` is the pool in use).
    pub fn options(&self) -> &IxgbeOptions {
        &self.parts.options
    }

    /// The pool the RX rings are filled from (also fine for TX buffers).
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.parts.pool
    }

    /// The MAC address, read from `RAL(0)` / `RAH(0)` (loaded from the EEPROM at reset).
    pub fn mac_address(&self) -> [u8; 6] {
        self.parts.mac
    }

    /// Link state and speed from `LINKS`.
    pub fn link(&self) -> LinkStatus {
        crate::link::read(&self.parts.shared)
    }

    /// Waits for the link to come up, at most `timeout` (polled on the function's clock).
    pub fn wait_for_link(&self, timeout: Duration) -> Result<LinkStatus> {
        crate::link::wait(&self.parts.shared, timeout)
    }

    /// Unicast and multicast promiscuous mode on or off (`FCTRL.UPE`, `FCTRL.MPE`).
    pub fn set_promiscuous(&self, on: bool) {
        let bits = regs::FCTRL_UPE | regs::FCTRL_MPE;
        if on {
            self.parts.shared.modify(regs::FCTRL, bits, 0);
        } else {
            self.parts.shared.modify(regs::FCTRL, 0, bits);
        }
        self.parts.shared.gate.set_filter_bits(bits, on);
        tracing::debug!(device = %self.parts.shared.device, on, "promiscuous mode");
    }

    /// Multicast promiscuous mode alone (`FCTRL.MPE`): accept every multicast frame.
    pub fn set_multicast_promiscuous(&self, on: bool) {
        if on {
            self.parts.shared.modify(regs::FCTRL, regs::FCTRL_MPE, 0);
        } else {
            self.parts.shared.modify(regs::FCTRL, 0, regs::FCTRL_MPE);
        }
        self.parts.shared.gate.set_filter_bits(regs::FCTRL_MPE, on);
    }

    /// Whether unicast promiscuous mode is on.
    pub fn is_promiscuous(&self) -> bool {
        self.parts.shared.read(regs::FCTRL) & regs::FCTRL_UPE != 0
    }

    /// Reads the hardware counters (they clear on read), adds them to the totals kept since
    /// initialisation, and returns the totals.
    pub fn stats(&self) -> DeviceStats {
        self.parts.shared.update_stats()
    }

    /// Where the device stands with respect to coordinated resets
    /// ([`crate::IxgbeParticipant`]).
    pub fn reset_state(&self) -> ResetState {
        self.parts.shared.gate.state()
    }

    /// What the reset participant did so far.
    pub fn reset_info(&self) -> ResetInfo {
        self.parts.shared.gate.snapshot()
    }

    /// Number of RX queues configured.
    pub fn rx_queue_count(&self) -> u16 {
        self.parts.options.rx_queues
    }

    /// Number of TX queues configured.
    pub fn tx_queue_count(&self) -> u16 {
        self.parts.options.tx_queues
    }

    /// The MSI-X vector of RX queue `queue`, when interrupts are enabled.
    pub fn rx_interrupt(&self, queue: u16) -> Option<&InterruptVector> {
        self.parts.msix.as_ref()?.rx.get(usize::from(queue))
    }

    /// The MSI-X vector that signals link changes (`EICR.LSC`), when the device was brought
    /// up with interrupts (it is the vector after the RX queues'). Watch it (for instance
    /// with the runtime's `InterruptWaiter`) and call [`IxgbeDevice::poll_link_change`] when
    /// it fires.
    pub fn link_interrupt(&self) -> Option<&InterruptVector> {
        self.parts.msix.as_ref()?.link.as_ref()
    }

    /// Learns what the link did since the last look.
    ///
    /// With a link vector ([`IxgbeDevice::link_interrupt`]) from the interrupt cause: `EICR`
    /// is looked at through `EICS` (nothing cleared), and only when `LSC` is set is it cleared
    /// and `LINKS` read: `Some(status)`, even when it is the status seen before (the link went
    /// down and up in between). Without interrupts, the fallback, by polling: `LINKS` is read
    /// and `Some(status)` returned when it differs from the status last seen. `None` while
    /// the device is being reset. Updates [`IxgbeDevice::link_state`] and
    /// [`IxgbeDevice::link_changes`].
    pub fn poll_link_change(&self) -> Option<LinkStatus> {
        let shared = &self.parts.shared;
        shared.gate.enter()?;
        let lsc = self.link_interrupt().is_some();
        let change = crate::link::poll_change(shared, lsc);
        shared.gate.exit();
        change
    }

    /// The link as the driver last learned it (at bring-up, by
    /// [`IxgbeDevice::poll_link_change`]), without touching the device. [`IxgbeDevice::link`]
    /// reads `LINKS` instead.
    pub fn link_state(&self) -> LinkStatus {
        crate::link::seen(&self.parts.shared)
    }

    /// Link changes [`IxgbeDevice::poll_link_change`] learned.
    pub fn link_changes(&self) -> u64 {
        self.parts
            .shared
            .link_changes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes RX queue `queue` for the calling core. The handle is `!Send`: call this on the
    /// core that will poll the queue. Dropping the handle stops the queue
    /// (`RXDCTL.ENABLE` = 0) and returns its buffers to the pool.
    pub fn take_rx_queue(&self, queue: u16) -> Result<RxQueue<F>> {
        let ring = take(&self.parts.rx_queues, queue)
            .map_err(|reason| self.queue_error("RX", queue, reason))?;
        Ok(RxQueue::new(ring, CoreLocal::new()))
    }

    /// Takes TX queue `queue` for the calling core (see [`IxgbeDevice::take_rx_queue`]).
    /// Dropping the handle waits (with a deadline) for the device to finish the queue's
    /// descriptors, stops it and frees the buffers still held.
    pub fn take_tx_queue(&self, queue: u16) -> Result<TxQueue<F>> {
        let ring = take(&self.parts.tx_queues, queue)
            .map_err(|reason| self.queue_error("TX", queue, reason))?;
        Ok(TxQueue::new(ring, CoreLocal::new()))
    }

    fn queue_error(&self, direction: &'static str, queue: u16, reason: &'static str) -> Error {
        Error::Queue {
            device: self.parts.shared.device,
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
            .field("device", &self.parts.shared.device)
            .field("mac", &format_args!("{}", MacDisplay(self.parts.mac)))
            .field("rx_queues", &self.parts.options.rx_queues)
            .field("tx_queues", &self.parts.options.tx_queues)
            .finish_non_exhaustive()
    }
}
