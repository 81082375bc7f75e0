//! Checks a [`TopologySpec`] against what a PCI bus can look like (rules in the parent module's
//! docs). Every problem is collected; one [`Error::Topology`] reports them all.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::spec::TopologySpec;
use crate::device::ResetMethod;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// `dddd:bb:dd`, the slot part of an address.
pub(super) fn slot_name(a: PciAddress) -> String {
    format!("{:04x}:{:02x}:{:02x}", a.domain, a.bus, a.device)
}

/// Returns `Ok` or one error listing every problem found.
pub(super) fn validate(spec: &TopologySpec) -> Result<()> {
    let mut problems = Vec::new();

    // Root ports: on bus 0, a unique non-zero secondary bus per domain.
    let mut ports: HashMap<PciAddress, usize> = HashMap::new();
    let mut secondary: BTreeMap<(u16, u8), PciAddress> = BTreeMap::new();
    for (i, rp) in spec.root_ports.iter().enumerate() {
        let a = rp.address;
        if ports.insert(a, i).is_some() {
            problems.push(format!("duplicate address {a}: root port listed twice"));
            continue;
        }
        if a.bus != 0 {
            problems.push(format!(
                "root port {a}: on bus {:02x}, expected bus 00 (root ports sit on the root bus)",
                a.bus
            ));
        }
        if rp.secondary_bus == 0 {
            problems.push(format!(
                "root port {a}: secondary_bus 0 is the root bus, expected 1 to 255"
            ));
        } else if let Some(other) = secondary.get(&(a.domain, rp.secondary_bus)) {
            problems.push(format!(
                "root ports {other} and {a} both claim secondary bus {:02x} of domain {:04x}, \
                 expected one bus per root port",
                rp.secondary_bus, a.domain
            ));
        } else {
            secondary.insert((a.domain, rp.secondary_bus), a);
        }
    }

    // Functions.
    let mut seen: HashSet<PciAddress> = HashSet::new();
    for f in &spec.functions {
        let a = f.address;
        if ports.contains_key(&a) {
            problems.push(format!(
                "function {a} ({}): address is taken by a root port",
                f.model
            ));
            continue;
        }
        if !seen.insert(a) {
            problems.push(format!("duplicate address {a}: function listed twice"));
            continue;
        }
        if f.model.trim().is_empty() {
            problems.push(format!(
                "function {a}: empty model name, expected a device-model name such as \"nvme\""
            ));
        }
        if let Some(owner) = &f.owner {
            if owner.trim().is_empty() {
                problems.push(format!(
                    "function {a}: empty owner, expected the name of whoever holds it (or no owner)"
                ));
            }
        }

        // Which bus, and can it be reset?
        let bridge = if a.bus == 0 {
            None
        } else if let Some(rp) = secondary.get(&(a.domain, a.bus)) {
            Some(&spec.root_ports[ports[rp]])
        } else {
            let known: Vec<String> = secondary
                .keys()
                .filter(|(d, _)| *d == a.domain)
                .map(|(_, b)| format!("{b:02x}"))
                .collect();
            problems.push(format!(
                "function {a}: bus {:02x} is neither the root bus 00 nor the secondary bus of a \
                 root port (secondary buses of domain {:04x}: {})",
                a.bus,
                a.domain,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
            continue;
        };
        if let Some(rp) = bridge {
            if a.device != 0 {
                problems.push(format!(
                    "function {a}: device {:02x} below root port {}, expected device 00 (the \
                     kernel scans only device 0 below a PCIe port, only_one_child() in \
                     drivers/pci/probe.c)",
                    a.device, rp.address
                ));
            }
        }

        let mut methods = Vec::new();
        for &m in &f.reset_methods {
            if methods.contains(&m) {
                problems.push(format!("function {a}: reset method {m} listed twice"));
                continue;
            }
            methods.push(m);
            match m {
                ResetMethod::Bus if !bridge.is_some_and(|rp| rp.bus_reset) => {
                    problems.push(format!(
                        "function {a}: reset method bus, but {}",
                        match bridge {
                            None => "bus 00 is the root bus, which has no bridge to reset it"
                                .to_string(),
                            Some(rp) => format!("root port {} has bus_reset = false", rp.address),
                        }
                    ));
                }
                ResetMethod::Slot if !bridge.is_some_and(|rp| rp.hotplug_slot && rp.bus_reset) => {
                    problems.push(format!(
                        "function {a}: reset method slot, but {}",
                        match bridge {
                            None => "bus 00 has no hotplug slots".to_string(),
                            Some(rp) if !rp.hotplug_slot => format!(
                                "root port {} has no hotplug slot (hotplug_slot = false)",
                                rp.address
                            ),
                            Some(rp) => {
                                format!("root port {} has bus_reset = false", rp.address)
                            }
                        }
                    ));
                }
                _ => {}
            }
        }
    }

    // Every slot with functions needs function 0.
    let mut slots: BTreeMap<(u16, u8, u8), Vec<PciAddress>> = BTreeMap::new();
    let all = spec
        .root_ports
        .iter()
        .map(|rp| rp.address)
        .chain(spec.functions.iter().map(|f| f.address));
    for a in all {
        slots
            .entry((a.domain, a.bus, a.device))
            .or_default()
            .push(a);
    }
    for members in slots.values() {
        if members.iter().all(|a| a.function != 0) {
            let mut members = members.clone();
            members.sort();
            members.dedup();
            let names: Vec<String> = members.iter().map(|a| a.to_string()).collect();
            problems.push(format!(
                "slot {}: {} present but no function 0, expected {} (the kernel scans functions \
                 1-7 only after function 0 answers, pci_scan_slot() in drivers/pci/probe.c)",
                slot_name(members[0]),
                names.join(", "),
                members[0]
                    .with_function(0)
                    .map_or_else(|e| e.to_string(), |a| a.to_string()),
            ));
        }
    }

    match problems.len() {
        0 => Ok(()),
        1 => Err(Error::Topology(problems.remove(0))),
        n => {
            // A generated file can hold thousands of mistakes; the first few show the pattern.
            let shown = problems[..n.min(MAX_PROBLEMS_SHOWN)].join("; ");
            let more = match n.saturating_sub(MAX_PROBLEMS_SHOWN) {
                0 => String::new(),
                hidden => format!("; ... and {hidden} more"),
            };
            Err(Error::Topology(format!("{n} problems: {shown}{more}")))
        }
    }
}

/// How many problems one error lists before it only counts the rest.
pub(super) const MAX_PROBLEMS_SHOWN: usize = 20;

#[cfg(test)]
mod tests {
    use super::super::{FunctionSpec, RootPortSpec, TopologySpec};
    use super::*;

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    fn spec(ports: &[(&str, u8)], functions: &[&str]) -> TopologySpec {
        TopologySpec {
            root_ports: ports
                .iter()
                .map(|(a, b)| RootPortSpec::new(addr(a), *b))
                .collect(),
            functions: functions
                .iter()
                .map(|a| FunctionSpec::new(addr(a), "nvme"))
                .collect(),
        }
    }

    fn message(spec: &TopologySpec) -> String {
        match validate(spec) {
            Err(Error::Topology(m)) => m,
            other => panic!("expected a topology error, got {other:?}"),
        }
    }

    #[test]
    fn topology_valid_machine_passes() {
        validate(&spec(&[("00:02.0", 1)], &["00:00.0", "01:00.0", "01:00.1"])).unwrap();
    }

    #[test]
    fn topology_lists_twenty_problems_and_counts_the_rest() {
        let functions: Vec<String> = (0..25).map(|d| format!("05:{d:02x}.0")).collect();
        let names: Vec<&str> = functions.iter().map(String::as_str).collect();
        let m = message(&spec(&[], &names));
        assert!(m.starts_with("25 problems: "), "{m}");
        assert_eq!(
            m.matches("function 0000:05:").count(),
            MAX_PROBLEMS_SHOWN,
            "{m}"
        );
        assert!(m.ends_with("; ... and 5 more"), "{m}");
    }

    #[test]
    fn topology_collects_every_problem() {
        let m = message(&spec(&[("00:02.0", 0)], &["00:02.0", "05:00.0"]));
        assert!(m.starts_with("3 problems: "), "{m}");
        assert!(m.contains("secondary_bus 0"), "{m}");
        assert!(m.contains("taken by a root port"), "{m}");
        assert!(m.contains("bus 05"), "{m}");
    }

    #[test]
    fn topology_bus_method_on_root_bus() {
        let mut s = spec(&[], &["00:03.0"]);
        s.functions[0].reset_methods = vec![ResetMethod::Flr, ResetMethod::Bus];
        let m = message(&s);
        assert!(m.contains("function 0000:00:03.0: reset method bus"), "{m}");
        assert!(m.contains("root bus"), "{m}");
    }

    #[test]
    fn topology_slot_method_without_hotplug() {
        let mut s = spec(&[("00:02.0", 1)], &["01:00.0"]);
        s.functions[0].reset_methods = vec![ResetMethod::Slot];
        let m = message(&s);
        assert!(m.contains("reset method slot"), "{m}");
        assert!(m.contains("hotplug_slot = false"), "{m}");
        s.root_ports[0].hotplug_slot = true;
        validate(&s).unwrap();
        s.root_ports[0].bus_reset = false;
        assert!(message(&s).contains("bus_reset = false"));
    }

    #[test]
    fn topology_duplicate_reset_method() {
        let mut s = spec(&[], &["00:03.0"]);
        s.functions[0].reset_methods = vec![ResetMethod::Flr, ResetMethod::Flr];
        assert_eq!(
            message(&s),
            "function 0000:00:03.0: reset method flr listed twice"
        );
    }

    #[test]
    fn topology_empty_owner() {
        let mut s = spec(&[], &["00:03.0"]);
        s.functions[0].owner = Some(" ".into());
        assert!(message(&s).contains("empty owner"));
    }

    #[test]
    fn topology_root_port_slot_needs_function_zero() {
        let m = message(&spec(&[("00:1c.1", 2)], &[]));
        assert!(m.contains("slot 0000:00:1c"), "{m}");
        assert!(m.contains("expected 0000:00:1c.0"), "{m}");
    }
}
