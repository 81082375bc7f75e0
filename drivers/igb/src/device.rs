//! The device handle: bring-up in the datasheet's order, and what it hands out.
//!
//! [`IgbDevice::new`] runs the 82576's initialisation (datasheet 4.5, steps in
//! [`crate::init`]) and leaves every configured queue running with its ring filled. The
//! queues are then taken, one per core, with [`IgbDevice::take_rx_queue`] /
//! [`IgbDevice::take_tx_queue`] *on the core that will use them*: the handles are `!Send`
//! ([`CoreLocal`]), the device is `Send + Sync` (share it in an `Arc`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt};
use userpci_framework::dma::BufferPool;
use userpci_framework::pci::PciAddress;
use userpci_framework::runtime::CoreLocal;
use userpci_intel_ring::{RxRing, TxRing};

use crate::counters::DeviceStats;
use crate::error::{Error, Result};
use crate::gate::{ResetInfo, ResetState};
use crate::init::{drop_when_full, promisc_bits, Hw, Restore};
use crate::link::LinkStatus;
use crate::options::{validate, IgbOptions};
use crate::rx::{RxPart, RxQueue};
use crate::shared::Shared;
use crate::spec::regs;
use crate::tx::{TxPart, TxQueue};

/// Intel's PCI vendor ID.
pub const INTEL_VENDOR_ID: u16 = 0x8086;

/// PCI device IDs of 82576 functions (Linux `e1000_hw.h`, `E1000_DEV_ID_82576*`; QEMU's
/// `-device igb` is 0x10C9).
pub const IGB_82576_DEVICE_IDS: &[u16] = &[
    0x10C9, // 82576 (copper)
    0x10E6, // fiber
    0x10E7, // SerDes
    0x10E8, // quad copper
    0x1526, // quad copper ET2
    0x150A, // NS (copper)
    0x1518, // NS SerDes
    0x150D, // SerDes quad
];

/// The 82576 IDs whose link is a copper PHY behind `MDIC` (the others are fiber / SerDes,
/// whose link the PCS negotiates; the driver then only sets `CTRL.SLU`).
pub const IGB_82576_COPPER_IDS: &[u16] = &[0x10C9, 0x10E8, 0x1526, 0x150A];

/// An initialised 82576 function. `Send + Sync`; its queues are taken one per core.
pub struct IgbDevice<F: PciFunction> {
    shared: Arc<Shared<F>>,
    pool: Arc<BufferPool>,
    mac: [u8; 6],
    device_id: u16,
    rx_parts: Mutex<Vec<Option<RxPart<F>>>>,
    tx_parts: Mutex<Vec<Option<TxPart<F>>>>,
    vectors: Vec<InterruptVector>,
    options: IgbOptions,
    /// Bus addresses of the descriptor rings, per queue: a recovery programs the same rings.
    rx_ring_iovas: Vec<u64>,
    tx_ring_iovas: Vec<u64>,
}

impl<F: PciFunction> IgbDevice<F> {
    /// Resets and initialises the function (datasheet 4.5) and starts its queues.
    pub fn new(function: F, mut options: IgbOptions) -> Result<Self> {
        let device = function.address();
        validate(device, &options)?;
        let (vendor, device_id) = function.ids()?;
        if vendor != INTEL_VENDOR_ID || !IGB_82576_DEVICE_IDS.contains(&device_id) {
            return Err(Error::NotIgb {
                device,
                vendor,
                device_id,
            });
        }
        function.set_bus_master(true)?;
        let regs = function.map_bar(0)?;
        let promisc = promisc_bits(options.promiscuous);
        let shared = Arc::new(Shared::new(function, regs, promisc));
        let hw = Hw { s: &shared };
        tracing::info!(%device, device_id, "resetting 82576");

        // 4.5.4 / 4.5.5: interrupts off, global reset, EEPROM auto-read.
        hw.global_reset()?;
        // 4.5.7: link setup (auto-negotiation runs while the rest is configured).
        setup_link(&shared, device_id)?;
        // 4.5.8: the statistics clear on read: read them all once.
        crate::stats::clear(&shared);
        // The MAC address the EEPROM loaded into receive address 0; the other filters
        // cleared.
        let mac = hw.read_mac()?;
        hw.program_addresses(mac);

        let pool = match options.pool.take() {
            Some(pool) => pool,
            None => create_pool(&shared, &options)?,
        };
        // 7.3: MSI-X, one vector per RX queue (optional).
        let vectors = match options.interrupts {
            Some(irq) => crate::irq::init_msix(&shared, options.rx_queues, irq.itr_us)?,
            None => Vec::new(),
        };
        // 4.5.9: receive.
        hw.rx_common(&options, promisc);
        let mut rx = Vec::with_capacity(usize::from(options.rx_queues));
        for q in 0..options.rx_queues {
            rx.push(start_rx_queue(&shared, &options, &pool, &vectors, q)?);
        }
        hw.start_rx(promisc);
        // 4.5.10: transmit.
        let mut tx = Vec::with_capacity(usize::from(options.tx_queues));
        for q in 0..options.tx_queues {
            tx.push(start_tx_queue(&shared, &options, q)?);
        }
        hw.start_tx();
        hw.driver_loaded();

        // 4.5.7: the link, with a deadline.
        match crate::link::wait(&shared, options.link_timeout) {
            Ok(link) => tracing::info!(%device, %link, "link up"),
            Err(err) if !options.require_link => {
                tracing::warn!(%device, %err, "link not up yet; continuing");
            }
            Err(err) => return Err(err),
        }

        options.pool = Some(Arc::clone(&pool));
        Ok(IgbDevice {
            rx_ring_iovas: rx.iter().map(|p| p.ring.iova()).collect(),
            tx_ring_iovas: tx.iter().map(|p| p.ring.iova()).collect(),
            rx_parts: Mutex::new(rx.into_iter().map(Some).collect()),
            tx_parts: Mutex::new(tx.into_iter().map(Some).collect()),
            shared,
            pool,
            mac,
            device_id,
            vectors,
            options,
        })
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.shared.device
    }

