//! The fake kernel's bookkeeping: fds and what they are, ownership as `drivers/vfio` decides
//! it, valid IOVA ranges.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use vfio_bindings::bindings::vfio;

use super::{alive, region_offset, DeviceVia, FakeCall, FdEntry, FdKind, State};
use crate::pci::PciAddress;

pub(super) fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl State {
    /// Offers an answer to the hostile hook, if there is one.
    pub(super) fn offer(&mut self, reply: super::FakeReply<'_>) {
        self.hostile.offer(reply);
    }

    /// Records `call` and applies an injected failure for it.
    pub(super) fn begin(&mut self, call: FakeCall) -> io::Result<()> {
        let name = call.name();
        self.calls.push(call);
        if let Some(i) = self.failures.iter().position(|(n, _)| *n == name) {
            let (_, code) = self.failures.remove(i);
            return Err(errno(code));
        }
        Ok(())
    }

    /// Hands out a new fd of `kind`.
    pub(super) fn new_fd(&mut self, kind: FdKind) -> io::Result<OwnedFd> {
        let (reader, writer) = std::io::pipe()?;
        let fd = OwnedFd::from(writer);
        let ino = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))?.ino();
        self.pipes.push(reader);
        self.fds.insert(fd.as_raw_fd(), FdEntry { ino, kind });
        Ok(fd)
    }

    /// The fd number the fake knows `fd` under: its own, or for a duplicate (`dup`, or an fd
    /// passed over a socket, as a broker does) the number of the fd it duplicates.
    pub(super) fn canonical(&self, fd: BorrowedFd<'_>) -> RawFd {
        let raw = fd.as_raw_fd();
        if self.fds.get(&raw).is_some_and(|entry| alive(raw, entry)) {
            return raw;
        }
        let Ok(ino) = std::fs::metadata(format!("/proc/self/fd/{raw}")).map(|m| m.ino()) else {
            return raw;
        };
        self.fds
            .iter()
            .find(|(n, entry)| entry.ino == ino && alive(**n, entry))
            .map_or(raw, |(n, _)| *n)
    }

    pub(super) fn kind(&self, fd: BorrowedFd<'_>) -> io::Result<FdKind> {
        let raw = self.canonical(fd);
        match self.fds.get(&raw) {
            Some(entry) if alive(raw, entry) => Ok(entry.kind.clone()),
            _ => Err(errno(libc::ENOTTY)),
        }
    }

    pub(super) fn set_kind(&mut self, fd: BorrowedFd<'_>, kind: FdKind) {
        let fd = self.canonical(fd);
        if let Some(entry) = self.fds.get_mut(&fd) {
            entry.kind = kind;
        }
    }

    pub(super) fn device(&self, fd: BorrowedFd<'_>) -> io::Result<(PciAddress, DeviceVia)> {
        match self.kind(fd)? {
            FdKind::Device { address, via } => Ok((address, via)),
            _ => Err(errno(libc::ENOTTY)),
        }
    }

    pub(super) fn live(&self) -> impl Iterator<Item = (RawFd, &FdKind)> + '_ {
        self.fds
            .iter()
            .filter(|(fd, e)| alive(**fd, e))
            .map(|(fd, e)| (*fd, &e.kind))
    }

    pub(super) fn group_viable(&self, group: u32) -> bool {
        self.functions
            .values()
            .filter(|f| f.group == group)
            .all(|f| !f.blocks_viability())
    }

    pub(super) fn group_is_open(&self, group: u32) -> bool {
        self.live()
            .any(|(_, k)| matches!(k, FdKind::Group { id, .. } if *id == group))
    }

    /// The devid of `address` if a live cdev fd of it is bound to `iommufd`.
    pub(super) fn devid_in(&self, address: PciAddress, iommufd: RawFd) -> Option<u32> {
        self.live().find_map(|(_, k)| match k {
            FdKind::Device {
                address: a,
                via:
                    DeviceVia::Cdev {
                        bound: Some((ictx, devid)),
                    },
            } if *a == address && *ictx == iommufd => Some(*devid),
            _ => None,
        })
    }

    /// True if some device of `group` is bound to `iommufd` (`iommufd_ctx_has_group`).
    pub(super) fn iommufd_has_group(&self, group: u32, iommufd: RawFd) -> bool {
        self.functions
            .values()
            .filter(|f| f.group == group)
            .any(|f| self.devid_in(f.address, iommufd).is_some())
    }

    /// `vfio_iommufd_get_dev_id`: the devid, -ENOENT (group owned), or -ENODEV.
    pub(super) fn dev_id(&self, address: PciAddress, iommufd: RawFd) -> i64 {
        if let Some(devid) = self.devid_in(address, iommufd) {
            return i64::from(devid);
        }
        match self.functions.get(&address) {
            Some(f) if self.iommufd_has_group(f.group, iommufd) => -i64::from(libc::ENOENT),
            _ => -i64::from(libc::ENODEV),
        }
    }

    /// What `open(path)` opens: `/dev/iommu`, `/dev/vfio/vfio`, `/dev/vfio/<group>` (one opener
    /// at a time) or `/dev/vfio/devices/vfioN`; ENOENT for anything else.
    pub(super) fn open_kind(&self, path: &Path) -> io::Result<FdKind> {
        let text = path.to_string_lossy().into_owned();
        if let Some((_, code)) = self
            .open_failures
            .iter()
            .find(|(sfx, _)| text.ends_with(sfx))
        {
            return Err(errno(*code));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str());
        let kind = match (parent, name) {
            (_, "iommu") => FdKind::Iommufd { ioas: Vec::new() },
            (Some("vfio"), "vfio") => FdKind::Container {
                groups: Vec::new(),
                iommu_set: false,
            },
            (Some("devices"), cdev) => {
                let f = self
                    .functions
                    .values()
                    .find(|f| f.cdev.as_deref() == Some(cdev));
                let f = f.filter(|f| f.vfio_bound()).ok_or(errno(libc::ENOENT))?;
                FdKind::Device {
                    address: f.address,
                    via: DeviceVia::Cdev { bound: None },
                }
            }
            (Some("vfio"), number) => {
                let id: u32 = number.parse().map_err(|_| errno(libc::ENOENT))?;
                if !self
                    .functions
                    .values()
                    .any(|f| f.group == id && f.vfio_bound())
                {
                    return Err(errno(libc::ENOENT));
                }
                if self.group_is_open(id) {
                    return Err(errno(libc::EBUSY));
                }
                FdKind::Group {
                    id,
                    container: None,
                }
            }
            _ => return Err(errno(libc::ENOENT)),
        };
        Ok(kind)
    }

    /// True if `[iova, iova + len)` lies inside one valid IOVA range.
    pub(super) fn in_ranges(&self, iova: u64, len: u64) -> bool {
        let Some(last) = len.checked_sub(1).and_then(|l| iova.checked_add(l)) else {
            return false;
        };
        self.iova_ranges
            .iter()
            .any(|r| r.start <= iova && last <= r.last)
    }
}

/// The config-space byte range of a `pread`/`pwrite` at a device fd offset.
pub(super) fn config_range(
    offset: u64,
    len: usize,
    size: usize,
) -> io::Result<std::ops::Range<usize>> {
    let base = region_offset(vfio::VFIO_PCI_CONFIG_REGION_INDEX);
    let start = offset.checked_sub(base).ok_or(errno(libc::EINVAL))? as usize;
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(errno(libc::EINVAL)),
    }
}
