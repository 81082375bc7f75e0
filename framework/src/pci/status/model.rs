//! What `userpci status` reports: plain data, serialised as the `--json` schema.

use std::path::PathBuf;

use serde::Serialize;

use crate::pci::devset::ResetScope;

/// Version of the JSON layout; bump it when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole machine's reset groups.
#[derive(Clone, Debug, Serialize)]
pub struct SystemStatus {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The sysfs root read.
    pub sysfs_root: PathBuf,
    /// The proc root scanned for holders.
    pub proc_root: PathBuf,
    /// Whether the kernel has an IOMMU (and so whether VFIO can take any function).
    pub iommu: IommuState,
    /// Whether every process's file descriptors could be read.
    pub holders: HolderVisibility,
    /// Every PCI endpoint function (bridges left out), grouped by reset group.
    pub groups: Vec<GroupStatus>,
}

/// The IOMMU as sysfs shows it.
#[derive(Clone, Debug, Serialize)]
pub struct IommuState {
    /// True when `kernel/iommu_groups` holds at least one group.
    pub present: bool,
    /// Number of IOMMU groups.
    pub group_count: usize,
}

/// How much of `/proc` the scan could see.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HolderVisibility {
    /// Processes whose `fd` directory was read.
    pub processes_scanned: usize,
    /// Processes whose `fd` directory could not be read (permission denied: not root).
    pub processes_unreadable: usize,
    /// True when every process was read: an absent holder really is absent.
    pub complete: bool,
}

/// A process holding a VFIO file of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessHolder {
    /// Process id.
    pub pid: u32,
    /// `/proc/<pid>/comm`.
    pub comm: String,
    /// `/proc/<pid>/cmdline`, arguments joined by spaces.
    pub cmdline: String,
    /// The file it holds: `/dev/vfio/devices/vfioN` (cdev) or `/dev/vfio/<group>` (group).
    pub file: String,
}

/// Who holds a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeldBy {
    /// One or more processes hold its VFIO cdev or group fd (see `processes`).
    Processes,
    /// Bound to vfio-pci, and no process holds it.
    VfioIdle,
    /// Bound to vfio-pci, and some processes could not be scanned: nobody seen, not proven.
    VfioUnknown,
    /// A kernel driver other than vfio-pci is bound.
    KernelDriver {
        /// The driver's name.
        driver: String,
    },
    /// No driver is bound.
    Unbound,
}

/// Which resets can reach a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResetReach {
    /// The function offers FLR (`flr` or `af_flr` in `reset_method`).
    pub flr: bool,
    /// A hotplug slot reset reaches it (its reset group is a slot).
    pub slot: bool,
    /// A secondary bus reset reaches it (its reset group is a bus).
    pub bus: bool,
}

/// One PCI function.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionStatus {
    /// `0000:01:00.0`.
    pub address: String,
    /// `0x1b36`.
    pub vendor_id: String,
    /// `0x0010`.
    pub device_id: String,
    /// From pci.ids, when it has the device (or at least the vendor).
    pub name: Option<String>,
    /// `0x010802`.
    pub class: String,
    /// Bound driver.
    pub driver: Option<String>,
    /// IOMMU group number.
    pub iommu_group: Option<u32>,
    /// `reset_method`, in the kernel's order.
    pub reset_method: Vec<String>,
    /// Which resets reach it.
    pub reaches: ResetReach,
    /// `vfioN` when bound to vfio-pci with the cdev interface.
    pub vfio_cdev: Option<String>,
    /// Who holds it.
    pub held_by: HeldBy,
    /// Processes holding its cdev or its IOMMU group's fd.
    pub processes: Vec<ProcessHolder>,
}

/// Whether a hot reset of a group can happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// One process holds every member: it can reset the group now.
    HeldByOne {
        /// That process.
        pid: u32,
    },
    /// Nobody holds any member: a caller can reset it after the steps in `needs`.
    AfterSetup,
    /// Something in `blockers` stands in the way.
    Blocked,
    /// Some processes could not be scanned; holders may be missing.
    Unknown,
}

/// One reset group (the kernel's VFIO `dev_set`).
#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    /// Index, in address order of the first member.
    pub id: usize,
    /// What reset the members share.
    pub scope: ResetScope,
    /// The bridge whose slot or bus reset hits them.
    pub bridge: Option<String>,
    /// The functions.
    pub members: Vec<FunctionStatus>,
    /// The verdict.
    pub verdict: Verdict,
    /// What a caller must do before `VFIO_DEVICE_PCI_HOT_RESET` (cdev mode).
    pub needs: Vec<String>,
    /// Legacy (group) mode: the group fds the reset call must be given.
    pub legacy_group_files: Vec<String>,
    /// What blocks the reset; empty when nothing does.
    pub blockers: Vec<String>,
}
