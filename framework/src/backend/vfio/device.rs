//! [`VfioFunction`]: a PCI function opened through VFIO, the real backend's
//! [`PciFunction`].
//!
//! It behaves as the simulated bus's `SimFunction` does from a driver's point of view:
//! config accesses outside the config space are [`Error::ConfigOutOfRange`], BARs that cannot
//! be mapped are [`Error::InvalidBar`], more MSI-X vectors than the function has is
//! [`Error::MsixVectors`], a function without a function-local reset is
//! [`Error::NoFunctionReset`], and a hot reset that would hit a function this process does not
//! own is [`Error::HotResetRefused`] naming each blocker.
//!
//! # The error and request interrupts
//! When the device offers them, an eventfd is registered on `VFIO_PCI_ERR_IRQ_INDEX` (the
//! kernel signals it when AER reports an error on the function) and on
//! `VFIO_PCI_REQ_IRQ_INDEX`. The request interrupt means **"release this device now"**: the
//! kernel signals it when someone unbinds the function from vfio-pci (or removes it) and waits,
//! re-signalling every few seconds, until every fd of the device is closed. Dropping the
//! `VfioFunction` (and the BAR mappings taken from it) closes the fd and is the release; the
//! runtime or the reset coordinator waits on [`VfioFunction::request_interrupt`] to do so.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use vfio_bindings::bindings::vfio;

use super::reply::HotResetInfo;
use super::reset::{self, ResetTarget};
use super::shared::{ioctl_error, BackendKind, ContextInner, OpenedDevice};
use super::sys::{IrqSet, VfioSys};
use super::VfioMode;
use crate::device::config::BAR0;
use crate::device::{
    EventFd, InterruptVector, MappingOwner, MmioRegion, PciFunction, ResetGroupMember, ResetMethod,
};
use crate::dma::DmaSpace;
use crate::error::{Error, Result};
use crate::pci::{PciAddress, PciFunctionInfo};
use crate::time::Clock;

/// Where a region is in the device fd.
#[derive(Clone, Copy, Debug)]
struct Region {
    offset: u64,
    size: u64,
}

/// The MSI-X eventfds of a function: created once per vector, reused on every enable.
#[derive(Debug, Default)]
struct MsixEvents {
    events: Vec<Arc<EventFd>>,
    enabled: bool,
}

/// A PCI function bound to vfio-pci and opened through a [`VfioContext`](super::VfioContext).
/// Dropping it closes the device fd, which releases the device to the kernel.
pub struct VfioFunction {
    address: PciAddress,
    pub(super) inner: Arc<ContextInner>,
    pub(super) sys: Arc<dyn VfioSys>,
    device: OwnedFd,
    mode: VfioMode,
    pub(super) backend: BackendKind,
    devid: Option<u32>,
    iommu_group: u32,
    flags: u32,
    config: Region,
    msix_capacity: u32,
    msix: Mutex<MsixEvents>,
    bars: Mutex<[Option<MmioRegion>; 6]>,
    error_irq: Option<InterruptVector>,
    request_irq: Option<InterruptVector>,
    reset_methods: Vec<ResetMethod>,
    space: Arc<DmaSpace>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for VfioFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioFunction")
            .field("address", &self.address)
            .field("mode", &self.mode)
            .field("devid", &self.devid)
            .field("iommu_group", &self.iommu_group)
            .finish()
    }
}

