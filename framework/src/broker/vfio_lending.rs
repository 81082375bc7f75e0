//! Lending over real VFIO. In iommufd (cdev) mode the broker attaches the function to a fresh
//! IOAS and passes duplicates of the device fd and the iommufd; in group mode it passes the
//! device fd and the container fd with an IOVA window of the client's own. The client adopts
//! them ([`VfioContext::adopt_lent`], [`VfioContext::adopt_lent_group`]) and its driver gets a
//! [`VfioFunction`] as if it had opened the function itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::lending::{Collector, Lend, Lender};
use crate::backend::vfio::{LentCdev, LentGroup, VfioContext, VfioFunction, VfioMode, VfioOptions};
use crate::device::{PciFunction, ResetTarget};
use crate::dma::IovaRange;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// log2 of a group-mode client's IOVA window (64 GiB). Window 0 stays the broker's own.
const WINDOW_SHIFT: u32 = 36;
/// Windows below 2^48 (the IOVA width of Intel and AMD IOMMUs' 4-level tables).
const WINDOWS: u64 = 1 << (48 - WINDOW_SHIFT);

/// The broker's side: the functions it opened (a whole claimed reset group).
#[derive(Debug)]
pub struct VfioLending {
    functions: BTreeMap<PciAddress, Arc<VfioFunction>>,
    /// The next group-mode window to hand out (windows are not reused).
    next_window: AtomicU64,
}

impl VfioLending {
    /// Lends `functions`.
    pub fn new(functions: impl IntoIterator<Item = VfioFunction>) -> Arc<Self> {
        Arc::new(VfioLending {
            functions: functions
                .into_iter()
                .map(|f| (f.address(), Arc::new(f)))
                .collect(),
            next_window: AtomicU64::new(1),
        })
    }
}

impl Lender for VfioLending {
    fn targets(&self) -> Vec<Arc<dyn ResetTarget>> {
        self.functions
            .values()
            .map(|f| Arc::clone(f) as Arc<dyn ResetTarget>)
            .collect()
    }

    fn lend(&self, device: PciAddress, _client: u64) -> Result<Lend> {
        let function = self
            .functions
            .get(&device)
            .ok_or_else(|| Error::NoSuchDevice {
                device,
                place: "the broker's lendable functions".into(),
            })?;
        if function.mode() == VfioMode::Group {
            let index = self.next_window.fetch_add(1, Ordering::Relaxed);
            if index >= WINDOWS {
                return Err(Error::VfioMode {
                    mode: "group",
                    reason: format!("{device}: all {WINDOWS} IOVA windows were lent"),
                });
            }
            let start = index << WINDOW_SHIFT;
            let window = IovaRange::new(start, start + ((1 << WINDOW_SHIFT) - 1));
            let lent = function.lend_group(window)?;
            return Ok(Lend {
                detail: serde_json::json!({
                    "mode": "group", "window_start": window.start, "window_last": window.last,
                }),
                fds: vec![lent.device, lent.container],
            });
        }
        let lent = function.lend_cdev()?;
        Ok(Lend {
            detail: serde_json::json!({ "mode": "iommufd", "ioas": lent.ioas, "devid": lent.devid }),
            fds: vec![lent.device, lent.iommufd],
        })
    }
}

/// The client's side: adopts what the broker passed, with this process's VFIO options.
#[derive(Debug)]
pub struct VfioCollector {
    options: VfioOptions,
}

impl VfioCollector {
    /// Adopting lent functions with `options` (sysfs and /dev roots, the system-call layer).
    pub fn new(options: VfioOptions) -> Arc<Self> {
        Arc::new(VfioCollector { options })
    }
}

impl Collector for VfioCollector {
    type Function = VfioFunction;

    fn collect(&self, device: PciAddress, lend: Lend) -> Result<VfioFunction> {
        let bad = |what: String| Error::BrokerProtocol {
            peer: format!("the lend of {device}"),
            what,
        };
        let id = |key: &str| {
            lend.detail[key]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(format!("{key} {}: expected a 32-bit id", lend.detail[key])))
        };
        let count = lend.fds.len();
        let Ok([device_fd, iommu_fd]) = <[_; 2]>::try_from(lend.fds) else {
            return Err(bad(format!(
                "{count} descriptors: expected 2 (device, iommufd or container)"
            )));
        };
        if lend.detail["mode"] == "group" {
            let at = |key: &str| {
                lend.detail[key]
                    .as_u64()
                    .ok_or_else(|| bad(format!("{key} {}: expected an IOVA", lend.detail[key])))
            };
            let (start, last) = (at("window_start")?, at("window_last")?);
            if start > last {
                return Err(bad(format!("window {start:#x}..={last:#x} is empty")));
            }
            let lent = LentGroup {
                device: device_fd,
                container: iommu_fd,
                window: IovaRange::new(start, last),
            };
            return VfioContext::adopt_lent_group(self.options.clone(), device, lent);
        }
        if lend.detail["mode"] != "iommufd" {
            return Err(bad(format!(
                "mode {}: expected \"iommufd\" or \"group\"",
                lend.detail["mode"]
            )));
        }
        let lent = LentCdev {
            device: device_fd,
            iommufd: iommu_fd,
            ioas: id("ioas")?,
            devid: id("devid")?,
        };
        VfioContext::adopt_lent(self.options.clone(), device, lent)
    }
}
