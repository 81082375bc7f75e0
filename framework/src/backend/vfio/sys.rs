//! The system-call layer of the VFIO backends: one function per ioctl, behind a trait.
//!
//! [`VfioSys`] is everything the backends ask of the kernel: `open`, the VFIO and iommufd
//! ioctls, `pread`/`pwrite` on a device fd, `mmap`/`munmap` of BARs and eventfds. The real
//! implementation is [`KernelVfio`](super::KernelVfio), the only place in the backend that
//! issues system calls; [`FakeVfio`](super::fake::FakeVfio) replaces it in tests and plays
//! the kernel's part as the uAPI documents it.
//!
//! Each method is a thin translation: the caller fills the uAPI structure's inputs, the method
//! sets `argsz`/`size` (so that the kernel never writes past the caller's buffer) and returns the
//! kernel's answer unchanged, errno included. Growing buffers on `ENOSPC`/`EMSGSIZE`, walking
//! capability chains and turning errno into [`Error`](crate::Error)s happen above this layer,
//! in safe code that the fake exercises.
//!
//! The request numbers come from the bindings' `VFIO_TYPE`/`VFIO_BASE` and `IOMMUFD_CMD_*`
//! constants with the kernel's `_IO` encoding; the `+ n` offsets are those of
//! `include/uapi/linux/vfio.h`, which spells every VFIO request as `_IO(VFIO_TYPE, VFIO_BASE + n)`.

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::ptr::NonNull;

use iommufd_bindings as iommufd;
use vfio_bindings::bindings::vfio;

use crate::device::EventFd;
use crate::error::Result;

/// `_IO(type, nr)`: a request with no size or direction encoded, as every VFIO and iommufd
/// request is (`_IOC(_IOC_NONE, type, nr, 0)`).
const fn io(ty: u8, nr: u32) -> u64 {
    ((vfio::_IOC_NONE as u64) << vfio::_IOC_DIRSHIFT)
        | ((ty as u64) << vfio::_IOC_TYPESHIFT)
        | ((nr as u64) << vfio::_IOC_NRSHIFT)
}

/// `_IO(VFIO_TYPE, VFIO_BASE + offset)`.
const fn vfio_io(offset: u32) -> u64 {
    io(vfio::VFIO_TYPE, vfio::VFIO_BASE + offset)
}

/// `_IO(IOMMUFD_TYPE, cmd)`.
const fn iommufd_io(cmd: u32) -> u64 {
    io(iommufd::IOMMUFD_TYPE, cmd)
}

/// Request numbers, named as in the uAPI headers.
pub mod nr {
    use super::{iommufd, iommufd_io, vfio_io};

    /// `VFIO_GET_API_VERSION` (container).
    pub const VFIO_GET_API_VERSION: u64 = vfio_io(0);
    /// `VFIO_CHECK_EXTENSION` (container).
    pub const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
    /// `VFIO_SET_IOMMU` (container).
    pub const VFIO_SET_IOMMU: u64 = vfio_io(2);
    /// `VFIO_GROUP_GET_STATUS` (group).
    pub const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
    /// `VFIO_GROUP_SET_CONTAINER` (group).
    pub const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
    /// `VFIO_GROUP_GET_DEVICE_FD` (group).
    pub const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
    /// `VFIO_DEVICE_GET_INFO` (device).
    pub const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
    /// `VFIO_DEVICE_GET_REGION_INFO` (device).
    pub const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
    /// `VFIO_DEVICE_GET_IRQ_INFO` (device).
    pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = vfio_io(9);
    /// `VFIO_DEVICE_SET_IRQS` (device).
    pub const VFIO_DEVICE_SET_IRQS: u64 = vfio_io(10);
    /// `VFIO_DEVICE_RESET` (device).
    pub const VFIO_DEVICE_RESET: u64 = vfio_io(11);
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` (device).
    pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u64 = vfio_io(12);
    /// `VFIO_DEVICE_PCI_HOT_RESET` (device).
    pub const VFIO_DEVICE_PCI_HOT_RESET: u64 = vfio_io(13);
    /// `VFIO_DEVICE_BIND_IOMMUFD` (device cdev).
    pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = vfio_io(18);
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` (device cdev).
    pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = vfio_io(19);
    /// `VFIO_IOMMU_GET_INFO` (container; shares its number with the device's hot-reset info).
    pub const VFIO_IOMMU_GET_INFO: u64 = vfio_io(12);
    /// `VFIO_IOMMU_MAP_DMA` (container).
    pub const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
    /// `VFIO_IOMMU_UNMAP_DMA` (container).
    pub const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);
    /// `IOMMU_DESTROY` (iommufd).
    pub const IOMMU_DESTROY: u64 = iommufd_io(iommufd::IOMMUFD_CMD_DESTROY);
    /// `IOMMU_IOAS_ALLOC` (iommufd).
    pub const IOMMU_IOAS_ALLOC: u64 = iommufd_io(iommufd::IOMMUFD_CMD_IOAS_ALLOC);
    /// `IOMMU_IOAS_IOVA_RANGES` (iommufd).
    pub const IOMMU_IOAS_IOVA_RANGES: u64 = iommufd_io(iommufd::IOMMUFD_CMD_IOAS_IOVA_RANGES);
    /// `IOMMU_IOAS_MAP` (iommufd).
    pub const IOMMU_IOAS_MAP: u64 = iommufd_io(iommufd::IOMMUFD_CMD_IOAS_MAP);
    /// `IOMMU_IOAS_UNMAP` (iommufd).
    pub const IOMMU_IOAS_UNMAP: u64 = iommufd_io(iommufd::IOMMUFD_CMD_IOAS_UNMAP);
}

