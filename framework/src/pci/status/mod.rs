//! `userpci status`: every PCI function of the machine grouped by reset group, with who holds
//! each and what a hot reset of each group needs, from sysfs and `/proc` alone.
//!
//! Nothing is opened: sysfs attributes and symlinks are read ([`SysfsPci`]), `/proc/*/fd`
//! symlinks are read ([`holders`]), and the groups come from the kernel's `dev_set` rule in
//! [`crate::pci::devset`], the same code the simulated topology uses. What sysfs cannot show
//! is approximated and said so: a slot reset is taken to be possible when
//! `bus/pci/slots/*/address` names the slot (a hotplug slot) or a function lists `slot` in
//! `reset_method`; a bus reset when a bridge sits above the function.
//!
//! Files: `model` (the data), `pciids`, `holders`, `verdict`, and this orchestrator on top.

pub mod holders;
pub mod model;
pub mod pciids;
pub mod verdict;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::device::ResetMethod;
use crate::error::{Error, Result};
use crate::pci::devset::{self, DevSetInput, ResetScope};
use crate::pci::sysfs::{PciFunctionInfo, SysfsPci};
pub use model::*;
use pciids::PciIds;

/// Where to look.
#[derive(Clone, Debug)]
pub struct StatusSources {
    /// sysfs root (`/sys`).
    pub sysfs_root: PathBuf,
    /// proc root (`/proc`).
    pub proc_root: PathBuf,
    /// pci.ids candidates, first readable wins.
    pub pci_ids: Vec<PathBuf>,
}

