//! [`VfioContext`]: opens functions, in one mode, into one DMA address space.

use std::fmt;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use vfio_bindings::bindings::vfio;

use super::container::{Container, VfioGroup};
use super::device::VfioFunction;
use super::iommufd::IommufdContext;
use super::shared::{ioctl_error, Backend, BackendKind, ContextInner, ContextState, OpenedDevice};
use super::{is_vfio_driver, open_error, select_mode, VfioMode, VfioOptions};
use crate::dma::{DmaSpace, IovaRange};
use crate::error::{Error, Result};
use crate::pci::{PciAddress, PciFunctionInfo, SysfsPci};
use crate::time::SystemClock;

/// A handle on the VFIO subsystem: opens functions, all into one IOAS (iommufd mode) or one
/// container (group mode) and one [`DmaSpace`]. Cheap to clone; functions keep it alive.
///
/// The context is an owned handle, never a global: two contexts are two address spaces, and
/// a test can build one over a fixture sysfs and a [`FakeVfio`](super::fake::FakeVfio).
///
/// In group mode the IOMMU groups a context opened stay open (attached to its container) until
/// the context, its functions and its DMA space are all gone, even after their functions are
/// dropped: closing the last group would make the kernel drop the IOMMU under mapped DMA
/// memory. Another process (or context) cannot open those groups meanwhile. In iommufd mode
/// dropping a function closes its device and frees it at once.
#[derive(Clone)]
pub struct VfioContext {
    inner: Arc<ContextInner>,
}

