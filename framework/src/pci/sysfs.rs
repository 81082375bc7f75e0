//! The kernel's view of the PCI topology, read from sysfs.
//!
//! [`SysfsPci`] reads a sysfs tree rooted at any path (`/sys` on a real system, a fixture tree
//! in tests). It only reads: it never writes an attribute, binds a driver or touches config
//! space. The layout it relies on is the kernel's ABI
//! (`Documentation/ABI/testing/sysfs-bus-pci`):
//!
//! ```text
//! <root>/bus/pci/devices/0000:01:00.0 -> ../../../devices/pci0000:00/0000:00:02.0/0000:01:00.0
//! <root>/devices/pci0000:00/0000:00:02.0/0000:01:00.0/
//!     vendor device subsystem_vendor subsystem_device class revision   "0x1b36\n"
//!     numa_node                                                         "-1\n"
//!     reset_method                                                      "flr bus\n" (optional)
//!     driver -> ../../../../bus/pci/drivers/nvme                        (optional)
//!     iommu_group -> ../../../../kernel/iommu_groups/6                  (optional)
//!     vfio-dev/vfio0/                                                   (vfio-pci, cdev mode)
//! <root>/kernel/iommu_groups/6/devices/0000:01:00.0 -> ../../../../devices/...
//! ```
//!
//! Panic contract: no content of the tree makes these functions panic. A value that is not what
//! the kernel documents is an [`Error::SysfsFormat`] naming the file, the value and what was
//! expected; a file that cannot be read is an [`Error::Sysfs`] naming the path. Entries of
//! `bus/pci/devices` whose names [`PciAddress`] cannot represent (for example VMD domains above
//! `0xffff`) are skipped with a warning rather than failing the whole listing.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::ResetMethod;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// PCI class code (base class and subclass, without the programming interface) of a
/// PCI-to-PCI bridge.
const CLASS_PCI_BRIDGE: u32 = 0x0604;

/// Longest attribute value quoted in an error; longer content is cut.
const MAX_QUOTED: usize = 128;

/// What sysfs knows about one PCI function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciFunctionInfo {
    /// The function's address.
    pub address: PciAddress,
    /// The function's directory under `<root>/devices`, with every symlink resolved.
    pub sysfs_path: PathBuf,
    /// Vendor ID (`vendor`).
    pub vendor: u16,
    /// Device ID (`device`).
    pub device: u16,
    /// Subsystem vendor ID (`subsystem_vendor`).
    pub subsystem_vendor: u16,
    /// Subsystem device ID (`subsystem_device`).
    pub subsystem_device: u16,
    /// The 24-bit class code: base class, subclass, programming interface (`class`).
    pub class: u32,
    /// Revision ID (`revision`).
    pub revision: u8,
    /// Name of the bound kernel driver (`driver` symlink), `None` when unbound.
    pub driver: Option<String>,
    /// IOMMU group number (`iommu_group` symlink), `None` when the IOMMU is off.
    pub iommu_group: Option<u32>,
    /// Reset methods the kernel offers, in its order of preference (`reset_method`); empty
    /// when the file is absent (no method, or a kernel older than 5.15).
    pub reset_methods: Vec<ResetMethod>,
    /// The bridge directly above this function, `None` when it sits on a root bus.
    pub parent_bridge: Option<PciAddress>,
    /// NUMA node (`numa_node`), `None` when the kernel reports -1 or has no NUMA support.
    pub numa_node: Option<i32>,
    /// True for PCI-to-PCI bridges (class `0x0604xx`), root ports included.
    pub is_bridge: bool,
    /// The VFIO character device (`vfio0` for `/dev/vfio/devices/vfio0`), present when the
    /// function is bound to `vfio-pci` and the kernel offers the cdev interface.
    pub vfio_dev: Option<String>,
}

/// A read-only reader of the PCI topology under a sysfs root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysfsPci {
    root: PathBuf,
}

