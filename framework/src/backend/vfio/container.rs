//! `vfio::group`: the legacy interface of a container (`/dev/vfio/vfio`) holding IOMMU groups
//! (`/dev/vfio/<group>`), with the type1 v2 IOMMU.
//!
//! The order the kernel requires: check the API version and the `VFIO_TYPE1v2_IOMMU`
//! extension, attach the first group (`VFIO_GROUP_SET_CONTAINER`), then `VFIO_SET_IOMMU`;
//! later groups are only attached. Every device of an attached group becomes reachable through
//! `VFIO_GROUP_GET_DEVICE_FD`, and holding the group fd is the proof of ownership that
//! `VFIO_DEVICE_PCI_HOT_RESET` asks for.
//!
//! The container keeps its groups open for as long as it lives (and the DMA space that maps
//! through it keeps it alive): closing the last group would make the kernel drop the IOMMU and
//! every mapping with it, under DMA regions that still think they are mapped.

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vfio_bindings::bindings::vfio;

use super::iommufd::map_error;
use super::open_error;
use super::reply::parse_type1_info;
use super::sys::{VfioSys, TYPE1_INFO_HEADER};
use crate::dma::{DmaDirection, IommuMapper, IovaRange};
use crate::error::{Error, Result};

/// The IOVA space assumed when type1 does not report its ranges (kernels before 5.4): 48 bits,
/// what every x86 IOMMU translates.
pub const FALLBACK_IOVA_RANGE: IovaRange = IovaRange::new(0, (1 << 48) - 1);

/// Most times `VFIO_IOMMU_GET_INFO` is retried with the larger `argsz` the kernel asks for.
const INFO_RETRIES: usize = 4;

/// An open IOMMU group: `/dev/vfio/<id>`.
pub struct VfioGroup {
    id: u32,
    fd: OwnedFd,
}

impl fmt::Debug for VfioGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioGroup").field("id", &self.id).finish()
    }
}

impl VfioGroup {
    /// Opens the group node at `path`.
    pub fn open(sys: &dyn VfioSys, id: u32, path: &Path) -> Result<Self> {
        let fd = sys.open(path).map_err(|e| open_error(path, "vfio", e))?;
        Ok(VfioGroup { id, fd })
    }

    /// The group number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The group fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

struct ContainerState {
    groups: BTreeMap<u32, Arc<VfioGroup>>,
    iommu_set: bool,
}

/// A VFIO container with the type1 v2 IOMMU: the DMA address space of a group-mode context.
pub struct Container {
    sys: Arc<dyn VfioSys>,
    fd: OwnedFd,
    state: Mutex<ContainerState>,
    /// Bytes currently mapped (pinned), for memlock messages.
    pinned: AtomicU64,
    /// For a container a broker shares with its clients: the part of the address space this
    /// process allocates IOVAs in (every client maps into the one container).
    window: Option<IovaRange>,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Container")
            .field("groups", &state.groups.keys().collect::<Vec<_>>())
            .field("iommu_set", &state.iommu_set)
            .finish()
    }
}

impl Container {
    /// Opens `path` (`/dev/vfio/vfio`) and checks the API version and type1 v2 support.
    pub fn open(sys: Arc<dyn VfioSys>, path: &Path) -> Result<Self> {
        let fd = sys.open(path).map_err(|e| open_error(path, "vfio", e))?;
        let context = path.display().to_string();
        let ioctl_error = |ioctl, source| Error::VfioIoctl {
            context: context.clone(),
            ioctl,
            hint: String::new(),
            source,
        };
        let version = sys
            .get_api_version(fd.as_fd())
            .map_err(|e| ioctl_error("VFIO_GET_API_VERSION", e))?;
        if version != vfio::VFIO_API_VERSION as i32 {
            return Err(Error::VfioReply {
                context,
                ioctl: "VFIO_GET_API_VERSION",
                reason: format!(
                    "API version {version}, this backend speaks {}",
                    vfio::VFIO_API_VERSION
                ),
            });
        }
        let type1v2 = sys
            .check_extension(fd.as_fd(), vfio::VFIO_TYPE1v2_IOMMU)
            .map_err(|e| ioctl_error("VFIO_CHECK_EXTENSION", e))?;
        if !type1v2 {
            return Err(Error::VfioMode {
                mode: "group",
                reason: format!(
                    "{context} does not offer the type1 v2 IOMMU (is vfio_iommu_type1 loaded?)"
                ),
            });
        }
        Ok(Container {
            sys,
            fd,
            state: Mutex::new(ContainerState {
                groups: BTreeMap::new(),
                iommu_set: false,
            }),
            pinned: AtomicU64::new(0),
            window: None,
        })
    }

