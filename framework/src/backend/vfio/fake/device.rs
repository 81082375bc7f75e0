//! The fake kernel's device ioctls, as `vfio_pci_core.c` answers them.

use std::io;
use std::mem::offset_of;
use std::os::fd::RawFd;

use vfio_bindings::bindings::vfio;

use super::state::errno;
use super::{region_offset, DeviceVia, State};
use crate::backend::vfio::sys::{write_u32, IrqSet, DEPENDENT_DEVICE_SIZE, HOT_RESET_INFO_HEADER};
use crate::pci::PciAddress;

/// The iommufd a cdev device is bound to.
fn bound_iommufd(via: &DeviceVia) -> Option<RawFd> {
    match via {
        DeviceVia::Cdev {
            bound: Some((ictx, _)),
        } => Some(*ictx),
        _ => None,
    }
}

impl State {
    /// `VFIO_DEVICE_GET_REGION_INFO` (`vfio_pci_ioctl_get_region_info`).
    pub(super) fn region_info(
        &self,
        address: PciAddress,
        index: u32,
    ) -> io::Result<vfio::vfio_region_info> {
        let f = &self.functions[&address];
        let rw = vfio::VFIO_REGION_INFO_FLAG_READ | vfio::VFIO_REGION_INFO_FLAG_WRITE;
        let (size, flags) = match index {
            vfio::VFIO_PCI_CONFIG_REGION_INDEX => (f.config.len() as u64, rw),
            0..=5 => {
                let bar = f.bars[index as usize];
                (bar.size, if bar.size == 0 { 0 } else { bar.flags })
            }
            vfio::VFIO_PCI_ROM_REGION_INDEX => (0, 0),
            _ => return Err(errno(libc::EINVAL)),
        };
        Ok(vfio::vfio_region_info {
            argsz: 32,
            flags,
            index,
            cap_offset: 0,
            size,
            offset: region_offset(index),
        })
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` (`vfio_pci_ioctl_get_irq_info`): ERR only for PCIe.
    pub(super) fn irq_info(
        &self,
        address: PciAddress,
        index: u32,
    ) -> io::Result<vfio::vfio_irq_info> {
        let counts = self.functions[&address].irq_counts;
        let count = *counts.get(index as usize).ok_or(errno(libc::EINVAL))?;
        if index == vfio::VFIO_PCI_ERR_IRQ_INDEX && count == 0 {
            return Err(errno(libc::EINVAL));
        }
        let mut flags = vfio::VFIO_IRQ_INFO_EVENTFD;
        flags |= if index == vfio::VFIO_PCI_INTX_IRQ_INDEX {
            vfio::VFIO_IRQ_INFO_MASKABLE | vfio::VFIO_IRQ_INFO_AUTOMASKED
        } else {
            vfio::VFIO_IRQ_INFO_NORESIZE
        };
        Ok(vfio::vfio_irq_info {
            argsz: 16,
            flags,
            index,
            count,
        })
    }

    /// `VFIO_DEVICE_SET_IRQS` with ACTION_TRIGGER: eventfds, or DATA_NONE with count 0 to
    /// disable (`vfio_set_irqs_validate_and_prepare`, `vfio_pci_set_msi_trigger`).
    pub(super) fn set_irqs(&mut self, address: PciAddress, set: &IrqSet<'_>) -> io::Result<()> {
        let max = *self.functions[&address]
            .irq_counts
            .get(set.index as usize)
            .ok_or(errno(libc::EINVAL))?;
        let data = set.flags & vfio::VFIO_IRQ_SET_DATA_TYPE_MASK;
        let action = set.flags & vfio::VFIO_IRQ_SET_ACTION_TYPE_MASK;
        if action != vfio::VFIO_IRQ_SET_ACTION_TRIGGER || max == 0 {
            return Err(errno(libc::EINVAL));
        }
        match data {
            vfio::VFIO_IRQ_SET_DATA_NONE if set.count == 0 => {
                self.irqs.remove(&(address, set.index));
            }
            vfio::VFIO_IRQ_SET_DATA_EVENTFD => {
                let end = set
                    .start
                    .checked_add(set.count)
                    .ok_or(errno(libc::EINVAL))?;
                if set.count == 0 || end > max || set.eventfds.len() != set.count as usize {
                    return Err(errno(libc::EINVAL));
                }
                let msix = set.index == vfio::VFIO_PCI_MSIX_IRQ_INDEX;
                if msix
                    && self
                        .irqs
                        .get(&(address, set.index))
                        .is_some_and(|n| end > *n)
                {
                    // Without dynamic MSI-X the enabled vector count cannot grow.
                    return Err(errno(libc::EINVAL));
                }
                self.irqs.insert((address, set.index), set.count);
            }
            _ => return Err(errno(libc::EINVAL)),
        }
        Ok(())
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` into `buf` (argsz = its length), as
    /// `vfio_pci_ioctl_get_pci_hot_reset_info` and `vfio_pci_fill_devs` fill it.
    pub(super) fn hot_reset_info(
        &self,
        address: PciAddress,
        via: &DeviceVia,
        buf: &mut [u8],
    ) -> io::Result<()> {
        if buf.len() < HOT_RESET_INFO_HEADER {
            return Err(errno(libc::EINVAL));
        }
        let members = self.functions[&address]
            .reset_set
            .clone()
            .ok_or(errno(libc::ENODEV))?;
        let count = members.len();
        let flags_at = offset_of!(vfio::vfio_pci_hot_reset_info, flags);
        let count_at = offset_of!(vfio::vfio_pci_hot_reset_info, count);
        write_u32(buf, flags_at, 0);
        if (buf.len() - HOT_RESET_INFO_HEADER) / DEPENDENT_DEVICE_SIZE < count {
            write_u32(buf, count_at, count as u32);
            return Err(errno(libc::ENOSPC));
        }
        let ictx = bound_iommufd(via);
        let mut flags = match ictx {
            Some(_) => {
                vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID | vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED
            }
            None => 0,
        };
        let not_owned = vfio::VFIO_PCI_DEVID_NOT_OWNED as u32;
        for (i, member) in members.iter().enumerate() {
            let function = self.functions.get(member);
            let id = match ictx {
                // Group mode: every member must have an IOMMU group.
                None => function.ok_or(errno(libc::EPERM))?.group,
                Some(ictx) => match function.filter(|f| f.vfio_bound()) {
                    None => not_owned,
                    Some(_) => match self.dev_id(*member, ictx) {
                        id if id > 0 => id as u32,
                        id if id == -i64::from(libc::ENOENT) => vfio::VFIO_PCI_DEVID_OWNED,
                        _ => not_owned,
                    },
                },
            };
            if ictx.is_some() && id == not_owned {
                flags &= !vfio::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
            }
            let at = HOT_RESET_INFO_HEADER + i * DEPENDENT_DEVICE_SIZE;
            write_u32(buf, at, id);
            buf[at + 4..at + 6].copy_from_slice(&member.domain.to_ne_bytes());
            buf[at + 6] = member.bus;
            buf[at + 7] = (member.device << 3) | member.function;
        }
        write_u32(buf, flags_at, flags);
        write_u32(buf, count_at, count as u32);
        Ok(())
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET` (`vfio_pci_ioctl_pci_hot_reset`,
    /// `vfio_pci_dev_set_hot_reset`): group fds in group mode, none in cdev mode; every member
    /// bound to vfio-pci and owned, or EINVAL.
    pub(super) fn hot_reset(
        &mut self,
        address: PciAddress,
        via: &DeviceVia,
        groups: &[u32],
        fd_count: usize,
        bad_fd: bool,
    ) -> io::Result<()> {
        let ictx = match via {
            DeviceVia::Cdev { bound: None } => return Err(errno(libc::EINVAL)),
            via => bound_iommufd(via),
        };
        if bad_fd || (fd_count == 0) == ictx.is_none() {
            return Err(errno(libc::EINVAL));
        }
        let members = self.functions[&address]
            .reset_set
            .clone()
            .ok_or(errno(libc::ENODEV))?;
        for member in &members {
            let Some(f) = self.functions.get(member).filter(|f| f.vfio_bound()) else {
                return Err(errno(libc::EINVAL));
            };
            let owned = match ictx {
                None => groups.contains(&f.group),
                Some(ictx) => {
                    let id = self.dev_id(*member, ictx);
                    id > 0 || id == -i64::from(libc::ENOENT)
                }
            };
            if !owned {
                return Err(errno(libc::EINVAL));
            }
        }
        for member in members {
            self.stats.entry(member).or_default().bus_resets += 1;
        }
        Ok(())
    }
}