impl VfioFunction {
    /// Reads what the device offers and registers the error and request interrupts.
    pub(super) fn new(
        inner: Arc<ContextInner>,
        info: &PciFunctionInfo,
        opened: OpenedDevice,
        backend: BackendKind,
        mode: VfioMode,
        space: Arc<DmaSpace>,
    ) -> Result<Self> {
        let address = info.address;
        let sys = inner.sys.clone();
        let fd = opened.fd.as_fd();
        let device_info = sys
            .device_get_info(fd)
            .map_err(|e| ioctl_error(address, "VFIO_DEVICE_GET_INFO", e))?;
        let malformed = device_info.flags & vfio::VFIO_DEVICE_FLAGS_PCI == 0
            || device_info.num_regions <= vfio::VFIO_PCI_CONFIG_REGION_INDEX
            || device_info.num_irqs <= vfio::VFIO_PCI_MSIX_IRQ_INDEX;
        if malformed {
            return Err(Error::VfioReply {
                context: address.to_string(),
                ioctl: "VFIO_DEVICE_GET_INFO",
                reason: format!(
                    "flags {:#x}, {} regions, {} IRQ indexes: not a vfio-pci device",
                    device_info.flags, device_info.num_regions, device_info.num_irqs
                ),
            });
        }
        let config = sys
            .device_get_region_info(fd, vfio::VFIO_PCI_CONFIG_REGION_INDEX)
            .map_err(|e| ioctl_error(address, "VFIO_DEVICE_GET_REGION_INFO", e))?;
        if config.offset.checked_add(config.size).is_none() {
            return Err(Error::VfioReply {
                context: address.to_string(),
                ioctl: "VFIO_DEVICE_GET_REGION_INFO",
                reason: format!(
                    "config region of {:#x} bytes at offset {:#x} runs past the end of the \
                     device fd (offset + size must fit in 64 bits)",
                    config.size, config.offset
                ),
            });
        }
        let msix = sys
            .device_get_irq_info(fd, vfio::VFIO_PCI_MSIX_IRQ_INDEX)
            .map_err(|e| ioctl_error(address, "VFIO_DEVICE_GET_IRQ_INFO", e))?;
        let error_irq = aux_interrupt(&*sys, fd, address, vfio::VFIO_PCI_ERR_IRQ_INDEX)?;
        let request_irq = aux_interrupt(&*sys, fd, address, vfio::VFIO_PCI_REQ_IRQ_INDEX)?;
        Ok(VfioFunction {
            address,
            clock: inner.clock.clone(),
            inner,
            sys,
            mode,
            backend,
            devid: opened.devid,
            iommu_group: opened.iommu_group,
            flags: device_info.flags,
            config: Region {
                offset: config.offset,
                size: config.size,
            },
            msix_capacity: msix.count,
            msix: Mutex::new(MsixEvents::default()),
            bars: Mutex::new(Default::default()),
            error_irq,
            request_irq,
            reset_methods: info.reset_methods.clone(),
            space,
            device: opened.fd,
        })
    }

    /// The mode the function was opened in.
    pub fn mode(&self) -> VfioMode {
        self.mode
    }

    /// The iommufd device id (cdev mode).
    pub fn devid(&self) -> Option<u32> {
        self.devid
    }

    /// The function's IOMMU group.
    pub fn iommu_group(&self) -> u32 {
        self.iommu_group
    }

    /// `VFIO_DEVICE_FLAGS_*` from `VFIO_DEVICE_GET_INFO`.
    pub fn device_flags(&self) -> u32 {
        self.flags
    }

    /// Size of the config space (256 for conventional PCI, 4096 for PCIe).
    pub fn config_size(&self) -> usize {
        self.config.size as usize
    }

    /// The MSI-X vectors the function has (`VFIO_DEVICE_GET_IRQ_INFO`).
    pub fn msix_capacity(&self) -> u32 {
        self.msix_capacity
    }

    /// The AER error interrupt, when the function is PCIe: signalled when the kernel sees an
    /// error on it. `vector()` is 0.
    pub fn error_interrupt(&self) -> Option<InterruptVector> {
        self.error_irq.clone()
    }

    /// The kernel's request to release the device: when it fires, drop this function (and
    /// every BAR mapping taken from it) promptly; the unbind that asked waits until then.
    /// `vector()` is 0.
    pub fn request_interrupt(&self) -> Option<InterruptVector> {
        self.request_irq.clone()
    }

    /// The raw hot-reset info (`None`: no slot or bus reset reaches the function).
    pub fn hot_reset_info(&self) -> Result<Option<HotResetInfo>> {
        reset::query_info(&self.reset_target())
    }

    /// What the reset code needs of this function.
    fn reset_target(&self) -> ResetTarget<'_> {
        ResetTarget {
            address: self.address,
            iommu_group: self.iommu_group,
            reset_methods: &self.reset_methods,
            fd: self.fd(),
            sys: &*self.sys,
            sysfs: &self.inner.sysfs,
            backend: &self.backend,
        }
    }

    /// The device fd.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.device.as_fd()
    }

    fn check_config(&self, offset: u16, len: usize) -> Result<u64> {
        let end = usize::from(offset).saturating_add(len);
        if end as u64 > self.config.size {
            return Err(Error::ConfigOutOfRange {
                device: self.address,
                offset,
                len,
                size: self.config.size as usize,
            });
        }
        Ok(self.config.offset + u64::from(offset))
    }

    fn set_irqs(&self, flags: u32, index: u32, count: u32, fds: &[RawFd]) -> Result<()> {
        let set = IrqSet {
            flags: flags | vfio::VFIO_IRQ_SET_ACTION_TRIGGER,
            index,
            start: 0,
            count,
            eventfds: fds,
        };
        self.sys
            .device_set_irqs(self.fd(), &set)
            .map_err(|e| ioctl_error(self.address, "VFIO_DEVICE_SET_IRQS", e))
    }

    /// True if BAR `index` decodes I/O space (bit 0 of the BAR register).
    fn is_io_bar(&self, index: u8) -> bool {
        let mut bar = [0u8; 4];
        let offset = BAR0 + 4 * u16::from(index);
        self.read_config(offset, &mut bar).is_ok() && bar[0] & 1 == 1
    }

    fn invalid_bar(&self, bar: u8, reason: &'static str) -> Error {
        Error::InvalidBar {
            device: self.address,
            bar,
            reason,
        }
    }
}

