//! `vfio::iommufd`: one `/dev/iommu` fd and one IO address space (IOAS) per context.
//!
//! Devices opened as VFIO cdevs are bound to the iommufd (`VFIO_DEVICE_BIND_IOMMUFD`) and
//! attached to the IOAS (`VFIO_DEVICE_ATTACH_IOMMUFD_PT`); DMA memory is mapped into the IOAS
//! at IOVAs the framework's allocator picked (`IOMMU_IOAS_MAP` with `FIXED_IOVA`). The valid
//! IOVA ranges (`IOMMU_IOAS_IOVA_RANGES`) narrow as devices attach, so they are read after the
//! first attach and checked again after each further one.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use iommufd_bindings as iommufd;

use super::open_error;
use super::sys::VfioSys;
use crate::dma::{DmaDirection, IommuMapper, IovaRange};
use crate::error::{Error, Result};

/// Most times `IOMMU_IOAS_IOVA_RANGES` is retried with a larger array.
const RANGE_RETRIES: usize = 4;

/// An iommufd with one IOAS: the DMA address space of a cdev-mode context.
pub struct IommufdContext {
    sys: Arc<dyn VfioSys>,
    fd: OwnedFd,
    ioas: u32,
    /// Bytes currently mapped (pinned), for memlock messages.
    pinned: AtomicU64,
    /// For an IOAS a broker shares with its clients: where this process allocates IOVAs.
    window: Option<IovaRange>,
    /// False for an adopted IOAS: the broker that made it destroys it.
    owns_ioas: bool,
}

impl fmt::Debug for IommufdContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IommufdContext")
            .field("ioas", &self.ioas)
            .field("pinned", &self.pinned.load(Ordering::Relaxed))
            .finish()
    }
}

impl IommufdContext {
    /// Opens `path` (`/dev/iommu`) and allocates an IOAS.
    pub fn open(sys: Arc<dyn VfioSys>, path: &Path) -> Result<Self> {
        let fd = sys.open(path).map_err(|e| open_error(path, "iommufd", e))?;
        let ioas = sys
            .ioas_alloc(fd.as_fd())
            .map_err(|source| Error::VfioIoctl {
                context: path.display().to_string(),
                ioctl: "IOMMU_IOAS_ALLOC",
                hint: String::new(),
                source,
            })?;
        tracing::debug!(path = %path.display(), ioas, "iommufd: IOAS allocated");
        Ok(IommufdContext {
            sys,
            fd,
            ioas,
            pinned: AtomicU64::new(0),
            window: None,
            owns_ioas: true,
        })
    }

    /// An iommufd and an IOAS in it that another process made (a broker lending a function:
    /// its iommufd, passed over a socket, and the IOAS the function is attached to). With a
    /// `window` this process allocates IOVAs only there (an IOAS shared with other clients).
    /// The IOAS stays the broker's: dropping the context does not destroy it.
    pub fn adopt(sys: Arc<dyn VfioSys>, fd: OwnedFd, ioas: u32, window: Option<IovaRange>) -> Self {
        IommufdContext {
            sys,
            fd,
            ioas,
            pinned: AtomicU64::new(0),
            window,
            owns_ioas: false,
        }
    }

    /// The iommufd, for `VFIO_DEVICE_BIND_IOMMUFD`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The IOAS id, for `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
    pub fn ioas_id(&self) -> u32 {
        self.ioas
    }

    fn ioctl_error(&self, ioctl: &'static str, what: String, source: io::Error) -> Error {
        Error::VfioIoctl {
            context: format!("{}{what}", self.name()),
            ioctl,
            hint: String::new(),
            source,
        }
    }
}

/// The `IOMMU_IOAS_MAP` flags for a direction: always a fixed IOVA, readable if the device
/// reads, writeable if it writes.
pub fn map_flags(direction: DmaDirection) -> u32 {
    let mut flags = iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_FIXED_IOVA;
    if direction.device_reads() {
        flags |= iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_READABLE;
    }
    if direction.device_writes() {
        flags |= iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_WRITEABLE;
    }
    flags
}