/// `sizeof(struct vfio_pci_hot_reset_info)`: the header before the dependent devices.
pub const HOT_RESET_INFO_HEADER: usize = std::mem::size_of::<vfio::vfio_pci_hot_reset_info>();
/// `sizeof(struct vfio_pci_dependent_device)`.
pub const DEPENDENT_DEVICE_SIZE: usize = std::mem::size_of::<vfio::vfio_pci_dependent_device>();
/// `sizeof(struct vfio_iommu_type1_info)`: the header before the capability chain.
pub const TYPE1_INFO_HEADER: usize = std::mem::size_of::<vfio::vfio_iommu_type1_info>();

/// One `VFIO_DEVICE_SET_IRQS` request.
#[derive(Clone, Copy, Debug)]
pub struct IrqSet<'a> {
    /// `VFIO_IRQ_SET_DATA_*` | `VFIO_IRQ_SET_ACTION_*`.
    pub flags: u32,
    /// `VFIO_PCI_*_IRQ_INDEX`.
    pub index: u32,
    /// First vector.
    pub start: u32,
    /// Number of vectors.
    pub count: u32,
    /// With `VFIO_IRQ_SET_DATA_EVENTFD`: one eventfd per vector (-1 de-assigns); else empty.
    pub eventfds: &'a [RawFd],
}

