//! Lending over real VFIO (iommufd/cdev mode): the broker attaches the function to a fresh
//! IOAS and passes duplicates of the device fd and the iommufd; the client adopts them
//! ([`crate::backend::vfio::VfioContext::adopt_lent`]) and its driver gets a [`VfioFunction`]
//! as if it had opened the function itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::lending::{Collector, Lend, Lender};
use crate::backend::vfio::{LentCdev, VfioContext, VfioFunction, VfioOptions};
use crate::device::{PciFunction, ResetTarget};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// The broker's side: the functions it opened (a whole claimed reset group, in cdev mode).
#[derive(Debug)]
pub struct VfioLending {
    functions: BTreeMap<PciAddress, Arc<VfioFunction>>,
}

impl VfioLending {
    /// Lends `functions`.
    pub fn new(functions: impl IntoIterator<Item = VfioFunction>) -> Arc<Self> {
        Arc::new(VfioLending {
            functions: functions
                .into_iter()
                .map(|f| (f.address(), Arc::new(f)))
                .collect(),
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
        if lend.detail["mode"] != "iommufd" {
            return Err(bad(format!(
                "mode {}: expected \"iommufd\"",
                lend.detail["mode"]
            )));
        }
        let (ioas, devid) = (id("ioas")?, id("devid")?);
        let count = lend.fds.len();
        let Ok([device_fd, iommufd]) = <[_; 2]>::try_from(lend.fds) else {
            return Err(bad(format!(
                "{count} descriptors: expected 2 (device, iommufd)"
            )));
        };
        let lent = LentCdev {
            device: device_fd,
            iommufd,
            ioas,
            devid,
        };
        VfioContext::adopt_lent(self.options.clone(), device, lent)
    }
}