    /// A container another process opened and set up (a broker lending a function: its
    /// container fd, passed over a socket), in which this process allocates IOVAs only inside
    /// `window`. It holds no group: the groups, and hot resets, stay with the broker.
    pub fn adopt(sys: Arc<dyn VfioSys>, fd: OwnedFd, window: IovaRange) -> Self {
        Container {
            sys,
            fd,
            state: Mutex::new(ContainerState {
                groups: BTreeMap::new(),
                iommu_set: true,
            }),
            pinned: AtomicU64::new(0),
            window: Some(window),
        }
    }

    /// The container fd (a broker duplicates it for a client).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ContainerState> {
        self.state.lock().expect("container lock poisoned")
    }

    /// The group `id` if it is attached to this container.
    pub fn group(&self, id: u32) -> Option<Arc<VfioGroup>> {
        self.lock().groups.get(&id).cloned()
    }

    /// The ids of the attached groups.
    pub fn group_ids(&self) -> Vec<u32> {
        self.lock().groups.keys().copied().collect()
    }

    /// Attaches `group` (`VFIO_GROUP_SET_CONTAINER`) and, for the first group, sets the type1
    /// v2 IOMMU (`VFIO_SET_IOMMU`). Attaching a group twice is a no-op.
    pub fn attach(&self, group: Arc<VfioGroup>) -> Result<()> {
        let mut state = self.lock();
        if state.groups.contains_key(&group.id) {
            return Ok(());
        }
        let context = format!("IOMMU group {}", group.id);
        self.sys
            .group_set_container(group.fd(), self.fd.as_fd())
            .map_err(|source| match source.raw_os_error() {
                Some(libc::EBUSY) => Error::VfioBusy {
                    what: context.clone(),
                    source,
                },
                _ => Error::VfioIoctl {
                    context: context.clone(),
                    ioctl: "VFIO_GROUP_SET_CONTAINER",
                    hint: String::new(),
                    source,
                },
            })?;
        if !state.iommu_set {
            self.sys
                .set_iommu(self.fd.as_fd(), vfio::VFIO_TYPE1v2_IOMMU)
                .map_err(|source| Error::VfioIoctl {
                    context: format!("container (first group {})", group.id),
                    ioctl: "VFIO_SET_IOMMU",
                    hint: String::new(),
                    source,
                })?;
            state.iommu_set = true;
        }
        tracing::debug!(group = group.id, "vfio: group attached to the container");
        state.groups.insert(group.id, group);
        Ok(())
    }
}

impl Container {
    /// `ranges` cut to the window, if the container has one.
    fn within_window(&self, ranges: Vec<IovaRange>) -> Result<Vec<IovaRange>> {
        let Some(window) = self.window else {
            return Ok(ranges);
        };
        let cut = window.clip(&ranges);
        if cut.is_empty() {
            return Err(Error::VfioReply {
                context: self.name(),
                ioctl: "VFIO_IOMMU_GET_INFO",
                reason: format!(
                    "the lent IOVA window {:#x}..={:#x} is outside every valid range {ranges:?}",
                    window.start, window.last
                ),
            });
        }
        Ok(cut)
    }
}

impl IommuMapper for Container {
    fn name(&self) -> String {
        "vfio type1 container".to_string()
    }