/// The kernel interface the VFIO backends use. One method per system call or ioctl.
///
/// Errors are the kernel's errno as an [`io::Error`]; where the kernel writes an answer back
/// even on failure (`ENOSPC` from the hot-reset info, `EMSGSIZE` from the IOVA ranges), the
/// caller's buffer or structure holds it when the method returns.
pub trait VfioSys: Send + Sync + fmt::Debug + 'static {
    /// `open(path, O_RDWR | O_CLOEXEC)`.
    fn open(&self, path: &Path) -> io::Result<OwnedFd>;

    // ---- container: /dev/vfio/vfio ----
    /// `VFIO_GET_API_VERSION`.
    fn get_api_version(&self, container: BorrowedFd<'_>) -> io::Result<i32>;
    /// `VFIO_CHECK_EXTENSION`: true if the container supports `extension` (`VFIO_TYPE1v2_IOMMU`).
    fn check_extension(&self, container: BorrowedFd<'_>, extension: u32) -> io::Result<bool>;
    /// `VFIO_SET_IOMMU`.
    fn set_iommu(&self, container: BorrowedFd<'_>, iommu_type: u32) -> io::Result<()>;
    /// `VFIO_IOMMU_GET_INFO` into `buf` (a `vfio_iommu_type1_info` and room for its capability
    /// chain); `argsz` is set to `buf.len()`.
    fn iommu_get_info(&self, container: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()>;
    /// `VFIO_IOMMU_MAP_DMA`; `argsz` is set by the method.
    ///
    /// # Safety
    /// `map.vaddr` must point to `map.size` bytes that stay valid (not unmapped, not reused)
    /// until the same range is unmapped: the device may read or write them at any time.
    unsafe fn iommu_map_dma(
        &self,
        container: BorrowedFd<'_>,
        map: &mut vfio::vfio_iommu_type1_dma_map,
    ) -> io::Result<()>;
    /// `VFIO_IOMMU_UNMAP_DMA`; on success `unmap.size` holds the bytes unmapped.
    fn iommu_unmap_dma(
        &self,
        container: BorrowedFd<'_>,
        unmap: &mut vfio::vfio_iommu_type1_dma_unmap,
    ) -> io::Result<()>;

    // ---- group: /dev/vfio/<group> ----
    /// `VFIO_GROUP_GET_STATUS`: the `VFIO_GROUP_FLAGS_*`.
    fn group_get_status(&self, group: BorrowedFd<'_>) -> io::Result<u32>;
    /// `VFIO_GROUP_SET_CONTAINER`.
    fn group_set_container(
        &self,
        group: BorrowedFd<'_>,
        container: BorrowedFd<'_>,
    ) -> io::Result<()>;
    /// `VFIO_GROUP_GET_DEVICE_FD` for the device named `name` (`0000:01:00.0`).
    fn group_get_device_fd(&self, group: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd>;

    // ---- device: from a group, or /dev/vfio/devices/vfioN ----
    /// `VFIO_DEVICE_GET_INFO` (without capabilities).
    fn device_get_info(&self, device: BorrowedFd<'_>) -> io::Result<vfio::vfio_device_info>;
    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index` (without capabilities).
    fn device_get_region_info(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
    ) -> io::Result<vfio::vfio_region_info>;
    /// `VFIO_DEVICE_GET_IRQ_INFO` for IRQ index `index`.
    fn device_get_irq_info(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
    ) -> io::Result<vfio::vfio_irq_info>;
    /// `VFIO_DEVICE_SET_IRQS`.
    fn device_set_irqs(&self, device: BorrowedFd<'_>, set: &IrqSet<'_>) -> io::Result<()>;
    /// `VFIO_DEVICE_RESET`.
    fn device_reset(&self, device: BorrowedFd<'_>) -> io::Result<()>;
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` into `buf` (a `vfio_pci_hot_reset_info` header and
    /// room for dependent devices); `argsz` is set to `buf.len()`.
    fn device_get_pci_hot_reset_info(
        &self,
        device: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> io::Result<()>;
    /// `VFIO_DEVICE_PCI_HOT_RESET` with `group_fds` (empty in cdev mode).
    fn device_pci_hot_reset(
        &self,
        device: BorrowedFd<'_>,
        group_fds: &[BorrowedFd<'_>],
    ) -> io::Result<()>;
    /// `VFIO_DEVICE_BIND_IOMMUFD`: returns `out_devid`.
    fn device_bind_iommufd(
        &self,
        device: BorrowedFd<'_>,
        iommufd: BorrowedFd<'_>,
    ) -> io::Result<u32>;
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`: returns the `pt_id` the kernel wrote back.
    fn device_attach_iommufd_pt(&self, device: BorrowedFd<'_>, pt_id: u32) -> io::Result<u32>;

    // ---- iommufd: /dev/iommu ----
    /// `IOMMU_IOAS_ALLOC`: returns `out_ioas_id`.
    fn ioas_alloc(&self, iommufd: BorrowedFd<'_>) -> io::Result<u32>;
    /// `IOMMU_IOAS_IOVA_RANGES` of `cmd.ioas_id` into `ranges`; the method sets `size`,
    /// `num_iovas` and `allowed_iovas`. On return (`EMSGSIZE` included) `cmd.num_iovas` is the
    /// total number of ranges.
    fn ioas_iova_ranges(
        &self,
        iommufd: BorrowedFd<'_>,
        cmd: &mut iommufd::iommu_ioas_iova_ranges,
        ranges: &mut [iommufd::iommu_iova_range],
    ) -> io::Result<()>;
    /// `IOMMU_IOAS_MAP`; `size` is set by the method.
    ///
    /// # Safety
    /// `map.user_va` must point to `map.length` bytes that stay valid (not unmapped, not
    /// reused) until the same range is unmapped: the device may read or write them at any time.
    unsafe fn ioas_map(
        &self,
        iommufd: BorrowedFd<'_>,
        map: &mut iommufd::iommu_ioas_map,
    ) -> io::Result<()>;
    /// `IOMMU_IOAS_UNMAP`; on success `unmap.length` holds the bytes unmapped.
    fn ioas_unmap(
        &self,
        iommufd: BorrowedFd<'_>,
        unmap: &mut iommufd::iommu_ioas_unmap,
    ) -> io::Result<()>;
    /// `IOMMU_DESTROY` of object `id`.
    fn destroy(&self, iommufd: BorrowedFd<'_>, id: u32) -> io::Result<()>;

    // ---- plain system calls ----
    /// `pread(fd, buf, offset)`: the bytes read.
    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// `pwrite(fd, data, offset)`: the bytes written.
    fn pwrite(&self, fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> io::Result<usize>;
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset)`. A new mapping never
    /// replaces an existing one, so this is safe; using the pointer is not.
    fn mmap(&self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<NonNull<u8>>;
    /// `munmap(addr, len)`.
    ///
    /// # Safety
    /// `addr` and `len` must be a mapping returned by [`VfioSys::mmap`] that nothing uses any
    /// more.
    unsafe fn munmap(&self, addr: NonNull<u8>, len: usize) -> io::Result<()>;
    /// A fresh non-blocking eventfd.
    fn eventfd(&self) -> Result<EventFd> {
        EventFd::new()
    }
    /// The soft `RLIMIT_MEMLOCK` in bytes (`None`: unlimited or unknown), for messages.
    fn memlock_limit(&self) -> Option<u64>;
}

/// Reads a native-endian `u32` at `at`, if in bounds.
pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a native-endian `u16` at `at`, if in bounds.
pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        buf.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Reads a native-endian `u64` at `at`, if in bounds.
pub(crate) fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        buf.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Writes a native-endian `u32` at `at`; false if out of bounds.
pub(crate) fn write_u32(buf: &mut [u8], at: usize, value: u32) -> bool {
    match at.checked_add(4).and_then(|end| buf.get_mut(at..end)) {
        Some(dst) => {
            dst.copy_from_slice(&value.to_ne_bytes());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::nr::*;
    use super::*;

    /// The request numbers as the C headers evaluate them: `';' << 8 | nr` with no size or
    /// direction bits (`_IO`).
    #[test]
    fn request_numbers_match_the_c_headers() {
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3b65);
        assert_eq!(VFIO_SET_IOMMU, 0x3b66);
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3b67);
        assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3b68);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_GET_IRQ_INFO, 0x3b6d);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3b6e);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x3b70);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3b70);
        assert_eq!(VFIO_DEVICE_PCI_HOT_RESET, 0x3b71);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3b72);
        assert_eq!(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
        assert_eq!(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77);
        assert_eq!(IOMMU_DESTROY, 0x3b80);
        assert_eq!(IOMMU_IOAS_ALLOC, 0x3b81);
        assert_eq!(IOMMU_IOAS_IOVA_RANGES, 0x3b84);
        assert_eq!(IOMMU_IOAS_MAP, 0x3b85);
        assert_eq!(IOMMU_IOAS_UNMAP, 0x3b86);
    }

    #[test]
    fn uapi_layout_sizes() {
        assert_eq!(HOT_RESET_INFO_HEADER, 12);
        assert_eq!(DEPENDENT_DEVICE_SIZE, 8);
        assert_eq!(TYPE1_INFO_HEADER, 24);
    }

    #[test]
    fn byte_readers_are_bounds_checked() {
        let buf = [1u8, 0, 0, 0, 2, 0];
        assert_eq!(read_u32(&buf, 0), Some(u32::from_ne_bytes([1, 0, 0, 0])));
        assert_eq!(read_u32(&buf, 3), None);
        assert_eq!(read_u16(&buf, 4), Some(u16::from_ne_bytes([2, 0])));
        assert_eq!(read_u64(&buf, 0), None);
        assert_eq!(read_u32(&buf, usize::MAX), None);
        let mut out = [0u8; 4];
        assert!(write_u32(&mut out, 0, 7));
        assert!(!write_u32(&mut out, 1, 7));
    }
}
