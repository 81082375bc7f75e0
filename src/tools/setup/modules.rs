//! The kernel modules userpci needs: `vfio_pci` (the driver a function is bound to), and one
//! of the two DMA-mapping interfaces: `iommufd` (`/dev/iommu`, VFIO cdev) or
//! `vfio_iommu_type1` (the group container).

use serde::Serialize;

use super::SystemRoot;

/// A module setup loads, and what shows that it is there even when built in (a built-in
/// module without parameters has no `/sys/module/<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub name: &'static str,
    /// A path that exists once the module is in the kernel, loaded or built in.
    pub evidence: Option<&'static str>,
    /// True when userpci cannot work without it; the others are alternatives.
    pub required: bool,
    /// What it is for, for the report.
    pub purpose: &'static str,
}

/// The modules, in load order.
pub const MODULES: [Module; 3] = [
    Module {
        name: "vfio_pci",
        evidence: Some("/sys/bus/pci/drivers/vfio-pci"),
        required: true,
        purpose: "the driver functions are bound to (userpci bind)",
    },
    Module {
        name: "iommufd",
        evidence: Some("/dev/iommu"),
        required: false,
        purpose: "the iommufd interface (/dev/iommu, /dev/vfio/devices/vfioN)",
    },
    Module {
        name: "vfio_iommu_type1",
        evidence: None,
        required: false,
        purpose: "the group container (/dev/vfio/vfio), when there is no iommufd",
    },
];

/// A module and whether the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleStatus {
    pub name: String,
    pub loaded: bool,
    pub purpose: String,
}

impl Module {
    /// True when the kernel has this module, loaded or built in.
    pub fn is_loaded(&self, root: &SystemRoot) -> bool {
        root.exists(format!("/sys/module/{}", self.name))
            || self.evidence.is_some_and(|path| root.exists(path))
    }
}

/// Each module and whether it is there.
pub fn status(root: &SystemRoot) -> Vec<ModuleStatus> {
    MODULES
        .iter()
        .map(|module| ModuleStatus {
            name: module.name.to_string(),
            loaded: module.is_loaded(root),
            purpose: module.purpose.to_string(),
        })
        .collect()
}

/// The modules that are not there yet.
pub fn missing(root: &SystemRoot) -> Vec<Module> {
    MODULES
        .iter()
        .filter(|module| !module.is_loaded(root))
        .copied()
        .collect()
}

/// A warning when neither DMA-mapping interface is there (`None`: one of them is).
pub fn interface_warning(root: &SystemRoot) -> Option<String> {
    let iommufd = root.exists("/dev/iommu");
    let container = root.exists("/dev/vfio/vfio");
    (!iommufd && !container).then(|| {
        "neither /dev/iommu (iommufd) nor /dev/vfio/vfio (the VFIO container) exists: \
         VFIO cannot map DMA memory (modprobe iommufd or vfio_iommu_type1)"
            .to_string()
    })
}
