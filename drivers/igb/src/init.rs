//! The bring-up steps, in the order of the 82576 datasheet's section 4.5 "Software
//! Initialization and Diagnostics": 4.5.3 sequence, 4.5.4 interrupts off, 4.5.5 global reset
//! and general configuration, 4.5.7 link, 4.5.8 statistics, 4.5.9 receive, 4.5.10
//! transmit. [`crate::IgbDevice::new`] runs them top to bottom; a recovery after a reset
//! ([`crate::IgbParticipant`]) runs the same steps on the same rings ([`reinit`]).
//!
//! Every register poll has a deadline on the function's clock and fails with
//! [`crate::Error::Init`] naming the step; nothing waits forever. The register values are
//! computed by pure functions (`*_value`), tested below.

use std::time::Duration;

use userpci_framework::device::{PciFunction, PciFunctionExt};

use crate::error::{Error, Result};
use crate::options::IgbOptions;
use crate::shared::Shared;
use crate::spec::desc::RX_ERR_FRAME_MASK;
use crate::spec::queue::{self as qreg, dctl_thresholds};
use crate::spec::regs;

/// Deadline for pending master requests before a reset (Linux: 800 polls of 100 µs).
pub const MASTER_DISABLE_TIMEOUT: Duration = Duration::from_millis(80);
/// Linux waits 10 ms after stopping RX and TX before the reset, for in-flight frames.
pub const PRE_RESET_SETTLE: Duration = Duration::from_millis(10);
/// Time after setting `CTRL.RST` before the device may be accessed (4.2.x: at least 1 ms).
pub const RESET_SETTLE: Duration = Duration::from_millis(1);
/// Deadline for `CTRL.RST` to clear.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for `EECD.AUTO_RD` (Linux `AUTO_READ_DONE_TIMEOUT`, 10 ms). Missing it only
/// warns, as in Linux: a part without EEPROM never sets it, and neither does QEMU's model.
pub const AUTO_READ_TIMEOUT: Duration = Duration::from_millis(10);
/// Deadline for `RXDCTL.ENABLE` / `TXDCTL.ENABLE` to read back as written.
pub const QUEUE_ENABLE_TIMEOUT: Duration = Duration::from_millis(100);

/// `RXDCTL` thresholds (Linux for the 82576 with MSI-X): prefetch when 8 descriptors are
/// free and at least 8 are valid in host memory, write back every descriptor.
pub const RX_THRESHOLDS: u32 = dctl_thresholds(8, 8, 1);
/// `TXDCTL` thresholds (Linux for the 82576 with MSI-X): prefetch at 8, host threshold 1,
/// write-back threshold 1, so `DD` comes back for every `RS` descriptor without a flush.
pub const TX_THRESHOLDS: u32 = dctl_thresholds(8, 1, 1);

/// The write-back error bits that drop a frame (the ring engine's MAC error mask).
pub const RX_DROP_ERRORS: u32 = RX_ERR_FRAME_MASK;

/// `RCTL` for receiving, from `current`: receiver on or off as `enable`, broadcast accepted,
/// CRC stripped, normal (no loopback) mode, multicast table on bits 47:36, store-bad-packets
/// and long packets off, VLAN filter off, the legacy buffer size field zero
/// (`SRRCTL.BSIZEPACKET` rules), unicast / multicast promiscuous as `promisc_bits`.
pub(crate) const fn rctl_value(current: u32, enable: bool, promisc_bits: u32) -> u32 {
    let cleared = current
        & !(regs::RCTL_EN
            | regs::RCTL_SBP
            | regs::RCTL_UPE
            | regs::RCTL_MPE
            | regs::RCTL_LPE
            | regs::RCTL_LBM_MASK
            | regs::RCTL_MO_MASK
            | regs::RCTL_BSIZE_MASK
            | regs::RCTL_VFE);
    let promisc = promisc_bits & (regs::RCTL_UPE | regs::RCTL_MPE);
    cleared | regs::RCTL_BAM | regs::RCTL_SECRC | promisc | if enable { regs::RCTL_EN } else { 0 }
}

/// The promiscuous bits of `RCTL` for the option.
pub(crate) const fn promisc_bits(promiscuous: bool) -> u32 {
    if promiscuous {
        regs::RCTL_UPE | regs::RCTL_MPE
    } else {
        0
    }
}

/// Whether a queue should drop frames when its ring is full (`SRRCTL.DROP_EN`): with several
/// queues, so one full ring does not stall the packet buffer for all (Linux does the same).
pub(crate) const fn drop_when_full(rx_queues: u16) -> bool {
    rx_queues > 1
}

