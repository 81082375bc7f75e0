//! The real backends: PCI functions bound to `vfio-pci`, reached through VFIO.
//!
//! Two ways in, chosen per [`VfioContext`]:
//!
//! - **iommufd + cdev** (`vfio::iommufd`): `/dev/iommu` with one IO address space; each device
//!   is opened as `/dev/vfio/devices/vfioN` (the `N` from sysfs `vfio-dev/`), bound to the
//!   iommufd and attached to the IOAS. A hot reset passes a zero-length fd array: the kernel
//!   checks that every affected device is bound to the same iommufd (or is in an IOMMU group
//!   one of them owns).
//! - **group + container** (`vfio::group`, the legacy interface): `/dev/vfio/vfio` with the
//!   type1 v2 IOMMU and `/dev/vfio/<group>` per IOMMU group; a group must be *viable* (no
//!   member bound to a kernel driver). A hot reset passes the group fds as proof of ownership.
//!
//! [`VfioContext::new`] picks the mode: iommufd when `/dev/iommu` exists and the function has a
//! `vfio-dev/vfioN` entry in sysfs (a kernel with `CONFIG_IOMMUFD` and
//! `CONFIG_VFIO_DEVICE_CDEV`), the group container otherwise (every Debian kernel, for one).
//! The choice is made when the first function is opened and logged once with its reason;
//! [`VfioOptions::mode`] can force either. All functions of a context share one IOAS or
//! container and one [`DmaSpace`](crate::dma::DmaSpace).
//!
//! Both modes then work alike: region info and `mmap` of BARs ([`MmioRegion`]), config space
//! through the config region, MSI-X through `VFIO_DEVICE_SET_IRQS` with eventfds, the error and
//! request interrupts, `VFIO_DEVICE_RESET` and `VFIO_DEVICE_PCI_HOT_RESET`.
//!
//! # Layers
//! - [`sys`]: the [`VfioSys`] trait, one method per ioctl, and the request numbers.
//! - [`KernelVfio`]: the real [`VfioSys`]; with the BAR `munmap` the only `unsafe` system
//!   calls of the backend. [`fake::FakeVfio`] plays the kernel in tests.
//! - everything else is safe code on top: decoding replies ([`reply`]), the IOMMU mappers
//!   ([`IommufdContext`], [`Container`]), opening ([`VfioContext`]), the function
//!   ([`VfioFunction`]), resets, and driver binding ([`bind`]).
//!
//! [`MmioRegion`]: crate::device::MmioRegion

pub mod bind;
mod container;
mod context;
mod device;
pub mod fake;
mod iommufd;
mod kernel;
mod lend;
pub mod reply;
mod reset;
mod shared;
pub mod sys;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use bind::{bind_vfio, unbind_vfio, BindReport, Binder, UnbindReport};
pub use container::{Container, VfioGroup, FALLBACK_IOVA_RANGE};
pub use context::VfioContext;
pub use device::VfioFunction;
pub use iommufd::{map_flags as ioas_map_flags, IommufdContext};
pub use kernel::KernelVfio;
pub use lend::{LentCdev, LentGroup};
pub use sys::VfioSys;

use crate::error::{Error, Result};
use crate::pci::PciFunctionInfo;

/// How a context reaches its devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VfioMode {
    /// `/dev/iommu` and VFIO device cdevs.
    Iommufd,
    /// The legacy container and IOMMU groups.
    Group,
}

impl fmt::Display for VfioMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VfioMode::Iommufd => "iommufd",
            VfioMode::Group => "group",
        })
    }
}

/// Which mode to use: chosen from what the system offers, or forced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeChoice {
    /// iommufd when available, else the group container.
    #[default]
    Auto,
    /// iommufd + cdev, or an error saying what is missing.
    Iommufd,
    /// The group container even when iommufd is available.
    Group,
}

