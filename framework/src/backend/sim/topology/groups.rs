//! IOMMU groups and reset groups of a validated spec (rules and kernel sources in the parent
//! module's docs).

use std::collections::{BTreeMap, HashMap};

use super::nodes::{FunctionNode, IommuGroup, ResetGroup};
use super::spec::{RootPortSpec, TopologySpec};
use crate::pci::devset::{self, DevSetInput};
use crate::pci::PciAddress;

/// What [`compute`] returns.
pub(super) struct Computed {
    pub functions: Vec<FunctionNode>,
    pub iommu_groups: Vec<IommuGroup>,
    pub reset_groups: Vec<ResetGroup>,
}

type Slot = (u16, u8, u8);

fn slot_of(a: PciAddress) -> Slot {
    (a.domain, a.bus, a.device)
}

/// Which IOMMU group a device falls into, before numbering.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum IommuKey {
    /// A group of its own.
    Alone(PciAddress),
    /// The shared group of the slot's functions without ACS.
    Slot(Slot),
}

/// Computes nodes and groups. `spec` must have passed validation (every function's bus is 0 or
/// a root port's secondary bus); a function whose bus has no root port is treated as on the
/// root bus rather than panicking.
pub(super) fn compute(spec: &TopologySpec) -> Computed {
    let bridge_of_bus: HashMap<(u16, u8), &RootPortSpec> = spec
        .root_ports
        .iter()
        .map(|rp| ((rp.address.domain, rp.secondary_bus), rp))
        .collect();
    let parent = |a: PciAddress| -> Option<&RootPortSpec> {
        if a.bus == 0 {
            None
        } else {
            bridge_of_bus.get(&(a.domain, a.bus)).copied()
        }
    };

    // A slot is multifunction when more than one function (root port or endpoint) is present.
    let mut per_slot: HashMap<Slot, usize> = HashMap::new();
    for a in spec
        .root_ports
        .iter()
        .map(|rp| rp.address)
        .chain(spec.functions.iter().map(|f| f.address))
    {
        *per_slot.entry(slot_of(a)).or_default() += 1;
    }
    let multifunction = |a: PciAddress| per_slot.get(&slot_of(a)).copied().unwrap_or(0) > 1;

    // get_pci_function_alias_group(): only multifunction devices without ACS share by slot.
    // pci_acs_enabled(): a root port answers with its own ACS; an endpoint without siblings
    // needs none.
    let own_key = |a: PciAddress, acs: bool| {
        if multifunction(a) && !acs {
            IommuKey::Slot(slot_of(a))
        } else {
            IommuKey::Alone(a)
        }
    };

    // Every device (root ports and endpoints) with its IOMMU key, sorted by address.
    let mut devices: Vec<(PciAddress, IommuKey)> = Vec::new();
    for rp in &spec.root_ports {
        devices.push((rp.address, own_key(rp.address, rp.acs)));
    }
    for f in &spec.functions {
        let key = match parent(f.address) {
            // pci_device_group(): the upstream walk stops at a port with ACS ...
            Some(rp) if !rp.acs => own_key(rp.address, rp.acs),
            // ... and without ACS the endpoint takes the port's group.
            _ => own_key(f.address, f.acs),
        };
        devices.push((f.address, key));
    }
    devices.sort_by_key(|(a, _)| *a);

    let mut iommu_groups: Vec<IommuGroup> = Vec::new();
    let mut iommu_ids: HashMap<IommuKey, u32> = HashMap::new();
    let mut iommu_of: BTreeMap<PciAddress, u32> = BTreeMap::new();
    for (a, key) in &devices {
        let next = iommu_groups.len() as u32;
        let id = *iommu_ids.entry(*key).or_insert(next);
        if id == next {
            iommu_groups.push(IommuGroup {
                id,
                members: Vec::new(),
            });
        }
        iommu_groups[id as usize].members.push(*a);
        iommu_of.insert(*a, id);
    }

    // Reset groups: vfio_pci_core_register_device()'s dev_set choice, shared with sysfs.
    let inputs: Vec<DevSetInput> = spec
        .functions
        .iter()
        .map(|f| {
            let bridge = parent(f.address);
            DevSetInput {
                address: f.address,
                bridge: bridge.map(|rp| rp.address),
                virtual_function: false,
                slot_reset: bridge.is_some_and(|rp| rp.hotplug_slot && rp.bus_reset),
                bus_reset: bridge.is_some_and(|rp| rp.bus_reset),
            }
        })
        .collect();
    let sets = devset::assign(&inputs);
    let reset_groups: Vec<ResetGroup> = sets
        .sets
        .into_iter()
        .enumerate()
        .map(|(id, set)| ResetGroup {
            id,
            scope: set.scope,
            bridge: set.bridge,
            members: set.members,
        })
        .collect();
    let mut sorted: Vec<_> = spec.functions.iter().collect();
    sorted.sort_by_key(|f| f.address);
    let functions = sorted
        .into_iter()
        .map(|f| FunctionNode {
            address: f.address,
            parent_bridge: parent(f.address).map(|rp| rp.address),
            iommu_group: iommu_of.get(&f.address).copied().unwrap_or_default(),
            reset_group: sets.set_of.get(&f.address).copied().unwrap_or_default(),
            spec: f.clone(),
        })
        .collect();

    Computed {
        functions,
        iommu_groups,
        reset_groups,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FunctionSpec, ResetScope, RootPortSpec, Topology, TopologySpec};
    use super::*;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn addrs(list: &[&str]) -> Vec<PciAddress> {
        list.iter().map(|s| addr(s)).collect()
    }

    fn topo(ports: Vec<RootPortSpec>, functions: Vec<FunctionSpec>) -> Topology {
        Topology::new(TopologySpec {
            root_ports: ports,
            functions,
        })
        .unwrap()
    }

    fn f(a: &str) -> FunctionSpec {
        FunctionSpec::new(addr(a), "nvme")
    }

    #[test]
    fn topology_groups_numbered_in_address_order() {
        // Written out of order on purpose.
        let t = topo(
            vec![
                RootPortSpec::new(addr("00:03.0"), 2),
                RootPortSpec::new(addr("00:02.0"), 1),
            ],
            vec![f("02:00.0"), f("01:00.0"), f("00:00.0")],
        );
        let members: Vec<_> = t.iommu_groups().iter().map(|g| g.members.clone()).collect();
        assert_eq!(
            members,
            vec![
                addrs(&["00:00.0"]),
                addrs(&["00:02.0"]),
                addrs(&["00:03.0"]),
                addrs(&["01:00.0"]),
                addrs(&["02:00.0"]),
            ]
        );
        for (i, g) in t.iommu_groups().iter().enumerate() {
            assert_eq!(g.id as usize, i);
        }
        let order: Vec<_> = t.functions().iter().map(|n| n.address).collect();
        assert_eq!(order, addrs(&["00:00.0", "01:00.0", "02:00.0"]));
        assert_eq!(t.reset_groups()[0].members, addrs(&["00:00.0"]));
        assert_eq!(t.reset_groups()[0].scope, ResetScope::Function);
        assert_eq!(t.reset_groups()[1].bridge, Some(addr("00:02.0")));
    }

    #[test]
    fn topology_multifunction_root_ports_without_acs_share() {
        // Intel PCH style: root ports 00:1c.0 and 00:1c.1 without ACS; their devices join them.
        let mut p0 = RootPortSpec::new(addr("00:1c.0"), 1);
        p0.acs = false;
        let mut p1 = RootPortSpec::new(addr("00:1c.1"), 2);
        p1.acs = false;
        let t = topo(vec![p0, p1], vec![f("01:00.0"), f("02:00.0")]);
        assert_eq!(t.iommu_groups().len(), 1);
        assert_eq!(
            t.iommu_groups()[0].members,
            addrs(&["00:1c.0", "00:1c.1", "01:00.0", "02:00.0"])
        );
        // Reset groups still follow the buses.
        assert_eq!(t.reset_groups().len(), 2);
    }

    #[test]
    fn topology_single_root_port_without_acs_is_alone() {
        let mut p = RootPortSpec::new(addr("00:02.0"), 1);
        p.acs = false;
        let t = topo(
            vec![p, RootPortSpec::new(addr("00:03.0"), 2)],
            vec![f("02:00.0")],
        );
        assert_eq!(t.iommu_groups()[0].members, addrs(&["00:02.0"]));
        assert_eq!(t.iommu_groups()[1].members, addrs(&["00:03.0"]));
    }

    #[test]
    fn topology_acs_function_in_root_bus_slot() {
        let mut f2 = f("00:1f.2");
        f2.acs = true;
        let t = topo(vec![], vec![f("00:1f.0"), f2, f("00:1f.3")]);
        let g = |a| t.function(addr(a)).unwrap().iommu_group;
        assert_eq!(g("00:1f.0"), g("00:1f.3"));
        assert_ne!(g("00:1f.0"), g("00:1f.2"));
        assert_eq!(t.reset_groups().len(), 3);
    }
}
