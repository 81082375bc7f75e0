//! A sysfs tree from the guest capture (`fixtures/sysfs-q35-nvme-multifunction.txt`) with
//! 0000:02:00.0 bound to vfio-pci, and the fake kernel playing it: what
//! `fuzz_vfio_replies.rs` opens. (A trimmed copy of `vfio_fake.rs`'s `Roots`.)

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use userpci_framework::backend::vfio::fake::{FakeFunction, FakeVfio};
use userpci_framework::backend::vfio::{VfioContext, VfioOptions};
use userpci_framework::pci::PciAddress;

const CAPTURE: &str = include_str!("../fixtures/sysfs-q35-nvme-multifunction.txt");

/// One `[kind name]` section of the capture with its `key=value` lines.
type Section = (String, String, Vec<(String, String)>);

/// The function the harness opens.
pub const DEVICE: &str = "0000:02:00.0";

/// The sysfs and /dev roots, removed on drop.
pub struct Roots {
    sys: PathBuf,
    dev: PathBuf,
}

fn temp_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "userpci-fuzz-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

impl Roots {
    /// The capture as a tree, 02:00.0 bound to vfio-pci.
    pub fn new() -> Self {
        let roots = Roots {
            sys: temp_dir("sys"),
            dev: temp_dir("dev"),
        };
        let root = &roots.sys;
        fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(root.join("bus/pci/drivers/vfio-pci")).unwrap();
        let mut paths = std::collections::BTreeMap::new();
        let mut section: Option<Section> = None;
        let mut sections = Vec::new();
        for line in CAPTURE.lines().map(str::trim_end) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("@@") {
                continue;
            }
            if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let (kind, name) = h.split_once(' ').unwrap();
                sections.extend(section.replace((kind.into(), name.into(), Vec::new())));
            } else if let Some((_, _, attrs)) = section.as_mut() {
                let (k, v) = line.split_once('=').unwrap();
                attrs.push((k.into(), v.into()));
            }
        }
        sections.extend(section);
        for (kind, bdf, attrs) in sections {
            if kind == "device" {
                let path = attrs.iter().find(|(k, _)| k == "path").unwrap().1.clone();
                let dir = root.join("devices").join(&path);
                fs::create_dir_all(&dir).unwrap();
                let up = "../".repeat(1 + path.split('/').count());
                for (key, value) in &attrs {
                    match key.as_str() {
                        "path" | "config" | "resource" | "driver" => {}
                        "iommu_group" => symlink(
                            format!("{up}kernel/iommu_groups/{value}"),
                            dir.join("iommu_group"),
                        )
                        .unwrap(),
                        _ => fs::write(dir.join(key), format!("{value}\n")).unwrap(),
                    }
                }
                if bdf == DEVICE {
                    symlink(root.join("bus/pci/drivers/vfio-pci"), dir.join("driver")).unwrap();
                }
                let link = root.join("bus/pci/devices").join(&bdf);
                symlink(format!("../../../devices/{path}"), link).unwrap();
                paths.insert(bdf, path);
            } else {
                let dir = root.join("kernel/iommu_groups").join(&bdf).join("devices");
                fs::create_dir_all(&dir).unwrap();
                let members = &attrs.iter().find(|(k, _)| k == "devices").unwrap().1;
                for member in members.split_whitespace() {
                    let target = format!("../../../../devices/{}", paths[member]);
                    symlink(target, dir.join(member)).unwrap();
                }
            }
        }
        roots
    }

    /// A context on `fake` (group mode: no /dev/iommu).
    pub fn context(&self, fake: &Arc<FakeVfio>) -> VfioContext {
        let options = VfioOptions::new()
            .sysfs_root(&self.sys)
            .dev_root(&self.dev)
            .sys(fake.clone());
        VfioContext::new(options).unwrap()
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.sys);
        let _ = fs::remove_dir_all(&self.dev);
    }
}

/// The fake kernel: QEMU's NVMe controller at [`DEVICE`], group 7, alone in its reset set.
pub fn kernel() -> Arc<FakeVfio> {
    let fake = FakeVfio::new();
    let address: PciAddress = DEVICE.parse().unwrap();
    fake.add_function(FakeFunction::nvme(address, 7));
    fake
}
