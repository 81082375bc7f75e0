//! The fake's answers to each system call, following `drivers/vfio` and `drivers/iommu/iommufd`.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use iommufd_bindings as iommufd;
use vfio_bindings::bindings::vfio;

use super::iommu::type1_info;
use super::state::{config_range, errno};
use super::{region_offset, DeviceVia, FakeCall, FakeReply, FakeVfio, FdKind};
use crate::backend::vfio::sys::{write_u32, IrqSet, VfioSys, TYPE1_INFO_HEADER};
use crate::pci::PciAddress;

impl VfioSys for FakeVfio {
    fn open(&self, path: &Path) -> io::Result<OwnedFd> {
        let mut s = self.lock();
        s.begin(FakeCall::Open {
            path: path.to_path_buf(),
        })?;
        let kind = s.open_kind(path)?;
        s.new_fd(kind)
    }

    fn get_api_version(&self, container: BorrowedFd<'_>) -> io::Result<i32> {
        let mut s = self.lock();
        s.begin(FakeCall::GetApiVersion)?;
        s.kind(container)?;
        Ok(s.api_version)
    }

    fn check_extension(&self, container: BorrowedFd<'_>, extension: u32) -> io::Result<bool> {
        let mut s = self.lock();
        s.begin(FakeCall::CheckExtension { extension })?;
        s.kind(container)?;
        Ok(extension == vfio::VFIO_TYPE1v2_IOMMU && s.type1v2)
    }

    fn set_iommu(&self, container: BorrowedFd<'_>, iommu_type: u32) -> io::Result<()> {
        let mut s = self.lock();
        s.begin(FakeCall::SetIommu { iommu_type })?;
        let FdKind::Container { groups, iommu_set } = s.kind(container)? else {
            return Err(errno(libc::ENOTTY));
        };
        if iommu_set {
            return Err(errno(libc::EBUSY));
        }
        if groups.is_empty() || iommu_type != vfio::VFIO_TYPE1v2_IOMMU {
            return Err(errno(libc::EINVAL));
        }
        s.set_kind(
            container,
            FdKind::Container {
                groups,
                iommu_set: true,
            },
        );
        Ok(())
    }