/// The bring-up steps, on the shared device state.
pub(crate) struct Hw<'a, F: PciFunction> {
    pub(crate) s: &'a Shared<F>,
}

impl<F: PciFunction> Hw<'_, F> {
    fn warn_on_timeout(&self, result: Result<u32>, what: &str) {
        if let Err(err) = result {
            tracing::warn!(device = %self.s.device, %err, "{what}; going on");
        }
    }

    /// 4.5.4: masks every interrupt cause (legacy and extended) and clears what is pending.
    pub(crate) fn mask_interrupts(&self) {
        let s = self.s;
        s.write(regs::IMC, regs::IMC_ALL);
        s.write(regs::EIMC, regs::EIMC_ALL);
        let _ = s.read(regs::ICR);
        let _ = s.read(regs::EICR);
    }

    /// 4.5.5 global reset: master disable (wait for pending requests, a timeout only warns
    /// as in Linux since the reset stops DMA anyway), interrupts masked, RX and TX stopped and
    /// given time to settle, `CTRL.RST`, then the EEPROM auto-read.
    pub(crate) fn global_reset(&self) -> Result<()> {
        let s = self.s;
        s.modify(regs::CTRL, regs::CTRL_GIO_MASTER_DISABLE, 0);
        let pending = s.wait(
            regs::STATUS,
            MASTER_DISABLE_TIMEOUT,
            "4.5.5 STATUS.GIO_MASTER_ENABLE=0 (master disable)",
            |v| v & regs::STATUS_GIO_MASTER_ENABLE == 0,
        );
        self.warn_on_timeout(pending, "master requests still pending before the reset");
        self.mask_interrupts();
        s.write(regs::RCTL, 0);
        s.write(regs::TCTL, regs::TCTL_PSP);
        s.clock().sleep(PRE_RESET_SETTLE);
        let ctrl = s.read(regs::CTRL);
        s.write(regs::CTRL, ctrl | regs::CTRL_RST);
        s.clock().sleep(RESET_SETTLE);
        s.wait(
            regs::CTRL,
            RESET_TIMEOUT,
            "4.5.5 CTRL.RST=0 (global reset done)",
            |v| v & regs::CTRL_RST == 0,
        )?;
        let auto_read = s.wait(
            regs::EECD,
            AUTO_READ_TIMEOUT,
            "4.5.5 EECD.AUTO_RD=1 (EEPROM auto-read done)",
            |v| v & regs::EECD_AUTO_RD != 0,
        );
        self.warn_on_timeout(auto_read, "EEPROM auto-read not reported done");
        // 4.5.4: interrupts off again, the reset re-enabled nothing but may have left causes.
        self.mask_interrupts();
        Ok(())
    }

    /// The MAC address the EEPROM loaded into receive address 0.
    pub(crate) fn read_mac(&self) -> Result<[u8; 6]> {
        let (ral, rah) = (self.s.read(regs::RAL(0)), self.s.read(regs::RAH(0)));
        let mac = regs::mac_from_ral_rah(ral, rah);
        let usable = rah & regs::RAH_AV != 0 && mac != [0; 6] && mac[0] & 1 == 0;
        if !usable {
            return Err(Error::NoMacAddress {
                device: self.s.device,
                ral,
                rah,
            });
        }
        Ok(mac)
    }

    /// 4.5.9 (address filters): `mac` in receive address 0, the other entries invalid, the
    /// multicast table empty.
    pub(crate) fn program_addresses(&self, mac: [u8; 6]) {
        let s = self.s;
        let (ral, rah) = regs::ral_rah_from_mac(mac, true);
        s.write(regs::RAL(0), ral);
        s.write(regs::RAH(0), rah);
        for n in 1..regs::RAR_ENTRIES {
            s.write(regs::RAH(n), 0);
            s.write(regs::RAL(n), 0);
        }
        for n in 0..128 {
            s.write(regs::MTA(n), 0);
        }
    }

    /// 4.5.9, the device-wide part before the queues: the receiver off, RSS as asked.
    pub(crate) fn rx_common(&self, o: &IgbOptions, promisc: u32) {
        let s = self.s;
        s.write(regs::RCTL, rctl_value(s.read(regs::RCTL), false, promisc));
        if o.rss && o.rx_queues > 1 {
            crate::rss::program(s, o.rx_queues);
        } else {
            crate::rss::disable(s);
        }
    }

    /// 4.5.9: one RX queue's ring, empty (`RDH` = `RDT` = 0), with advanced one-buffer
    /// descriptors of `buffer_size`. The queue is disabled first (after reset queue 0 reads
    /// enabled) and must read back disabled.
    pub(crate) fn program_rx_ring(
        &self,
        q: usize,
        iova: u64,
        descriptors: usize,
        buffer_size: usize,
        drop: bool,
    ) -> Result<()> {
        let s = self.s;
        s.modify(qreg::RXDCTL(q), 0, qreg::RXDCTL_ENABLE);
        s.wait(
            qreg::RXDCTL(q),
            QUEUE_ENABLE_TIMEOUT,
            "4.5.9 RXDCTL.ENABLE=0 (RX queue disabled before setup)",
            |v| v & qreg::RXDCTL_ENABLE == 0,
        )?;
        s.write(qreg::RDBAL(q), iova as u32);
        s.write(qreg::RDBAH(q), (iova >> 32) as u32);
        s.write(
            qreg::RDLEN(q),
            (descriptors * userpci_intel_ring::desc::DESC_SIZE) as u32,
        );
        s.write(qreg::RDH(q), 0);
        s.write(qreg::RDT(q), 0);
        s.write(
            qreg::SRRCTL(q),
            qreg::srrctl_value(s.read(qreg::SRRCTL(q)), buffer_size, drop),
        );
        Ok(())
    }

    /// 4.5.9: enables RX queue `q` and waits for `RXDCTL.ENABLE` to read 1. The ring is
    /// handed to the device afterwards (the `RDT` write of the fill).
    pub(crate) fn enable_rx_queue(&self, q: usize) -> Result<()> {
        let s = self.s;
        let rxdctl = s.read(qreg::RXDCTL(q)) & !0x001F_1F1F;
        s.write(
            qreg::RXDCTL(q),
            rxdctl | RX_THRESHOLDS | qreg::RXDCTL_ENABLE,
        );
        s.wait(
            qreg::RXDCTL(q),
            QUEUE_ENABLE_TIMEOUT,
            "4.5.9 RXDCTL.ENABLE=1 (RX queue enabled)",
            |v| v & qreg::RXDCTL_ENABLE != 0,
        )
        .map(|_| ())
    }

    /// 4.5.9, last step: the receiver on.
    pub(crate) fn start_rx(&self, promisc: u32) {
        let s = self.s;
        s.write(regs::RCTL, rctl_value(s.read(regs::RCTL), true, promisc));
    }

    /// 4.5.10: one TX queue's ring, empty (`TDH` = `TDT` = 0), head write-back off, the queue
    /// disabled first.
    pub(crate) fn program_tx_ring(&self, q: usize, iova: u64, descriptors: usize) -> Result<()> {
        let s = self.s;
        s.modify(qreg::TXDCTL(q), 0, qreg::TXDCTL_ENABLE);
        s.wait(
            qreg::TXDCTL(q),
            QUEUE_ENABLE_TIMEOUT,
            "4.5.10 TXDCTL.ENABLE=0 (TX queue disabled before setup)",
            |v| v & qreg::TXDCTL_ENABLE == 0,
        )?;
        s.write(qreg::TDBAL(q), iova as u32);
        s.write(qreg::TDBAH(q), (iova >> 32) as u32);
        s.write(
            qreg::TDLEN(q),
            (descriptors * userpci_intel_ring::desc::DESC_SIZE) as u32,
        );
        s.write(qreg::TDH(q), 0);
        s.write(qreg::TDT(q), 0);
        s.write(qreg::TDWBAL(q), 0);
        s.write(qreg::TDWBAH(q), 0);
        Ok(())
    }

    /// 4.5.10: enables TX queue `q` with its thresholds and waits for it to read enabled.
    pub(crate) fn enable_tx_queue(&self, q: usize) -> Result<()> {
        let s = self.s;
        let txdctl = s.read(qreg::TXDCTL(q)) & !0x001F_1F1F;
        s.write(
            qreg::TXDCTL(q),
            txdctl | TX_THRESHOLDS | qreg::TXDCTL_ENABLE,
        );
        s.wait(
            qreg::TXDCTL(q),
            QUEUE_ENABLE_TIMEOUT,
            "4.5.10 TXDCTL.ENABLE=1 (TX queue enabled)",
            |v| v & qreg::TXDCTL_ENABLE != 0,
        )
        .map(|_| ())
    }

    /// 4.5.10, last step: the transmitter on.
    pub(crate) fn start_tx(&self) {
        self.s.write(regs::TCTL, regs::TCTL_VALUE);
    }

    /// Tells the firmware a driver has taken the device (`CTRL_EXT.DRV_LOAD`).
    pub(crate) fn driver_loaded(&self) {
        self.s.modify(regs::CTRL_EXT, regs::CTRL_EXT_DRV_LOAD, 0);
    }
}