    /// The function.
    pub fn function(&self) -> &F {
        &self.shared.function
    }

    /// The PCI device ID.
    pub fn device_id(&self) -> u16 {
        self.device_id
    }

    /// The options the device was brought up with (`pool` is the pool in use).
    pub fn options(&self) -> &IgbOptions {
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

    /// Link state and speed from `STATUS`.
    pub fn link(&self) -> LinkStatus {
        crate::link::read(&self.shared)
    }

    /// Waits for the link to come up, at most `timeout` (polled on the function's clock).
    pub fn wait_for_link(&self, timeout: Duration) -> Result<LinkStatus> {
        crate::link::wait(&self.shared, timeout)
    }

    /// Unicast and multicast promiscuous mode on or off (`RCTL.UPE`, `RCTL.MPE`).
    pub fn set_promiscuous(&self, on: bool) {
        let bits = regs::RCTL_UPE | regs::RCTL_MPE;
        self.set_rctl_bits(bits, on);
        tracing::debug!(device = %self.shared.device, on, "promiscuous mode");
    }

    /// Multicast promiscuous mode alone (`RCTL.MPE`): accept every multicast frame.
    pub fn set_multicast_promiscuous(&self, on: bool) {
        self.set_rctl_bits(regs::RCTL_MPE, on);
    }

    fn set_rctl_bits(&self, bits: u32, on: bool) {
        if on {
            self.shared.modify(regs::RCTL, bits, 0);
        } else {
            self.shared.modify(regs::RCTL, 0, bits);
        }
        self.shared.gate.set_filter_bits(bits, on);
    }

    /// Whether unicast promiscuous mode is on.
    pub fn is_promiscuous(&self) -> bool {
        self.shared.read(regs::RCTL) & regs::RCTL_UPE != 0
    }

    /// Reads the hardware counters (they clear on read), adds them to the totals kept since
    /// initialisation, and returns the totals.
    pub fn stats(&self) -> DeviceStats {
        crate::stats::update(&self.shared)
    }

    /// Reads a BAR0 register, for diagnostics and tests (the driver's own accesses go through
    /// its typed paths).
    pub fn read_register(&self, offset: usize) -> u32 {
        self.shared.read(offset)
    }

    /// Where the device stands with respect to coordinated resets.
    pub fn reset_state(&self) -> ResetState {
        self.shared.gate.state()
    }

    /// What the reset participant did so far.
    pub fn reset_info(&self) -> ResetInfo {
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
        let part = take(&self.rx_parts, queue).map_err(|r| self.queue_error("RX", queue, r))?;
        Ok(RxQueue::new(part, CoreLocal::new()))
    }

    /// Takes TX queue `queue` for the calling core (see [`IgbDevice::take_rx_queue`]).
    /// Dropping the handle waits (with a deadline) for the device to finish the queue's
    /// descriptors, stops it and frees the buffers still held.
    pub fn take_tx_queue(&self, queue: u16) -> Result<TxQueue<F>> {
        let part = take(&self.tx_parts, queue).map_err(|r| self.queue_error("TX", queue, r))?;
        Ok(TxQueue::new(part, CoreLocal::new()))
    }

    fn queue_error(&self, direction: &'static str, queue: u16, reason: &'static str) -> Error {
        Error::Queue {
            device: self.shared.device,
            direction,
            queue,
            reason,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<F>> {
        &self.shared
    }

    /// After a reset: the datasheet's initialisation again on the same rings
    /// ([`crate::init::reinit`]), link setup included; RX rings still held here are refilled
    /// for `generation` (the taken ones by their core on its next call). The wait for the
    /// link is the caller's.
    pub(crate) fn reinit(&self, generation: u64) -> Result<()> {
        let restore = Restore {
            options: &self.options,
            mac: self.mac,
            buffer_size: self.pool.buffer_size(),
            rx_ring_iovas: &self.rx_ring_iovas,
            tx_ring_iovas: &self.tx_ring_iovas,
        };
        crate::init::reinit(&self.shared, &restore, |s| setup_link(s, self.device_id))?;
        let mut parts = self.rx_parts.lock().unwrap_or_else(|e| e.into_inner());
        for part in parts.iter_mut().flatten() {
            part.restart(generation);
        }
        Ok(())
    }
}

impl<F: PciFunction> Drop for IgbDevice<F> {
    /// Stops the queues still held here (each ring waits for its queue to stop before its
    /// buffers go back to the pool), then the receiver and transmitter, masks every
    /// interrupt and tells the firmware the driver is gone (`CTRL_EXT.DRV_LOAD`). Queues
    /// taken by cores stop when their handles drop.
    fn drop(&mut self) {
        self.rx_parts
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.tx_parts
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let s = &self.shared;
        if s.read(regs::STATUS) == u32::MAX {
            return; // gone: nothing to stop
        }
        Hw { s }.mask_interrupts();
        s.modify(regs::RCTL, 0, regs::RCTL_EN);
        s.modify(regs::TCTL, 0, regs::TCTL_EN);
        s.modify(regs::CTRL_EXT, 0, regs::CTRL_EXT_DRV_LOAD);
    }
}

/// 4.5.7 for this part: copper through the PHY, or fiber / SerDes (`CTRL.SLU` only).
fn setup_link<F: PciFunction>(s: &Shared<F>, device_id: u16) -> Result<()> {
    if IGB_82576_COPPER_IDS.contains(&device_id) {
        crate::link::setup(s)
    } else {
        let ctrl = s.read(regs::CTRL);
        s.write(regs::CTRL, crate::link::ctrl_for_copper_link(ctrl));
        Ok(())
    }
}

/// 4.5.9 for one queue: the ring allocated and programmed, filled, the queue enabled, the
/// ring handed to the device (`RDT`).
fn start_rx_queue<F: PciFunction>(
    s: &Arc<Shared<F>>,
    o: &IgbOptions,
    pool: &Arc<BufferPool>,
    vectors: &[InterruptVector],
    queue: u16,
) -> Result<RxPart<F>> {
    let hw = Hw { s };
    let q = usize::from(queue);
    let config = crate::rx::ring_config(s, queue, o.rx_ring_size);
    let mut ring = RxRing::new(
        s.function.dma_space(),
        s.regs.clone(),
        config,
        Arc::clone(pool),
    )?;
    hw.program_rx_ring(
        q,
        ring.iova(),
        o.rx_ring_size,
        pool.buffer_size(),
        drop_when_full(o.rx_queues),
    )?;
    let filled = ring.fill();
    if filled < o.rx_ring_size - 1 {
        return Err(Error::PoolExhausted {
            device: s.device,
            queue,
            pool: pool.name().to_string(),
            filled,
            needed: o.rx_ring_size - 1,
        });
    }
    hw.enable_rx_queue(q)?;
    ring.publish(filled);
    let irq = vectors
        .get(q)
        .map(|v| (v.clone(), crate::irq::vector_bit(queue)));
    Ok(RxPart {
        shared: Arc::clone(s),
        ring,
        irq,
        generation: s.gate.generation(),
    })
}

/// 4.5.10 for one queue: the ring allocated and programmed, the queue enabled.
fn start_tx_queue<F: PciFunction>(
    s: &Arc<Shared<F>>,
    o: &IgbOptions,
    queue: u16,
) -> Result<TxPart<F>> {
    let hw = Hw { s };
    let q = usize::from(queue);
    let config = crate::tx::ring_config(s, queue, o.tx_ring_size);
    let ring = TxRing::new(s.function.dma_space(), s.regs.clone(), config)?;
    hw.program_tx_ring(q, ring.iova(), o.tx_ring_size)?;
    hw.enable_tx_queue(q)?;
    Ok(TxPart {
        shared: Arc::clone(s),
        ring,
    })
}

/// A pool for every ring plus as much again for buffers in the application's hands, plus
/// a cache's worth and a refill batch for each queue's core.
fn create_pool<F: PciFunction>(s: &Shared<F>, o: &IgbOptions) -> Result<Arc<BufferPool>> {
    let rings =
        usize::from(o.rx_queues) * o.rx_ring_size + usize::from(o.tx_queues) * o.tx_ring_size;
    let cores = usize::from(o.rx_queues) + usize::from(o.tx_queues) + 1;
    let count = 2 * rings + cores * (o.pool_cache + userpci_intel_ring::RX_REFILL_BATCH);
    let name = format!("igb {} packets", s.device);
    Ok(BufferPool::new(
        s.function.dma_space(),
        &name,
        o.buffer_size,
        count,
        o.pool_cache,
    )?)
}

fn take<T>(slots: &Mutex<Vec<Option<T>>>, queue: u16) -> std::result::Result<T, &'static str> {
    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
    match slots.get_mut(usize::from(queue)) {
        None => Err("was not configured"),
        Some(slot) => slot.take().ok_or("was taken already"),
    }
}

impl<F: PciFunction> std::fmt::Debug for IgbDevice<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgbDevice")
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
