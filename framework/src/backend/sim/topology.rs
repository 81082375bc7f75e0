//! The simulated PCI topology: what a topology file describes, checked and with the kernel's
//! IOMMU groups and reset groups computed.
//!
//! A [`TopologySpec`] is the plain description (root ports on bus 0, endpoint functions, each
//! function's device-model name, parameters, ACS, reset methods and initial owner). It is what a
//! topology file holds, in TOML:
//!
//! ```toml
//! [[root_ports]]
//! address = "00:02.0"
//! secondary_bus = 1
//!
//! [[functions]]
//! address = "01:00.0"
//! model = "nvme"
//! reset_methods = ["flr"]
//!
//! [functions.params]
//! namespaces = 1
//! ```
//!
//! [`Topology::new`] validates a spec and computes, for every endpoint function, its IOMMU group
//! and its reset group. [`TopologyBuilder`] writes the same spec fluently for tests. Device
//! models are not looked up here: the simulated bus resolves `model` names in its
//! [`ModelRegistry`](super::ModelRegistry) when it instantiates a topology.
//!
//! # Validation
//!
//! [`Topology::new`] reports every problem it finds in one [`Error::Topology`], each naming the
//! offending address or value and what was expected:
//! - an address listed twice (root ports and functions share one address space);
//! - a root port not on bus 0, with secondary bus 0, or sharing its secondary bus with another
//!   root port of the same domain;
//! - a function on a bus that is neither bus 0 nor some root port's secondary bus;
//! - a function below a root port with a device number other than 0: the kernel scans only
//!   device 0 below a PCIe root port or downstream port (`drivers/pci/probe.c`,
//!   `only_one_child()` in `pci_scan_slot()`);
//! - a slot with functions but no function 0: `pci_scan_slot()` stops when function 0 does not
//!   answer, so functions 1-7 of such a slot are never found;
//! - an empty model name, an empty owner name, a reset method listed twice, `bus` listed where
//!   the bus cannot be reset or `slot` where there is no resettable hotplug slot (the kernel
//!   would not offer those methods, `pci_parent_bus_reset()` and `pci_dev_reset_slot_function()`
//!   in `drivers/pci/pci.c`).
//!
//! # IOMMU groups
//!
//! As `pci_device_group()` in `drivers/iommu/iommu.c` forms them, with ACS as
//! `pci_acs_enabled()` / `pci_acs_path_enabled()` in `drivers/pci/pci.c` decide it:
//! 1. *Upstream walk.* For an endpoint below a root port, the kernel walks up from the
//!    endpoint's bus. If the root port has ACS the walk stops and the endpoint is considered on
//!    its own; without ACS the endpoint joins the root port's group, so every function below a
//!    root port without ACS shares that port's group.
//! 2. *Multifunction rule* (`get_pci_function_alias_group()`). Functions of one multifunction
//!    slot (more than one function present) that do not have ACS share one group; a function
//!    with `acs = true` is isolated from its siblings. A single-function device needs no ACS to
//!    be alone (PCIe 6.12.1.3: ACS does not apply to single-function devices, except downstream
//!    ports). Root ports follow the same rule with their own ACS (`acs` on [`RootPortSpec`]).
//! 3. *Root-complex integrated functions* on bus 0 have no bridge above them, so only the
//!    multifunction rule applies (the ICH9 functions `00:1f.0/.2/.3` of QEMU's q35 share one
//!    group; see `topologies/q35-nvme-multifunction.toml`, taken from a real guest).
//!
//! Root ports are members of IOMMU groups (as in sysfs) but are not [`FunctionNode`]s. Group ids
//! are assigned in address order of each group's first member, starting at 0; on a q35 machine
//! this gives the same numbers the kernel shows.
//!
//! # Reset groups
//!
//! A reset group is the kernel's vfio `dev_set`: the functions that one bus or slot reset would
//! hit together, chosen in `vfio_pci_core_register_device()` (`drivers/vfio/pci/vfio_pci_core.c`)
//! and passed to `vfio_assign_device_set()`:
//! - a function on the root bus (bus 0) is alone ([`ResetScope::Function`]);
//! - else, if its slot is a hotplug slot whose reset works (`pci_probe_reset_slot()`: here a
//!   root port with `hotplug_slot = true` and `bus_reset = true`), the set is every function in
//!   that slot ([`ResetScope::Slot`]);
//! - else, if the bus can be reset (`pci_probe_reset_bus()`: not the root bus and the bridge
//!   allows a secondary bus reset, `bus_reset = true`), the set is every function on that bus
//!   ([`ResetScope::Bus`]), with the root port as [`ResetGroup::bridge`];
//! - else the function alone ([`ResetScope::Function`]).
//!
//! A bridge with `bus_reset = false` stands for `PCI_DEV_FLAGS_NO_BUS_RESET`: as in the kernel,
//! `pci_probe_reset_bus()` then fails (`pci_bus_resettable()` checks the flag on the bridge and
//! on every device of the bus), so vfio gives each function a `dev_set` of its own.
//!
//! Consequences: functions on bus 0 are always alone, and a two-function slot below a root port
//! is one reset group of two, even when ACS splits it into two IOMMU groups.
//!
//! # Reset methods
//!
//! The kernel lists `bus` in a function's sysfs `reset_method` only if the function was alone on
//! its bus when it was probed (`pci_parent_bus_reset()` returns `-ENOTTY` when another device
//! is on the bus). That is why in the real capture `01:00.0` shows `flr bus` and `01:00.1` only
//! `flr`: function 1 was added after function 0 had been probed. The spec does not recompute
//! this; it takes each function's `reset_methods` explicitly (default `[flr]`), and the FLR
//! capability bit of the emulated config space follows whether `reset_methods` contains `flr`.
//!
//! Nothing here panics on bad input; every error is returned.

