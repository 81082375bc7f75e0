//! Lending an open function to another process, and adopting a function lent to this one:
//! what the reset-group broker does with a VFIO function (`crate::broker`).
//!
//! iommufd (cdev) mode only. The broker keeps every function bound to its one iommufd, which
//! the hot reset needs (`VFIO_DEVICE_PCI_HOT_RESET` with no fds: every member of the reset
//! group bound to the caller's iommufd), and attaches the lent function to a fresh IOAS of
//! its own, so that a client maps its DMA memory where no other client can see or overwrite
//! it. The client receives duplicates of the device fd and the iommufd and opens the function
//! from them as if it had opened it itself. iommufd attaches an IOMMU group as a whole, so
//! functions sharing a group (QEMU's NVMe functions of one slot) stay in the broker's IOAS,
//! each client in an IOVA window of its own there, as in group mode.
//!
//! Group mode: there is one container, so every client maps into one address space. The
//! broker gives each client an IOVA window of its own and the client allocates only inside it
//! ([`Container::adopt`]); the kernel does not enforce the windows, so in group mode clients
//! are trusted not to map outside theirs. The group fds, and hot resets, stay with the broker.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::container::Container;
use super::context::VfioContext;
use super::device::VfioFunction;
use super::iommufd::IommufdContext;
use super::shared::{ioctl_error, Backend, BackendKind, OpenedDevice};
use super::{VfioMode, VfioOptions};
use crate::device::PciFunction;
use crate::dma::{DmaSpace, IovaRange};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// What a client needs to open a lent cdev-mode function.
#[derive(Debug)]
pub struct LentCdev {
    /// A duplicate of the broker's device fd (bound to its iommufd).
    pub device: OwnedFd,
    /// A duplicate of the broker's iommufd.
    pub iommufd: OwnedFd,
    /// The IOAS the function is attached to: the client's own, or with `window` the broker's.
    pub ioas: u32,
    /// The function's device id in the iommufd.
    pub devid: u32,
    /// Where the client allocates IOVAs when the IOAS is shared.
    pub window: Option<IovaRange>,
}

/// What a client needs to open a lent group-mode function.
#[derive(Debug)]
pub struct LentGroup {
    /// A duplicate of the broker's device fd.
    pub device: OwnedFd,
    /// A duplicate of the broker's container fd.
    pub container: OwnedFd,
    /// Where the client allocates IOVAs.
    pub window: IovaRange,
}

fn dup(device: PciAddress, fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|source| ioctl_error(device, "F_DUPFD_CLOEXEC", source))
}