impl Default for SysfsPci {
    /// The running system's `/sys`.
    fn default() -> Self {
        Self::system()
    }
}

impl SysfsPci {
    /// A reader of the sysfs tree mounted (or materialised) at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysfsPci { root: root.into() }
    }

    /// A reader of the running system's `/sys`.
    pub fn system() -> Self {
        Self::new("/sys")
    }

    /// The sysfs root this reader looks at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/bus/pci/devices`, where every PCI function has an entry.
    fn devices_dir(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    /// The function's entry `<root>/bus/pci/devices/<address>` (a symlink on a real system),
    /// whether or not it exists.
    pub fn device_path(&self, addr: PciAddress) -> PathBuf {
        self.devices_dir().join(addr.to_string())
    }

    /// Every PCI function, sorted by address.
    ///
    /// # Errors
    /// [`Error::Sysfs`] when `bus/pci/devices` or a function's attribute cannot be read,
    /// [`Error::SysfsFormat`] when an attribute holds something the kernel would not write.
    pub fn list(&self) -> Result<Vec<PciFunctionInfo>> {
        self.addresses()?
            .into_iter()
            .map(|addr| self.read_function(addr))
            .collect()
    }

    /// One PCI function.
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`] when it does not exist, otherwise as [`SysfsPci::list`].
    pub fn function(&self, addr: PciAddress) -> Result<PciFunctionInfo> {
        self.require(addr)?;
        self.read_function(addr)
    }

    /// The other functions of `addr`'s slot (same domain, bus and device), sorted.
    ///
    /// # Errors
    /// [`Error::NoSuchDevice`] when `addr` does not exist, [`Error::Sysfs`] when
    /// `bus/pci/devices` cannot be read.
    pub fn siblings(&self, addr: PciAddress) -> Result<Vec<PciAddress>> {
        self.require(addr)?;
        Ok(self
            .addresses()?
            .into_iter()
            .filter(|other| *other != addr && other.same_slot(&addr))
            .collect())
    }

    /// Every IOMMU group with its member functions (sorted), from `<root>/kernel/iommu_groups`.
    /// An empty map when that directory does not exist: the IOMMU is off.
    ///
    /// # Errors
    /// [`Error::Sysfs`] when a directory cannot be read, [`Error::SysfsFormat`] when a group's
    /// name is not a number.
    pub fn iommu_groups(&self) -> Result<BTreeMap<u32, Vec<PciAddress>>> {
        let dir = self.root.join("kernel/iommu_groups");
        let Some(entries) = read_dir_names(&dir, true)? else {
            return Ok(BTreeMap::new());
        };
        let mut groups = BTreeMap::new();
        for name in entries {
            let group: u32 = name.parse().map_err(|_| Error::SysfsFormat {
                path: dir.join(&name),
                value: quote(&name),
                expected: "a decimal IOMMU group number",
            })?;
            let members_dir = dir.join(&name).join("devices");
            let names = read_dir_names(&members_dir, false)?.unwrap_or_default();
            let mut members: Vec<PciAddress> = names
                .iter()
                .filter_map(|n| address_from_entry(&members_dir, n))
                .collect();
            members.sort();
            groups.insert(group, members);
        }
        Ok(groups)
    }

    /// The addresses of every entry in `bus/pci/devices`, sorted.
    fn addresses(&self) -> Result<Vec<PciAddress>> {
        let dir = self.devices_dir();
        let names = read_dir_names(&dir, false)?.unwrap_or_default();
        let mut addrs: Vec<PciAddress> = names
            .iter()
            .filter_map(|n| address_from_entry(&dir, n))
            .collect();
        addrs.sort();
        Ok(addrs)
    }

    /// Fails with [`Error::NoSuchDevice`] unless `addr` has an entry, and with
    /// [`Error::Sysfs`] when the devices directory itself cannot be read.
    fn require(&self, addr: PciAddress) -> Result<()> {
        let dir = self.devices_dir();
        if let Err(source) = fs::metadata(&dir) {
            return Err(Error::Sysfs { path: dir, source });
        }
        let entry = self.device_path(addr);
        match fs::symlink_metadata(&entry) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoSuchDevice {
                device: addr,
                place: dir.display().to_string(),
            }),
            Err(source) => Err(Error::Sysfs {
                path: entry,
                source,
            }),
        }
    }

    /// Reads every attribute of one function.
    fn read_function(&self, addr: PciAddress) -> Result<PciFunctionInfo> {
        let entry = self.device_path(addr);
        let dir = fs::canonicalize(&entry).map_err(|source| Error::Sysfs {
            path: entry.clone(),
            source,
        })?;
        let hex16 = |name: &str| -> Result<u16> {
            read_hex(&dir.join(name), 16, "a 16-bit hex value such as 0x1b36")
        };
        let class: u32 = read_hex(
            &dir.join("class"),
            24,
            "a 24-bit hex class code such as 0x010802",
        )?;
        let revision: u8 = read_hex(&dir.join("revision"), 8, "an 8-bit hex value such as 0x02")?;
        let parent_bridge = dir
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok());
        Ok(PciFunctionInfo {
            address: addr,
            vendor: hex16("vendor")?,
            device: hex16("device")?,
            subsystem_vendor: hex16("subsystem_vendor")?,
            subsystem_device: hex16("subsystem_device")?,
            class,
            revision,
            driver: link_name(&dir.join("driver"))?,
            iommu_group: read_iommu_group(&dir.join("iommu_group"))?,
            reset_methods: read_reset_methods(&dir.join("reset_method"))?,
            parent_bridge,
            numa_node: read_numa_node(&dir.join("numa_node"))?,
            is_bridge: class >> 8 == CLASS_PCI_BRIDGE,
            vfio_dev: read_vfio_dev(&dir.join("vfio-dev"))?,
            sysfs_path: dir,
        })
    }
}

/// Parses an entry name of `dir` as a PCI address; names it cannot represent are logged and
/// skipped.
fn address_from_entry(dir: &Path, name: &str) -> Option<PciAddress> {
    match name.parse() {
        Ok(addr) => Some(addr),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), entry = name, error = %e, "skipping sysfs entry");
            None
        }
    }
}

/// The names in `dir`, sorted. `Ok(None)` if it does not exist and `missing_ok`.
fn read_dir_names(dir: &Path, missing_ok: bool) -> Result<Option<Vec<String>>> {
    let sysfs = |source| Error::Sysfs {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if missing_ok && e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(sysfs(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(sysfs)?.file_name();
        match name.into_string() {
            Ok(name) => names.push(name),
            Err(name) => {
                return Err(Error::SysfsFormat {
                    path: dir.join(&name),
                    value: quote(&name.to_string_lossy()),
                    expected: "an entry name in UTF-8",
                })
            }
        }
    }
    names.sort();
    Ok(Some(names))
}

/// Reads a text attribute without its trailing newline; `Ok(None)` if the file is absent.
fn read_optional(path: &Path) -> Result<Option<String>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Sysfs {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| Error::SysfsFormat {
        path: path.to_path_buf(),
        value: quote(&String::from_utf8_lossy(e.as_bytes())),
        expected: "UTF-8 text",
    })?;
    Ok(Some(text.strip_suffix('\n').unwrap_or(&text).to_string()))
}

/// Reads a text attribute that must exist.
fn read_required(path: &Path) -> Result<String> {
    read_optional(path)?.ok_or_else(|| Error::Sysfs {
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

/// Reads a hex attribute (`0x1b36`, the prefix optional) of at most `bits` bits.
fn read_hex<T: TryFrom<u64>>(path: &Path, bits: u32, expected: &'static str) -> Result<T> {
    let text = read_required(path)?;
    let max = u64::MAX >> (64 - bits.clamp(1, 64));
    parse_hex(&text, max)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| Error::SysfsFormat {
            path: path.to_path_buf(),
            value: quote(&text),
            expected,
        })
}

/// Parses `0x1b36`, `0X1B36` or `1b36` with surrounding whitespace; `None` for anything else
/// or a value above `max`.
fn parse_hex(text: &str, max: u64) -> Option<u64> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok().filter(|v| *v <= max)
}

/// `numa_node`: a decimal node number, -1 for none; an absent file means no NUMA support.
fn read_numa_node(path: &Path) -> Result<Option<i32>> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    match text.trim().parse::<i32>() {
        Ok(-1) => Ok(None),
        Ok(node) if node >= 0 => Ok(Some(node)),
        _ => Err(Error::SysfsFormat {
            path: path.to_path_buf(),
            value: quote(&text),
            expected: "a NUMA node number or -1",
        }),
    }
}

/// `reset_method`: space-separated method names; an absent file means none.
fn read_reset_methods(path: &Path) -> Result<Vec<ResetMethod>> {
    let Some(text) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    text.split_whitespace()
        .map(|name| {
            ResetMethod::from_sysfs_name(name).ok_or_else(|| Error::SysfsFormat {
                path: path.to_path_buf(),
                value: quote(&text),
                expected: "reset method names among device_specific, acpi, flr, af_flr, pm, bus, \
                           slot, cxl_bus",
            })
        })
        .collect()
}

/// The last component of a symlink's target; `Ok(None)` if the link is absent.
fn link_name(path: &Path) -> Result<Option<String>> {
    let target = match fs::read_link(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Sysfs {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match target.file_name().and_then(|n| n.to_str()) {
        Some(name) => Ok(Some(name.to_string())),
        None => Err(Error::SysfsFormat {
            path: path.to_path_buf(),
            value: quote(&target.to_string_lossy()),
            expected: "a symlink whose target ends in a UTF-8 name",
        }),
    }
}

/// `iommu_group`: a symlink to `kernel/iommu_groups/<N>`.
fn read_iommu_group(path: &Path) -> Result<Option<u32>> {
    let Some(name) = link_name(path)? else {
        return Ok(None);
    };
    name.parse().map(Some).map_err(|_| Error::SysfsFormat {
        path: path.to_path_buf(),
        value: quote(&name),
        expected: "a symlink to kernel/iommu_groups/<decimal group number>",
    })
}

/// `vfio-dev/`: holds one `vfioN` entry when the function is bound to `vfio-pci` in cdev mode.
fn read_vfio_dev(dir: &Path) -> Result<Option<String>> {
    let names = read_dir_names(dir, true)?.unwrap_or_default();
    if names.len() > 1 {
        tracing::warn!(dir = %dir.display(), ?names, "more than one VFIO cdev, using the first");
    }
    Ok(names.into_iter().next())
}

/// `text` for an error message, cut to [`MAX_QUOTED`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_kernel_and_lenient_forms() {
        assert_eq!(parse_hex("0x1b36", 0xffff), Some(0x1b36));
        assert_eq!(parse_hex("0X1B36\n", 0xffff), Some(0x1b36));
        assert_eq!(parse_hex("  1b36 ", 0xffff), Some(0x1b36));
        assert_eq!(parse_hex("0x010802", 0xff_ffff), Some(0x01_0802));
        assert_eq!(parse_hex("0x0", 0xff), Some(0));
    }

    #[test]
    fn hex_rejects_garbage_and_overflow() {
        for bad in [
            "",
            "0x",
            "0xzz",
            "-0x1",
            "+1b36",
            "0x1b 36",
            "0x10000",
            "0xffffffffffffffffff",
        ] {
            assert_eq!(parse_hex(bad, 0xffff), None, "{bad:?}");
        }
    }

    #[test]
    fn quote_cuts_long_values_on_char_boundaries() {
        assert_eq!(quote("short"), "short");
        let long = "é".repeat(200);
        let q = quote(&long);
        assert!(q.ends_with("..."));
        assert_eq!(q.chars().count(), MAX_QUOTED + 3);
    }
}
