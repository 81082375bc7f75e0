//! `pci::status` on sysfs/proc fixture trees built from a real q35 capture
//! (`fixtures/status/build.py`), on broken trees, and read-only on this machine's `/sys`.

use std::fs;
use std::path::{Path, PathBuf};

use userpci_framework::pci::devset::ResetScope;
use userpci_framework::pci::status::{
    read_status, GroupStatus, HeldBy, StatusSources, SystemStatus, Verdict,
};
use userpci_framework::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/status")
        .join(name)
}

fn sources(sys: PathBuf, proc_root: PathBuf) -> StatusSources {
    StatusSources {
        sysfs_root: sys,
        proc_root,
        pci_ids: vec![fixture("pci.ids")],
    }
}

fn status(name: &str) -> SystemStatus {
    read_status(&sources(
        fixture(name).join("sys"),
        fixture(name).join("proc"),
    ))
    .unwrap()
}

fn group<'a>(s: &'a SystemStatus, bdf: &str) -> &'a GroupStatus {
    s.groups
        .iter()
        .find(|g| g.members.iter().any(|m| m.address == bdf))
        .unwrap_or_else(|| panic!("no group holds {bdf}"))
}

fn members(g: &GroupStatus) -> Vec<&str> {
    g.members.iter().map(|m| m.address.as_str()).collect()
}

#[test]
fn status_q35_groups_follow_the_kernel_rule() {
    let s = status("q35");
    assert_eq!(s.schema, 1);
    assert!(s.iommu.present);
    assert_eq!(s.iommu.group_count, 9);
    // PCI-to-PCI bridges (the three root ports) are not reset-group members; 9 functions remain.
    let all: usize = s.groups.iter().map(|g| g.members.len()).sum();
    assert_eq!(all, 9);
    let nvme = group(&s, "0000:01:00.0");
    assert_eq!(members(nvme), ["0000:01:00.0", "0000:01:00.1"]);
    // No hotplug slot: the bus of root port 00:02.0, across the bridge.
    assert_eq!(nvme.scope, ResetScope::Bus);
    assert_eq!(nvme.bridge.as_deref(), Some("0000:00:02.0"));
    assert!(nvme
        .members
        .iter()
        .all(|m| m.reaches.bus && !m.reaches.slot));
    assert_eq!(nvme.members[1].reset_method, ["flr"]);
    assert!(nvme.members[1].reaches.flr);
    for bdf in ["0000:00:00.0", "0000:00:1f.2"] {
        let g = group(&s, bdf);
        assert_eq!(g.scope, ResetScope::Function);
        assert_eq!(g.verdict, Verdict::Blocked);
        assert!(g.blockers[0].contains("root bus"), "{:?}", g.blockers);
    }
    let e1000e = group(&s, "0000:03:00.0");
    assert_eq!(e1000e.members[0].vendor_id, "0x8086");
    assert_eq!(e1000e.members[0].device_id, "0x10d3");
    assert_eq!(e1000e.members[0].reset_method, ["pm", "bus"]);
}

#[test]
fn status_kernel_drivers_hold_and_setup_is_listed() {
    let s = status("q35");
    let nvme = group(&s, "0000:01:00.0");
    assert_eq!(
        nvme.members[0].held_by,
        HeldBy::KernelDriver {
            driver: "nvme".into()
        }
    );
    assert_eq!(nvme.verdict, Verdict::AfterSetup);
    assert!(nvme.blockers.is_empty());
    assert!(nvme
        .needs
        .iter()
        .any(|n| n == "unbind 0000:01:00.1 from nvme, bind it to vfio-pci"));
    assert_eq!(nvme.legacy_group_files, ["/dev/vfio/6"]);
}

#[test]
fn status_slot_reset_makes_a_slot_group() {
    let s = status("q35-slot");
    let nvme = group(&s, "0000:01:00.0");
    assert_eq!(nvme.scope, ResetScope::Slot);
    assert!(nvme
        .members
        .iter()
        .all(|m| m.reaches.slot && !m.reaches.bus));
    assert_eq!(group(&s, "0000:02:00.0").scope, ResetScope::Bus);
}