impl Default for StatusSources {
    fn default() -> Self {
        StatusSources {
            sysfs_root: PathBuf::from("/sys"),
            proc_root: PathBuf::from("/proc"),
            pci_ids: pciids::DEFAULT_PATHS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Reads the machine's status.
///
/// # Errors
/// [`Error::Sysfs`] when the sysfs root, an attribute or the proc root cannot be read,
/// [`Error::SysfsFormat`] when an attribute holds something the kernel would not write.
pub fn read_status(sources: &StatusSources) -> Result<SystemStatus> {
    let sysfs = SysfsPci::new(&sources.sysfs_root);
    let all = sysfs.list()?;
    let iommu_groups = sysfs.iommu_groups()?;
    let scan = holders::scan(&sources.proc_root)?;
    let hotplug_slots = hotplug_slots(&sources.sysfs_root)?;
    let ids = PciIds::new(sources.pci_ids.clone());

    let endpoints: Vec<&PciFunctionInfo> = all.iter().filter(|f| !f.is_bridge).collect();
    let slot_listed = |f: &PciFunctionInfo| {
        endpoints.iter().any(|o| {
            o.address.same_slot(&f.address) && o.reset_methods.contains(&ResetMethod::Slot)
        })
    };
    let inputs: Vec<DevSetInput> = endpoints
        .iter()
        .map(|f| {
            let a = f.address;
            DevSetInput {
                address: a,
                bridge: f.parent_bridge,
                virtual_function: is_virtual_function(f),
                slot_reset: hotplug_slots.contains(&(a.domain, a.bus, a.device)) || slot_listed(f),
                bus_reset: f.parent_bridge.is_some(),
            }
        })
        .collect();
    let sets = devset::assign(&inputs);

    let mut groups = Vec::with_capacity(sets.sets.len());
    for (id, set) in sets.sets.iter().enumerate() {
        let members: Vec<FunctionStatus> = set
            .members
            .iter()
            .filter_map(|a| endpoints.iter().find(|f| f.address == *a))
            .map(|f| function_status(f, set.scope, &scan, &ids))
            .collect();
        let reason = match members.first().and_then(|m| {
            endpoints
                .iter()
                .find(|f| f.address.to_string() == m.address)
        }) {
            Some(f) => verdict::no_hot_reset_reason(f.parent_bridge.is_none()),
            None => "",
        };
        let decided = verdict::decide(set.scope, &members, !iommu_groups.is_empty(), reason);
        groups.push(GroupStatus {
            id,
            scope: set.scope,
            bridge: set.bridge.map(|b| b.to_string()),
            members,
            verdict: decided.verdict,
            needs: decided.needs,
            legacy_group_files: decided.legacy_group_files,
            blockers: decided.blockers,
        });
    }
    Ok(SystemStatus {
        schema: SCHEMA_VERSION,
        sysfs_root: sources.sysfs_root.clone(),
        proc_root: sources.proc_root.clone(),
        iommu: IommuState {
            present: !iommu_groups.is_empty(),
            group_count: iommu_groups.len(),
        },
        holders: scan.visibility.clone(),
        groups,
    })
}

fn function_status(
    f: &PciFunctionInfo,
    scope: ResetScope,
    scan: &holders::FdScan,
    ids: &PciIds,
) -> FunctionStatus {
    let mut processes: Vec<ProcessHolder> = Vec::new();
    if let Some(cdev) = &f.vfio_dev {
        processes.extend_from_slice(scan.holders_of(&format!("/dev/vfio/devices/{cdev}")));
    }
    if let Some(g) = f.iommu_group {
        processes.extend_from_slice(scan.holders_of(&format!("/dev/vfio/{g}")));
    }
    let on_vfio = f.driver.as_deref() == Some("vfio-pci");
    let held_by = match (&f.driver, processes.is_empty()) {
        (_, false) => HeldBy::Processes,
        (Some(_), true) if on_vfio && scan.visibility.complete => HeldBy::VfioIdle,
        (Some(_), true) if on_vfio => HeldBy::VfioUnknown,
        (Some(driver), true) => HeldBy::KernelDriver {
            driver: driver.clone(),
        },
        (None, true) => HeldBy::Unbound,
    };
    FunctionStatus {
        address: f.address.to_string(),
        vendor_id: format!("{:#06x}", f.vendor),
        device_id: format!("{:#06x}", f.device),
        name: ids.name(f.vendor, f.device),
        class: format!("{:#08x}", f.class),
        driver: f.driver.clone(),
        iommu_group: f.iommu_group,
        reset_method: f
            .reset_methods
            .iter()
            .map(|m| m.sysfs_name().to_string())
            .collect(),
        reaches: ResetReach {
            flr: f.reset_methods.contains(&ResetMethod::Flr)
                || f.reset_methods.contains(&ResetMethod::AfFlr),
            slot: scope == ResetScope::Slot,
            bus: scope == ResetScope::Bus,
        },
        vfio_cdev: f.vfio_dev.clone(),
        held_by,
        processes,
    }
}

/// A virtual function has a `physfn` link to its physical function.
fn is_virtual_function(f: &PciFunctionInfo) -> bool {
    fs::symlink_metadata(f.sysfs_path.join("physfn")).is_ok()
}

/// `(domain, bus, device)` of every slot under `bus/pci/slots` (`address` holds
/// `0000:01:00`); no slots directory means none.
fn hotplug_slots(root: &Path) -> Result<BTreeSet<(u16, u8, u8)>> {
    let dir = root.join("bus/pci/slots");
    let mut out = BTreeSet::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let path = entry.path().join("address");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let text = text.trim();
        // A slot without a device present has no address beyond the bus ("0000:01").
        let parsed: Option<(u16, u8, u8)> = (|| {
            let mut parts = text.split(':');
            let domain = u16::from_str_radix(parts.next()?, 16).ok()?;
            let bus = u8::from_str_radix(parts.next()?, 16).ok()?;
            let device = u8::from_str_radix(parts.next()?, 16).ok()?;
            parts.next().is_none().then_some((domain, bus, device))
        })();
        match parsed {
            Some(slot) => {
                out.insert(slot);
            }
            None if text.split(':').count() == 2 => {}
            None => {
                return Err(Error::SysfsFormat {
                    path,
                    value: text.chars().take(128).collect(),
                    expected: "a slot address such as 0000:01:00",
                })
            }
        }
    }
    Ok(out)
}