/// The error for a failed DMA map: `ENOMEM` is almost always RLIMIT_MEMLOCK.
pub(super) fn map_error(
    sys: &dyn VfioSys,
    space: String,
    ioctl: &'static str,
    iova: u64,
    len: u64,
    pinned: u64,
    source: io::Error,
) -> Error {
    if source.raw_os_error() == Some(libc::ENOMEM) {
        return Error::IommuMemlock {
            space,
            iova,
            len,
            pinned: pinned.saturating_add(len),
            limit: sys
                .memlock_limit()
                .map_or_else(|| "unlimited or unknown".to_string(), |l| l.to_string()),
            source,
        };
    }
    let hint = match source.raw_os_error() {
        Some(libc::EEXIST) => "; the IOVA range is already mapped".to_string(),
        Some(libc::ENOSPC) => "; the IOMMU has no room for more mappings".to_string(),
        _ => String::new(),
    };
    Error::VfioIoctl {
        context: format!("{space}: map IOVA {iova:#x}+{len:#x}"),
        ioctl,
        hint,
        source,
    }
}

impl IommuMapper for IommufdContext {
    fn name(&self) -> String {
        format!("iommufd ioas {}", self.ioas)
    }

    fn iova_ranges(&self) -> Result<Vec<IovaRange>> {
        let mut ranges = vec![iommufd::iommu_iova_range::default(); 4];
        for _ in 0..RANGE_RETRIES {
            let mut cmd = iommufd::iommu_ioas_iova_ranges {
                ioas_id: self.ioas,
                ..Default::default()
            };
            match self
                .sys
                .ioas_iova_ranges(self.fd.as_fd(), &mut cmd, &mut ranges)
            {
                Ok(()) => {
                    let total = cmd.num_iovas as usize;
                    if total > ranges.len() {
                        return Err(Error::VfioReply {
                            context: self.name(),
                            ioctl: "IOMMU_IOAS_IOVA_RANGES",
                            reason: format!(
                                "{total} ranges reported, room was given for {}",
                                ranges.len()
                            ),
                        });
                    }
                    tracing::debug!(
                        ioas = self.ioas,
                        alignment = cmd.out_iova_alignment,
                        "iommufd: IOVA ranges read"
                    );
                    let valid = decode_ranges(&self.name(), &ranges[..total])?;
                    let Some(window) = self.window else {
                        return Ok(valid);
                    };
                    let cut = window.clip(&valid);
                    if cut.is_empty() {
                        return Err(Error::VfioReply {
                            context: self.name(),
                            ioctl: "IOMMU_IOAS_IOVA_RANGES",
                            reason: format!(
                                "the lent IOVA window {window:?} is outside every valid range \
                                 {valid:?}"
                            ),
                        });
                    }
                    return Ok(cut);
                }
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    let wanted = (cmd.num_iovas as usize).max(ranges.len() + 1);
                    ranges = vec![iommufd::iommu_iova_range::default(); wanted];
                }
                Err(e) => return Err(self.ioctl_error("IOMMU_IOAS_IOVA_RANGES", String::new(), e)),
            }
        }
        Err(Error::VfioReply {
            context: self.name(),
            ioctl: "IOMMU_IOAS_IOVA_RANGES",
            reason: format!("still EMSGSIZE after {RANGE_RETRIES} larger arrays"),
        })
    }

    unsafe fn map(
        &self,
        iova: u64,
        host: NonNull<u8>,
        len: usize,
        direction: DmaDirection,
    ) -> Result<()> {
        let mut map = iommufd::iommu_ioas_map {
            flags: map_flags(direction),
            ioas_id: self.ioas,
            user_va: host.as_ptr() as u64,
            length: len as u64,
            iova,
            ..Default::default()
        };
        // SAFETY: `host` is valid for `len` bytes until unmapped: the contract of
        // `IommuMapper::map`, passed on unchanged.
        let mapped = unsafe { self.sys.ioas_map(self.fd.as_fd(), &mut map) };
        let pinned = self.pinned.load(Ordering::Relaxed);
        if let Err(source) = mapped {
            return Err(map_error(
                &*self.sys,
                self.name(),
                "IOMMU_IOAS_MAP",
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
        let mut unmap = iommufd::iommu_ioas_unmap {
            ioas_id: self.ioas,
            iova,
            length: len as u64,
            ..Default::default()
        };
        self.sys
            .ioas_unmap(self.fd.as_fd(), &mut unmap)
            .map_err(|e| self.ioctl_error("IOMMU_IOAS_UNMAP", format!(": IOVA {iova:#x}"), e))?;
        if unmap.length != len as u64 {
            return Err(Error::VfioReply {
                context: format!("{}: IOVA {iova:#x}", self.name()),
                ioctl: "IOMMU_IOAS_UNMAP",
                reason: format!("unmapped {:#x} bytes of {len:#x}", unmap.length),
            });
        }
        self.pinned.fetch_sub(len as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for IommufdContext {
    fn drop(&mut self) {
        if !self.owns_ioas {
            return;
        }
        // Closing the fd destroys every object too; destroying the IOAS first says so in the
        // log if something still holds it.
        if let Err(err) = self.sys.destroy(self.fd.as_fd(), self.ioas) {
            tracing::debug!(ioas = self.ioas, %err, "iommufd: IOMMU_DESTROY of the IOAS failed");
        }
    }
}

/// Checks and converts the kernel's ranges.
fn decode_ranges(space: &str, ranges: &[iommufd::iommu_iova_range]) -> Result<Vec<IovaRange>> {
    ranges
        .iter()
        .map(|r| {
            if r.last < r.start {
                return Err(Error::VfioReply {
                    context: space.to_string(),
                    ioctl: "IOMMU_IOAS_IOVA_RANGES",
                    reason: format!("range {:#x}..={:#x} ends below its start", r.start, r.last),
                });
            }
            Ok(IovaRange::new(r.start, r.last))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::vfio::fake::{FakeCall, FakeVfio};
    use crate::dma::DmaSpace;

    fn context(fake: &Arc<FakeVfio>) -> Arc<IommufdContext> {
        Arc::new(IommufdContext::open(fake.clone(), Path::new("/dev/iommu")).unwrap())
    }

    #[test]
    fn flags_per_direction() {
        let fixed = iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_FIXED_IOVA;
        let r = iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_READABLE;
        let w = iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_WRITEABLE;
        assert_eq!(map_flags(DmaDirection::ToDevice), fixed | r);
        assert_eq!(map_flags(DmaDirection::FromDevice), fixed | w);
        assert_eq!(map_flags(DmaDirection::Bidirectional), fixed | r | w);
    }

    #[test]
    fn ranges_grow_on_emsgsize() {
        let fake = FakeVfio::new();
        let many: Vec<IovaRange> = (0..9u64)
            .map(|i| IovaRange::new(i << 32, (i << 32) + 0xffff_ffff - 0x1000))
            .collect();
        fake.set_iova_ranges(many.clone());
        let ctx = context(&fake);
        assert_eq!(ctx.iova_ranges().unwrap(), many);
        let calls = fake.calls_named("IOMMU_IOAS_IOVA_RANGES");
        assert_eq!(
            calls.len(),
            2,
            "4 slots, EMSGSIZE with 9, then 9: {calls:?}"
        );
    }

    #[test]
    fn map_and_unmap_through_a_dma_space() {
        let fake = FakeVfio::new();
        let ctx = context(&fake);
        let space = DmaSpace::new(ctx.clone()).unwrap();
        let region = space.allocate(8192, DmaDirection::ToDevice).unwrap();
        let iova = region.iova();
        let maps = fake.calls_named("IOMMU_IOAS_MAP");
        let [FakeCall::IoasMap {
            ioas,
            iova: mapped,
            length,
            flags,
            ..
        }] = maps.as_slice()
        else {
            panic!("one map expected: {maps:?}");
        };
        assert_eq!((*ioas, *mapped, *length), (ctx.ioas_id(), iova, 8192));
        assert_eq!(*flags, map_flags(DmaDirection::ToDevice));
        drop(region);
        assert!(matches!(
            fake.calls_named("IOMMU_IOAS_UNMAP").as_slice(),
            [FakeCall::IoasUnmap { iova: i, length: 8192, .. }] if *i == iova
        ));
    }

    #[test]
    fn enomem_is_reported_as_the_memlock_limit_with_the_size() {
        let fake = FakeVfio::new();
        fake.set_memlock_limit(Some(65536));
        let ctx = context(&fake);
        let space = DmaSpace::new(ctx).unwrap();
        fake.fail_next("IOMMU_IOAS_MAP", libc::ENOMEM);
        let err = space
            .allocate(1 << 20, DmaDirection::Bidirectional)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::IommuMemlock { len: 0x10_0000, .. }),
            "{text}"
        );
        assert!(text.contains("memlock limit: 65536"), "{text}");
        assert!(text.contains("ulimit -l"), "{text}");
    }

    #[test]
    fn the_ioas_is_destroyed_on_drop() {
        let fake = FakeVfio::new();
        let ctx = context(&fake);
        let ioas = ctx.ioas_id();
        drop(ctx);
        assert!(matches!(
            fake.calls_named("IOMMU_DESTROY").as_slice(),
            [FakeCall::Destroy { id }] if *id == ioas
        ));
    }
}