    fn iova_ranges(&self) -> Result<Vec<IovaRange>> {
        let mut buf = vec![0u8; TYPE1_INFO_HEADER];
        for _ in 0..INFO_RETRIES {
            self.sys
                .iommu_get_info(self.fd.as_fd(), &mut buf)
                .map_err(|source| Error::VfioIoctl {
                    context: self.name(),
                    ioctl: "VFIO_IOMMU_GET_INFO",
                    hint: String::new(),
                    source,
                })?;
            let info = parse_type1_info(&buf).map_err(|reason| Error::VfioReply {
                context: self.name(),
                ioctl: "VFIO_IOMMU_GET_INFO",
                reason,
            })?;
            if info.truncated {
                buf = vec![0u8; info.argsz as usize];
                continue;
            }
            tracing::debug!(
                pgsizes = format_args!("{:#x}", info.iova_pgsizes),
                "vfio: type1 info"
            );
            let ranges = match info.iova_ranges {
                Some(ranges) => ranges,
                None => {
                    tracing::debug!(
                        range = ?FALLBACK_IOVA_RANGE,
                        "vfio: type1 reports no IOVA ranges (kernel before 5.4); assuming 48 bits"
                    );
                    vec![FALLBACK_IOVA_RANGE]
                }
            };
            return self.within_window(ranges);
        }
        Err(Error::VfioReply {
            context: self.name(),
            ioctl: "VFIO_IOMMU_GET_INFO",
            reason: format!("capabilities still did not fit after {INFO_RETRIES} tries"),
        })
    }

