//! Bring-up steps, in the order of Base 2.0 "Memory-based Controller Initialization"
//! (section 3.5.1), shared by [`super::Controller::new`] and the recovery after a reset.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::{poll_until, Clock};

use super::admin::AdminQueue;
use crate::error::{Error, Result};
use crate::namespace::{Namespace, UnusableNamespace};
use crate::queue::ShadowBuffers;
use crate::spec::features::NumberOfQueues;
use crate::spec::identify::ActiveNamespaceList;
use crate::spec::queue::{IOCQES, IOSQES};
use crate::spec::registers::{self, Aqa, Cap, Cc, Csts};
use crate::spec::{Cns, IdentifyController, IdentifyNamespace, IDENTIFY_DATA_SIZE};

/// Class code of an NVM Express I/O controller: mass storage (01h), non-volatile memory
/// (08h), NVM Express (02h).
pub const NVME_CLASS_CODE: u32 = 0x01_08_02;

/// What the bring-up steps work on.
pub(crate) struct Hw<'a, F: PciFunction> {
    pub(crate) function: &'a F,
    pub(crate) regs: &'a F::Registers,
    pub(crate) device: PciAddress,
    pub(crate) cap: Cap,
    pub(crate) admin_timeout: Duration,
}

impl<F: PciFunction> Hw<'_, F> {
    fn clock(&self) -> &dyn Clock {
        self.function.clock().as_ref()
    }

    /// `CAP.TO` as a duration (at least 500 ms: a controller reporting 0 gets one unit).
    fn ready_timeout(&self) -> Duration {
        Duration::from_millis(self.cap.timeout_ms().max(500))
    }

    /// `CSTS` for a register poll: all ones is the framework's `DeviceGone`.
    fn csts_polled(&self) -> userpci_framework::Result<Csts> {
        let csts = Csts(self.regs.read32(registers::CSTS));
        if csts.is_all_ones() {
            return Err(userpci_framework::Error::DeviceGone {
                device: self.device,
            });
        }
        Ok(csts)
    }

    /// Maps the errors of a register poll on `CSTS`.
    fn poll_error(&self, err: userpci_framework::Error) -> Error {
        match err {
            userpci_framework::Error::DeviceHalted { status, .. } => Error::ControllerFatal {
                device: self.device,
                csts: status,
            },
            userpci_framework::Error::DeviceGone { .. } => Error::DeviceGone {
                device: self.device,
                register: "CSTS",
            },
            other => other.into(),
        }
    }

    /// Reads `CSTS`, failing on all ones (the device is gone).
    pub(crate) fn csts(&self) -> Result<Csts> {
        let csts = Csts(self.regs.read32(registers::CSTS));
        if csts.is_all_ones() {
            return Err(Error::DeviceGone {
                device: self.device,
                register: "CSTS",
            });
        }
        Ok(csts)
    }

    /// Clears `CC.EN` (if set) and waits for `CSTS.RDY` = 0 within `CAP.TO` (3.5.1 step 2).
    pub(crate) fn disable(&self) -> Result<()> {
        let cc = Cc(self.regs.read32(registers::CC));
        if cc.0 == u32::MAX {
            return Err(Error::DeviceGone {
                device: self.device,
                register: "CC",
            });
        }
        if cc.en() {
            tracing::debug!(device = %self.device, "CC.EN 1 -> 0");
            self.regs.write32(registers::CC, cc.with_en(false).0);
        }
        poll_until(
            self.clock(),
            self.device,
            "CSTS.RDY=0 after CC.EN=0 (CAP.TO)",
            self.ready_timeout(),
            || Ok((!self.csts_polled()?.rdy()).then_some(())),
        )
        .map_err(|err| self.poll_error(err))
    }

    /// Programs the admin queue (`AQA`, `ASQ`, `ACQ`) and `CC`, sets `CC.EN` and waits for
    /// `CSTS.RDY` = 1 within `CAP.TO` (3.5.1 steps 3 to 6); `CSTS.CFS` fails at once.
    pub(crate) fn enable(&self, admin: &AdminQueue) -> Result<()> {
        let size = admin.size() - 1;
        self.regs.write32(registers::AQA, Aqa::new(size, size).0);
        self.regs.write64(registers::ASQ, admin.sq_mem.iova());
        self.regs.write64(registers::ACQ, admin.cq_mem.iova());
        let cc = Cc::new()
            .with_css(Cc::CSS_NVM)
            .with_mps(0)
            .with_ams(Cc::AMS_ROUND_ROBIN)
            .with_shn(0)
            .with_iosqes(IOSQES)
            .with_iocqes(IOCQES)
            .with_en(true);
        tracing::debug!(device = %self.device, cc = format_args!("{:#x}", cc.0), "CC.EN 0 -> 1");
        self.regs.write32(registers::CC, cc.0);
        let device = self.device;
        poll_until(
            self.clock(),
            device,
            "CSTS.RDY=1 after CC.EN=1 (CAP.TO)",
            self.ready_timeout(),
            || {
                let csts = self.csts_polled()?;
                if csts.cfs() {
                    return Err(userpci_framework::Error::DeviceHalted {
                        device,
                        status: csts.0,
                        cause: "CSTS.CFS".into(),
                    });
                }
                Ok(csts.rdy().then_some(()))
            },
        )
        .map_err(|err| self.poll_error(err))
    }

    /// Identify into `data` and returns it decoded.
    fn identify<T: bytemuck::Pod>(
        &self,
        admin: &mut AdminQueue,
        data: &mut DmaBuffer,
        cns: Cns,
        nsid: u32,
    ) -> Result<T> {
        data.as_mut_slice().fill(0);
        let sqe = crate::spec::SubmissionEntry::identify(cns, nsid, data.iova());
        admin.execute(
            self.regs,
            self.clock(),
            self.device,
            sqe,
            self.admin_timeout,
        )?;
        Ok(bytemuck::pod_read_unaligned(
            &data.as_slice()[..IDENTIFY_DATA_SIZE],
        ))
    }

    /// Identify Controller (CNS 01h), with the entry sizes checked.
    pub(crate) fn identify_controller(
        &self,
        admin: &mut AdminQueue,
        data: &mut DmaBuffer,
    ) -> Result<IdentifyController> {
        let id: IdentifyController = self.identify(admin, data, Cns::Controller, 0)?;
        let sq_ok = id.sqes == 0 || (id.sqes_min() <= IOSQES && IOSQES <= id.sqes_max());
        let cq_ok = id.cqes == 0 || (id.cqes_min() <= IOCQES && IOCQES <= id.cqes_max());
        if !sq_ok || !cq_ok {
            return Err(Error::Unsupported {
                device: self.device,
                what: format!(
                    "queue entry sizes SQES {:#x} / CQES {:#x} exclude 64-byte submission and \
                     16-byte completion entries",
                    id.sqes, id.cqes
                ),
            });
        }
        Ok(id)
    }

    /// Set Features Number of Queues: asks for `wanted` I/O queue pairs and returns how many
    /// can be used (the smaller of what was granted for SQs and CQs, and `wanted`).
    pub(crate) fn set_queue_count(&self, admin: &mut AdminQueue, wanted: u16) -> Result<u16> {
        let n = wanted - 1;
        let sqe = crate::spec::SubmissionEntry::set_features_number_of_queues(n, n);
        let cqe = admin.execute(
            self.regs,
            self.clock(),
            self.device,
            sqe,
            self.admin_timeout,
        )?;
        let granted = NumberOfQueues::from_dword(cqe.dw0);
        let usable = wanted
            .min(granted.nsq.saturating_add(1))
            .min(granted.ncq.saturating_add(1));
        tracing::info!(
            device = %self.device,
            requested = wanted,
            nsqa = granted.nsq,
            ncqa = granted.ncq,
            usable,
            "I/O queues granted (NSQA/NCQA are zero-based)"
        );
        Ok(usable)
    }

    /// The active namespace IDs (CNS 02h), following the list past 1024 entries.
    ///
    /// The list is untrusted: only increasing IDs above the starting point and at most `nn`
    /// (Identify Controller `NN`, the largest valid NSID) are kept, and at most
    /// [`MAX_NAMESPACES`], so a controller whose pages never end cannot keep bring-up
    /// going (it would otherwise be followed up to NSID FFFFFFFEh, four million pages).
    pub(crate) fn active_namespaces(
        &self,
        admin: &mut AdminQueue,
        data: &mut DmaBuffer,
        nn: u32,
    ) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let mut start = 0u32;
        let mut beyond_nn = 0usize;
        loop {
            let list: ActiveNamespaceList =
                self.identify(admin, data, Cns::ActiveNamespaceList, start)?;
            let before = ids.len();
            for id in list.iter() {
                if id <= start || id == crate::spec::NSID_ALL {
                    continue;
                }
                if id > nn {
                    beyond_nn += 1;
                    continue;
                }
                if ids.len() == MAX_NAMESPACES {
                    tracing::warn!(
                        device = %self.device,
                        nn,
                        limit = MAX_NAMESPACES,
                        next = id,
                        "more active namespaces than the driver takes; the rest are ignored"
                    );
                    return Ok(ids);
                }
                ids.push(id);
                start = id;
            }
            if list.ids[1023] == 0 || ids.len() == before || start >= nn {
                if beyond_nn > 0 {
                    tracing::warn!(
                        device = %self.device,
                        nn,
                        ignored = beyond_nn,
                        "Active Namespace ID list names NSIDs above NN; ignored"
                    );
                }
                return Ok(ids);
            }
        }
    }

    /// Identify Namespace for each active namespace, sorted into usable and unusable.
    pub(crate) fn namespaces(
        &self,
        admin: &mut AdminQueue,
        data: &mut DmaBuffer,
        id: &IdentifyController,
        max_transfer: u64,
    ) -> Result<(Vec<Namespace>, Vec<UnusableNamespace>)> {
        let mut usable = Vec::new();
        let mut unusable = Vec::new();
        for nsid in self.active_namespaces(admin, data, id.nn)? {
            let ns: IdentifyNamespace = self.identify(admin, data, Cns::Namespace, nsid)?;
            match Namespace::from_identify(
                self.device,
                nsid,
                &ns,
                max_transfer,
                id.supports_write_zeroes(),
                id.supports_dataset_management(),
            ) {
                Ok(ns) => {
                    tracing::info!(
                        device = %self.device,
                        nsid,
                        blocks = ns.blocks(),
                        block_size = ns.block_size(),
                        "namespace"
                    );
                    usable.push(ns);
                }
                Err(reason) => {
                    tracing::warn!(device = %self.device, nsid, %reason, "namespace not usable");
                    unusable.push(UnusableNamespace { nsid, reason });
                }
            }
        }
        Ok((usable, unusable))
    }

    /// Doorbell Buffer Config with `buffers` (zeroed first). Returns whether the controller
    /// accepted it.
    pub(crate) fn configure_shadow_doorbells(
        &self,
        admin: &mut AdminQueue,
        buffers: &ShadowBuffers,
    ) -> bool {
        buffers.clear();
        let sqe = crate::spec::SubmissionEntry::doorbell_buffer_config(
            buffers.shadow.iova(),
            buffers.eventidx.iova(),
        );
        match admin.execute(
            self.regs,
            self.clock(),
            self.device,
            sqe,
            self.admin_timeout,
        ) {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(device = %self.device, %err, "Doorbell Buffer Config failed; using MMIO doorbells");
                false
            }
        }
    }
}

