//! Fixture roots for the VFIO backend's tests: a sysfs tree built from a real guest's capture
//! (`fixtures/sysfs-q35-nvme-multifunction.txt`: NVMe 01:00.0 and 01:00.1 in IOMMU group 6,
//! NVMe 02:00.0 in group 7, e1000e 03:00.0 in group 8) and a /dev directory, for the fake
//! kernel to play. Shared by `vfio_fake.rs` and the VFIO fuzzing harnesses.

#![allow(dead_code)] // each test crate uses its part

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use userpci_framework::backend::vfio::fake::FakeVfio;
use userpci_framework::backend::vfio::{VfioContext, VfioOptions};

const CAPTURE: &str = include_str!("../fixtures/sysfs-q35-nvme-multifunction.txt");

fn temp_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "userpci-vfio-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// One `[kind name]` section of the capture with its `key=value` lines.
type Section = (String, String, Vec<(String, String)>);

/// The sections of the capture.
fn sections() -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in CAPTURE.lines().map(str::trim_end) {
        if line.is_empty() || line.starts_with('#') || line.starts_with("@@") {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (kind, name) = h.split_once(' ').unwrap();
            out.push((kind.into(), name.into(), Vec::new()));
        } else {
            let (k, v) = line.split_once('=').unwrap();
            out.last_mut().unwrap().2.push((k.into(), v.into()));
        }
    }
    out
}

/// A sysfs tree (laid out as the kernel lays out /sys) and a /dev directory, removed on drop.
pub struct Roots {
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl Roots {
    /// The capture as a tree, every function with its captured driver; vfio-pci loaded.
    pub fn capture() -> Self {
        let roots = Roots {
            sys: temp_dir("sys"),
            dev: temp_dir("dev"),
        };
        let root = &roots.sys;
        fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(root.join("bus/pci/drivers/vfio-pci")).unwrap();
        let mut paths = std::collections::BTreeMap::new();
        for (kind, bdf, attrs) in sections() {
            if kind == "device" {
                let path = attrs.iter().find(|(k, _)| k == "path").unwrap().1.clone();
                let dir = root.join("devices").join(&path);
                fs::create_dir_all(&dir).unwrap();
                let up = "../".repeat(1 + path.split('/').count());
                for (key, value) in &attrs {
                    match key.as_str() {
                        "path" | "config" | "resource" => {}
                        "driver" => {
                            fs::create_dir_all(root.join("bus/pci/drivers").join(value)).unwrap();
                            symlink(format!("{up}bus/pci/drivers/{value}"), dir.join("driver"))
                                .unwrap();
                        }
                        "iommu_group" => symlink(
                            format!("{up}kernel/iommu_groups/{value}"),
                            dir.join("iommu_group"),
                        )
                        .unwrap(),
                        _ => fs::write(dir.join(key), format!("{value}\n")).unwrap(),
                    }
                }
                symlink(
                    format!("../../../devices/{path}"),
                    root.join("bus/pci/devices").join(&bdf),
                )
                .unwrap();
                paths.insert(bdf, path);
            } else {
                let dir = root.join("kernel/iommu_groups").join(&bdf).join("devices");
                fs::create_dir_all(&dir).unwrap();
                let members = &attrs.iter().find(|(k, _)| k == "devices").unwrap().1;
                for member in members.split_whitespace() {
                    symlink(
                        format!("../../../../devices/{}", paths[member]),
                        dir.join(member),
                    )
                    .unwrap();
                }
            }
        }
        roots
    }

    pub fn device_dir(&self, bdf: &str) -> PathBuf {
        fs::canonicalize(self.sys.join("bus/pci/devices").join(bdf)).unwrap()
    }

    /// Rebinds a function to `driver` in the tree (`None`: unbound).
    pub fn set_driver(&self, bdf: &str, driver: Option<&str>) {
        let dir = self.device_dir(bdf);
        let _ = fs::remove_file(dir.join("driver"));
        if let Some(driver) = driver {
            let target = self.sys.join("bus/pci/drivers").join(driver);
            fs::create_dir_all(&target).unwrap();
            symlink(target, dir.join("driver")).unwrap();
        }
    }

    /// Binds a function to vfio-pci in the tree, with a cdev entry when `cdev` is given.
    pub fn bind(&self, bdf: &str, cdev: Option<&str>) {
        self.set_driver(bdf, Some("vfio-pci"));
        if let Some(cdev) = cdev {
            fs::create_dir_all(self.device_dir(bdf).join("vfio-dev").join(cdev)).unwrap();
        }
    }

    /// Makes `/dev/iommu` exist.
    pub fn with_iommufd(self) -> Self {
        fs::write(self.dev.join("iommu"), b"").unwrap();
        self
    }

    pub fn options(&self, fake: &Arc<FakeVfio>) -> VfioOptions {
        VfioOptions::new()
            .sysfs_root(&self.sys)
            .dev_root(&self.dev)
            .sys(fake.clone())
    }

    pub fn context(&self, fake: &Arc<FakeVfio>) -> VfioContext {
        VfioContext::new(self.options(fake)).unwrap()
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.sys);
        let _ = fs::remove_dir_all(&self.dev);
    }
}