    unsafe fn map(
        &self,
        iova: u64,
        host: NonNull<u8>,
        len: usize,
        direction: DmaDirection,
    ) -> Result<()> {
        let mut flags = 0;
        if direction.device_reads() {
            flags |= vfio::VFIO_DMA_MAP_FLAG_READ;
        }
        if direction.device_writes() {
            flags |= vfio::VFIO_DMA_MAP_FLAG_WRITE;
        }
        let mut map = vfio::vfio_iommu_type1_dma_map {
            argsz: 0,
            flags,
            vaddr: host.as_ptr() as u64,
            iova,
            size: len as u64,
        };
        // SAFETY: `host` is valid for `len` bytes until unmapped: the contract of
        // `IommuMapper::map`, passed on unchanged.
        let mapped = unsafe { self.sys.iommu_map_dma(self.fd.as_fd(), &mut map) };
        if let Err(source) = mapped {
            let pinned = self.pinned.load(Ordering::Relaxed);
            return Err(map_error(
                &*self.sys,
                self.name(),
                "VFIO_IOMMU_MAP_DMA",
                iova,
                len as u64,
                pinned,
                source,
            ));
        }
        self.pinned.fetch_add(len as u64, Ordering::Relaxed);
        Ok(())
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<()> {
        let mut unmap = vfio::vfio_iommu_type1_dma_unmap {
            iova,
            size: len as u64,
            ..Default::default()
        };
        self.sys
            .iommu_unmap_dma(self.fd.as_fd(), &mut unmap)
            .map_err(|source| Error::VfioIoctl {
                context: format!("{}: IOVA {iova:#x}", self.name()),
                ioctl: "VFIO_IOMMU_UNMAP_DMA",
                hint: String::new(),
                source,
            })?;
        if unmap.size != len as u64 {
            return Err(Error::VfioReply {
                context: format!("{}: IOVA {iova:#x}", self.name()),
                ioctl: "VFIO_IOMMU_UNMAP_DMA",
                reason: format!("unmapped {:#x} bytes of {len:#x}", unmap.size),
            });
        }
        self.pinned.fetch_sub(len as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::vfio::fake::{FakeCall, FakeFunction, FakeVfio};
    use crate::dma::DmaSpace;
    use crate::pci::PciAddress;

    fn a(text: &str) -> PciAddress {
        text.parse().unwrap()
    }

    fn two_function_slot() -> Arc<FakeVfio> {
        let fake = FakeVfio::new();
        fake.add_function(FakeFunction::nvme(a("0000:01:00.0"), 7));
        fake.add_function(FakeFunction::nvme(a("0000:01:00.1"), 7));
        fake.add_function(FakeFunction::nvme(a("0000:02:00.0"), 8));
        fake
    }

    fn group(fake: &Arc<FakeVfio>, id: u32) -> Arc<VfioGroup> {
        Arc::new(VfioGroup::open(&**fake, id, Path::new(&format!("/dev/vfio/{id}"))).unwrap())
    }

    #[test]
    fn api_version_and_extension_are_checked() {
        let fake = two_function_slot();
        fake.set_api_version(1);
        let err = Container::open(fake.clone(), Path::new("/dev/vfio/vfio")).unwrap_err();
        assert!(err.to_string().contains("API version 1"), "{err}");

        let fake = two_function_slot();
        fake.set_type1v2(false);
        let err = Container::open(fake.clone(), Path::new("/dev/vfio/vfio")).unwrap_err();
        assert!(err.to_string().contains("type1 v2"), "{err}");
    }

    #[test]
    fn set_iommu_once_after_the_first_group() {
        let fake = two_function_slot();
        let container = Container::open(fake.clone(), Path::new("/dev/vfio/vfio")).unwrap();
        container.attach(group(&fake, 7)).unwrap();
        container.attach(group(&fake, 8)).unwrap();
        container.attach(container.group(7).unwrap()).unwrap();
        let names: Vec<&str> = fake.calls().iter().map(FakeCall::name).collect();
        assert_eq!(
            names,
            [
                "open",
                "VFIO_GET_API_VERSION",
                "VFIO_CHECK_EXTENSION",
                "open",
                "VFIO_GROUP_SET_CONTAINER",
                "VFIO_SET_IOMMU",
                "open",
                "VFIO_GROUP_SET_CONTAINER",
            ]
        );
        assert_eq!(container.group_ids(), [7, 8]);
    }

    #[test]
    fn ranges_from_the_capability_chain_after_growing_argsz() {
        let fake = two_function_slot();
        fake.set_iova_ranges(vec![
            IovaRange::new(0, 0xfedf_ffff),
            IovaRange::new(0xfef0_0000, 0xffff_ffff_ffff),
        ]);
        let container = Container::open(fake.clone(), Path::new("/dev/vfio/vfio")).unwrap();
        container.attach(group(&fake, 7)).unwrap();
        assert_eq!(
            container.iova_ranges().unwrap(),
            [
                IovaRange::new(0, 0xfedf_ffff),
                IovaRange::new(0xfef0_0000, 0xffff_ffff_ffff)
            ]
        );
        let sizes: Vec<u32> = fake
            .calls_named("VFIO_IOMMU_GET_INFO")
            .iter()
            .map(|c| match c {
                FakeCall::IommuGetInfo { argsz } => *argsz,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sizes.len(),
            2,
            "header only, then the size the kernel asked for"
        );
        assert_eq!(sizes[0], TYPE1_INFO_HEADER as u32);
        assert!(sizes[1] > sizes[0]);
    }

    #[test]
    fn without_the_range_capability_the_48_bit_space_is_assumed() {
        let fake = two_function_slot();
        fake.set_type1_iova_cap(false);
        let container = Container::open(fake.clone(), Path::new("/dev/vfio/vfio")).unwrap();
        container.attach(group(&fake, 7)).unwrap();
        assert_eq!(container.iova_ranges().unwrap(), [FALLBACK_IOVA_RANGE]);
    }

    #[test]
    fn map_flags_per_direction_and_unmap_on_drop() {
        let fake = two_function_slot();
        let container =
            Arc::new(Container::open(fake.clone(), Path::new("/dev/vfio/vfio")).unwrap());
        container.attach(group(&fake, 7)).unwrap();
        let space = DmaSpace::new(container).unwrap();
        let to = space.allocate(4096, DmaDirection::ToDevice).unwrap();
        let from = space.allocate(4096, DmaDirection::FromDevice).unwrap();
        let both = space.allocate(4096, DmaDirection::Bidirectional).unwrap();
        let flags: Vec<(u64, u32)> = fake
            .calls_named("VFIO_IOMMU_MAP_DMA")
            .iter()
            .map(|c| match c {
                FakeCall::MapDma {
                    iova, flags, size, ..
                } => {
                    assert_eq!(*size, 4096);
                    (*iova, *flags)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let (r, w) = (vfio::VFIO_DMA_MAP_FLAG_READ, vfio::VFIO_DMA_MAP_FLAG_WRITE);
        assert_eq!(
            flags,
            [(to.iova(), r), (from.iova(), w), (both.iova(), r | w)]
        );
        let iova = to.iova();
        drop(to);
        assert!(matches!(
            fake.calls_named("VFIO_IOMMU_UNMAP_DMA").as_slice(),
            [FakeCall::UnmapDma { iova: i, size: 4096 }] if *i == iova
        ));
    }
}