/// Checks the class code (config offset 09h..0Bh).
pub(crate) fn check_class<F: PciFunction>(function: &F) -> Result<()> {
    let device = function.address();
    let rev_class = function.read_config_u32(userpci_framework::device::config::REVISION_CLASS)?;
    if rev_class == u32::MAX {
        return Err(userpci_framework::Error::DeviceGone { device }.into());
    }
    let class = rev_class >> 8;
    if class != NVME_CLASS_CODE {
        return Err(Error::NotNvme {
            device,
            found: class,
            expected: NVME_CLASS_CODE,
        });
    }
    Ok(())
}

/// Checks `CAP` for what the driver needs: the NVM command set and 4 KiB memory pages.
pub(crate) fn check_cap(device: PciAddress, cap: Cap) -> Result<()> {
    if cap.0 == u64::MAX {
        return Err(Error::DeviceGone {
            device,
            register: "CAP",
        });
    }
    if cap.css() & Cap::CSS_NVM == 0 {
        return Err(Error::Unsupported {
            device,
            what: format!("CAP.CSS {:#x} lacks the NVM command set (bit 0)", cap.css()),
        });
    }
    if cap.mpsmin() != 0 {
        return Err(Error::Unsupported {
            device,
            what: format!(
                "CAP.MPSMIN {} (smallest page {} bytes): the driver uses 4 KiB pages",
                cap.mpsmin(),
                cap.mps_min_bytes()
            ),
        });
    }
    if cap.mqes() == 0 {
        return Err(Error::Unsupported {
            device,
            what: "CAP.MQES is 0 (a queue needs at least 2 entries)".into(),
        });
    }
    Ok(())
}