/// Registers an eventfd on the error or request IRQ index when the device offers it (count 1).
fn aux_interrupt(
    sys: &dyn VfioSys,
    fd: BorrowedFd<'_>,
    address: PciAddress,
    index: u32,
) -> Result<Option<InterruptVector>> {
    let info = match sys.device_get_irq_info(fd, index) {
        Ok(info) => info,
        // ERR is only offered for PCIe functions; older kernels may lack REQ.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(e) => return Err(ioctl_error(address, "VFIO_DEVICE_GET_IRQ_INFO", e)),
    };
    if info.count != 1 || info.flags & vfio::VFIO_IRQ_INFO_EVENTFD == 0 {
        return Ok(None);
    }
    let event = Arc::new(sys.eventfd()?);
    let set = IrqSet {
        flags: vfio::VFIO_IRQ_SET_DATA_EVENTFD | vfio::VFIO_IRQ_SET_ACTION_TRIGGER,
        index,
        start: 0,
        count: 1,
        eventfds: &[event.as_raw_fd()],
    };
    if let Err(err) = sys.device_set_irqs(fd, &set) {
        tracing::warn!(device = %address, index, %err, "VFIO: cannot register the error/request eventfd");
        return Ok(None);
    }
    Ok(Some(InterruptVector::new(0, event)))
}

impl Drop for VfioFunction {
    fn drop(&mut self) {
        self.inner.release(self.address);
        tracing::debug!(device = %self.address, "VFIO: closed (device released to the kernel)");
    }
}

/// Keeps a BAR mapped while an [`MmioRegion`] refers to it; unmaps it when the last one goes.
struct BarMapping {
    sys: Arc<dyn VfioSys>,
    /// The mapping's address, as an integer so that the owner is `Send` and `Sync`.
    base: usize,
    len: usize,
    device: PciAddress,
    bar: u8,
}

impl fmt::Debug for BarMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BarMapping({} BAR {}, {:#x} bytes)",
            self.device, self.bar, self.len
        )
    }
}

impl MappingOwner for BarMapping {}

impl Drop for BarMapping {
    fn drop(&mut self) {
        let Some(base) = NonNull::new(self.base as *mut u8) else {
            return;
        };
        // SAFETY: the owner is dropped only after the last `MmioRegion` holding it, so nothing
        // uses the mapping any more; `base`/`len` are what `mmap` returned.
        if let Err(err) = unsafe { self.sys.munmap(base, self.len) } {
            tracing::error!(device = %self.device, bar = self.bar, %err, "munmap of a BAR failed");
        }
    }
}

impl PciFunction for VfioFunction {
    type Registers = MmioRegion;

    fn address(&self) -> PciAddress {
        self.address
    }

