//! The sysfs topology reader against a tree built from a real capture
//! (`fixtures/sysfs-q35-nvme-multifunction.txt`, a Linux 6.12 q35 guest with an emulated Intel
//! IOMMU), and read-only against this machine's own `/sys`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use userpci_framework::device::ResetMethod;
use userpci_framework::pci::{PciAddress, PciFunctionInfo, SysfsPci};
use userpci_framework::Error;

const CAPTURE: &str = include_str!("fixtures/sysfs-q35-nvme-multifunction.txt");

// ---- the fixture tree ----

/// One `[kind name]` section of the capture, its `key=value` lines in order.
struct Section {
    kind: String,
    name: String,
    attrs: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_capture(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') || line.starts_with("@@") {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (kind, name) = header
                .split_once(' ')
                .expect("section header `[kind name]`");
            sections.push(Section {
                kind: kind.to_string(),
                name: name.to_string(),
                attrs: Vec::new(),
            });
            continue;
        }
        let (key, value) = line.split_once('=').expect("`key=value` line");
        let section = sections.last_mut().expect("attribute before any section");
        section.attrs.push((key.to_string(), value.to_string()));
    }
    sections
}

fn devices() -> Vec<Section> {
    parse_capture(CAPTURE)
        .into_iter()
        .filter(|s| s.kind == "device")
        .collect()
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("config is hex"))
        .collect()
}

/// A sysfs tree in a temporary directory, laid out as the kernel lays out `/sys`; removed on
/// drop.
struct SysfsTree {
    root: PathBuf,
}

impl SysfsTree {
    /// A fresh empty directory.
    fn empty() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "userpci-sysfs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        SysfsTree { root }
    }

    /// The capture as a tree: `devices/<path>/` with attribute files, `bus/pci/devices/<bdf>`,
    /// `driver` and `iommu_group` symlinks, `bus/pci/drivers/<name>/<bdf>` back links and
    /// `kernel/iommu_groups/N/devices/<bdf>`.
    fn from_capture() -> Self {
        let tree = Self::empty();
        let root = &tree.root;
        let sections = parse_capture(CAPTURE);
        let mut paths = BTreeMap::new();
        fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        for dev in sections.iter().filter(|s| s.kind == "device") {
            let bdf = &dev.name;
            let path = dev.get("path").expect("device path");
            paths.insert(bdf.clone(), path.to_string());
            let dir = root.join("devices").join(path);
            fs::create_dir_all(&dir).unwrap();
            // `up` leads from the device's directory back to the sysfs root.
            let up = "../".repeat(1 + path.split('/').count());
            for (key, value) in &dev.attrs {
                match key.as_str() {
                    "path" => {}
                    "driver" => {
                        let drv = root.join("bus/pci/drivers").join(value);
                        fs::create_dir_all(&drv).unwrap();
                        symlink(format!("../../../../devices/{path}"), drv.join(bdf)).unwrap();
                        symlink(format!("{up}bus/pci/drivers/{value}"), dir.join("driver"))
                            .unwrap();
                    }
                    "iommu_group" => {
                        symlink(format!("{up}kernel/iommu_groups/{value}"), dir.join(key)).unwrap();
                    }
                    "resource" => {
                        let lines: Vec<&str> = value.split(';').filter(|l| !l.is_empty()).collect();
                        fs::write(dir.join(key), lines.join("\n") + "\n").unwrap();
                    }
                    "config" => fs::write(dir.join(key), decode_hex(value)).unwrap(),
                    _ => fs::write(dir.join(key), format!("{value}\n")).unwrap(),
                }
            }
            symlink(format!("{up}bus/pci"), dir.join("subsystem")).unwrap();
            symlink(
                format!("../../../devices/{path}"),
                root.join("bus/pci/devices").join(bdf),
            )
            .unwrap();
        }
        for group in sections.iter().filter(|s| s.kind == "iommu_group") {
            let dir = root.join("kernel/iommu_groups").join(&group.name);
            fs::create_dir_all(dir.join("devices")).unwrap();
            fs::write(
                dir.join("type"),
                format!("{}\n", group.get("type").unwrap()),
            )
            .unwrap();
            for bdf in group.get("devices").unwrap().split_whitespace() {
                let path = &paths[bdf];
                symlink(
                    format!("../../../../devices/{path}"),
                    dir.join("devices").join(bdf),
                )
                .unwrap();
            }
        }
        tree
    }

    fn reader(&self) -> SysfsPci {
        SysfsPci::new(&self.root)
    }

    /// The resolved directory of a function.
    fn device_dir(&self, bdf: &str) -> PathBuf {
        fs::canonicalize(self.root.join("bus/pci/devices").join(bdf)).unwrap()
    }

    fn write(&self, bdf: &str, attr: &str, content: impl AsRef<[u8]>) {
        fs::write(self.device_dir(bdf).join(attr), content).unwrap();
    }
}