/// The largest transfer in bytes: `2 ^ MDTS` units of `CAP.MPSMIN` (0: no limit), capped by
/// the driver's `limit`.
/// Most active namespaces the driver uses (four Active Namespace ID list pages).
pub(crate) const MAX_NAMESPACES: usize = 4096;

pub(crate) fn max_transfer(cap: Cap, mdts: u8, limit: u64) -> u64 {
    if mdts == 0 {
        return limit;
    }
    cap.mps_min_bytes()
        .checked_shl(u32::from(mdts))
        .unwrap_or(u64::MAX)
        .min(limit)
}

/// Allocates the shadow doorbell and EventIdx pages.
pub(crate) fn allocate_shadow<F: PciFunction>(function: &F) -> Result<Arc<ShadowBuffers>> {
    let space = function.dma_space();
    let page = crate::prp::PAGE_SIZE as usize;
    Ok(Arc::new(ShadowBuffers {
        shadow: space.allocate(page, DmaDirection::Bidirectional)?,
        eventidx: space.allocate(page, DmaDirection::Bidirectional)?,
    }))
}

/// The identify data buffer (one page).
pub(crate) fn identify_buffer<F: PciFunction>(function: &F) -> Result<DmaBuffer> {
    Ok(function
        .dma_space()
        .allocate_buffer(IDENTIFY_DATA_SIZE, DmaDirection::FromDevice)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_transfer_follows_mdts_and_the_limit() {
        let cap = Cap::new();
        assert_eq!(max_transfer(cap, 0, 1 << 20), 1 << 20);
        assert_eq!(max_transfer(cap, 5, 1 << 20), 128 * 1024);
        assert_eq!(max_transfer(cap, 9, 1 << 20), 1 << 20);
        assert_eq!(max_transfer(cap.with_mpsmin(1), 1, 1 << 20), 16 * 1024);
        assert_eq!(max_transfer(cap, 255, 1 << 20), 1 << 20);
    }

    #[test]
    fn cap_checks_name_the_field() {
        let device: PciAddress = "01:00.0".parse().unwrap();
        let good = Cap::new().with_css(Cap::CSS_NVM).with_mqes(63);
        assert!(check_cap(device, good).is_ok());
        let err = check_cap(device, good.with_mpsmin(1)).unwrap_err();
        assert!(err.to_string().contains("MPSMIN"), "{err}");
        let err = check_cap(device, good.with_css(Cap::CSS_ADMIN_ONLY)).unwrap_err();
        assert!(err.to_string().contains("CSS"), "{err}");
        assert!(matches!(
            check_cap(device, Cap(u64::MAX)),
            Err(Error::DeviceGone { .. })
        ));
    }
}