    fn read_config(&self, offset: u16, buf: &mut [u8]) -> Result<()> {
        let at = self.check_config(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .sys
                .pread(self.fd(), &mut buf[done..], at + done as u64)
                .map_err(|source| Error::Io {
                    context: format!("{}: config read at {:#x}", self.address, offset),
                    source,
                })?;
            if n == 0 {
                return Err(Error::Io {
                    context: format!("{}: config read at {:#x}", self.address, offset),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            done += n;
        }
        Ok(())
    }

    fn write_config(&self, offset: u16, data: &[u8]) -> Result<()> {
        let at = self.check_config(offset, data.len())?;
        let mut done = 0;
        while done < data.len() {
            let n = self
                .sys
                .pwrite(self.fd(), &data[done..], at + done as u64)
                .map_err(|source| Error::Io {
                    context: format!("{}: config write at {:#x}", self.address, offset),
                    source,
                })?;
            if n == 0 {
                return Err(Error::Io {
                    context: format!("{}: config write at {:#x}", self.address, offset),
                    source: std::io::ErrorKind::WriteZero.into(),
                });
            }
            done += n;
        }
        Ok(())
    }

    fn map_bar(&self, index: u8) -> Result<MmioRegion> {
        if index > 5 {
            return Err(self.invalid_bar(index, "is not a BAR index (0 to 5)"));
        }
        let mut bars = self.bars.lock().expect("BAR cache lock poisoned");
        if let Some(region) = &bars[usize::from(index)] {
            return Ok(region.clone());
        }
        let info = self
            .sys
            .device_get_region_info(self.fd(), u32::from(index))
            .map_err(|e| ioctl_error(self.address, "VFIO_DEVICE_GET_REGION_INFO", e))?;
        if info.size == 0 {
            return Err(self.invalid_bar(index, "is not implemented by this function (size 0)"));
        }
        if info.flags & vfio::VFIO_REGION_INFO_FLAG_MMAP == 0 {
            if self.is_io_bar(index) {
                return Err(self.invalid_bar(index, "is an I/O port BAR; only memory BARs map"));
            }
            return Err(self.invalid_bar(
                index,
                "cannot be mmapped (its VFIO region lacks VFIO_REGION_INFO_FLAG_MMAP)",
            ));
        }
        let len = usize::try_from(info.size)
            .map_err(|_| self.invalid_bar(index, "is larger than the address space"))?;
        let base = self
            .sys
            .mmap(self.fd(), info.offset, len)
            .map_err(|source| Error::Io {
                context: format!("{}: mmap of BAR {index} ({len:#x} bytes)", self.address),
                source,
            })?;
        let owner = Arc::new(BarMapping {
            sys: self.sys.clone(),
            base: base.as_ptr() as usize,
            len,
            device: self.address,
            bar: index,
        });
        // SAFETY: `base` is a fresh mapping of `len` bytes of the BAR, page aligned (so 8-byte
        // aligned), unmapped only when `owner` is dropped after every region holding it.
        let region = unsafe { MmioRegion::new(base, len, owner) };
        bars[usize::from(index)] = Some(region.clone());
        Ok(region)
    }

    fn dma_space(&self) -> &Arc<DmaSpace> {
        &self.space
    }

    fn enable_msix(&self, count: u16) -> Result<Vec<InterruptVector>> {
        let available = u16::try_from(self.msix_capacity).unwrap_or(u16::MAX);
        if count == 0 || count > available {
            return Err(Error::MsixVectors {
                device: self.address,
                requested: count,
                available,
            });
        }
        let mut msix = self.msix.lock().expect("MSI-X lock poisoned");
        if msix.enabled {
            // The enabled vector count cannot grow in place: disable, then enable anew.
            self.set_irqs(
                vfio::VFIO_IRQ_SET_DATA_NONE,
                vfio::VFIO_PCI_MSIX_IRQ_INDEX,
                0,
                &[],
            )?;
            msix.enabled = false;
        }
        // Vectors keep their eventfds across disable and enable, so handles a driver took
        // before a reset still fire after it.
        while msix.events.len() < usize::from(count) {
            msix.events.push(Arc::new(self.sys.eventfd()?));
        }
        let events = msix.events[..usize::from(count)].to_vec();
        let fds: Vec<RawFd> = events.iter().map(|e| e.as_raw_fd()).collect();
        self.set_irqs(
            vfio::VFIO_IRQ_SET_DATA_EVENTFD,
            vfio::VFIO_PCI_MSIX_IRQ_INDEX,
            u32::from(count),
            &fds,
        )?;
        msix.enabled = true;
        Ok(events
            .into_iter()
            .enumerate()
            .map(|(i, e)| InterruptVector::new(i as u16, e))
            .collect())
    }

    fn disable_msix(&self) -> Result<()> {
        let mut msix = self.msix.lock().expect("MSI-X lock poisoned");
        if msix.enabled {
            self.set_irqs(
                vfio::VFIO_IRQ_SET_DATA_NONE,
                vfio::VFIO_PCI_MSIX_IRQ_INDEX,
                0,
                &[],
            )?;
            msix.enabled = false;
        }
        Ok(())
    }

    fn reset_methods(&self) -> Vec<ResetMethod> {
        self.reset_methods.clone()
    }

    fn reset_function(&self) -> Result<()> {
        if self.flags & vfio::VFIO_DEVICE_FLAGS_RESET == 0 {
            return Err(Error::NoFunctionReset {
                device: self.address,
                methods: reset::methods_text(&self.reset_methods),
            });
        }
        self.sys.device_reset(self.fd()).map_err(|source| {
            let hint = match source.raw_os_error() {
                Some(libc::EAGAIN) => "; the function is locked by another reset: retry",
                Some(libc::ENOTTY) => "; the function did not come back from the reset",
                _ => "",
            };
            Error::VfioIoctl {
                context: self.address.to_string(),
                ioctl: "VFIO_DEVICE_RESET",
                hint: hint.to_string(),
                source,
            }
        })
    }

    fn reset_group(&self) -> Result<Vec<ResetGroupMember>> {
        Ok(reset::members(&self.reset_target())?
            .into_iter()
            .map(|view| view.member)
            .collect())
    }

    fn reset_group_hot(&self) -> Result<()> {
        reset::hot_reset(&self.reset_target())
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
