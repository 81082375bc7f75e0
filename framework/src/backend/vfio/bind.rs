//! Binding a function to vfio-pci and back, through sysfs.
//!
//! `bind_vfio` does what the kernel documents for `driver_override`
//! (`Documentation/ABI/testing/sysfs-bus-pci`): write `vfio-pci` to the function's
//! `driver_override`, unbind it from its current driver, and ask the PCI core to probe it
//! again (`/sys/bus/pci/drivers_probe`), which now only vfio-pci may claim. `unbind_vfio` clears
//! the override, unbinds from vfio-pci and probes again, so the function returns to the driver
//! the kernel would pick by itself (normally the one it had).
//!
//! Unbinding a function that a process has open through VFIO blocks until that process
//! releases it: vfio-pci signals the request interrupt and waits (see
//! [`VfioFunction::request_interrupt`](super::VfioFunction::request_interrupt)).
//!
//! The sysfs root is configurable, so tests run against a fixture tree. A fixture does not
//! react to the writes as the kernel would; the final check that the driver changed then fails
//! with [`Error::BindFailed`], after the writes that a test can inspect.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::is_vfio_driver;
use crate::error::{Error, Result};
use crate::pci::{PciAddress, SysfsPci};

/// What [`Binder::bind_vfio`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindReport {
    /// The function.
    pub device: PciAddress,
    /// The driver it was bound to before (`None`: no driver).
    pub original_driver: Option<String>,
    /// True if it was bound to vfio-pci already and nothing was written.
    pub already_bound: bool,
}

/// What [`Binder::unbind_vfio`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnbindReport {
    /// The function.
    pub device: PciAddress,
    /// The driver it is bound to now (`None`: none claimed it).
    pub driver: Option<String>,
    /// True if it was not bound to vfio-pci and nothing was written.
    pub was_not_bound: bool,
    /// Why asking the kernel to probe a driver for it failed, when it did. The function is
    /// off vfio-pci either way; a kernel driver that cannot take it back leaves it unbound
    /// (seen with Debian's 6.12 and QEMU: `drivers_probe` answers EINVAL for an NVMe function
    /// once an 82576 shares the slot next to it; tests/vm/README.md).
    pub reprobe_error: Option<String>,
}

/// Binds functions to vfio-pci and back under a sysfs root.
#[derive(Clone, Debug)]
pub struct Binder {
    sysfs: SysfsPci,
}

impl Default for Binder {
    fn default() -> Self {
        Self::system()
    }
}

/// Binds `address` to vfio-pci on the running system. See [`Binder::bind_vfio`].
pub fn bind_vfio(address: PciAddress) -> Result<BindReport> {
    Binder::system().bind_vfio(address)
}

/// Returns `address` from vfio-pci to its kernel driver. See [`Binder::unbind_vfio`].
pub fn unbind_vfio(address: PciAddress) -> Result<UnbindReport> {
    Binder::system().unbind_vfio(address)
}