/// What a recovery restores, as the device handle knows it.
pub(crate) struct Restore<'a> {
    pub(crate) options: &'a IgbOptions,
    pub(crate) mac: [u8; 6],
    pub(crate) buffer_size: usize,
    pub(crate) rx_ring_iovas: &'a [u64],
    pub(crate) tx_ring_iovas: &'a [u64],
}

/// After a reset (FLR or bus reset): the same steps as the bring-up on the same memory:
/// global reset, link setup, statistics folded in, the MAC address, filters, RSS, every ring
/// programmed again (empty) and its queue enabled, MSI-X programmed again when used, RX and
/// TX on. The RX rings are handed to the device by their owners afterwards
/// (`RDT`); the wait for the link is the caller's.
pub(crate) fn reinit<F: PciFunction>(
    s: &Shared<F>,
    r: &Restore<'_>,
    setup_link: impl FnOnce(&Shared<F>) -> Result<()>,
) -> Result<()> {
    let hw = Hw { s };
    let o = r.options;
    // The coordinator cleared Memory Space and Bus Master; the reset cleared the rest.
    s.function.set_bus_master(true)?;
    hw.global_reset()?;
    setup_link(s)?;
    // The totals were taken at quiesce; the reset zeroed the device's counters.
    crate::stats::update(s);
    hw.program_addresses(r.mac);
    let promisc = s.gate.filter_bits();
    hw.rx_common(o, promisc);
    let drop = drop_when_full(o.rx_queues);
    for (q, &iova) in r.rx_ring_iovas.iter().enumerate() {
        hw.program_rx_ring(q, iova, o.rx_ring_size, r.buffer_size, drop)?;
    }
    for (q, &iova) in r.tx_ring_iovas.iter().enumerate() {
        hw.program_tx_ring(q, iova, o.tx_ring_size)?;
    }
    if let Some(irq) = o.interrupts {
        // The coordinator disabled MSI-X; enabling it again keeps each vector's eventfd, so
        // the queues' handles and waiters stay valid.
        s.function.enable_msix(o.rx_queues)?;
        crate::irq::program(s, o.rx_queues, irq.itr_us);
    }
    for q in 0..r.rx_ring_iovas.len() {
        hw.enable_rx_queue(q)?;
    }
    for q in 0..r.tx_ring_iovas.len() {
        hw.enable_tx_queue(q)?;
    }
    hw.start_rx(promisc);
    hw.start_tx();
    hw.driver_loaded();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rctl_for_receiving() {
        // Whatever was there: loopback, long packets, SBP, VFE, a legacy buffer size.
        let dirty = regs::RCTL_LBM_MASK
            | regs::RCTL_LPE
            | regs::RCTL_SBP
            | regs::RCTL_VFE
            | regs::RCTL_BSIZE_MASK
            | regs::RCTL_MO_MASK;
        let off = rctl_value(dirty, false, 0);
        assert_eq!(off, regs::RCTL_BAM | regs::RCTL_SECRC);
        let on = rctl_value(off, true, promisc_bits(true));
        assert_eq!(
            on,
            regs::RCTL_EN | regs::RCTL_BAM | regs::RCTL_SECRC | regs::RCTL_UPE | regs::RCTL_MPE
        );
        assert_eq!(on, 0x0400_801A);
        // Turning promiscuous mode off keeps the receiver on.
        assert_eq!(
            rctl_value(on, true, promisc_bits(false)),
            regs::RCTL_EN | regs::RCTL_BAM | regs::RCTL_SECRC
        );
    }

    #[test]
    fn queue_thresholds() {
        assert_eq!(RX_THRESHOLDS, 0x0001_0808);
        assert_eq!(TX_THRESHOLDS, 0x0001_0108);
        assert!(drop_when_full(2));
        assert!(!drop_when_full(1));
    }

    #[test]
    fn drop_errors_are_the_frame_errors_not_the_checksums() {
        use crate::spec::desc::*;
        assert_eq!(RX_DROP_ERRORS & RXD_ERR_RXE, RXD_ERR_RXE);
        assert_eq!(RX_DROP_ERRORS & (RXD_ERR_TCPE | RXD_ERR_IPE), 0);
        assert_eq!(RX_DROP_ERRORS, 0x9700_0000);
    }
}