/// How a [`VfioContext`] is set up.
#[derive(Clone, Debug)]
pub struct VfioOptions {
    /// Where sysfs is (`/sys`; a fixture tree in tests).
    pub sysfs_root: PathBuf,
    /// Where the device nodes are (`/dev`).
    pub dev_root: PathBuf,
    /// Which mode to use.
    pub mode: ModeChoice,
    /// The system-call layer ([`KernelVfio`]; a fake in tests).
    pub sys: Arc<dyn VfioSys>,
}

impl Default for VfioOptions {
    fn default() -> Self {
        VfioOptions {
            sysfs_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            mode: ModeChoice::Auto,
            sys: Arc::new(KernelVfio),
        }
    }
}

impl VfioOptions {
    /// The running system, mode chosen automatically.
    pub fn new() -> Self {
        Self::default()
    }

    /// With another sysfs root.
    pub fn sysfs_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.sysfs_root = root.into();
        self
    }

    /// With another device-node root.
    pub fn dev_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.dev_root = root.into();
        self
    }

    /// With the mode forced or left automatic.
    pub fn mode(mut self, mode: ModeChoice) -> Self {
        self.mode = mode;
        self
    }

    /// With another system-call layer.
    pub fn sys(mut self, sys: Arc<dyn VfioSys>) -> Self {
        self.sys = sys;
        self
    }
}

/// Picks the mode for a context whose first function is `function`, with the reason.
///
/// Auto: iommufd when `<dev_root>/iommu` exists and the function has a VFIO cdev in sysfs,
/// else the group container. A forced iommufd mode without both is an error naming what is
/// missing.
pub fn select_mode(
    choice: ModeChoice,
    dev_root: &Path,
    function: &PciFunctionInfo,
) -> Result<(VfioMode, String)> {
    let iommu = dev_root.join("iommu");
    let has_iommufd = iommu.exists();
    let address = function.address;
    let missing = match (&function.vfio_dev, has_iommufd) {
        (Some(cdev), true) => {
            let reason = match choice {
                ModeChoice::Group => return Ok((VfioMode::Group, "forced by the options".into())),
                _ => format!(
                    "{} exists and {address} has the VFIO cdev {cdev} (sysfs vfio-dev/)",
                    iommu.display()
                ),
            };
            return Ok((VfioMode::Iommufd, reason));
        }
        (_, false) => format!(
            "no {} (a kernel without CONFIG_IOMMUFD, as Debian's are)",
            iommu.display()
        ),
        (None, true) => format!(
            "{address} has no vfio-dev entry in sysfs (a kernel without \
             CONFIG_VFIO_DEVICE_CDEV)"
        ),
    };
    match choice {
        ModeChoice::Iommufd => Err(Error::VfioMode {
            mode: "iommufd",
            reason: missing,
        }),
        ModeChoice::Group => Ok((VfioMode::Group, "forced by the options".into())),
        ModeChoice::Auto => Ok((
            VfioMode::Group,
            format!("{missing}: using the group container"),
        )),
    }
}

/// True for `vfio-pci` and its variant drivers (`mlx5_vfio_pci`, `nvgrace-gpu-vfio-pci`).
pub fn is_vfio_driver(driver: Option<&str>) -> bool {
    driver.is_some_and(|d| d == "vfio-pci" || (d.contains("vfio") && d.contains("pci")))
}

