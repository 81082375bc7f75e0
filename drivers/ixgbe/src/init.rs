//! Bring-up, in the order of the datasheet's section 4.6 "Software Initialization and
//! Diagnostics" (82599 datasheet rev. 3.x), read top to bottom in `bring_up`.
//!
//! Every register poll has a deadline on the function's clock and fails with
//! [`Error::Init`] naming the step; nothing waits forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::atomic::{AtomicU32, AtomicU64};
use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt};
use userpci_framework::dma::BufferPool;
use userpci_framework::pci::PciAddress;
use userpci_framework::time::poll_until;

use userpci_intel_ring::{RxRing, TxRing};

use crate::error::{Error, Result};
use crate::gate::ResetGate;
use crate::irq::Msix;
use crate::options::{IxgbeOptions, INTEL_VENDOR_ID, IXGBE_82599_DEVICE_IDS, MAX_QUEUES};
use crate::rx::{self, RxParts};
use crate::shared::Shared;
use crate::spec::desc::{DESC_SIZE, RING_ALIGN_DESCS};
use crate::spec::queue::{self as qreg, srrctl_bsizepacket, txdctl_thresholds};
use crate::spec::regs;
use crate::tx::{self, TxParts};

/// 4.6.3.2: "wait at least 10 ms after setting CTRL.RST before checking it".
pub const RESET_SETTLE: Duration = Duration::from_millis(10);
/// Deadline for `CTRL.RST` to clear after that wait.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for pending master requests before a reset (Linux: 800 polls of 100 µs).
pub const MASTER_DISABLE_TIMEOUT: Duration = Duration::from_millis(80);
/// Deadline for `EEC.ARD` (EEPROM auto-read done).
pub const EEPROM_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for `RDRXCTL.DMAIDONE`.
pub const DMA_INIT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for `RXDCTL.ENABLE` / `TXDCTL.ENABLE` to read back 1.
pub const QUEUE_ENABLE_TIMEOUT: Duration = Duration::from_millis(100);

/// `TXDCTL` thresholds (7.2.3.4.1, 7.2.3.5): DPDK's defaults, which ixy uses too: prefetch
/// when 36 descriptors are free and at least 8 are valid, write back every 4
/// ([`tx::TX_WTHRESH`], which the idle poll needs to know).
const TX_PTHRESH: u32 = 36;
const TX_HTHRESH: u32 = 8;

