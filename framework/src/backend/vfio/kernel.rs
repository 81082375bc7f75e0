//! [`KernelVfio`]: the [`VfioSys`] that talks to the running kernel.
//!
//! This file and the BAR mapping's `munmap` are the only places in the VFIO backend that issue
//! system calls. Each ioctl is one function with one `unsafe` block whose `// SAFETY:` names
//! what makes it sound: the fd is borrowed (so open for the call), the argument is a live
//! structure of the size the kernel reads and writes, and `argsz`/`size` never exceeds the
//! buffer behind it.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;

use iommufd_bindings as iommufd;
use vfio_bindings::bindings::vfio;

use super::sys::{nr, write_u32, IrqSet, VfioSys, HOT_RESET_INFO_HEADER, TYPE1_INFO_HEADER};

/// The running kernel's VFIO and iommufd interfaces.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelVfio;

/// The request number in the type `libc::ioctl` takes on this target.
fn request(nr: u64) -> libc::Ioctl {
    nr as libc::Ioctl
}

/// The result of an ioctl: the non-negative return value, or errno.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `size_of::<T>()` as the `u32` the uAPI's `argsz`/`size` fields hold.
fn size32<T>() -> u32 {
    size_of::<T>() as u32
}

/// `buf.len()` as an `argsz`, refusing buffers the uAPI cannot describe or that are too short
/// for the header the kernel reads first.
fn argsz(buf: &[u8], header: usize) -> io::Result<u32> {
    if buf.len() < header {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "buffer of {} bytes is shorter than the {header}-byte header",
                buf.len()
            ),
        ));
    }
    u32::try_from(buf.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "buffer larger than argsz can describe",
        )
    })
}