#[test]
fn status_processes_found_through_cdev_and_group_fds() {
    let s = status("q35-held");
    assert!(s.holders.complete);
    let nvme = group(&s, "0000:01:00.0");
    assert_eq!(nvme.verdict, Verdict::HeldByOne { pid: 4242 });
    let holder = &nvme.members[1].processes[0];
    assert_eq!(holder.comm, "nvme-app");
    assert_eq!(holder.cmdline, "nvme-app --fixture");
    assert_eq!(holder.file, "/dev/vfio/devices/vfio1");
    assert_eq!(nvme.members[1].vfio_cdev.as_deref(), Some("vfio1"));
    let by_group = group(&s, "0000:02:00.0");
    assert_eq!(by_group.members[0].processes[0].file, "/dev/vfio/7");
    assert_eq!(by_group.verdict, Verdict::HeldByOne { pid: 4243 });
    let idle = group(&s, "0000:03:00.0");
    assert_eq!(idle.members[0].held_by, HeldBy::VfioIdle);
    assert_eq!(idle.verdict, Verdict::AfterSetup);
    assert_eq!(
        idle.needs,
        ["open /dev/vfio/devices/vfio3 (0000:03:00.0) and bind it to the caller's iommufd"]
    );
}

#[test]
fn status_split_group_is_blocked_naming_both_owners() {
    let s = status("q35-split");
    let nvme = group(&s, "0000:01:00.0");
    assert_eq!(nvme.verdict, Verdict::Blocked);
    assert_eq!(
        nvme.blockers,
        [
            "0000:01:00.0 is owned by pid 4242 (nvme-app) through /dev/vfio/devices/vfio0",
            "0000:01:00.1 is owned by pid 4244 (net-app) through /dev/vfio/devices/vfio1",
        ]
    );
}

#[test]
fn status_names_from_pci_ids_when_present() {
    let s = status("q35");
    let nvme = group(&s, "0000:01:00.0");
    assert_eq!(
        nvme.members[0].name.as_deref(),
        Some("Red Hat, Inc. QEMU NVM Express Controller")
    );
    // Vendor known, device not in the file: the vendor alone.
    assert_eq!(
        group(&s, "0000:03:00.0").members[0].name.as_deref(),
        Some("Intel Corporation")
    );
    let bare = read_status(&StatusSources {
        pci_ids: vec![fixture("no-such-pci.ids")],
        ..sources(fixture("q35/sys"), fixture("q35/proc"))
    })
    .unwrap();
    assert!(bare
        .groups
        .iter()
        .flat_map(|g| &g.members)
        .all(|m| m.name.is_none()));
}

/// A copy of a fixture tree that a test may break.
struct Scratch(PathBuf);

impl Scratch {
    fn of(name: &str) -> Self {
        let dst =
            std::env::temp_dir().join(format!("userpci-status-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dst);
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(fixture(name))
            .arg(&dst)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        Scratch(dst)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn status_garbage_names_the_file_and_value() {
    let t = Scratch::of("q35-slot");
    let vendor =
        t.0.join("sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0/vendor");
    fs::write(&vendor, "0xnvme\n").unwrap();
    let err = read_status(&sources(t.0.join("sys"), t.0.join("proc"))).unwrap_err();
    match &err {
        Error::SysfsFormat { path, value, .. } => {
            assert_eq!(path, &vendor);
            assert_eq!(value, "0xnvme");
        }
        other => panic!("unexpected error {other}"),
    }
    fs::write(&vendor, "0x1b36\n").unwrap();
    fs::write(t.0.join("sys/bus/pci/slots/2/address"), "slot two\n").unwrap();
    let err = read_status(&sources(t.0.join("sys"), t.0.join("proc"))).unwrap_err();
    assert!(err.to_string().contains("slot two"), "{err}");
    assert!(err.to_string().contains("bus/pci/slots/2/address"), "{err}");
}

#[test]
fn status_missing_roots_are_errors_naming_them() {
    let err = read_status(&sources(
        PathBuf::from("/nonexistent/sys"),
        fixture("q35/proc"),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/sys"), "{err}");
    let err = read_status(&sources(
        fixture("q35/sys"),
        PathBuf::from("/nonexistent/proc"),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/proc"), "{err}");
}

#[test]
fn status_this_machine_reads_without_panicking() {
    // Read-only. Whatever the host has, every endpoint is in exactly one group, and without
    // IOMMU groups every group says why VFIO cannot take it.
    let s = read_status(&StatusSources::default()).unwrap();
    let sys = userpci_framework::pci::SysfsPci::system().list().unwrap();
    let endpoints = sys.iter().filter(|f| !f.is_bridge).count();
    assert_eq!(
        s.groups.iter().map(|g| g.members.len()).sum::<usize>(),
        endpoints
    );
    if !s.iommu.present {
        assert!(s
            .groups
            .iter()
            .all(|g| g.blockers.iter().any(|b| b.starts_with("no IOMMU"))));
    }
}
