//! Lending over real VFIO. In iommufd (cdev) mode the broker attaches the function to a fresh
//! IOAS and passes duplicates of the device fd and the iommufd; in group mode it passes the
//! device fd and the container fd with an IOVA window of the client's own. The client adopts
//! them ([`VfioContext::adopt_lent`], [`VfioContext::adopt_lent_group`]) and its driver gets a
//! [`VfioFunction`] as if it had opened the function itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Functions lent with an IOAS of the client's own, and that IOAS.
    private: Mutex<BTreeMap<PciAddress, u32>>,
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
            private: Mutex::new(BTreeMap::new()),
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

    fn reclaim(&self, device: PciAddress) {
        let Some(ioas) = self.private().remove(&device) else {
            return;
        };
        if let Some(function) = self.functions.get(&device) {
            match function.reclaim_cdev(ioas) {
                Ok(()) => tracing::debug!(%device, ioas, "broker: function back in its IOAS"),
                Err(err) => tracing::warn!(%device, %err, "broker: reclaiming a function failed"),
            }
        }
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
            let window = self.window(device)?;
            let lent = function.lend_group(window)?;
            return Ok(Lend {
                detail: serde_json::json!({
                    "mode": "group", "window_start": window.start, "window_last": window.last,
                }),
                fds: vec![lent.device, lent.container],
            });
        }
        // iommufd attaches an IOMMU group as a whole: a function that shares its group with
        // another the broker holds stays in the broker's IOAS, in a window of its own.
        let group = function.iommu_group();
        let shares_group = self
            .functions
            .values()
            .any(|f| f.address() != device && f.iommu_group() == group);
        let window = if shares_group {
            Some(self.window(device)?)
        } else {
            None
        };
        let lent = function.lend_cdev(window)?;
        if lent.window.is_none() {
            self.private().insert(device, lent.ioas);
        }
        let mut detail =
            serde_json::json!({ "mode": "iommufd", "ioas": lent.ioas, "devid": lent.devid });
        if let Some(window) = lent.window {
            detail["window_start"] = window.start.into();
            detail["window_last"] = window.last.into();
        }
        Ok(Lend {
            detail,
            fds: vec![lent.device, lent.iommufd],
        })
    }
}

impl VfioLending {
    fn private(&self) -> std::sync::MutexGuard<'_, BTreeMap<PciAddress, u32>> {
        self.private.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next unlent IOVA window.
    fn window(&self, device: PciAddress) -> Result<IovaRange> {
        let index = self.next_window.fetch_add(1, Ordering::Relaxed);
        if index >= WINDOWS {
            return Err(Error::VfioMode {
                mode: "shared",
                reason: format!("{device}: all {WINDOWS} IOVA windows were lent"),
            });
        }
        let start = index << WINDOW_SHIFT;
        Ok(IovaRange::new(start, start + ((1 << WINDOW_SHIFT) - 1)))
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
        let window = match (&lend.detail["window_start"], &lend.detail["window_last"]) {
            (serde_json::Value::Null, serde_json::Value::Null) => None,
            (start, last) => match (start.as_u64(), last.as_u64()) {
                (Some(start), Some(last)) if start <= last => Some(IovaRange::new(start, last)),
                _ => {
                    return Err(bad(format!(
                        "window {start}..={last}: expected two IOVAs, in order"
                    )))
                }
            },
        };
        if lend.detail["mode"] == "group" {
            let Some(window) = window else {
                return Err(bad("a group-mode lend without an IOVA window".into()));
            };
            let lent = LentGroup {
                device: device_fd,
                container: iommu_fd,
                window,
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
            window,
        };
        VfioContext::adopt_lent(self.options.clone(), device, lent)
    }
}