/// The RSS hash key: the one of Microsoft's RSS verification suite, so hashes can be checked
/// against its published examples.
pub const RSS_KEY: [u8; regs::RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The hash fields RSS uses: addresses and TCP / UDP ports of IPv4 and IPv6.
pub const MRQC_RSS_FIELDS: u32 = regs::MRQC_RSS_FIELD_IPV4
    | regs::MRQC_RSS_FIELD_IPV4_TCP
    | regs::MRQC_RSS_FIELD_IPV4_UDP
    | regs::MRQC_RSS_FIELD_IPV6
    | regs::MRQC_RSS_FIELD_IPV6_TCP
    | regs::MRQC_RSS_FIELD_IPV6_UDP;

/// Everything bring-up builds: what the device handle ([`crate::IxgbeDevice`]) holds.
pub(crate) struct DeviceParts<F: PciFunction> {
    pub(crate) shared: Arc<Shared<F>>,
    pub(crate) pool: Arc<BufferPool>,
    pub(crate) mac: [u8; 6],
    pub(crate) rx_queues: Mutex<Vec<Option<RxParts<F>>>>,
    pub(crate) tx_queues: Mutex<Vec<Option<TxParts<F>>>>,
    /// The MSI-X vectors and their layout (interrupt mode).
    pub(crate) msix: Option<Msix>,
    pub(crate) options: IxgbeOptions,
    /// Bus addresses of the RX and TX descriptor rings, per queue: a recovery after a reset
    /// programs the same rings again.
    pub(crate) rx_ring_iovas: Vec<u64>,
    pub(crate) tx_ring_iovas: Vec<u64>,
}

/// Resets and initialises the function; see the module documentation.
pub(crate) fn bring_up<F: PciFunction>(
    function: F,
    mut options: IxgbeOptions,
) -> Result<DeviceParts<F>> {
    let device = function.address();
    validate(device, &options)?;
    let (vendor, device_id) = function.ids()?;
    if vendor != INTEL_VENDOR_ID || !IXGBE_82599_DEVICE_IDS.contains(&device_id) {
        return Err(Error::NotIxgbe {
            device,
            vendor,
            device_id,
        });
    }
    function.set_bus_master(true)?;
    let regs = function.map_bar(0)?;
    let shared = Arc::new(Shared {
        function,
        regs,
        device,
        counters: Mutex::default(),
        gate: ResetGate::new(if options.promiscuous {
            regs::FCTRL_UPE | regs::FCTRL_MPE
        } else {
            0
        }),
        reset_handler: options.reset_handler.clone(),
        link_seen: AtomicU32::new(0),
        link_changes: AtomicU64::new(0),
    });
    let hw = Hw { s: &shared };
    let name = crate::spec::ids::device_name(device_id).unwrap_or("82599");
    tracing::info!(%device, device_id = %format_args!("{device_id:#06x}"), name, "resetting 82599");

    // 4.6.3.1: disable interrupts (mask every cause).
    hw.s.write(regs::EIMC, regs::EIMC_ALL);
    // 5.2.5.3.2: stop DMA before the reset (master disable, wait for pending requests).
    hw.master_disable();
    // 4.6.3.2: global reset (device and link), wait for it to clear.
    hw.global_reset()?;
    // 4.6.3.1: disable interrupts again after the reset.
    hw.s.write(regs::EIMC, regs::EIMC_ALL);
    // 4.6.3: wait for the EEPROM auto-read, then for the DMA initialisation.
    hw.wait_set(
        regs::EEC,
        regs::EEC_ARD,
        EEPROM_TIMEOUT,
        "4.6.3 EEC.ARD=1 (EEPROM auto-read done)",
    )?;
    hw.wait_set(
        qreg::RDRXCTL,
        qreg::RDRXCTL_DMAIDONE,
        DMA_INIT_TIMEOUT,
        "4.6.3 RDRXCTL.DMAIDONE=1 (DMA init done)",
    )?;
    // 4.6.4: link setup (the wait for it comes last, so it overlaps the rest).
    crate::link::setup(&shared);
    // 4.6.5: statistics, clear-on-read: read them all once.
    shared.clear_stats();
    // The MAC address the EEPROM loaded into receive address 0.
    let mac = regs::mac_from_ral_rah(shared.read(regs::RAL(0)), shared.read(regs::RAH(0)));

    let pool = match options.pool.take() {
        Some(pool) => pool,
        None => create_pool(&shared, &options)?,
    };

    // 4.6.3 last step / 7.3: MSI-X, one vector per RX queue and one for link changes
    // (optional).
    let msix = match options.interrupts {
        Some(irq) => Some(crate::irq::init_msix(
            &shared,
            options.rx_queues,
            irq.itr_us,
        )?),
        None => None,
    };
    let vectors = msix.as_ref().map_or(&[][..], |m| &m.rx[..]);
    // 4.6.7: receive.
    let mut rx = hw.init_rx(&options, &pool, vectors)?;
    // 4.6.8: transmit.
    let mut tx = hw.init_tx(&options)?;
    // 4.6.7.1 / 4.6.8.1: fill the rings, enable the queues.
    for ring in &mut rx {
        hw.start_rx_queue(ring)?;
    }
    for ring in &tx {
        hw.start_tx_queue(ring.ring.queue())?;
    }
    // 4.6.7: enable the receiver once its queues are ready.
    shared.modify(qreg::RXCTRL, qreg::RXCTRL_RXEN, 0);
    // 8.2.3.7.1: promiscuous mode (unicast and multicast) as asked.
    let promisc = regs::FCTRL_UPE | regs::FCTRL_MPE;
    if options.promiscuous {
        shared.modify(regs::FCTRL, promisc, 0);
    } else {
        shared.modify(regs::FCTRL, 0, promisc);
    }
    // 8.2.3.1.3: tell the firmware a driver has taken the device.
    shared.modify(regs::CTRL_EXT, regs::CTRL_EXT_DRV_LOAD, 0);

    // 4.6.4: the link, with a deadline.
    match crate::link::wait(&shared, options.link_timeout) {
        Ok(link) => tracing::info!(%device, %link, "link up"),
        Err(err) if !options.require_link => {
            tracing::warn!(%device, %err, "link not up yet; continuing");
        }
        Err(err) => return Err(err),
    }
    // What the link did during bring-up is not a change to report: the status it ended in
    // is where `poll_link_change` starts.
    if msix.as_ref().is_some_and(|m| m.link.is_some()) {
        shared.write(regs::EICR, regs::EICR_LSC);
    }
    crate::link::remember(&shared);

    options.pool = Some(Arc::clone(&pool));
    let rx_ring_iovas = rx.iter().map(|r| r.ring.iova()).collect();
    let tx_ring_iovas = tx.iter().map(|r| r.ring.iova()).collect();
    Ok(DeviceParts {
        rx_ring_iovas,
        tx_ring_iovas,
        rx_queues: Mutex::new(rx.drain(..).map(Some).collect()),
        tx_queues: Mutex::new(tx.drain(..).map(Some).collect()),
        shared,
        pool,
        mac,
        msix,
        options,
    })
}

fn validate(device: PciAddress, o: &IxgbeOptions) -> Result<()> {
    let invalid = |what, value: u64, expected| Error::InvalidOption {
        device,
        what,
        value,
        expected,
    };
    for (what, n) in [
        ("RX queue count", o.rx_queues),
        ("TX queue count", o.tx_queues),
    ] {
        if n == 0 || n > MAX_QUEUES {
            return Err(invalid(what, n.into(), "1..=16"));
        }
    }
    for (what, n) in [
        ("RX ring size", o.rx_ring_size),
        ("TX ring size", o.tx_ring_size),
    ] {
        if !n.is_power_of_two() || !(RING_ALIGN_DESCS..=4096).contains(&n) {
            return Err(invalid(what, n as u64, "a power of two in 8..=4096"));
        }
    }
    // SRRCTL.BSIZEPACKET is in KiB: a buffer holds at least 1 KiB.
    let buffer_size = o.pool.as_ref().map_or(o.buffer_size, |p| p.buffer_size());
    if buffer_size < 1024 {
        return Err(invalid("buffer size", buffer_size as u64, "at least 1024"));
    }
    Ok(())
}

/// A pool for every ring plus as much again for buffers in the application's hands, plus
/// a cache's worth for each queue's core.
fn create_pool<F: PciFunction>(shared: &Shared<F>, o: &IxgbeOptions) -> Result<Arc<BufferPool>> {
    let rings =
        usize::from(o.rx_queues) * o.rx_ring_size + usize::from(o.tx_queues) * o.tx_ring_size;
    let cores = usize::from(o.rx_queues) + usize::from(o.tx_queues) + 1;
    let count = 2 * rings + cores * o.pool_cache;
    let name = format!("ixgbe {} packets", shared.device);
    Ok(BufferPool::new(
        shared.function.dma_space(),
        &name,
        o.buffer_size,
        count,
        o.pool_cache,
    )?)
}

/// The bring-up steps, on the shared device state.
struct Hw<'a, F: PciFunction> {
    s: &'a Arc<Shared<F>>,
}