impl fmt::Debug for VfioContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioContext")
            .field("sysfs", &self.inner.sysfs.root())
            .field("mode", &self.mode())
            .field(
                "open",
                &self.inner.open_functions().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl VfioContext {
    /// A context for the system `options` describe.
    ///
    /// # Errors
    /// [`Error::NoIommu`] when sysfs shows no IOMMU group at all: the IOMMU is off and no
    /// device can be opened through VFIO.
    pub fn new(options: VfioOptions) -> Result<Self> {
        let sysfs = SysfsPci::new(&options.sysfs_root);
        if sysfs.iommu_groups()?.is_empty() {
            return Err(Error::NoIommu {
                what: format!(
                    "{} is empty or missing",
                    sysfs.root().join("kernel/iommu_groups").display()
                ),
            });
        }
        Ok(VfioContext {
            inner: Arc::new(ContextInner {
                sys: options.sys,
                sysfs,
                dev_root: options.dev_root,
                choice: options.mode,
                clock: SystemClock::shared(),
                state: Mutex::new(ContextState::default()),
            }),
        })
    }

    /// The mode, once the first function has been opened.
    pub fn mode(&self) -> Option<VfioMode> {
        self.inner.lock().backend.as_ref().map(|b| b.mode)
    }

    /// Why the mode was chosen, once it has been.
    pub fn mode_reason(&self) -> Option<String> {
        self.inner.lock().backend.as_ref().map(|b| b.reason.clone())
    }

    /// The DMA space every function of this context uses, once one is open.
    pub fn dma_space(&self) -> Option<Arc<DmaSpace>> {
        let state = self.inner.lock();
        state
            .backend
            .as_ref()?
            .space
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    /// The sysfs reader this context uses.
    pub fn sysfs(&self) -> &SysfsPci {
        &self.inner.sysfs
    }

    /// What the context shares with its functions (for adopting a lent function).
    pub(super) fn inner(&self) -> &Arc<ContextInner> {
        &self.inner
    }

    /// The functions open through this context.
    pub fn open_functions(&self) -> Vec<PciAddress> {
        self.inner.open_functions().into_keys().collect()
    }

    /// Opens a function bound to vfio-pci.
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`], [`Error::NoIommu`] (no IOMMU group), [`Error::NotBoundToVfio`],
    /// [`Error::AlreadyOpen`] (open through this context), [`Error::GroupNotViable`] (naming the
    /// group's other functions and their drivers), [`Error::VfioPermission`],
    /// [`Error::VfioBusy`], [`Error::VfioModuleMissing`], [`Error::VfioMode`], or the failing
    /// ioctl.
    pub fn open(&self, address: PciAddress) -> Result<VfioFunction> {
        let inner = &self.inner;
        let info = inner.sysfs.function(address)?;
        let iommu_group = info.iommu_group.ok_or_else(|| Error::NoIommu {
            what: format!("{address} has no iommu_group link in sysfs"),
        })?;
        if !is_vfio_driver(info.driver.as_deref()) {
            return Err(Error::NotBoundToVfio {
                device: address,
                driver: info.driver.clone().unwrap_or_else(|| "none".into()),
            });
        }
        let mut state = inner.lock();
        if state.open.contains_key(&address) {
            return Err(Error::AlreadyOpen { device: address });
        }
        if state.backend.is_none() {
            let (mode, reason) = select_mode(inner.choice, &inner.dev_root, &info)?;
            tracing::info!(%mode, %reason, "VFIO: {mode} mode");
            let kind = match mode {
                VfioMode::Iommufd => BackendKind::Iommufd(Arc::new(IommufdContext::open(
                    inner.sys.clone(),
                    &inner.dev_root.join("iommu"),
                )?)),
                VfioMode::Group => BackendKind::Group(Arc::new(Container::open(
                    inner.sys.clone(),
                    &inner.dev_root.join("vfio/vfio"),
                )?)),
            };
            state.backend = Some(Backend {
                mode,
                reason,
                kind,
                space: None,
            });
        }
        let backend = state.backend.as_mut().expect("backend set above");
        let (opened, new_domain) = match &backend.kind {
            BackendKind::Iommufd(ctx) => (self.open_cdev(ctx, &info, iommu_group)?, true),
            BackendKind::Group(container) => self.open_in_group(container, &info, iommu_group)?,
        };
        let space = match &backend.space {
            None => {
                let mapper = backend.kind.mapper();
                let ranges = mapper.iova_ranges()?;
                let space = DmaSpace::new(mapper)?;
                backend.space = Some((space.clone(), ranges));
                space
            }
            Some((space, ranges)) => {
                if new_domain {
                    check_still_covered(space, ranges, address)?;
                }
                space.clone()
            }
        };
        let kind = backend.kind.clone();
        let mode = backend.mode;
        let function = VfioFunction::new(inner.clone(), &info, opened, kind, mode, space)?;
        state.open.insert(address, function.devid());
        tracing::debug!(device = %address, %mode, "VFIO: opened");
        Ok(function)
    }

    /// iommufd mode: open the cdev, bind it to the iommufd, attach it to the IOAS.
    fn open_cdev(
        &self,
        ctx: &IommufdContext,
        info: &PciFunctionInfo,
        iommu_group: u32,
    ) -> Result<OpenedDevice> {
        let inner = &self.inner;
        let address = info.address;
        let cdev = info.vfio_dev.as_deref().ok_or_else(|| Error::VfioMode {
            mode: "iommufd",
            reason: format!(
                "this context uses iommufd, but {address} has no vfio-dev entry in sysfs"
            ),
        })?;
        let path = inner.dev_root.join("vfio/devices").join(cdev);
        let fd = inner
            .sys
            .open(&path)
            .map_err(|e| open_error(&path, "vfio-pci", e))?;
        let devid = inner
            .sys
            .device_bind_iommufd(fd.as_fd(), ctx.fd())
            .map_err(|source| {
                // EBUSY: the group is open through the legacy group interface. EPERM (seen on
                // 6.12, from iommu_device_claim_dma_owner()): the group's DMA ownership is
                // claimed by another owner, i.e. another iommufd (another process or VFIO
                // context bound a function of the group) or a kernel driver bound to a member.
                // Both mean "held elsewhere", not a failed ioctl.
                let errno = source.raw_os_error();
                if matches!(errno, Some(libc::EBUSY | libc::EPERM)) {
                    if let Some(members) = self.group_blockers(address, iommu_group) {
                        return Error::GroupNotViable {
                            device: address,
                            group: iommu_group,
                            members,
                        };
                    }
                    let what = if errno == Some(libc::EPERM) {
                        format!(
                            "{address} ({}; its IOMMU group {iommu_group} is claimed by another \
                             iommufd)",
                            path.display()
                        )
                    } else {
                        format!("{address} ({})", path.display())
                    };
                    return Error::VfioBusy { what, source };
                }
                ioctl_error(address, "VFIO_DEVICE_BIND_IOMMUFD", source)
            })?;
        inner
            .sys
            .device_attach_iommufd_pt(fd.as_fd(), ctx.ioas_id())
            .map_err(|e| ioctl_error(address, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", e))?;
        Ok(OpenedDevice {
            fd,
            devid: Some(devid),
            iommu_group,
        })
    }

    /// Group mode: open (or reuse) the group, check it is viable, attach it to the container,
    /// get the device fd. The flag is true when a group was newly attached.
    fn open_in_group(
        &self,
        container: &Container,
        info: &PciFunctionInfo,
        id: u32,
    ) -> Result<(OpenedDevice, bool)> {
        let inner = &self.inner;
        let address = info.address;
        let (group, new_group) = match container.group(id) {
            Some(group) => (group, false),
            None => {
                let path = inner.dev_root.join("vfio").join(id.to_string());
                let group = Arc::new(VfioGroup::open(&*inner.sys, id, &path)?);
                let flags = inner
                    .sys
                    .group_get_status(group.fd())
                    .map_err(|e| ioctl_error(address, "VFIO_GROUP_GET_STATUS", e))?;
                if flags & vfio::VFIO_GROUP_FLAGS_VIABLE == 0 {
                    return Err(Error::GroupNotViable {
                        device: address,
                        group: id,
                        members: self
                            .group_blockers(address, id)
                            .unwrap_or_else(|| self.group_members(address, id)),
                    });
                }
                container.attach(group.clone())?;
                (group, true)
            }
        };
        let fd = inner
            .sys
            .group_get_device_fd(group.fd(), &address.to_string())
            .map_err(|source| match source.raw_os_error() {
                Some(libc::EBUSY) => Error::VfioBusy {
                    what: format!("{address} (IOMMU group {id})"),
                    source,
                },
                _ => ioctl_error(address, "VFIO_GROUP_GET_DEVICE_FD", source),
            })?;
        let opened = OpenedDevice {
            fd,
            devid: None,
            iommu_group: id,
        };
        Ok((opened, new_group))
    }

    /// The other functions of group `id` bound to a kernel driver, `None` if there are none.
    fn group_blockers(&self, address: PciAddress, id: u32) -> Option<String> {
        let groups = self.inner.sysfs.iommu_groups().ok()?;
        let blockers: Vec<String> = groups
            .get(&id)?
            .iter()
            .filter(|m| **m != address)
            .filter_map(|m| {
                let driver = self.inner.sysfs.function(*m).ok()?.driver?;
                let harmless = is_vfio_driver(Some(&driver))
                    || matches!(driver.as_str(), "pci-stub" | "pcieport");
                (!harmless).then(|| format!("{m} is bound to {driver}"))
            })
            .collect();
        (!blockers.is_empty()).then(|| blockers.join(", "))
    }

    /// Every other function of group `id` with its driver.
    fn group_members(&self, address: PciAddress, id: u32) -> String {
        let sysfs = &self.inner.sysfs;
        let members = sysfs.iommu_groups().ok().and_then(|mut g| g.remove(&id));
        let described: Vec<String> = members
            .unwrap_or_default()
            .into_iter()
            .filter(|m| *m != address)
            .map(|m| {
                let driver = sysfs.function(m).ok().and_then(|f| f.driver);
                format!("{m} ({})", driver.as_deref().unwrap_or("no driver"))
            })
            .collect();
        if described.is_empty() {
            "the kernel reports it not viable, but sysfs shows no other member".into()
        } else {
            described.join(", ")
        }
    }
}

/// After another device joined the IOMMU domain: the ranges the allocator hands out must still
/// be valid.
fn check_still_covered(space: &DmaSpace, ranges: &[IovaRange], device: PciAddress) -> Result<()> {
    let now = space.mapper().iova_ranges()?;
    let covered = ranges
        .iter()
        .all(|r| now.iter().any(|n| n.start <= r.start && r.last <= n.last));
    if covered {
        return Ok(());
    }
    Err(Error::IovaRangesNarrowed {
        space: space.name(),
        device,
        ranges: format!("{now:?}"),
        allocated: format!("{ranges:?}"),
    })
}

impl crate::reset::FunctionOpener for VfioContext {
    type Function = VfioFunction;

    fn open_function(&self, address: PciAddress) -> Result<VfioFunction> {
        self.open(address)
    }
}