impl VfioFunction {
    /// What another process needs to drive the function in iommufd mode. Without a `window`
    /// the function is attached to a new IOAS, where the client maps its DMA apart from every
    /// other client; that needs the function alone in its IOMMU group (iommufd attaches a
    /// group as a whole). With a `window` the function stays in the broker's IOAS, where the
    /// client allocates IOVAs only inside the window (functions sharing an IOMMU group).
    ///
    /// # Errors
    /// [`Error::VfioMode`] in group mode; the failing ioctl otherwise.
    pub fn lend_cdev(&self, window: Option<IovaRange>) -> Result<LentCdev> {
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
        let ioas = match window {
            Some(_) => ctx.ioas_id(),
            None => {
                let ioas = self
                    .sys
                    .ioas_alloc(ctx.fd())
                    .map_err(|e| ioctl_error(device, "IOMMU_IOAS_ALLOC", e))?;
                if let Err(err) = self.sys.device_attach_iommufd_pt(self.fd(), ioas) {
                    let _ = self.sys.destroy(ctx.fd(), ioas);
                    return Err(ioctl_error(device, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", err));
                }
                ioas
            }
        };
        Ok(LentCdev {
            device: dup(device, self.fd())?,
            iommufd: dup(device, ctx.fd())?,
            ioas,
            devid,
            window,
        })
    }

    /// Takes the function back from a client it was lent to with an IOAS of its own
    /// (`private_ioas`): attaches it to this context's IOAS again, which holds none of the
    /// client's mappings (the client's DMA can no longer reach memory), and destroys the
    /// client's IOAS.
    ///
    /// # Errors
    /// [`Error::VfioMode`] in group mode; the failing ioctl otherwise.
    pub fn reclaim_cdev(&self, private_ioas: u32) -> Result<()> {
        let device = self.address();
        let BackendKind::Iommufd(ctx) = &self.backend else {
            return Err(Error::VfioMode {
                mode: "group",
                reason: format!("{device}: no IOAS to reclaim in group mode"),
            });
        };
        self.sys
            .device_attach_iommufd_pt(self.fd(), ctx.ioas_id())
            .map_err(|e| ioctl_error(device, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", e))?;
        self.sys
            .destroy(ctx.fd(), private_ioas)
            .map_err(|e| ioctl_error(device, "IOMMU_DESTROY", e))
    }

    /// What another process needs to drive the function in group mode, allocating its IOVAs
    /// in `window` of the shared container.
    ///
    /// # Errors
    /// [`Error::VfioMode`] in iommufd mode (use [`VfioFunction::lend_cdev`]).
    pub fn lend_group(&self, window: IovaRange) -> Result<LentGroup> {
        let device = self.address();
        let BackendKind::Group(container) = &self.backend else {
            return Err(Error::VfioMode {
                mode: "iommufd",
                reason: format!("{device}: lend_group is for group mode; use lend_cdev"),
            });
        };
        Ok(LentGroup {
            device: dup(device, self.fd())?,
            container: dup(device, container.fd())?,
            window,
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
        let kind = |sys| {
            BackendKind::Iommufd(Arc::new(IommufdContext::adopt(
                sys,
                lent.iommufd,
                lent.ioas,
                lent.window,
            )))
        };
        adopt(
            options,
            address,
            lent.device,
            Some(lent.devid),
            VfioMode::Iommufd,
            kind,
        )
    }

    /// [`VfioContext::adopt_lent`] for a group-mode lend: DMA goes through the shared
    /// container, at IOVAs inside the lent window.
    ///
    /// # Errors
    /// As [`VfioContext::adopt_lent`]; [`Error::VfioReply`] when the window lies outside the
    /// container's valid IOVA ranges.
    pub fn adopt_lent_group(
        options: VfioOptions,
        address: PciAddress,
        lent: LentGroup,
    ) -> Result<VfioFunction> {
        let kind =
            |sys| BackendKind::Group(Arc::new(Container::adopt(sys, lent.container, lent.window)));
        adopt(options, address, lent.device, None, VfioMode::Group, kind)
    }
}

/// A new context holding one lent function, its backend made by `kind`.
fn adopt(
    options: VfioOptions,
    address: PciAddress,
    device_fd: OwnedFd,
    devid: Option<u32>,
    mode: VfioMode,
    kind: impl FnOnce(Arc<dyn super::VfioSys>) -> BackendKind,
) -> Result<VfioFunction> {
    let context = VfioContext::new(options)?;
    let inner = context.inner();
    let info = inner.sysfs.function(address)?;
    let iommu_group = info.iommu_group.ok_or_else(|| Error::NoIommu {
        what: format!("{address} has no iommu_group link in sysfs"),
    })?;
    let kind = kind(inner.sys.clone());
    let mapper = kind.mapper();
    let ranges = mapper.iova_ranges()?;
    let space = DmaSpace::new(mapper)?;
    inner.lock().backend = Some(Backend {
        mode,
        reason: "lent by a reset-group broker".into(),
        kind: kind.clone(),
        space: Some((space.clone(), ranges)),
    });
    let opened = OpenedDevice {
        fd: device_fd,
        devid,
        iommu_group,
    };
    let function = VfioFunction::new(Arc::clone(inner), &info, opened, kind, mode, space)?;
    inner.lock().open.insert(address, function.devid());
    tracing::debug!(device = %address, %mode, "VFIO: adopted a lent function");
    Ok(function)
}