impl<F: PciFunction> Hw<'_, F> {
    /// Polls until `reg & mask == mask`; a register reading all ones is a gone device.
    fn wait_set(&self, reg: usize, mask: u32, timeout: Duration, step: &'static str) -> Result<()> {
        self.wait(reg, timeout, step, |v| v & mask == mask)
    }

    fn wait(
        &self,
        reg: usize,
        timeout: Duration,
        step: &'static str,
        done: impl Fn(u32) -> bool,
    ) -> Result<()> {
        let s = self.s;
        poll_until(s.clock(), s.device, step, timeout, || {
            let v = s.read(reg);
            if v == u32::MAX {
                return Err(userpci_framework::Error::DeviceGone { device: s.device });
            }
            Ok(done(v).then_some(()))
        })
        .map_err(|source| Error::Init {
            device: s.device,
            step,
            source,
        })
    }

    /// 5.2.5.3.2: `CTRL.PCIE_MASTER_DISABLE`, then wait for
    /// `STATUS.PCIE_MASTER_ENABLE_STATUS` to clear. Like Linux, a timeout only warns: the
    /// global reset that follows stops the DMA engines anyway.
    fn master_disable(&self) {
        self.s.modify(regs::CTRL, regs::CTRL_PCIE_MASTER_DISABLE, 0);
        let pending = self.wait(
            regs::STATUS,
            MASTER_DISABLE_TIMEOUT,
            "5.2.5.3.2 STATUS.PCIE_MASTER_ENABLE_STATUS=0",
            |v| v & regs::STATUS_PCIE_MASTER_ENABLE_STATUS == 0,
        );
        if let Err(err) = pending {
            tracing::warn!(device = %self.s.device, %err, "master requests still pending; resetting anyway");
        }
    }

    /// 4.6.3.2: set `CTRL.RST | CTRL.LRST`, wait the mandated 10 ms, then until both clear.
    fn global_reset(&self) -> Result<()> {
        let ctrl = self.s.read(regs::CTRL);
        self.s.write(regs::CTRL, ctrl | regs::CTRL_RST_MASK);
        self.s.clock().sleep(RESET_SETTLE);
        self.wait(
            regs::CTRL,
            RESET_TIMEOUT,
            "4.6.3.2 CTRL.RST=0 and CTRL.LRST=0 (global reset done)",
            |v| v & regs::CTRL_RST_MASK == 0,
        )
    }

    /// 4.6.7 Receive Initialization, up to (not including) the queue enable.
    fn init_rx(
        &self,
        o: &IxgbeOptions,
        pool: &Arc<BufferPool>,
        vectors: &[InterruptVector],
    ) -> Result<Vec<RxParts<F>>> {
        self.rx_common(o);
        let mut rings = Vec::with_capacity(usize::from(o.rx_queues));
        for q in 0..o.rx_queues {
            let i = usize::from(q);
            // 7.1.9: the descriptor ring (page aligned, so 128-byte aligned).
            let ring = RxRing::new(
                self.s.function.dma_space(),
                self.s.regs.clone(),
                rx::ring_config(self.s, q, o.rx_ring_size),
                Arc::clone(pool),
            )?;
            self.program_rx_ring(i, ring.iova(), o.rx_ring_size, pool.buffer_size());
            let irq = vectors.get(i).map(|v| (v.clone(), 1u32 << i));
            rings.push(RxParts {
                shared: Arc::clone(self.s),
                ring,
                irq,
                generation: 0,
            });
        }
        self.rx_finish(o);
        Ok(rings)
    }

    /// 4.6.7, the device-wide part before the queues.
    fn rx_common(&self, o: &IxgbeOptions) {
        let s = self.s;
        // Receive off while it is being configured.
        s.modify(qreg::RXCTRL, 0, qreg::RXCTRL_RXEN);
        // 4.6.11.3.4 (DCB off): the whole packet buffer to PB0.
        s.write(qreg::RXPBSIZE(0), qreg::RXPBSIZE_512KB);
        for i in 1..8 {
            s.write(qreg::RXPBSIZE(i), 0);
        }
        // CRC strip, in both places that must agree (HLREG0 and RDRXCTL); RDRXCTL's RSC bits
        // as 4.6.7 prescribes even without RSC.
        s.modify(regs::HLREG0, regs::HLREG0_RXCRCSTRP, 0);
        s.modify(
            qreg::RDRXCTL,
            qreg::RDRXCTL_CRCSTRIP | qreg::RDRXCTL_RSCACKC | qreg::RDRXCTL_FCOE_WRFIX,
            qreg::RDRXCTL_RSCFRSTSIZE,
        );
        // Accept broadcast frames.
        s.modify(regs::FCTRL, regs::FCTRL_BAM, 0);
        // 7.1.2.8: RSS.
        if o.rss && o.rx_queues > 1 {
            self.init_rss(o.rx_queues);
        } else {
            s.modify(regs::MRQC, 0, regs::MRQC_MRQE_MASK);
        }
    }

    /// 4.6.7 / 7.1.9: one RX queue's buffer size and descriptor ring (empty: `RDH` = `RDT`).
    fn program_rx_ring(&self, i: usize, iova: u64, size: usize, buffer_size: usize) {
        let s = self.s;
        // Advanced one-buffer descriptors, buffer size, drop when no descriptor is free.
        let srrctl =
            s.read(qreg::SRRCTL(i)) & !(qreg::SRRCTL_DESCTYPE_MASK | qreg::SRRCTL_BSIZEPACKET_MASK);
        s.write(
            qreg::SRRCTL(i),
            srrctl
                | qreg::SRRCTL_DESCTYPE_ADV_ONEBUF
                | srrctl_bsizepacket(buffer_size)
                | qreg::SRRCTL_DROP_EN,
        );
        s.write(qreg::RDBAL(i), iova as u32);
        s.write(qreg::RDBAH(i), (iova >> 32) as u32);
        s.write(qreg::RDLEN(i), (size * DESC_SIZE) as u32);
        s.write(qreg::RDH(i), 0);
        s.write(qreg::RDT(i), 0);
        // Reserved bit that resets to 1 and must be 0 (ixy; 8.2.3.11.1).
        s.modify(qreg::DCA_RXCTRL(i), 0, qreg::DCA_RXCTRL_RESERVED12);
    }

    /// 4.6.7, the device-wide part after the queues.
    fn rx_finish(&self, o: &IxgbeOptions) {
        let s = self.s;
        // Queue i counts in statistics set i.
        map_queue_stats(s, qreg::RQSMR, o.rx_queues);
        // Last sentence of 4.6.7: no-snoop disable.
        s.modify(regs::CTRL_EXT, regs::CTRL_EXT_NS_DIS, 0);
    }

    /// 7.1.2.8: RSS over `queues` queues: the key, a redirection table spreading the 128
    /// entries round-robin, then `MRQC` with the hash fields.
    fn init_rss(&self, queues: u16) {
        let s = self.s;
        for (n, key) in RSS_KEY.chunks_exact(4).enumerate() {
            s.write(
                regs::RSSRK(n),
                u32::from_le_bytes([key[0], key[1], key[2], key[3]]),
            );
        }
        for n in 0..regs::RETA_ENTRIES / 4 {
            let mut reta = 0u32;
            for j in 0..4 {
                let queue = ((4 * n + j) % usize::from(queues)) as u32;
                reta |= queue << (8 * j);
            }
            s.write(regs::RETA(n), reta);
        }
        // Without PCSD the write-back holds the fragment checksum where the RSS hash goes.
        s.modify(regs::RXCSUM, regs::RXCSUM_PCSD, 0);
        let mrqc = s.read(regs::MRQC) & !regs::MRQC_MRQE_MASK;
        s.write(regs::MRQC, mrqc | regs::MRQC_MRQE_RSS | MRQC_RSS_FIELDS);
    }

    /// 4.6.8 Transmit Initialization, up to (not including) the queue enable.
    fn init_tx(&self, o: &IxgbeOptions) -> Result<Vec<TxParts<F>>> {
        self.tx_common();
        let mut rings = Vec::with_capacity(usize::from(o.tx_queues));
        for q in 0..o.tx_queues {
            let mut ring = TxRing::new(
                self.s.function.dma_space(),
                self.s.regs.clone(),
                tx::ring_config(self.s, q, o.tx_ring_size),
            )?;
            ring.set_stall_timeout(o.tx_hang_timeout);
            self.program_tx_ring(usize::from(q), ring.iova(), o.tx_ring_size);
            rings.push(TxParts {
                shared: Arc::clone(self.s),
                ring,
            });
        }
        self.tx_finish(o);
        Ok(rings)
    }

    /// 4.6.8, the device-wide part before the queues.
    fn tx_common(&self) {
        let s = self.s;
        // CRC insertion and padding of short frames.
        s.modify(regs::HLREG0, regs::HLREG0_TXCRCEN | regs::HLREG0_TXPADEN, 0);
        // 4.6.11.3.4 (DCB off): arbiter off while the packet buffers are set up.
        s.modify(qreg::RTTDCS, qreg::RTTDCS_ARBDIS, 0);
        s.write(qreg::TXPBSIZE(0), qreg::TXPBSIZE_160KB);
        for i in 1..8 {
            s.write(qreg::TXPBSIZE(i), 0);
        }
        s.modify(qreg::DTXMXSZRQ, qreg::DTXMXSZRQ_MAX_BYTES_NUM_REQ_MASK, 0);
        s.modify(qreg::RTTDCS, 0, qreg::RTTDCS_ARBDIS);
    }

    /// 4.6.8 / 7.2.3: one TX queue's descriptor ring and thresholds.
    fn program_tx_ring(&self, i: usize, iova: u64, size: usize) {
        let s = self.s;
        {
            s.write(qreg::TDBAL(i), iova as u32);
            s.write(qreg::TDBAH(i), (iova >> 32) as u32);
            s.write(qreg::TDLEN(i), (size * DESC_SIZE) as u32);
            // 7.2.3.4.1: descriptor fetch and write-back thresholds.
            let txdctl = s.read(qreg::TXDCTL(i))
                & !(qreg::TXDCTL_PTHRESH_MASK
                    | qreg::TXDCTL_HTHRESH_MASK
                    | qreg::TXDCTL_WTHRESH_MASK);
            s.write(
                qreg::TXDCTL(i),
                txdctl | txdctl_thresholds(TX_PTHRESH, TX_HTHRESH, tx::TX_WTHRESH),
            );
        }
    }

    /// 4.6.8, the device-wide part after the queues.
    fn tx_finish(&self, o: &IxgbeOptions) {
        let s = self.s;
        map_queue_stats(s, qreg::TQSM, o.tx_queues);
        // Transmit DMA on; the queues are enabled next.
        s.modify(qreg::DMATXCTL, qreg::DMATXCTL_TE, 0);
    }

    /// 4.6.7.1: fill every descriptor with a pool buffer, enable the queue, wait for the
    /// enable to read back, then hand the ring to the device with `RDT` = N - 1 (`RDH` was
    /// set to 0 with the ring base, before the enable: the head is not written while the
    /// queue is enabled).
    fn start_rx_queue(&self, parts: &mut RxParts<F>) -> Result<()> {
        let s = self.s;
        let ring = &mut parts.ring;
        let q = usize::from(ring.queue());
        let needed = ring.len();
        let filled = ring.fill();
        if filled < needed {
            return Err(Error::PoolExhausted {
                device: s.device,
                queue: ring.queue(),
                pool: ring.pool().name().to_string(),
                filled,
                needed,
            });
        }
        s.modify(qreg::RXDCTL(q), qreg::RXDCTL_ENABLE, 0);
        self.wait_set(
            qreg::RXDCTL(q),
            qreg::RXDCTL_ENABLE,
            QUEUE_ENABLE_TIMEOUT,
            "4.6.7.1 RXDCTL.ENABLE=1 (RX queue enabled)",
        )?;
        ring.publish(needed);
        Ok(())
    }

    /// 4.6.8.1: empty ring (`TDH` = `TDT` = 0), enable the queue, wait for it.
    fn start_tx_queue(&self, index: u16) -> Result<()> {
        let s = self.s;
        let q = usize::from(index);
        s.write(qreg::TDH(q), 0);
        s.write(qreg::TDT(q), 0);
        s.modify(qreg::TXDCTL(q), qreg::TXDCTL_ENABLE, 0);
        self.wait_set(
            qreg::TXDCTL(q),
            qreg::TXDCTL_ENABLE,
            QUEUE_ENABLE_TIMEOUT,
            "4.6.8.1 TXDCTL.ENABLE=1 (TX queue enabled)",
        )
    }
}

