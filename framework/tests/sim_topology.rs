//! The simulated PCI topology: topology files, the builder, validation, IOMMU groups and reset
//! groups, checked against a real Linux capture (`/work/shared/fixtures/`, summarised in
//! `topologies/q35-nvme-multifunction.toml`).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use userpci_framework::backend::sim::topology::{
    FunctionSpec, ResetScope, RootPortSpec, Topology, TopologyBuilder, TopologySpec,
};
use userpci_framework::device::ResetMethod;
use userpci_framework::pci::PciAddress;
use userpci_framework::Error;

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

fn addrs(list: &[&str]) -> Vec<PciAddress> {
    list.iter().map(|s| addr(s)).collect()
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn test_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/topologies")
        .join(rel)
}

/// A scratch path unique to this process and test.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "userpci-sim-topology-{}-{name}",
        std::process::id()
    ))
}

fn topology_error(result: userpci_framework::Result<Topology>) -> String {
    match result {
        Err(Error::Topology(message)) => message,
        other => panic!("expected Error::Topology, got {other:?}"),
    }
}

// ---- the real capture ----

#[test]
fn q35_capture_groups() {
    let t = Topology::load(&repo_file("topologies/q35-nvme-multifunction.toml")).unwrap();

    // IOMMU groups exactly as /sys/kernel/iommu_groups showed them, numbers included.
    let groups: Vec<(u32, Vec<PciAddress>)> = t
        .iommu_groups()
        .iter()
        .map(|g| (g.id, g.members.clone()))
        .collect();
    assert_eq!(
        groups,
        vec![
            (0, addrs(&["00:00.0"])),
            (1, addrs(&["00:01.0"])),
            (2, addrs(&["00:02.0"])),
            (3, addrs(&["00:03.0"])),
            (4, addrs(&["00:04.0"])),
            (5, addrs(&["00:1f.0", "00:1f.2", "00:1f.3"])),
            (6, addrs(&["01:00.0", "01:00.1"])),
            (7, addrs(&["02:00.0"])),
            (8, addrs(&["03:00.0"])),
        ]
    );

    // 01:00.0 and 01:00.1: one reset group, a bus reset of 00:02.0.
    let g = t.reset_group_of(addr("01:00.0")).unwrap();
    assert_eq!(g.scope, ResetScope::Bus);
    assert_eq!(g.bridge, Some(addr("00:02.0")));
    assert_eq!(g.members, addrs(&["01:00.0", "01:00.1"]));
    assert_eq!(t.reset_group_of(addr("01:00.1")).unwrap().id, g.id);
    assert_eq!(t.siblings(addr("01:00.1")), addrs(&["01:00.0"]));
    assert_eq!(
        t.function(addr("01:00.1")).unwrap().parent_bridge,
        Some(addr("00:02.0"))
    );

    // 02:00.0 alone in both.
    let n = t.function(addr("02:00.0")).unwrap();
    assert_eq!(t.iommu_groups()[n.iommu_group as usize].members.len(), 1);
    let g = t.reset_group_of(addr("02:00.0")).unwrap();
    assert_eq!(g.members, addrs(&["02:00.0"]));
    assert_eq!(g.scope, ResetScope::Bus);
    assert_eq!(g.bridge, Some(addr("00:03.0")));

    // ICH9: one IOMMU group, three singleton reset groups (bus 0 is the root bus).
    let ich9 = addrs(&["00:1f.0", "00:1f.2", "00:1f.3"]);
    let mut ids = Vec::new();
    for a in &ich9 {
        let g = t.reset_group_of(*a).unwrap();
        assert_eq!(g.scope, ResetScope::Function);
        assert_eq!(g.bridge, None);
        assert_eq!(g.members, vec![*a]);
        assert_eq!(t.function(*a).unwrap().iommu_group, 5);
        assert_eq!(t.function(*a).unwrap().parent_bridge, None);
        ids.push(g.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3);

    // Reset methods as sysfs listed them.
    let methods = |a| t.function(addr(a)).unwrap().spec.reset_methods.clone();
    assert_eq!(methods("01:00.0"), vec![ResetMethod::Flr, ResetMethod::Bus]);
    assert_eq!(methods("01:00.1"), vec![ResetMethod::Flr]);
    assert_eq!(methods("03:00.0"), vec![ResetMethod::Pm, ResetMethod::Bus]);
    assert!(methods("00:1f.2").is_empty());
}

/// The group numbers in the TOML agree with the fixture itself, read from the capture.
#[test]
fn q35_capture_matches_fixture_file() {
    let fixture = Path::new("/work/shared/fixtures/sysfs-q35-nvme-multifunction.txt");
    let Ok(text) = std::fs::read_to_string(fixture) else {
        eprintln!("skipped: {} not present", fixture.display());
        return;
    };
    let t = Topology::load(&repo_file("topologies/q35-nvme-multifunction.toml")).unwrap();
    let mut current = None;
    let mut checked = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("[device ") {
            current = Some(addr(rest.trim_end_matches(']')));
        } else if line.starts_with('[') {
            current = None;
        } else if let (Some(a), Some(group)) = (current, line.strip_prefix("iommu_group=")) {
            let group: u32 = group.parse().unwrap();
            assert_eq!(
                t.iommu_group_of(a).map(|g| g.id),
                Some(group),
                "{a}: capture says IOMMU group {group}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn demo_topology() {
    let t = Topology::load(&repo_file("topologies/demo.toml")).unwrap();
    let g = t.reset_group_of(addr("01:00.0")).unwrap();
    assert_eq!(g.members, addrs(&["01:00.0", "01:00.1", "01:00.2"]));
    assert_eq!(g.scope, ResetScope::Bus);
    assert_eq!(g.bridge, Some(addr("00:02.0")));
    let other = t.reset_group_of(addr("02:00.0")).unwrap();
    assert_eq!(other.members, addrs(&["02:00.0"]));
    assert_ne!(other.id, g.id);
    let iommu = t.iommu_group_of(addr("01:00.2")).unwrap();
    assert_eq!(iommu.members, addrs(&["01:00.0", "01:00.1", "01:00.2"]));
    assert!(t
        .functions()
        .iter()
        .all(|f| f.spec.model != "copy-engine" && f.spec.owner.is_none()));
}

// ---- files and round trips ----

#[test]
fn toml_round_trip_of_every_example() {
    for path in [
        repo_file("topologies/q35-nvme-multifunction.toml"),
        repo_file("topologies/demo.toml"),
        test_file("isolation.toml"),
    ] {
        let spec = TopologySpec::load(&path).unwrap();
        let text = spec.to_toml_string().unwrap();
        assert_eq!(
            TopologySpec::from_toml_str(&text).unwrap(),
            spec,
            "{}",
            path.display()
        );
    }
}

#[test]
fn save_and_load() {
    let spec = TopologySpec::load(&test_file("isolation.toml")).unwrap();
    let path = scratch("save_and_load.toml");
    spec.save(&path).unwrap();
    let back = TopologySpec::load(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(back.unwrap(), spec);
}

#[test]
fn load_errors_name_the_file() {
    let missing = scratch("does-not-exist.toml");
    match TopologySpec::load(&missing) {
        Err(Error::TopologyFile { path, reason }) => {
            assert_eq!(path, missing);
            assert!(reason.starts_with("cannot read"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let bad = scratch("bad-syntax.toml");
    std::fs::write(&bad, "[[functions]]\naddress = \"01:00.0\"\nmodel = \n").unwrap();
    let result = TopologySpec::load(&bad);
    let _ = std::fs::remove_file(&bad);
    match result {
        Err(Error::TopologyFile { path, reason }) => {
            assert_eq!(path, bad);
            assert!(reason.contains("line 3"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // A file that parses but does not validate: still TopologyFile, with the validation message.
    let invalid = test_file("invalid-no-function-0.toml");
    match Topology::load(&invalid) {
        Err(Error::TopologyFile { path, reason }) => {
            assert_eq!(path, invalid);
            assert!(reason.contains("no function 0"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn builder_equals_toml() {
    let built = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .root_port("00:03.0", 2)
        .function("01:00.0", "nvme")
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .function("01:00.1", "nvme")
        .reset_methods(&[ResetMethod::Flr])
        .function("01:00.2", "ixgbe")
        .reset_methods(&[ResetMethod::Flr])
        .function("02:00.0", "nvme")
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .build()
        .unwrap();
    let loaded = Topology::load(&repo_file("topologies/demo.toml")).unwrap();
    assert_eq!(built.spec(), loaded.spec());
    assert_eq!(built, loaded);
}

#[test]
fn builder_with_params_owner_and_explicit_specs() {
    let mut params = toml::Table::new();
    params.insert("ports".into(), toml::Value::Integer(1));
    let mut port = RootPortSpec::new(addr("00:04.0"), 3);
    port.acs = false;
    let mut f = FunctionSpec::new(addr("03:00.0"), "ixgbe");
    f.reset_methods = vec![ResetMethod::Flr, ResetMethod::Bus];
    f.params = params.clone();
    let built = TopologyBuilder::new()
        .root_port_with(port)
        .function_with(f)
        .build()
        .unwrap();
    let toml = r#"
        [[root_ports]]
        address = "00:04.0"
        secondary_bus = 3
        acs = false

        [[functions]]
        address = "03:00.0"
        model = "ixgbe"
        reset_methods = ["flr", "bus"]
        params = { ports = 1 }
    "#;
    assert_eq!(built, Topology::from_toml_str(toml).unwrap());

    let owned = TopologyBuilder::new()
        .function("00:03.0", "nvme")
        .owner("other-vm")
        .params(params)
        .build()
        .unwrap();
    assert_eq!(owned.functions()[0].spec.owner.as_deref(), Some("other-vm"));
}

// ---- validation: every error, with its message ----

#[test]
fn validation_duplicate_function() {
    let m = topology_error(
        TopologyBuilder::new()
            .function("00:03.0", "nvme")
            .function("0000:00:03.0", "nvme")
            .build(),
    );
    assert_eq!(m, "duplicate address 0000:00:03.0: function listed twice");
}

#[test]
fn validation_duplicate_root_port() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .root_port("00:02.0", 2)
            .build(),
    );
    assert_eq!(m, "duplicate address 0000:00:02.0: root port listed twice");
}

#[test]
fn validation_root_port_not_on_bus_0() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .root_port("01:00.0", 2)
            .build(),
    );
    assert_eq!(
        m,
        "root port 0000:01:00.0: on bus 01, expected bus 00 (root ports sit on the root bus)"
    );
}

#[test]
fn validation_secondary_bus_0() {
    let m = topology_error(TopologyBuilder::new().root_port("00:02.0", 0).build());
    assert_eq!(
        m,
        "root port 0000:00:02.0: secondary_bus 0 is the root bus, expected 1 to 255"
    );
}

#[test]
fn validation_shared_secondary_bus() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .root_port("00:03.0", 1)
            .build(),
    );
    assert_eq!(
        m,
        "root ports 0000:00:02.0 and 0000:00:03.0 both claim secondary bus 01 of domain 0000, \
         expected one bus per root port"
    );
    // The same bus number in another domain is a different bus.
    TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .root_port("0001:00:02.0", 1)
        .function("0001:01:00.0", "nvme")
        .build()
        .unwrap();
}

#[test]
fn validation_function_on_unknown_bus() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .root_port("00:03.0", 2)
            .function("05:00.0", "nvme")
            .build(),
    );
    assert_eq!(
        m,
        "function 0000:05:00.0: bus 05 is neither the root bus 00 nor the secondary bus of a \
         root port (secondary buses of domain 0000: 01, 02)"
    );
    let m = topology_error(TopologyBuilder::new().function("01:00.0", "nvme").build());
    assert!(m.ends_with("(secondary buses of domain 0000: none)"), "{m}");
}

#[test]
fn validation_slot_without_function_0() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .function("01:00.1", "nvme")
            .function("01:00.2", "nvme")
            .build(),
    );
    assert_eq!(
        m,
        "slot 0000:01:00: 0000:01:00.1, 0000:01:00.2 present but no function 0, expected \
         0000:01:00.0 (the kernel scans functions 1-7 only after function 0 answers, \
         pci_scan_slot() in drivers/pci/probe.c)"
    );
}

#[test]
fn validation_function_at_root_port_address() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .function("00:02.0", "nvme")
            .build(),
    );
    assert_eq!(
        m,
        "function 0000:00:02.0 (nvme): address is taken by a root port"
    );
}

#[test]
fn validation_empty_model() {
    let m = topology_error(TopologyBuilder::new().function("00:03.0", "").build());
    assert_eq!(
        m,
        "function 0000:00:03.0: empty model name, expected a device-model name such as \"nvme\""
    );
}

#[test]
fn validation_device_other_than_0_below_root_port() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .function("01:01.0", "nvme")
            .build(),
    );
    assert_eq!(
        m,
        "function 0000:01:01.0: device 01 below root port 0000:00:02.0, expected device 00 (the \
         kernel scans only device 0 below a PCIe port, only_one_child() in drivers/pci/probe.c)"
    );
}

#[test]
fn validation_impossible_reset_methods() {
    let m = topology_error(
        TopologyBuilder::new()
            .function("00:03.0", "nvme")
            .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
            .build(),
    );
    assert_eq!(
        m,
        "function 0000:00:03.0: reset method bus, but bus 00 is the root bus, which has no \
         bridge to reset it"
    );
    let mut port = RootPortSpec::new(addr("00:02.0"), 1);
    port.bus_reset = false;
    let m = topology_error(
        TopologyBuilder::new()
            .root_port_with(port)
            .function("01:00.0", "nvme")
            .reset_methods(&[ResetMethod::Bus])
            .build(),
    );
    assert_eq!(
        m,
        "function 0000:01:00.0: reset method bus, but root port 0000:00:02.0 has bus_reset = false"
    );
}

#[test]
fn validation_reports_all_problems_at_once() {
    let m = topology_error(
        TopologyBuilder::new()
            .root_port("00:02.0", 0)
            .function("00:03.0", "")
            .function("00:03.0", "nvme")
            .build(),
    );
    assert!(m.starts_with("3 problems: "), "{m}");
    assert!(m.contains("secondary_bus 0"), "{m}");
    assert!(m.contains("empty model name"), "{m}");
    assert!(m.contains("function listed twice"), "{m}");
}

// ---- IOMMU and reset groups ----

#[test]
fn multifunction_without_acs_is_one_iommu_group_and_one_reset_group() {
    let t = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "nvme")
        .function("01:00.1", "nvme")
        .build()
        .unwrap();
    let (a, b) = (addr("01:00.0"), addr("01:00.1"));
    assert_eq!(
        t.function(a).unwrap().iommu_group,
        t.function(b).unwrap().iommu_group
    );
    assert_eq!(t.iommu_group_of(a).unwrap().members, vec![a, b]);
    assert_eq!(t.reset_groups().len(), 1);
    assert_eq!(t.reset_group_of(b).unwrap().members, vec![a, b]);
}

#[test]
fn acs_on_function_1_splits_iommu_group_but_not_reset_group() {
    let t = Topology::load(&test_file("isolation.toml")).unwrap();
    let (a, b) = (addr("04:00.0"), addr("04:00.1"));
    assert_eq!(t.iommu_group_of(a).unwrap().members, vec![a]);
    assert_eq!(t.iommu_group_of(b).unwrap().members, vec![b]);
    let g = t.reset_group_of(a).unwrap();
    assert_eq!(g.members, vec![a, b]);
    assert_eq!(g.scope, ResetScope::Bus);
    assert_eq!(g.bridge, Some(addr("00:05.0")));
}

#[test]
fn root_port_without_acs_takes_its_devices_into_its_group() {
    let t = Topology::load(&test_file("isolation.toml")).unwrap();
    assert_eq!(
        t.iommu_group_of(addr("00:04.0")).unwrap().members,
        addrs(&["00:04.0", "03:00.0"])
    );
    // Reset group unaffected by ACS.
    let g = t.reset_group_of(addr("03:00.0")).unwrap();
    assert_eq!(
        (g.scope, g.bridge, g.members.clone()),
        (ResetScope::Bus, Some(addr("00:04.0")), addrs(&["03:00.0"]))
    );
    assert_eq!(
        t.function(addr("03:00.0")).unwrap().spec.params["ports"].as_integer(),
        Some(1)
    );
}

#[test]
fn hotplug_slot_gives_slot_scope() {
    let t = Topology::load(&test_file("isolation.toml")).unwrap();
    let g = t.reset_group_of(addr("01:00.1")).unwrap();
    assert_eq!(g.scope, ResetScope::Slot);
    assert_eq!(g.bridge, Some(addr("00:02.0")));
    assert_eq!(g.members, addrs(&["01:00.0", "01:00.1"]));
}

#[test]
fn no_bus_reset_gives_function_scope_singletons() {
    let t = Topology::load(&test_file("isolation.toml")).unwrap();
    for a in ["02:00.0", "02:00.1"] {
        let g = t.reset_group_of(addr(a)).unwrap();
        assert_eq!(g.scope, ResetScope::Function, "{a}");
        assert_eq!(g.bridge, None, "{a}");
        assert_eq!(g.members, vec![addr(a)], "{a}");
    }
    // Still one IOMMU group (no ACS in the slot).
    assert_eq!(
        t.iommu_group_of(addr("02:00.0")).unwrap().members,
        addrs(&["02:00.0", "02:00.1"])
    );
    assert_eq!(
        t.function(addr("02:00.1")).unwrap().spec.owner.as_deref(),
        Some("other-vm")
    );
    // A hotplug slot without bus reset cannot be reset either.
    let mut port = RootPortSpec::new(addr("00:02.0"), 1);
    port.hotplug_slot = true;
    port.bus_reset = false;
    let t = TopologyBuilder::new()
        .root_port_with(port)
        .function("01:00.0", "nvme")
        .build()
        .unwrap();
    assert_eq!(t.reset_groups()[0].scope, ResetScope::Function);
}

#[test]
fn index_of_and_functions_agree() {
    let t = Topology::load(&test_file("isolation.toml")).unwrap();
    for (i, node) in t.functions().iter().enumerate() {
        assert_eq!(t.index_of(node.address), Some(i));
        assert!(t.reset_groups()[node.reset_group]
            .members
            .contains(&node.address));
    }
    assert_eq!(t.index_of(addr("00:02.0")), None);
    assert!(t.function(addr("00:02.0")).is_none());
}

// ---- property: every function in exactly one IOMMU group and one reset group ----

/// A random valid machine: root ports in pairs sharing a slot (00:10.0/.1, 00:11.0/.1, ...),
/// each with one device below; a few root-complex integrated slots on bus 0. Function sets
/// are bitmasks that always include function 0.
fn machine() -> impl Strategy<Value = TopologySpec> {
    let port = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
    );
    let rc_slot = (any::<u8>(), any::<u8>());
    (
        prop::collection::vec(port, 0..6),
        prop::collection::vec(rc_slot, 0..4),
    )
        .prop_map(|(ports, rc_slots)| {
            let mut spec = TopologySpec::default();
            let add_slot = |spec: &mut TopologySpec, bus: u8, device: u8, mask: u8, acs: u8| {
                for function in 0..8u8 {
                    if (mask | 1) & (1 << function) != 0 {
                        let a = PciAddress::new(0, bus, device, function).unwrap();
                        let mut f = FunctionSpec::new(a, "nvme");
                        f.acs = acs & (1 << function) != 0;
                        spec.functions.push(f);
                    }
                }
            };
            for (i, (acs, hotplug_slot, bus_reset, mask, fn_acs)) in ports.into_iter().enumerate() {
                let i = i as u8;
                let address = PciAddress::new(0, 0, 0x10 + i / 2, i % 2).unwrap();
                spec.root_ports.push(RootPortSpec {
                    address,
                    secondary_bus: i + 1,
                    acs,
                    hotplug_slot,
                    bus_reset,
                });
                add_slot(&mut spec, i + 1, 0, mask, fn_acs);
            }
            for (j, (mask, acs)) in rc_slots.into_iter().enumerate() {
                add_slot(&mut spec, 0, 0x1c + j as u8, mask, acs);
            }
            spec
        })
}

proptest! {
    #[test]
    fn every_function_in_exactly_one_group_of_each_kind(spec in machine()) {
        let text = spec.to_toml_string().unwrap();
        prop_assert_eq!(&TopologySpec::from_toml_str(&text).unwrap(), &spec);

        let t = Topology::new(spec.clone()).unwrap();
        prop_assert_eq!(t.functions().len(), spec.functions.len());
        for node in t.functions() {
            let a = node.address;
            let iommu: Vec<_> = t.iommu_groups().iter().filter(|g| g.members.contains(&a)).collect();
            prop_assert_eq!(iommu.len(), 1);
            prop_assert_eq!(iommu[0].id, node.iommu_group);
            let reset: Vec<_> = t.reset_groups().iter().filter(|g| g.members.contains(&a)).collect();
            prop_assert_eq!(reset.len(), 1);
            prop_assert_eq!(reset[0].id, node.reset_group);
            // A reset group never spans buses, and a Function-scope group is a singleton.
            prop_assert!(reset[0].members.iter().all(|m| m.bus == a.bus));
            if reset[0].scope == ResetScope::Function {
                prop_assert_eq!(reset[0].members.len(), 1);
            }
            if a.bus == 0 {
                prop_assert_eq!(reset[0].scope, ResetScope::Function);
            }
        }
        // Root ports: each in exactly one IOMMU group, in no reset group.
        for rp in &spec.root_ports {
            let n = t.iommu_groups().iter().filter(|g| g.members.contains(&rp.address)).count();
            prop_assert_eq!(n, 1);
            prop_assert!(t.reset_group_of(rp.address).is_none());
        }
        // Ids are indices; members sorted; groups numbered in order of their first member.
        for (i, g) in t.iommu_groups().iter().enumerate() {
            prop_assert_eq!(g.id as usize, i);
            prop_assert!(g.members.windows(2).all(|w| w[0] < w[1]));
        }
        prop_assert!(t.iommu_groups().windows(2).all(|w| w[0].members[0] < w[1].members[0]));
        for (i, g) in t.reset_groups().iter().enumerate() {
            prop_assert_eq!(g.id, i);
            prop_assert!(!g.members.is_empty());
            prop_assert!(g.members.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