impl Drop for SysfsTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn a(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn addrs(texts: &[&str]) -> Vec<PciAddress> {
    texts.iter().map(|t| a(t)).collect()
}

fn hex(text: &str) -> u32 {
    u32::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

fn info(tree: &SysfsTree, bdf: &str) -> PciFunctionInfo {
    tree.reader().function(a(bdf)).unwrap()
}

// ---- facts of the capture ----

#[test]
fn lists_every_captured_function_sorted_with_its_attributes() {
    let tree = SysfsTree::from_capture();
    let listed = tree.reader().list().unwrap();
    let captured = devices();
    let mut expected: Vec<PciAddress> = captured.iter().map(|d| a(&d.name)).collect();
    expected.sort();
    assert_eq!(
        listed.iter().map(|f| f.address).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(listed.len(), 12);

    for dev in &captured {
        let f = listed.iter().find(|f| f.address == a(&dev.name)).unwrap();
        let want = |key| hex(dev.get(key).unwrap());
        assert_eq!(u32::from(f.vendor), want("vendor"), "{}", dev.name);
        assert_eq!(u32::from(f.device), want("device"), "{}", dev.name);
        assert_eq!(u32::from(f.subsystem_vendor), want("subsystem_vendor"));
        assert_eq!(u32::from(f.subsystem_device), want("subsystem_device"));
        assert_eq!(f.class, want("class"), "{}", dev.name);
        assert_eq!(u32::from(f.revision), want("revision"), "{}", dev.name);
        assert_eq!(f.driver.as_deref(), dev.get("driver"), "{}", dev.name);
        let group = dev.get("iommu_group").map(|g| g.parse().unwrap());
        assert_eq!(f.iommu_group, group, "{}", dev.name);
        let methods: Vec<&str> = f.reset_methods.iter().map(|m| m.sysfs_name()).collect();
        assert_eq!(methods.join(" "), dev.get("reset_method").unwrap_or(""));
        assert_eq!(f.numa_node, None, "numa_node=-1 in the capture");
        assert_eq!(f.vfio_dev, None, "nothing was bound to vfio-pci");
        assert!(f.sysfs_path.ends_with(dev.get("path").unwrap()));
        // The fixture's links resolve where the kernel's do.
        let root = fs::canonicalize(&tree.root).unwrap();
        let resolve = |link| fs::canonicalize(f.sysfs_path.join(link)).unwrap();
        if let Some(drv) = &f.driver {
            assert_eq!(resolve("driver"), root.join("bus/pci/drivers").join(drv));
        }
        let group_dir = root.join(format!("kernel/iommu_groups/{}", f.iommu_group.unwrap()));
        assert_eq!(resolve("iommu_group"), group_dir);
        assert_eq!(
            fs::canonicalize(group_dir.join("devices").join(&dev.name)).unwrap(),
            f.sysfs_path
        );
    }
}

#[test]
fn nvme_functions_share_iommu_group_6() {
    let tree = SysfsTree::from_capture();
    assert_eq!(info(&tree, "0000:01:00.0").iommu_group, Some(6));
    assert_eq!(info(&tree, "0000:01:00.1").iommu_group, Some(6));
    assert_eq!(info(&tree, "0000:02:00.0").iommu_group, Some(7));
    let groups = tree.reader().iommu_groups().unwrap();
    assert_eq!(groups[&6], addrs(&["0000:01:00.0", "0000:01:00.1"]));
    assert_eq!(groups[&7], addrs(&["0000:02:00.0"]));
}

#[test]
fn ich9_functions_share_one_group_and_groups_agree_with_links() {
    let tree = SysfsTree::from_capture();
    let groups = tree.reader().iommu_groups().unwrap();
    assert_eq!(
        groups.keys().copied().collect::<Vec<_>>(),
        (0..=8).collect::<Vec<u32>>()
    );
    assert_eq!(
        groups[&5],
        addrs(&["0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3"])
    );
    for f in tree.reader().list().unwrap() {
        let group = f
            .iommu_group
            .expect("every function has a group with the IOMMU on");
        assert!(groups[&group].contains(&f.address), "{}", f.address);
    }
}

#[test]
fn reset_methods_as_the_kernel_offers_them() {
    use ResetMethod::{Bus, Flr, Pm};
    let tree = SysfsTree::from_capture();
    assert_eq!(info(&tree, "0000:01:00.0").reset_methods, [Flr, Bus]);
    assert_eq!(info(&tree, "0000:01:00.1").reset_methods, [Flr]);
    assert_eq!(info(&tree, "0000:02:00.0").reset_methods, [Flr, Bus]);
    assert_eq!(info(&tree, "0000:03:00.0").reset_methods, [Pm, Bus]);
    assert!(
        info(&tree, "0000:00:02.0").reset_methods.is_empty(),
        "no reset_method file"
    );
}

#[test]
fn parent_bridges_follow_the_device_path() {
    let tree = SysfsTree::from_capture();
    for (bdf, bridge) in [
        ("0000:01:00.0", Some("0000:00:02.0")),
        ("0000:01:00.1", Some("0000:00:02.0")),
        ("0000:02:00.0", Some("0000:00:03.0")),
        ("0000:03:00.0", Some("0000:00:04.0")),
        ("0000:00:02.0", None),
        ("0000:00:1f.3", None),
    ] {
        assert_eq!(info(&tree, bdf).parent_bridge, bridge.map(a), "{bdf}");
    }
    let under_03: Vec<PciAddress> = tree
        .reader()
        .list()
        .unwrap()
        .into_iter()
        .filter(|f| f.parent_bridge == Some(a("0000:00:03.0")))
        .map(|f| f.address)
        .collect();
    assert_eq!(
        under_03,
        addrs(&["0000:02:00.0"]),
        "02:00.0 is alone under 00:03.0"
    );
}

#[test]
fn siblings_are_the_other_functions_of_the_slot() {
    let reader = SysfsTree::from_capture();
    let reader = reader.reader();
    assert_eq!(
        reader.siblings(a("01:00.0")).unwrap(),
        addrs(&["0000:01:00.1"])
    );
    assert_eq!(
        reader.siblings(a("01:00.1")).unwrap(),
        addrs(&["0000:01:00.0"])
    );
    assert_eq!(
        reader.siblings(a("00:1f.0")).unwrap(),
        addrs(&["0000:00:1f.2", "0000:00:1f.3"])
    );
    assert!(reader.siblings(a("02:00.0")).unwrap().is_empty());
    assert!(reader.siblings(a("00:02.0")).unwrap().is_empty());
}

#[test]
fn drivers_bridges_and_ids() {
    let tree = SysfsTree::from_capture();
    let nvme = info(&tree, "0000:01:00.0");
    assert_eq!(nvme.driver.as_deref(), Some("nvme"));
    assert_eq!((nvme.vendor, nvme.device), (0x1b36, 0x0010));
    assert_eq!(
        (nvme.subsystem_vendor, nvme.subsystem_device),
        (0x1af4, 0x1100)
    );
    assert_eq!((nvme.class, nvme.revision), (0x010802, 0x02));
    assert!(!nvme.is_bridge);
    assert_eq!(
        info(&tree, "0000:03:00.0").driver.as_deref(),
        Some("e1000e")
    );
    assert_eq!(
        info(&tree, "0000:00:1f.3").driver.as_deref(),
        Some("i801_smbus")
    );
    assert_eq!(info(&tree, "0000:00:00.0").driver, None);
    assert_eq!(info(&tree, "0000:00:1f.2").class, 0x01_0601);
    for port in ["0000:00:02.0", "0000:00:03.0", "0000:00:04.0"] {
        let f = info(&tree, port);
        assert!(f.is_bridge, "{port}");
        assert_eq!(f.driver.as_deref(), Some("pcieport"));
    }
    let bridges = tree
        .reader()
        .list()
        .unwrap()
        .into_iter()
        .filter(|f| f.is_bridge)
        .count();
    assert_eq!(
        bridges, 3,
        "host and ISA bridges (0x0600, 0x0601) are not PCI-to-PCI"
    );
}

#[test]
fn vfio_cdev_binding_is_seen() {
    let tree = SysfsTree::from_capture();
    let dir = tree.device_dir("0000:02:00.0");
    fs::remove_file(dir.join("driver")).unwrap();
    fs::create_dir_all(tree.root.join("bus/pci/drivers/vfio-pci")).unwrap();
    symlink("../../../../bus/pci/drivers/vfio-pci", dir.join("driver")).unwrap();
    fs::create_dir_all(dir.join("vfio-dev/vfio0")).unwrap();
    let f = info(&tree, "0000:02:00.0");
    assert_eq!(f.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(f.vfio_dev.as_deref(), Some("vfio0"));
}

#[test]
fn numa_node_values() {
    let tree = SysfsTree::from_capture();
    tree.write("0000:01:00.0", "numa_node", "1\n");
    assert_eq!(info(&tree, "0000:01:00.0").numa_node, Some(1));
    fs::remove_file(tree.device_dir("0000:01:00.0").join("numa_node")).unwrap();
    assert_eq!(
        info(&tree, "0000:01:00.0").numa_node,
        None,
        "kernel without NUMA"
    );
    tree.write("0000:01:00.0", "numa_node", "zero\n");
    assert!(matches!(
        tree.reader().function(a("01:00.0")),
        Err(Error::SysfsFormat { expected, .. }) if expected.contains("NUMA")
    ));
}

#[test]
fn serialises_for_management_tools() {
    let tree = SysfsTree::from_capture();
    let f = info(&tree, "0000:01:00.0");
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["address"], "0000:01:00.0");
    assert_eq!(json["parent_bridge"], "0000:00:02.0");
    assert_eq!(json["reset_methods"], serde_json::json!(["flr", "bus"]));
    assert_eq!(json["iommu_group"], 6);
    assert_eq!(json["driver"], "nvme");
    assert_eq!(json["numa_node"], serde_json::Value::Null);
    let back: PciFunctionInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back, f);
}

#[test]
fn iommu_off_means_no_groups() {
    let tree = SysfsTree::from_capture();
    fs::remove_dir_all(tree.root.join("kernel")).unwrap();
    for f in tree.reader().list().unwrap() {
        fs::remove_file(f.sysfs_path.join("iommu_group")).unwrap();
    }
    assert!(tree.reader().iommu_groups().unwrap().is_empty());
    assert!(tree
        .reader()
        .list()
        .unwrap()
        .iter()
        .all(|f| f.iommu_group.is_none()));
}

#[test]
fn entries_that_are_not_representable_addresses_are_skipped() {
    let tree = SysfsTree::from_capture();
    // An Intel VMD domain (0x10000 and up) does not fit PciAddress's 16-bit domain.
    let dir = tree.root.join("devices/pci10000:00/10000:00:00.0");
    fs::create_dir_all(&dir).unwrap();
    symlink(
        "../../../devices/pci10000:00/10000:00:00.0",
        tree.root.join("bus/pci/devices/10000:00:00.0"),
    )
    .unwrap();
    assert_eq!(tree.reader().list().unwrap().len(), 12);
}

// ---- errors ----

#[test]
fn corrupt_vendor_is_a_format_error_naming_file_and_value() {
    let tree = SysfsTree::from_capture();
    tree.write("0000:01:00.0", "vendor", "0xzz36\n");
    let err = tree.reader().function(a("01:00.0")).unwrap_err();
    match &err {
        Error::SysfsFormat {
            path,
            value,
            expected,
        } => {
            assert!(
                path.ends_with("0000:00:02.0/0000:01:00.0/vendor"),
                "{path:?}"
            );
            assert_eq!(value, "0xzz36");
            assert!(expected.contains("16-bit hex"), "{expected}");
        }
        other => panic!("expected SysfsFormat, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("0000:01:00.0/vendor") && message.contains("\"0xzz36\""));
    assert!(matches!(
        tree.reader().list(),
        Err(Error::SysfsFormat { .. })
    ));
}

#[test]
fn out_of_range_empty_and_binary_attributes_are_format_errors() {
    let tree = SysfsTree::from_capture();
    for (attr, content) in [
        ("vendor", &b"0x11b36\n"[..]),
        ("device", b""),
        ("revision", b"0x100\n"),
        ("class", b"0x01080200\n"),
        ("subsystem_vendor", b"\xff\xfe\n"),
    ] {
        let tree_attr = tree.device_dir("0000:01:00.1").join(attr);
        let saved = fs::read(&tree_attr).unwrap();
        fs::write(&tree_attr, content).unwrap();
        match tree.reader().function(a("01:00.1")) {
            Err(Error::SysfsFormat { path, .. }) => assert_eq!(path, tree_attr),
            other => panic!("{attr}={content:?}: expected SysfsFormat, got {other:?}"),
        }
        fs::write(&tree_attr, saved).unwrap();
    }
    tree.reader().function(a("01:00.1")).unwrap();
}

#[test]
fn unknown_reset_method_is_a_format_error() {
    let tree = SysfsTree::from_capture();
    tree.write("0000:01:00.1", "reset_method", "flr warm_reset\n");
    match tree.reader().function(a("01:00.1")) {
        Err(Error::SysfsFormat {
            path,
            value,
            expected,
        }) => {
            assert!(path.ends_with("0000:01:00.1/reset_method"), "{path:?}");
            assert_eq!(value, "flr warm_reset");
            assert!(
                expected.contains("flr") && expected.contains("bus"),
                "{expected}"
            );
        }
        other => panic!("expected SysfsFormat, got {other:?}"),
    }
}

#[test]
fn missing_vendor_file_names_the_path() {
    let tree = SysfsTree::from_capture();
    let vendor = tree.device_dir("0000:03:00.0").join("vendor");
    fs::remove_file(&vendor).unwrap();
    match tree.reader().function(a("03:00.0")) {
        Err(Error::Sysfs { path, source }) => {
            assert_eq!(path, vendor);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected Sysfs, got {other:?}"),
    }
}

#[test]
fn absent_function_is_no_such_device() {
    let tree = SysfsTree::from_capture();
    let reader = tree.reader();
    let missing = a("0000:05:00.0");
    let err = reader.function(missing).unwrap_err();
    assert!(matches!(err, Error::NoSuchDevice { device, .. } if device == missing));
    let expected = format!(
        "no PCI function 0000:05:00.0 in {}; `userpci list` shows the functions there",
        tree.root.join("bus/pci/devices").display()
    );
    assert_eq!(err.to_string(), expected);
    assert!(
        matches!(reader.siblings(missing), Err(Error::NoSuchDevice { device, .. }) if device == missing)
    );
}

#[test]
fn missing_tree_names_the_path() {
    let tree = SysfsTree::empty();
    let root = tree.root.join("no-sysfs-here");
    let reader = SysfsPci::new(&root);
    let want = root.join("bus/pci/devices");
    for result in [
        reader.list().map(|_| ()),
        reader.function(a("01:00.0")).map(|_| ()),
        reader.siblings(a("01:00.0")).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            err.to_string().contains(&want.display().to_string()),
            "{err}"
        );
        match err {
            Error::Sysfs { path, source } => {
                assert_eq!(path, want);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Sysfs, got {other:?}"),
        }
    }
    assert!(reader.iommu_groups().unwrap().is_empty());
}

// ---- this machine, read-only ----

#[test]
fn reads_this_machines_sysfs() {
    let reader = SysfsPci::system();
    if !Path::new("/sys/bus/pci/devices").exists() {
        eprintln!("no /sys/bus/pci on this machine; skipping");
        return;
    }
    let functions = reader.list().unwrap();
    let groups = reader.iommu_groups().unwrap();
    for f in &functions {
        assert!(
            f.vendor != 0 && f.vendor != 0xffff,
            "{}: vendor {:#06x}",
            f.address,
            f.vendor
        );
        assert_eq!(reader.function(f.address).unwrap().address, f.address);
        if let Some(group) = f.iommu_group {
            assert!(groups[&group].contains(&f.address), "{}", f.address);
        }
        for sibling in reader.siblings(f.address).unwrap() {
            assert!(sibling.same_slot(&f.address) && sibling != f.address);
        }
    }
}
