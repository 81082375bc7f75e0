//! Reset groups: the kernel's VFIO `dev_set` rule, written once for every topology source.
//!
//! `vfio_pci_core_register_device()` (drivers/vfio/pci/vfio_pci_core.c) puts a function into
//! a device set that decides which functions one hot reset hits together:
//! - a function on a root bus, or a virtual function, gets a set of its own;
//! - otherwise, when `pci_probe_reset_slot()` succeeds (a hotplug slot that can reset), the set
//!   of its slot;
//! - otherwise the set of its bus (a secondary bus reset of the bridge above).
//!
//! The simulated topology (`backend::sim::topology`) and the sysfs status reader
//! (`pci::status`) both describe their functions as [`DevSetInput`] and call [`assign`]. The
//! sim models a bridge that cannot reset its bus as giving every function a set of its own
//! (`bus_reset: false`); the kernel would still build a bus set whose hot reset then fails
//! with `ENODEV`, and the status reader reports that as a blocker instead.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pci::PciAddress;

/// What reset hits a reset group together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetScope {
    /// A hotplug slot reset: every function in the slot.
    Slot,
    /// A secondary bus reset of the bridge: every function on the bus.
    Bus,
    /// No reset reaches beyond the function; the group is the function alone.
    Function,
}

impl fmt::Display for ResetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResetScope::Slot => "slot",
            ResetScope::Bus => "bus",
            ResetScope::Function => "function",
        })
    }
}

/// One function as the rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevSetInput {
    /// The function's address.
    pub address: PciAddress,
    /// The bridge directly above it; `None` on a root bus.
    pub bridge: Option<PciAddress>,
    /// A virtual function (SR-IOV): always a set of its own.
    pub virtual_function: bool,
    /// `pci_probe_reset_slot()` would succeed: a hotplug slot that can reset.
    pub slot_reset: bool,
    /// The bridge can reset its secondary bus.
    pub bus_reset: bool,
}

/// A device set: functions one hot reset hits together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevSet {
    /// What reset the members share.
    pub scope: ResetScope,
    /// The bridge whose slot or bus reset hits the members; `None` for
    /// [`ResetScope::Function`].
    pub bridge: Option<PciAddress>,
    /// Members, sorted by address.
    pub members: Vec<PciAddress>,
}

/// The sets and, for each function, the index of its set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevSets {
    /// Sets numbered in the order of their lowest member's address.
    pub sets: Vec<DevSet>,
    /// Every input function's set index.
    pub set_of: BTreeMap<PciAddress, usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Alone(PciAddress),
    Slot(u16, u8, u8),
    Bus(u16, u8),
}

/// Which set a function falls into, and what reset its set shares.
fn key_of(f: &DevSetInput) -> (Key, ResetScope, Option<PciAddress>) {
    let a = f.address;
    match f.bridge {
        Some(bridge) if !f.virtual_function && f.slot_reset => (
            Key::Slot(a.domain, a.bus, a.device),
            ResetScope::Slot,
            Some(bridge),
        ),
        Some(bridge) if !f.virtual_function && f.bus_reset => {
            (Key::Bus(a.domain, a.bus), ResetScope::Bus, Some(bridge))
        }
        _ => (Key::Alone(a), ResetScope::Function, None),
    }
}

/// Applies the rule to `functions` (any order; duplicates count once).
pub fn assign(functions: &[DevSetInput]) -> DevSets {
    let mut sorted: Vec<&DevSetInput> = functions.iter().collect();
    sorted.sort_by_key(|f| f.address);
    sorted.dedup_by_key(|f| f.address);
    let mut out = DevSets::default();
    let mut ids: HashMap<Key, usize> = HashMap::new();
    for f in sorted {
        let (key, scope, bridge) = key_of(f);
        let next = out.sets.len();
        let id = *ids.entry(key).or_insert(next);
        if id == next {
            out.sets.push(DevSet {
                scope,
                bridge,
                members: Vec::new(),
            });
        }
        out.sets[id].members.push(f.address);
        out.set_of.insert(f.address, id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(a: &str, bridge: Option<&str>, slot: bool, bus: bool) -> DevSetInput {
        DevSetInput {
            address: a.parse().unwrap(),
            bridge: bridge.map(|b| b.parse().unwrap()),
            virtual_function: false,
            slot_reset: slot,
            bus_reset: bus,
        }
    }

    #[test]
    fn devset_slot_bus_and_alone() {
        let sets = assign(&[
            input("02:00.0", Some("00:03.0"), false, true),
            input("01:00.1", Some("00:02.0"), true, true),
            input("01:00.0", Some("00:02.0"), true, true),
            input("00:1f.0", None, false, false),
            input("02:00.1", Some("00:03.0"), false, true),
            input("03:00.0", Some("00:04.0"), false, false),
        ]);
        let scopes: Vec<_> = sets
            .sets
            .iter()
            .map(|s| (s.scope, s.members.len()))
            .collect();
        assert_eq!(
            scopes,
            vec![
                (ResetScope::Function, 1),
                (ResetScope::Slot, 2),
                (ResetScope::Bus, 2),
                (ResetScope::Function, 1),
            ]
        );
        assert_eq!(sets.set_of[&"02:00.1".parse().unwrap()], 2);
    }

    #[test]
    fn devset_virtual_function_is_alone() {
        let mut vf = input("01:00.2", Some("00:02.0"), false, true);
        vf.virtual_function = true;
        let sets = assign(&[input("01:00.0", Some("00:02.0"), false, true), vf]);
        assert_eq!(sets.sets.len(), 2);
        assert_eq!(sets.sets[1].scope, ResetScope::Function);
    }
}