/// Recovery after a function or bus reset ([`crate::IxgbeParticipant`]): the bring-up
/// sequence again on the same memory: global reset, auto-read, DMA init, link setup, the MAC
/// address, RSS, every queue on its old ring, the filters. RX queues are enabled empty; the
/// rings still in the device handle are refilled here (for `generation`), the taken ones by
/// their core on its next call. The wait for the link is the caller's.
pub(crate) fn reinit<F: PciFunction>(dev: &DeviceParts<F>, generation: u64) -> Result<()> {
    let shared = &dev.shared;
    let o = &dev.options;
    let hw = Hw { s: shared };
    // The coordinator cleared Memory Space and Bus Master; the reset cleared the rest.
    shared.function.set_bus_master(true)?;
    shared.write(regs::EIMC, regs::EIMC_ALL);
    hw.master_disable();
    hw.global_reset()?;
    shared.write(regs::EIMC, regs::EIMC_ALL);
    hw.wait_set(
        regs::EEC,
        regs::EEC_ARD,
        EEPROM_TIMEOUT,
        "4.6.3 EEC.ARD=1 (EEPROM auto-read done)",
    )?;
    hw.wait_set(
        qreg::RDRXCTL,
        qreg::RDRXCTL_DMAIDONE,
        DMA_INIT_TIMEOUT,
        "4.6.3 RDRXCTL.DMAIDONE=1 (DMA init done)",
    )?;
    crate::link::setup(shared);
    // The totals were taken at quiesce; the reset zeroed the device's counters. Read them
    // once into the totals (normally nothing).
    shared.update_stats();
    // The MAC address as the driver knows it (the EEPROM's, read at bring-up).
    let (ral, rah) = regs::ral_rah_from_mac(dev.mac, true);
    shared.write(regs::RAL(0), ral);
    shared.write(regs::RAH(0), rah);
    // 7.3: the same MSI-X vectors and layout (the reset cleared GPIE, IVAR, EITR, EIMS...).
    if let Some(msix) = &dev.msix {
        crate::irq::restore(shared, msix)?;
    }

    hw.rx_common(o);
    for (i, &iova) in dev.rx_ring_iovas.iter().enumerate() {
        hw.program_rx_ring(i, iova, o.rx_ring_size, dev.pool.buffer_size());
    }
    hw.rx_finish(o);
    hw.tx_common();
    for (i, &iova) in dev.tx_ring_iovas.iter().enumerate() {
        hw.program_tx_ring(i, iova, o.tx_ring_size);
    }
    hw.tx_finish(o);
    {
        let mut slots = dev.rx_queues.lock().unwrap_or_else(|e| e.into_inner());
        for q in 0..usize::from(o.rx_queues) {
            shared.modify(qreg::RXDCTL(q), qreg::RXDCTL_ENABLE, 0);
            hw.wait_set(
                qreg::RXDCTL(q),
                qreg::RXDCTL_ENABLE,
                QUEUE_ENABLE_TIMEOUT,
                "4.6.7.1 RXDCTL.ENABLE=1 (RX queue enabled)",
            )?;
            if let Some(Some(ring)) = slots.get_mut(q) {
                ring.restart(generation);
            }
        }
    }
    for q in 0..o.tx_queues {
        hw.start_tx_queue(q)?;
    }
    shared.modify(qreg::RXCTRL, qreg::RXCTRL_RXEN, 0);
    let promisc = regs::FCTRL_UPE | regs::FCTRL_MPE;
    let bits = shared.gate.filter_bits() & promisc;
    shared.modify(regs::FCTRL, bits, promisc & !bits);
    shared.modify(regs::CTRL_EXT, regs::CTRL_EXT_DRV_LOAD, 0);
    Ok(())
}

/// Maps queue `i` to statistics set `i` for the first `queues` queues: `RQSMR` / `TQSM`
/// register `n` holds the sets of queues `4n..4n+4`, one per byte.
fn map_queue_stats<F: PciFunction>(s: &Shared<F>, reg: fn(usize) -> usize, queues: u16) {
    let queues = usize::from(queues);
    for n in 0..queues.div_ceil(4) {
        let mut value = 0u32;
        for j in 0..4 {
            let queue = 4 * n + j;
            if queue < queues {
                value |= (queue as u32 & 0xF) << (8 * j);
            }
        }
        s.write(reg(n), value);
    }
}