impl Binder {
    /// A binder for the sysfs tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Binder {
            sysfs: SysfsPci::new(root),
        }
    }

    /// A binder for `/sys`.
    pub fn system() -> Self {
        Self::new("/sys")
    }

    /// Binds `address` to vfio-pci, reporting the driver it had.
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`]; [`Error::NoIommu`] when the IOMMU is off (no IOMMU groups, or
    /// none for this function); [`Error::VfioModuleMissing`] when vfio-pci is not loaded;
    /// [`Error::SysfsWrite`] naming the file (permission: root or CAP_SYS_ADMIN is needed;
    /// EBUSY: the device is in use); [`Error::BindFailed`] when vfio-pci did not claim it.
    pub fn bind_vfio(&self, address: PciAddress) -> Result<BindReport> {
        let info = self.sysfs.function(address)?;
        let groups = self.sysfs.root().join("kernel/iommu_groups");
        if self.sysfs.iommu_groups()?.is_empty() {
            return Err(Error::NoIommu {
                what: format!("{} is empty or missing", groups.display()),
            });
        }
        if info.iommu_group.is_none() {
            return Err(Error::NoIommu {
                what: format!("{address} has no iommu_group link in sysfs"),
            });
        }
        if is_vfio_driver(info.driver.as_deref()) {
            return Ok(BindReport {
                device: address,
                original_driver: info.driver,
                already_bound: true,
            });
        }
        let vfio_pci = self.sysfs.root().join("bus/pci/drivers/vfio-pci");
        if let Err(source) = fs::metadata(&vfio_pci) {
            return Err(Error::VfioModuleMissing {
                path: vfio_pci,
                module: "vfio-pci",
                source,
            });
        }
        let device_dir = self.sysfs.device_path(address);
        let bdf = address.to_string();
        write_attr(&device_dir.join("driver_override"), "vfio-pci")?;
        if info.driver.is_some() {
            write_attr(&device_dir.join("driver/unbind"), &bdf)?;
        }
        write_attr(&self.sysfs.root().join("bus/pci/drivers_probe"), &bdf)?;
        let now = self.sysfs.function(address)?.driver;
        if !is_vfio_driver(now.as_deref()) {
            return Err(Error::BindFailed {
                device: address,
                action: "driver_override, unbind and drivers_probe",
                found: now.unwrap_or_else(|| "none".into()),
                expected: "vfio-pci".into(),
            });
        }
        tracing::info!(device = %address, original = ?info.driver, "bound to vfio-pci");
        Ok(BindReport {
            device: address,
            original_driver: info.driver,
            already_bound: false,
        })
    }

    /// Returns `address` from vfio-pci to the driver the kernel picks for it, reporting that
    /// driver. Blocks while a process holds the function open (see the module docs).
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`], [`Error::SysfsWrite`] naming the file.
    pub fn unbind_vfio(&self, address: PciAddress) -> Result<UnbindReport> {
        let info = self.sysfs.function(address)?;
        if !is_vfio_driver(info.driver.as_deref()) {
            return Ok(UnbindReport {
                device: address,
                driver: info.driver,
                was_not_bound: true,
                reprobe_error: None,
            });
        }
        let device_dir = self.sysfs.device_path(address);
        let bdf = address.to_string();
        // An empty line clears the override.
        write_attr(&device_dir.join("driver_override"), "\n")?;
        write_attr(&device_dir.join("driver/unbind"), &bdf)?;
        // Unbound from here on: a failed probe of a kernel driver is reported, not an error.
        let reprobe_error = write_attr(&self.sysfs.root().join("bus/pci/drivers_probe"), &bdf)
            .err()
            .map(|e| e.to_string());
        let driver = self.sysfs.function(address)?.driver;
        match &reprobe_error {
            None => tracing::info!(device = %address, ?driver, "unbound from vfio-pci"),
            Some(error) => tracing::warn!(
                device = %address,
                %error,
                "unbound from vfio-pci; no kernel driver took it back"
            ),
        }
        Ok(UnbindReport {
            device: address,
            driver,
            was_not_bound: false,
            reprobe_error,
        })
    }
}

/// Writes one sysfs attribute with one `write(2)`, as the kernel expects.
fn write_attr(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| write_error(path, value, source))
}

/// The error for a failed sysfs write, with what to do about it.
fn write_error(path: &Path, value: &str, source: io::Error) -> Error {
    let hint = match source.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => {
            "; writing sysfs needs root (or CAP_SYS_ADMIN); the VFIO device nodes can then be \
             given to a user (/dev/vfio/<group> or /dev/vfio/devices/vfioN)"
        }
        Some(libc::EBUSY) => "; the device is in use: another process holds it",
        Some(libc::ENODEV) => "; no driver accepted the device",
        Some(libc::ENOENT) => "; the attribute is missing (a kernel without driver_override?)",
        _ => "",
    };
    Error::SysfsWrite {
        path: path.to_path_buf(),
        value: value.trim_end().to_string(),
        hint: hint.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_name_the_file_and_the_cure() {
        let p = Path::new("/sys/bus/pci/devices/0000:01:00.0/driver_override");
        let err = write_error(p, "vfio-pci", io::Error::from_raw_os_error(libc::EACCES));
        let text = err.to_string();
        assert!(text.contains("driver_override"), "{text}");
        assert!(text.contains("root (or CAP_SYS_ADMIN)"), "{text}");
        let text = write_error(p, "x", io::Error::from_raw_os_error(libc::EBUSY)).to_string();
        assert!(text.contains("another process"), "{text}");
    }

    #[test]
    fn a_missing_tree_is_no_such_device_not_a_panic() {
        let binder = Binder::new("/nonexistent/userpci-sysfs");
        let addr = PciAddress::new(0, 1, 0, 0).unwrap();
        assert!(binder.bind_vfio(addr).is_err());
        assert!(binder.unbind_vfio(addr).is_err());
    }
}