mod builder;
mod groups;
mod nodes;
mod spec;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use builder::TopologyBuilder;
pub use nodes::{FunctionNode, IommuGroup, ResetGroup, ResetScope};
pub use spec::{FunctionSpec, RootPortSpec, TopologySpec, MAX_TOPOLOGY_FILE_BYTES};

use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// A validated topology with its IOMMU groups and reset groups.
///
/// Serializes as its spec plus the computed nodes and groups (for reports); deserializes from
/// any map with a `spec` field, validating and recomputing the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TopologyRepr")]
pub struct Topology {
    spec: TopologySpec,
    functions: Vec<FunctionNode>,
    iommu_groups: Vec<IommuGroup>,
    reset_groups: Vec<ResetGroup>,
}

/// What [`Topology`] deserializes from: only the spec counts.
#[derive(Deserialize)]
struct TopologyRepr {
    spec: TopologySpec,
}

impl TryFrom<TopologyRepr> for Topology {
    type Error = Error;
    fn try_from(repr: TopologyRepr) -> Result<Self> {
        Topology::new(repr.spec)
    }
}

impl Topology {
    /// Validates `spec` and computes the IOMMU and reset groups.
    pub fn new(spec: TopologySpec) -> Result<Self> {
        validate::validate(&spec)?;
        let computed = groups::compute(&spec);
        Ok(Topology {
            spec,
            functions: computed.functions,
            iommu_groups: computed.iommu_groups,
            reset_groups: computed.reset_groups,
        })
    }