/// The error for a failed `open` of a VFIO or iommufd node.
pub(crate) fn open_error(path: &Path, module: &'static str, source: io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Error::VfioPermission {
            path: path.to_path_buf(),
            hint: "run as root, or give this user the device nodes (chown, or a udev rule for \
                   /dev/vfio/<group>, /dev/vfio/devices/vfioN and /dev/iommu) and a memlock \
                   limit that covers its DMA memory",
            source,
        },
        Some(libc::EBUSY) => Error::VfioBusy {
            what: path.display().to_string(),
            source,
        },
        Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => Error::VfioModuleMissing {
            path: path.to_path_buf(),
            module,
            source,
        },
        _ => Error::Io {
            context: format!("cannot open {}", path.display()),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::PciAddress;

    fn function(vfio_dev: Option<&str>) -> PciFunctionInfo {
        PciFunctionInfo {
            address: PciAddress::new(0, 1, 0, 0).unwrap(),
            sysfs_path: PathBuf::from("/sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0"),
            vendor: 0x1b36,
            device: 0x0010,
            subsystem_vendor: 0x1af4,
            subsystem_device: 0x1100,
            class: 0x010802,
            revision: 2,
            driver: Some("vfio-pci".into()),
            iommu_group: Some(7),
            reset_methods: Vec::new(),
            parent_bridge: None,
            numa_node: None,
            is_bridge: false,
            vfio_dev: vfio_dev.map(str::to_string),
        }
    }

    fn dev_root(with_iommu: bool) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "userpci-vfio-dev-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if with_iommu {
            std::fs::write(dir.join("iommu"), b"").unwrap();
        }
        dir
    }

    #[test]
    fn auto_picks_iommufd_with_dev_iommu_and_a_cdev() {
        let dev = dev_root(true);
        let (mode, reason) = select_mode(ModeChoice::Auto, &dev, &function(Some("vfio0"))).unwrap();
        assert_eq!(mode, VfioMode::Iommufd);
        assert!(
            reason.contains("vfio0") && reason.contains("iommu exists"),
            "{reason}"
        );
        let _ = std::fs::remove_dir_all(dev);
    }

    #[test]
    fn auto_falls_back_to_the_group_container_and_says_why() {
        let dev = dev_root(false);
        let (mode, reason) = select_mode(ModeChoice::Auto, &dev, &function(Some("vfio0"))).unwrap();
        assert_eq!(mode, VfioMode::Group);
        assert!(reason.contains("CONFIG_IOMMUFD"), "{reason}");
        let _ = std::fs::remove_dir_all(dev);

        let dev = dev_root(true);
        let (mode, reason) = select_mode(ModeChoice::Auto, &dev, &function(None)).unwrap();
        assert_eq!(mode, VfioMode::Group);
        assert!(reason.contains("CONFIG_VFIO_DEVICE_CDEV"), "{reason}");
        let _ = std::fs::remove_dir_all(dev);
    }

    #[test]
    fn forcing_works_and_a_forced_iommufd_names_what_is_missing() {
        let dev = dev_root(true);
        let (mode, _) = select_mode(ModeChoice::Group, &dev, &function(Some("vfio0"))).unwrap();
        assert_eq!(mode, VfioMode::Group);
        let err = select_mode(ModeChoice::Iommufd, &dev, &function(None)).unwrap_err();
        assert!(err.to_string().contains("no vfio-dev entry"), "{err}");
        let _ = std::fs::remove_dir_all(dev);
    }

    #[test]
    fn vfio_driver_names() {
        assert!(is_vfio_driver(Some("vfio-pci")));
        assert!(is_vfio_driver(Some("mlx5_vfio_pci")));
        assert!(!is_vfio_driver(Some("nvme")));
        assert!(!is_vfio_driver(None));
    }

    #[test]
    fn open_errors_say_what_to_do() {
        let p = Path::new("/dev/vfio/7");
        let text = open_error(p, "vfio", io::Error::from_raw_os_error(libc::EACCES)).to_string();
        assert!(
            text.contains("/dev/vfio/7") && text.contains("root"),
            "{text}"
        );
        let text = open_error(p, "vfio", io::Error::from_raw_os_error(libc::EBUSY)).to_string();
        assert!(text.contains("another process"), "{text}");
        let text = open_error(p, "vfio", io::Error::from_raw_os_error(libc::ENOENT)).to_string();
        assert!(text.contains("modprobe vfio"), "{text}");
    }
}
