//! Lending an open function to another process, and adopting a function lent to this one:
//! what the reset-group broker does with a VFIO function (`crate::broker`).
//!
//! iommufd (cdev) mode only. The broker keeps every function bound to its one iommufd, which
//! the hot reset needs (`VFIO_DEVICE_PCI_HOT_RESET` with no fds: every member of the reset
//! group bound to the caller's iommufd), and attaches the lent function to a fresh IOAS of
//! its own, so that a client maps its DMA memory where no other client can see or overwrite
//! it. The client receives duplicates of the device fd and the iommufd and opens the function
//! from them as if it had opened it itself. In group mode every client would share the one
//! container's address space; that needs IOVA windows and is not written.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::context::VfioContext;
use super::device::VfioFunction;
use super::iommufd::IommufdContext;
use super::shared::{ioctl_error, Backend, BackendKind, OpenedDevice};
use super::{VfioMode, VfioOptions};
use crate::device::PciFunction;
use crate::dma::DmaSpace;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// What a client needs to open a lent cdev-mode function.
#[derive(Debug)]
pub struct LentCdev {
    /// A duplicate of the broker's device fd (bound to its iommufd).
    pub device: OwnedFd,
    /// A duplicate of the broker's iommufd.
    pub iommufd: OwnedFd,
    /// The IOAS the function is attached to, the client's own.
    pub ioas: u32,
    /// The function's device id in the iommufd.
    pub devid: u32,
}

fn dup(device: PciAddress, fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|source| ioctl_error(device, "F_DUPFD_CLOEXEC", source))
}

impl VfioFunction {
    /// Attaches the function to a new IOAS and returns what another process needs to drive
    /// it: the client maps its DMA there, apart from every other client.
    ///
    /// # Errors
    /// [`Error::VfioMode`] in group mode; the failing ioctl otherwise.
    pub fn lend_cdev(&self) -> Result<LentCdev> {
        let device = self.address();
        let BackendKind::Iommufd(ctx) = &self.backend else {
            return Err(Error::VfioMode {
                mode: "group",
                reason: format!("{device}: lending a function needs iommufd (cdev) mode"),
            });
        };
        let devid = self.devid().ok_or_else(|| Error::VfioMode {
            mode: "iommufd",
            reason: format!("{device}: no iommufd device id"),
        })?;
        let ioas = self
            .sys
            .ioas_alloc(ctx.fd())
            .map_err(|e| ioctl_error(device, "IOMMU_IOAS_ALLOC", e))?;
        if let Err(err) = self.sys.device_attach_iommufd_pt(self.fd(), ioas) {
            let _ = self.sys.destroy(ctx.fd(), ioas);
            return Err(ioctl_error(device, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", err));
        }
        Ok(LentCdev {
            device: dup(device, self.fd())?,
            iommufd: dup(device, ctx.fd())?,
            ioas,
            devid,
        })
    }
}

impl VfioContext {
    /// Opens a function that a broker lent this process, from the descriptors it passed: the
    /// same [`VfioFunction`] as [`VfioContext::open`] gives, its DMA space the lent IOAS.
    ///
    /// # Errors
    /// As [`VfioContext::new`], [`crate::pci::SysfsPci::function`], and the ioctls that read
    /// the device's regions and interrupts.
    pub fn adopt_lent(
        options: VfioOptions,
        address: PciAddress,
        lent: LentCdev,
    ) -> Result<VfioFunction> {
        let context = VfioContext::new(options)?;
        let inner = context.inner();
        let info = inner.sysfs.function(address)?;
        let iommu_group = info.iommu_group.ok_or_else(|| Error::NoIommu {
            what: format!("{address} has no iommu_group link in sysfs"),
        })?;
        let iommufd = IommufdContext::adopt(inner.sys.clone(), lent.iommufd, lent.ioas);
        let kind = BackendKind::Iommufd(Arc::new(iommufd));
        let mapper = kind.mapper();
        let ranges = mapper.iova_ranges()?;
        let space = DmaSpace::new(mapper)?;
        inner.lock().backend = Some(Backend {
            mode: VfioMode::Iommufd,
            reason: "lent by a reset-group broker".into(),
            kind: kind.clone(),
            space: Some((space.clone(), ranges)),
        });
        let opened = OpenedDevice {
            fd: lent.device,
            devid: Some(lent.devid),
            iommu_group,
        };
        let function = VfioFunction::new(
            Arc::clone(inner),
            &info,
            opened,
            kind,
            VfioMode::Iommufd,
            space,
        )?;
        inner.lock().open.insert(address, function.devid());
        tracing::debug!(device = %address, ioas = lent.ioas, "VFIO: adopted a lent function");
        Ok(function)
    }
}