    fn iommu_get_info(&self, container: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()> {
        let mut s = self.lock();
        // The method sets argsz to the buffer's length, as `KernelVfio` does.
        let argsz = buf.len() as u32;
        write_u32(buf, 0, argsz);
        s.begin(FakeCall::IommuGetInfo { argsz })?;
        let FdKind::Container {
            iommu_set: true, ..
        } = s.kind(container)?
        else {
            return Err(errno(libc::EINVAL));
        };
        if buf.len() < TYPE1_INFO_HEADER {
            return Err(errno(libc::EINVAL));
        }
        let caps = type1_info(&s);
        buf[4..8].copy_from_slice(
            &(vfio::VFIO_IOMMU_INFO_PGSIZES | vfio::VFIO_IOMMU_INFO_CAPS).to_ne_bytes(),
        );
        buf[8..16].copy_from_slice(&0x4020_1000u64.to_ne_bytes());
        let wanted = TYPE1_INFO_HEADER + caps.len();
        if (argsz as usize) < wanted {
            write_u32(buf, 0, wanted as u32);
            write_u32(buf, 16, 0);
        } else {
            buf[TYPE1_INFO_HEADER..wanted].copy_from_slice(&caps);
            write_u32(buf, 16, TYPE1_INFO_HEADER as u32);
        }
        Ok(())
    }

    unsafe fn iommu_map_dma(
        &self,
        container: BorrowedFd<'_>,
        map: &mut vfio::vfio_iommu_type1_dma_map,
    ) -> io::Result<()> {
        let mut s = self.lock();
        let (iova, size, flags) = (map.iova, map.size, map.flags);
        s.begin(FakeCall::MapDma { iova, size, flags })?;
        let FdKind::Container {
            iommu_set: true, ..
        } = s.kind(container)?
        else {
            return Err(errno(libc::EINVAL));
        };
        s.type1_map(iova, size, flags)
    }

    fn iommu_unmap_dma(
        &self,
        container: BorrowedFd<'_>,
        unmap: &mut vfio::vfio_iommu_type1_dma_unmap,
    ) -> io::Result<()> {
        let mut s = self.lock();
        s.begin(FakeCall::UnmapDma {
            iova: unmap.iova,
            size: unmap.size,
        })?;
        s.kind(container)?;
        unmap.size = match s.dma.get(&unmap.iova) {
            Some((size, _)) if *size == unmap.size => *size,
            _ => 0,
        };
        if unmap.size != 0 {
            s.dma.remove(&unmap.iova);
        }
        Ok(())
    }

    fn group_get_status(&self, group: BorrowedFd<'_>) -> io::Result<u32> {
        let mut s = self.lock();
        let FdKind::Group { id, container } = s.kind(group)? else {
            return Err(errno(libc::ENOTTY));
        };
        s.begin(FakeCall::GroupGetStatus { group: id })?;
        let mut flags = 0;
        if s.group_viable(id) {
            flags |= vfio::VFIO_GROUP_FLAGS_VIABLE;
        }
        if container.is_some() {
            flags |= vfio::VFIO_GROUP_FLAGS_CONTAINER_SET;
        }
        Ok(flags)
    }

    fn group_set_container(
        &self,
        group: BorrowedFd<'_>,
        container: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let mut s = self.lock();
        let FdKind::Group { id, container: set } = s.kind(group)? else {
            return Err(errno(libc::ENOTTY));
        };
        s.begin(FakeCall::GroupSetContainer { group: id })?;
        let FdKind::Container {
            mut groups,
            iommu_set,
        } = s.kind(container)?
        else {
            return Err(errno(libc::EBADF));
        };
        if set.is_some() {
            return Err(errno(libc::EINVAL));
        }
        if !s.group_viable(id) {
            return Err(errno(libc::EPERM));
        }
        groups.push(s.canonical(group));
        s.set_kind(container, FdKind::Container { groups, iommu_set });
        let container = Some(s.canonical(container));
        s.set_kind(group, FdKind::Group { id, container });
        Ok(())
    }

    fn group_get_device_fd(&self, group: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
        let mut s = self.lock();
        let FdKind::Group { id, container } = s.kind(group)? else {
            return Err(errno(libc::ENOTTY));
        };
        s.begin(FakeCall::GroupGetDeviceFd {
            group: id,
            name: name.to_string(),
        })?;
        let ready = container.and_then(|c| s.fds.get(&c)).is_some_and(|e| {
            matches!(
                e.kind,
                FdKind::Container {
                    iommu_set: true,
                    ..
                }
            )
        });
        if !ready {
            return Err(errno(libc::EINVAL));
        }
        let address: PciAddress = name.parse().map_err(|_| errno(libc::ENODEV))?;
        match s.functions.get(&address) {
            Some(f) if f.group == id && f.vfio_bound() => {}
            _ => return Err(errno(libc::ENODEV)),
        }
        s.new_fd(FdKind::Device {
            address,
            via: DeviceVia::Group,
        })
    }

    fn device_get_info(&self, device: BorrowedFd<'_>) -> io::Result<vfio::vfio_device_info> {
        let mut s = self.lock();
        let (address, _) = s.device(device)?;
        s.begin(FakeCall::DeviceGetInfo { device: address })?;
        let mut reply = Ok(vfio::vfio_device_info {
            argsz: 16,
            flags: s.functions[&address].device_flags,
            num_regions: vfio::VFIO_PCI_NUM_REGIONS,
            num_irqs: vfio::VFIO_PCI_NUM_IRQS,
            ..Default::default()
        });
        s.offer(FakeReply::DeviceInfo {
            device: address,
            reply: &mut reply,
        });
        reply
    }

    fn device_get_region_info(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
    ) -> io::Result<vfio::vfio_region_info> {
        let mut s = self.lock();
        let (address, _) = s.device(device)?;
        s.begin(FakeCall::RegionInfo {
            device: address,
            index,
        })?;
        let mut reply = s.region_info(address, index);
        s.offer(FakeReply::RegionInfo {
            device: address,
            index,
            reply: &mut reply,
        });
        reply
    }

    fn device_get_irq_info(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
    ) -> io::Result<vfio::vfio_irq_info> {
        let mut s = self.lock();
        let (address, _) = s.device(device)?;
        s.begin(FakeCall::IrqInfo {
            device: address,
            index,
        })?;
        let mut reply = s.irq_info(address, index);
        s.offer(FakeReply::IrqInfo {
            device: address,
            index,
            reply: &mut reply,
        });
        reply
    }

    fn device_set_irqs(&self, device: BorrowedFd<'_>, set: &IrqSet<'_>) -> io::Result<()> {
        let mut s = self.lock();
        let (address, _) = s.device(device)?;
        s.begin(FakeCall::SetIrqs {
            device: address,
            flags: set.flags,
            index: set.index,
            start: set.start,
            count: set.count,
            fds: set.eventfds.len(),
        })?;
        s.set_irqs(address, set)
    }

    fn device_reset(&self, device: BorrowedFd<'_>) -> io::Result<()> {
        let mut s = self.lock();
        let (address, _) = s.device(device)?;
        s.begin(FakeCall::Reset { device: address })?;
        if s.functions[&address].device_flags & vfio::VFIO_DEVICE_FLAGS_RESET == 0 {
            return Err(errno(libc::EINVAL));
        }
        s.stats.entry(address).or_default().function_resets += 1;
        Ok(())
    }

    fn device_get_pci_hot_reset_info(
        &self,
        device: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> io::Result<()> {
        let mut s = self.lock();
        let (address, via) = s.device(device)?;
        // The method sets argsz to the buffer's length, as `KernelVfio` does.
        let argsz = buf.len() as u32;
        write_u32(buf, 0, argsz);
        s.begin(FakeCall::HotResetInfo {
            device: address,
            argsz,
        })?;
        let mut result = s.hot_reset_info(address, &via, buf);
        s.offer(FakeReply::HotResetInfo {
            device: address,
            buf,
            result: &mut result,
        });
        result
    }

    fn device_pci_hot_reset(
        &self,
        device: BorrowedFd<'_>,
        group_fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        let mut s = self.lock();
        let (address, via) = s.device(device)?;
        let groups: Vec<u32> = group_fds
            .iter()
            .filter_map(|fd| match s.kind(*fd) {
                Ok(FdKind::Group { id, .. }) => Some(id),
                _ => None,
            })
            .collect();
        let bad_fd = groups.len() != group_fds.len();
        s.begin(FakeCall::HotReset {
            device: address,
            groups: groups.clone(),
        })?;
        s.hot_reset(address, &via, &groups, group_fds.len(), bad_fd)
    }

    fn device_bind_iommufd(
        &self,
        device: BorrowedFd<'_>,
        iommufd: BorrowedFd<'_>,
    ) -> io::Result<u32> {
        let mut s = self.lock();
        let (address, via) = s.device(device)?;
        s.begin(FakeCall::BindIommufd { device: address })?;
        let (DeviceVia::Cdev { bound: None }, FdKind::Iommufd { .. }) = (via, s.kind(iommufd)?)
        else {
            return Err(errno(libc::EINVAL));
        };
        let group = s.functions[&address].group;
        if !s.group_viable(group) || s.group_is_open(group) {
            return Err(errno(libc::EBUSY));
        }
        let devid = s.next_object;
        s.next_object += 1;
        let via = DeviceVia::Cdev {
            bound: Some((s.canonical(iommufd), devid)),
        };
        s.set_kind(device, FdKind::Device { address, via });
        Ok(devid)
    }

    fn device_attach_iommufd_pt(&self, device: BorrowedFd<'_>, pt_id: u32) -> io::Result<u32> {
        let mut s = self.lock();
        let (address, via) = s.device(device)?;
        s.begin(FakeCall::AttachPt {
            device: address,
            pt_id,
        })?;
        let DeviceVia::Cdev {
            bound: Some((ictx, _)),
        } = via
        else {
            return Err(errno(libc::EINVAL));
        };
        match s.fds.get(&ictx).map(|e| &e.kind) {
            Some(FdKind::Iommufd { ioas }) if ioas.contains(&pt_id) => Ok(pt_id),
            _ => Err(errno(libc::ENOENT)),
        }
    }

    fn ioas_alloc(&self, iommufd: BorrowedFd<'_>) -> io::Result<u32> {
        let mut s = self.lock();
        s.begin(FakeCall::IoasAlloc)?;
        let FdKind::Iommufd { mut ioas } = s.kind(iommufd)? else {
            return Err(errno(libc::ENOTTY));
        };
        let id = s.next_object;
        s.next_object += 1;
        ioas.push(id);
        s.set_kind(iommufd, FdKind::Iommufd { ioas });
        Ok(id)
    }

    fn ioas_iova_ranges(
        &self,
        iommufd: BorrowedFd<'_>,
        cmd: &mut iommufd::iommu_ioas_iova_ranges,
        ranges: &mut [iommufd::iommu_iova_range],
    ) -> io::Result<()> {
        let mut s = self.lock();
        let num_iovas = ranges.len() as u32;
        s.begin(FakeCall::IoasIovaRanges {
            ioas: cmd.ioas_id,
            num_iovas,
        })?;
        let FdKind::Iommufd { ioas } = s.kind(iommufd)? else {
            return Err(errno(libc::ENOTTY));
        };
        if !ioas.contains(&cmd.ioas_id) {
            return Err(errno(libc::ENOENT));
        }
        s.ioas_ranges(cmd, ranges)
    }

    unsafe fn ioas_map(
        &self,
        iommufd: BorrowedFd<'_>,
        map: &mut iommufd::iommu_ioas_map,
    ) -> io::Result<()> {
        let mut s = self.lock();
        let (ioas, iova, length, flags) = (map.ioas_id, map.iova, map.length, map.flags);
        s.begin(FakeCall::IoasMap {
            ioas,
            iova,
            length,
            flags,
        })?;
        let FdKind::Iommufd { ioas: known } = s.kind(iommufd)? else {
            return Err(errno(libc::ENOTTY));
        };
        if !known.contains(&ioas) {
            return Err(errno(libc::ENOENT));
        }
        s.ioas_map(ioas, iova, length, flags)
    }

    fn ioas_unmap(
        &self,
        iommufd: BorrowedFd<'_>,
        unmap: &mut iommufd::iommu_ioas_unmap,
    ) -> io::Result<()> {
        let mut s = self.lock();
        let (ioas, iova, length) = (unmap.ioas_id, unmap.iova, unmap.length);
        s.begin(FakeCall::IoasUnmap { ioas, iova, length })?;
        s.kind(iommufd)?;
        match s.ioas_maps.remove(&(ioas, iova)) {
            Some((mapped, _)) => {
                unmap.length = mapped;
                Ok(())
            }
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn destroy(&self, iommufd: BorrowedFd<'_>, id: u32) -> io::Result<()> {
        let mut s = self.lock();
        s.begin(FakeCall::Destroy { id })?;
        let FdKind::Iommufd { mut ioas } = s.kind(iommufd)? else {
            return Err(errno(libc::ENOTTY));
        };
        ioas.retain(|i| *i != id);
        s.set_kind(iommufd, FdKind::Iommufd { ioas });
        Ok(())
    }

    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.lock();
        let (address, _) = s.device(fd)?;
        s.begin(FakeCall::Pread {
            device: address,
            offset,
            len: buf.len(),
        })?;
        let config = &s.functions[&address].config;
        let at = config_range(offset, buf.len(), config.len())?;
        buf.copy_from_slice(&config[at]);
        Ok(buf.len())
    }

    fn pwrite(&self, fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> io::Result<usize> {
        let mut s = self.lock();
        let (address, _) = s.device(fd)?;
        s.begin(FakeCall::Pwrite {
            device: address,
            offset,
            len: data.len(),
        })?;
        let f = s.functions.get_mut(&address).ok_or(errno(libc::ENODEV))?;
        let at = config_range(offset, data.len(), f.config.len())?;
        f.config[at].copy_from_slice(data);
        Ok(data.len())
    }

    fn mmap(&self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<NonNull<u8>> {
        let mut s = self.lock();
        let (address, _) = s.device(fd)?;
        s.begin(FakeCall::Mmap {
            device: address,
            offset,
            len,
        })?;
        let index = (0..6u8)
            .find(|i| region_offset(u32::from(*i)) == offset)
            .ok_or(errno(libc::EINVAL))?;
        let bar = s.functions[&address].bars[usize::from(index)];
        if bar.flags & vfio::VFIO_REGION_INFO_FLAG_MMAP == 0 || len as u64 > bar.size || len == 0 {
            return Err(errno(libc::EINVAL));
        }
        let words = (bar.size as usize).div_ceil(8);
        let memory = s
            .bar_memory
            .entry((address, index))
            .or_insert_with(|| (0..words).map(|_| AtomicU64::new(0)).collect::<Arc<[_]>>())
            .clone();
        let base = NonNull::new(memory[0].as_ptr().cast::<u8>()).ok_or(errno(libc::ENOMEM))?;
        s.mmaps.insert(base.as_ptr() as usize, (address, index));
        Ok(base)
    }

    unsafe fn munmap(&self, addr: NonNull<u8>, len: usize) -> io::Result<()> {
        let mut s = self.lock();
        s.begin(FakeCall::Munmap { len })?;
        s.mmaps
            .remove(&(addr.as_ptr() as usize))
            .map(drop)
            .ok_or(errno(libc::EINVAL))
    }

    fn memlock_limit(&self) -> Option<u64> {
        self.lock().memlock
    }
}