impl VfioSys for KernelVfio {
    fn open(&self, path: &Path) -> io::Result<OwnedFd> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(OwnedFd::from(file))
    }

    fn get_api_version(&self, container: BorrowedFd<'_>) -> io::Result<i32> {
        // SAFETY: VFIO_GET_API_VERSION takes no argument; the fd is borrowed, so open.
        check(unsafe { libc::ioctl(container.as_raw_fd(), request(nr::VFIO_GET_API_VERSION)) })
    }

    fn check_extension(&self, container: BorrowedFd<'_>, extension: u32) -> io::Result<bool> {
        let fd = container.as_raw_fd();
        let arg = libc::c_ulong::from(extension);
        // SAFETY: VFIO_CHECK_EXTENSION takes the extension as an integer, not a pointer.
        let ret = check(unsafe { libc::ioctl(fd, request(nr::VFIO_CHECK_EXTENSION), arg) })?;
        Ok(ret > 0)
    }

    fn set_iommu(&self, container: BorrowedFd<'_>, iommu_type: u32) -> io::Result<()> {
        let fd = container.as_raw_fd();
        let arg = libc::c_ulong::from(iommu_type);
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type as an integer, not a pointer.
        check(unsafe { libc::ioctl(fd, request(nr::VFIO_SET_IOMMU), arg) })?;
        Ok(())
    }

    fn iommu_get_info(&self, container: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()> {
        let size = argsz(buf, TYPE1_INFO_HEADER)?;
        write_u32(buf, offset_of!(vfio::vfio_iommu_type1_info, argsz), size);
        let fd = container.as_raw_fd();
        // SAFETY: `buf` is live and writable for `size` bytes, and `argsz` says exactly that,
        // so the kernel writes the header and capability chain inside it.
        check(unsafe { libc::ioctl(fd, request(nr::VFIO_IOMMU_GET_INFO), buf.as_mut_ptr()) })?;
        Ok(())
    }

    unsafe fn iommu_map_dma(
        &self,
        container: BorrowedFd<'_>,
        map: &mut vfio::vfio_iommu_type1_dma_map,
    ) -> io::Result<()> {
        map.argsz = size32::<vfio::vfio_iommu_type1_dma_map>();
        let fd = container.as_raw_fd();
        let arg: *mut vfio::vfio_iommu_type1_dma_map = map;
        // SAFETY: `map` is a live structure of `argsz` bytes; the memory it names stays valid
        // until unmapped, as this function's caller guarantees.
        check(unsafe { libc::ioctl(fd, request(nr::VFIO_IOMMU_MAP_DMA), arg) })?;
        Ok(())
    }

    fn iommu_unmap_dma(
        &self,
        container: BorrowedFd<'_>,
        unmap: &mut vfio::vfio_iommu_type1_dma_unmap,
    ) -> io::Result<()> {
        // The structure without its flexible dirty-bitmap array, which no flag asks for.
        unmap.argsz = offset_of!(vfio::vfio_iommu_type1_dma_unmap, data) as u32;
        unmap.flags = 0;
        let fd = container.as_raw_fd();
        let arg: *mut vfio::vfio_iommu_type1_dma_unmap = unmap;
        // SAFETY: `unmap` is live for `argsz` bytes; with no flags the kernel reads no bitmap
        // and writes back only `size`.
        check(unsafe { libc::ioctl(fd, request(nr::VFIO_IOMMU_UNMAP_DMA), arg) })?;
        Ok(())
    }

    fn group_get_status(&self, group: BorrowedFd<'_>) -> io::Result<u32> {
        let mut status = vfio::vfio_group_status {
            argsz: size32::<vfio::vfio_group_status>(),
            flags: 0,
        };
        let arg: *mut vfio::vfio_group_status = &mut status;
        // SAFETY: `status` is a live `vfio_group_status` of `argsz` bytes.
        check(unsafe { libc::ioctl(group.as_raw_fd(), request(nr::VFIO_GROUP_GET_STATUS), arg) })?;
        Ok(status.flags)
    }

    fn group_set_container(
        &self,
        group: BorrowedFd<'_>,
        container: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let container_fd: RawFd = container.as_raw_fd();
        let arg: *const RawFd = &container_fd;
        let req = request(nr::VFIO_GROUP_SET_CONTAINER);
        // SAFETY: the kernel reads one int (the container fd, borrowed so open) from `arg`.
        check(unsafe { libc::ioctl(group.as_raw_fd(), req, arg) })?;
        Ok(())
    }

    fn group_get_device_fd(&self, group: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
        let name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in device name"))?;
        let req = request(nr::VFIO_GROUP_GET_DEVICE_FD);
        // SAFETY: the kernel reads a NUL-terminated string from `name`, live for the call.
        let fd = check(unsafe { libc::ioctl(group.as_raw_fd(), req, name.as_ptr()) })?;
        // SAFETY: on success the ioctl returns a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn device_get_info(&self, device: BorrowedFd<'_>) -> io::Result<vfio::vfio_device_info> {
        // `argsz` up to `num_irqs`: without room for capabilities the kernel writes none.
        let mut info = vfio::vfio_device_info {
            argsz: offset_of!(vfio::vfio_device_info, cap_offset) as u32,
            ..Default::default()
        };
        let arg: *mut vfio::vfio_device_info = &mut info;
        // SAFETY: `info` is a live `vfio_device_info`, larger than the `argsz` given.
        check(unsafe { libc::ioctl(device.as_raw_fd(), request(nr::VFIO_DEVICE_GET_INFO), arg) })?;
        Ok(info)
    }

    fn device_get_region_info(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
    ) -> io::Result<vfio::vfio_region_info> {
        let mut info = vfio::vfio_region_info {
            argsz: size32::<vfio::vfio_region_info>(),
            index,
            ..Default::default()
        };
        let arg: *mut vfio::vfio_region_info = &mut info;
        let req = request(nr::VFIO_DEVICE_GET_REGION_INFO);
        // SAFETY: `info` is a live `vfio_region_info` of `argsz` bytes; capabilities that do
        // not fit are not copied (the kernel only raises `argsz`).
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, arg) })?;
        Ok(info)
    }

    fn device_get_irq_info(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
    ) -> io::Result<vfio::vfio_irq_info> {
        let mut info = vfio::vfio_irq_info {
            argsz: size32::<vfio::vfio_irq_info>(),
            index,
            ..Default::default()
        };
        let arg: *mut vfio::vfio_irq_info = &mut info;
        let req = request(nr::VFIO_DEVICE_GET_IRQ_INFO);
        // SAFETY: `info` is a live `vfio_irq_info` of `argsz` bytes.
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, arg) })?;
        Ok(info)
    }

    fn device_set_irqs(&self, device: BorrowedFd<'_>, set: &IrqSet<'_>) -> io::Result<()> {
        let with_fds = set.flags & vfio::VFIO_IRQ_SET_DATA_EVENTFD != 0;
        let expected = if with_fds { set.count as usize } else { 0 };
        if set.eventfds.len() != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "VFIO_DEVICE_SET_IRQS: {} eventfds for {expected} vectors",
                    set.eventfds.len()
                ),
            ));
        }
        // The header, then the eventfd array, in one 4-byte aligned buffer.
        let header = offset_of!(vfio::vfio_irq_set, data);
        let mut words = vec![0u32; header / 4 + set.eventfds.len()];
        words[0] = (words.len() * 4) as u32;
        words[1] = set.flags;
        words[2] = set.index;
        words[3] = set.start;
        words[4] = set.count;
        for (slot, fd) in words[header / 4..].iter_mut().zip(set.eventfds) {
            *slot = *fd as u32;
        }
        let req = request(nr::VFIO_DEVICE_SET_IRQS);
        // SAFETY: `words` is live for `argsz` bytes: the header and exactly `count` fds when
        // DATA_EVENTFD is set (checked above), which is all the kernel reads.
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, words.as_ptr()) })?;
        Ok(())
    }

    fn device_reset(&self, device: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        check(unsafe { libc::ioctl(device.as_raw_fd(), request(nr::VFIO_DEVICE_RESET)) })?;
        Ok(())
    }

    fn device_get_pci_hot_reset_info(
        &self,
        device: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> io::Result<()> {
        let size = argsz(buf, HOT_RESET_INFO_HEADER)?;
        write_u32(buf, offset_of!(vfio::vfio_pci_hot_reset_info, argsz), size);
        let req = request(nr::VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
        // SAFETY: `buf` is live and writable for `argsz` bytes; the kernel fills devices only
        // when they fit in `argsz` and otherwise writes just the header (ENOSPC).
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, buf.as_mut_ptr()) })?;
        Ok(())
    }

    fn device_pci_hot_reset(
        &self,
        device: BorrowedFd<'_>,
        group_fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        let header = offset_of!(vfio::vfio_pci_hot_reset, group_fds);
        let mut words = vec![0u32; header / 4 + group_fds.len()];
        words[0] = (words.len() * 4) as u32;
        words[1] = 0;
        words[2] = group_fds.len() as u32;
        for (slot, fd) in words[header / 4..].iter_mut().zip(group_fds) {
            *slot = fd.as_raw_fd() as u32;
        }
        let req = request(nr::VFIO_DEVICE_PCI_HOT_RESET);
        // SAFETY: `words` holds the header and `count` group fds (borrowed, so open), which is
        // all the kernel reads.
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, words.as_ptr()) })?;
        Ok(())
    }

    fn device_bind_iommufd(
        &self,
        device: BorrowedFd<'_>,
        iommufd: BorrowedFd<'_>,
    ) -> io::Result<u32> {
        // `argsz` up to `out_devid`: Linux 6.12 knows no more, later kernels accept it.
        let mut bind = vfio::vfio_device_bind_iommufd {
            argsz: offset_of!(vfio::vfio_device_bind_iommufd, token_uuid_ptr) as u32,
            flags: 0,
            iommufd: iommufd.as_raw_fd(),
            ..Default::default()
        };
        let arg: *mut vfio::vfio_device_bind_iommufd = &mut bind;
        let req = request(nr::VFIO_DEVICE_BIND_IOMMUFD);
        // SAFETY: `bind` is live and larger than `argsz`; the iommufd is borrowed, so open.
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, arg) })?;
        Ok(bind.out_devid)
    }

    fn device_attach_iommufd_pt(&self, device: BorrowedFd<'_>, pt_id: u32) -> io::Result<u32> {
        // `argsz` up to `pt_id`: no PASID.
        let mut attach = vfio::vfio_device_attach_iommufd_pt {
            argsz: offset_of!(vfio::vfio_device_attach_iommufd_pt, pasid) as u32,
            flags: 0,
            pt_id,
            pasid: 0,
        };
        let arg: *mut vfio::vfio_device_attach_iommufd_pt = &mut attach;
        let req = request(nr::VFIO_DEVICE_ATTACH_IOMMUFD_PT);
        // SAFETY: `attach` is live and larger than `argsz`; the kernel writes back `pt_id`.
        check(unsafe { libc::ioctl(device.as_raw_fd(), req, arg) })?;
        Ok(attach.pt_id)
    }

    fn ioas_alloc(&self, iommufd: BorrowedFd<'_>) -> io::Result<u32> {
        let mut alloc = iommufd::iommu_ioas_alloc {
            size: size32::<iommufd::iommu_ioas_alloc>(),
            ..Default::default()
        };
        let arg: *mut iommufd::iommu_ioas_alloc = &mut alloc;
        // SAFETY: `alloc` is a live `iommu_ioas_alloc` of `size` bytes.
        check(unsafe { libc::ioctl(iommufd.as_raw_fd(), request(nr::IOMMU_IOAS_ALLOC), arg) })?;
        Ok(alloc.out_ioas_id)
    }

    fn ioas_iova_ranges(
        &self,
        iommufd: BorrowedFd<'_>,
        cmd: &mut iommufd::iommu_ioas_iova_ranges,
        ranges: &mut [iommufd::iommu_iova_range],
    ) -> io::Result<()> {
        cmd.size = size32::<iommufd::iommu_ioas_iova_ranges>();
        cmd.num_iovas = u32::try_from(ranges.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many ranges"))?;
        cmd.__reserved = 0;
        cmd.allowed_iovas = ranges.as_mut_ptr() as u64;
        let arg: *mut iommufd::iommu_ioas_iova_ranges = cmd;
        let req = request(nr::IOMMU_IOAS_IOVA_RANGES);
        // SAFETY: `cmd` is live for `size` bytes and `allowed_iovas` points to `num_iovas`
        // writable ranges; the kernel writes no more than `num_iovas` of them.
        let ret = check(unsafe { libc::ioctl(iommufd.as_raw_fd(), req, arg) });
        cmd.allowed_iovas = 0;
        ret.map(drop)
    }

    unsafe fn ioas_map(
        &self,
        iommufd: BorrowedFd<'_>,
        map: &mut iommufd::iommu_ioas_map,
    ) -> io::Result<()> {
        map.size = size32::<iommufd::iommu_ioas_map>();
        let arg: *mut iommufd::iommu_ioas_map = map;
        // SAFETY: `map` is a live `iommu_ioas_map` of `size` bytes; the memory it names stays
        // valid until unmapped, as this function's caller guarantees.
        check(unsafe { libc::ioctl(iommufd.as_raw_fd(), request(nr::IOMMU_IOAS_MAP), arg) })?;
        Ok(())
    }

    fn ioas_unmap(
        &self,
        iommufd: BorrowedFd<'_>,
        unmap: &mut iommufd::iommu_ioas_unmap,
    ) -> io::Result<()> {
        unmap.size = size32::<iommufd::iommu_ioas_unmap>();
        let arg: *mut iommufd::iommu_ioas_unmap = unmap;
        // SAFETY: `unmap` is a live `iommu_ioas_unmap` of `size` bytes.
        check(unsafe { libc::ioctl(iommufd.as_raw_fd(), request(nr::IOMMU_IOAS_UNMAP), arg) })?;
        Ok(())
    }

    fn destroy(&self, iommufd: BorrowedFd<'_>, id: u32) -> io::Result<()> {
        let mut destroy = iommufd::iommu_destroy {
            size: size32::<iommufd::iommu_destroy>(),
            id,
        };
        let arg: *mut iommufd::iommu_destroy = &mut destroy;
        // SAFETY: `destroy` is a live `iommu_destroy` of `size` bytes.
        check(unsafe { libc::ioctl(iommufd.as_raw_fd(), request(nr::IOMMU_DESTROY), arg) })?;
        Ok(())
    }

    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
        // SAFETY: `buf` is live and writable for `buf.len()` bytes.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn pwrite(&self, fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> io::Result<usize> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
        // SAFETY: `data` is live and readable for `data.len()` bytes.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), offset) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn mmap(&self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<NonNull<u8>> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
        // SAFETY: a NULL hint without MAP_FIXED makes a new mapping and never replaces one.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(addr.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))
    }

    unsafe fn munmap(&self, addr: NonNull<u8>, len: usize) -> io::Result<()> {
        // SAFETY: `addr`/`len` is a mapping from `mmap` that nothing uses any more, as this
        // function's caller guarantees.
        let ret = unsafe { libc::munmap(addr.as_ptr().cast(), len) };
        check(ret).map(drop)
    }

    fn memlock_limit(&self) -> Option<u64> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a live `rlimit` the call fills.
        let ret = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
        if ret != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        Some(limit.rlim_cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_missing_node_is_enoent() {
        let err = KernelVfio
            .open(Path::new("/nonexistent/userpci/vfio"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn vfio_ioctls_on_a_non_vfio_fd_fail_with_errno_not_ub() {
        // /dev/null answers every ioctl with ENOTTY: the wrappers hand the errno back.
        let null = KernelVfio.open(Path::new("/dev/null")).unwrap();
        let fd = null.as_fd();
        assert!(KernelVfio.get_api_version(fd).is_err());
        assert!(KernelVfio.device_get_info(fd).is_err());
        let mut buf = vec![0u8; HOT_RESET_INFO_HEADER];
        assert!(KernelVfio
            .device_get_pci_hot_reset_info(fd, &mut buf)
            .is_err());
        assert_eq!(
            KernelVfio
                .device_get_pci_hot_reset_info(fd, &mut [0u8; 4])
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput,
            "a buffer shorter than the header never reaches the kernel"
        );
        let set = IrqSet {
            flags: vfio::VFIO_IRQ_SET_DATA_EVENTFD | vfio::VFIO_IRQ_SET_ACTION_TRIGGER,
            index: vfio::VFIO_PCI_MSIX_IRQ_INDEX,
            start: 0,
            count: 2,
            eventfds: &[3],
        };
        assert_eq!(
            KernelVfio.device_set_irqs(fd, &set).unwrap_err().kind(),
            io::ErrorKind::InvalidInput,
            "fewer eventfds than vectors never reaches the kernel"
        );
    }

    #[test]
    fn pread_and_memlock_work_on_ordinary_files() {
        let null = KernelVfio.open(Path::new("/dev/zero")).unwrap();
        let mut buf = [1u8; 16];
        assert_eq!(KernelVfio.pread(null.as_fd(), &mut buf, 0).unwrap(), 16);
        assert_eq!(buf, [0; 16]);
        // Either a number or unlimited; never a panic.
        let _ = KernelVfio.memlock_limit();
    }
}