    /// Parses and validates a topology from TOML.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Topology::new(TopologySpec::from_toml_str(text)?)
    }

    /// Loads and validates a topology file; every error is an [`Error::TopologyFile`] naming it.
    pub fn load(path: &Path) -> Result<Self> {
        let spec = TopologySpec::load(path)?;
        Topology::new(spec).map_err(|e| match e {
            Error::Topology(reason) => Error::TopologyFile {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// The spec as given.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// Endpoint functions sorted by address (root ports are not included).
    pub fn functions(&self) -> &[FunctionNode] {
        &self.functions
    }

    /// The endpoint function at `address`.
    pub fn function(&self, address: PciAddress) -> Option<&FunctionNode> {
        self.index_of(address).map(|i| &self.functions[i])
    }

    /// The index of the function at `address` in [`Topology::functions`].
    pub fn index_of(&self, address: PciAddress) -> Option<usize> {
        self.functions
            .binary_search_by(|node| node.address.cmp(&address))
            .ok()
    }

    /// The root port at `address`.
    pub fn root_port(&self, address: PciAddress) -> Option<&RootPortSpec> {
        self.spec.root_ports.iter().find(|rp| rp.address == address)
    }

    /// Every IOMMU group, root ports' included, ordered by id (id == index).
    pub fn iommu_groups(&self) -> &[IommuGroup] {
        &self.iommu_groups
    }

    /// The IOMMU group of a function or root port.
    pub fn iommu_group_of(&self, address: PciAddress) -> Option<&IommuGroup> {
        self.iommu_groups
            .iter()
            .find(|g| g.members.contains(&address))
    }

    /// Every reset group, ordered by id (id == index).
    pub fn reset_groups(&self) -> &[ResetGroup] {
        &self.reset_groups
    }

    /// The reset group of an endpoint function (`None` for root ports and unknown addresses).
    pub fn reset_group_of(&self, address: PciAddress) -> Option<&ResetGroup> {
        self.function(address)
            .map(|node| &self.reset_groups[node.reset_group])
    }

    /// The other endpoint functions of `address`'s slot, sorted; empty for unknown addresses.
    pub fn siblings(&self, address: PciAddress) -> Vec<PciAddress> {
        if self.index_of(address).is_none() {
            return Vec::new();
        }
        self.functions
            .iter()
            .map(|node| node.address)
            .filter(|a| *a != address && a.same_slot(&address))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ResetMethod;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    const SMALL: &str = r#"
[[root_ports]]
address = "00:02.0"
secondary_bus = 1

[[functions]]
address = "01:00.0"
model = "nvme"

[functions.params]
namespaces = 2

[[functions]]
address = "01:00.1"
model = "nvme"
reset_methods = []
owner = "qemu"
"#;

    #[test]
    fn topology_toml_defaults() {
        let spec = TopologySpec::from_toml_str(SMALL).unwrap();
        let rp = &spec.root_ports[0];
        assert!(rp.acs && rp.bus_reset && !rp.hotplug_slot);
        let f0 = &spec.functions[0];
        assert_eq!(f0.reset_methods, vec![ResetMethod::Flr]);
        assert!(!f0.acs);
        assert_eq!(f0.owner, None);
        assert_eq!(f0.params["namespaces"].as_integer(), Some(2));
        let f1 = &spec.functions[1];
        assert!(f1.reset_methods.is_empty());
        assert_eq!(f1.owner.as_deref(), Some("qemu"));
    }

    #[test]
    fn topology_toml_round_trip() {
        let spec = TopologySpec::from_toml_str(SMALL).unwrap();
        let text = spec.to_toml_string().unwrap();
        assert_eq!(TopologySpec::from_toml_str(&text).unwrap(), spec);
    }

    #[test]
    fn topology_toml_parse_error_has_position() {
        let err = TopologySpec::from_toml_str("[[functions]]\naddress = \"01:00.0\"\nmodel = 3\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Topology(_)), "{err:?}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn topology_toml_rejects_unknown_field() {
        let err = TopologySpec::from_toml_str(
            "[[functions]]\naddress = \"00:03.0\"\nmodel = \"nvme\"\nreset_method = [\"flr\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("reset_method"), "{err}");
    }

    #[test]
    fn topology_toml_bad_address() {
        let err =
            TopologySpec::from_toml_str("[[functions]]\naddress = \"01:00.9\"\nmodel = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("01:00.9"), "{err}");
    }

    #[test]
    fn topology_accessors() {
        let topo = Topology::from_toml_str(SMALL).unwrap();
        assert_eq!(topo.functions().len(), 2);
        assert_eq!(topo.index_of(addr("01:00.1")), Some(1));
        assert_eq!(topo.index_of(addr("00:02.0")), None);
        assert!(topo.root_port(addr("00:02.0")).is_some());
        assert_eq!(topo.siblings(addr("01:00.0")), vec![addr("01:00.1")]);
        assert!(topo.siblings(addr("05:00.0")).is_empty());
        assert_eq!(
            topo.iommu_group_of(addr("00:02.0")).unwrap().members,
            vec![addr("00:02.0")]
        );
        assert!(topo.reset_group_of(addr("00:02.0")).is_none());
        assert_eq!(ResetScope::Bus.to_string(), "bus");
    }

    #[test]
    fn topology_serde_json_recomputes() {
        let topo = Topology::from_toml_str(SMALL).unwrap();
        let json = serde_json::to_string(&topo).unwrap();
        assert!(json.contains("\"reset_groups\""));
        let back: Topology = serde_json::from_str(&json).unwrap();
        assert_eq!(back, topo);
    }
}
