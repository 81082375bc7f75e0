//! A fake machine in a temporary directory for `userpci setup`: sysfs hugepage pools, VFIO
//! functions and their device nodes, /proc files, /etc/passwd; and a host that records the
//! commands setup runs (and can grant fewer hugepages than asked, as a short kernel does).

#![allow(dead_code)] // each test file uses a part of it

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use userpci::tools::error::Result;
use userpci::tools::setup::{command_line, Host, SystemRoot};

/// The fake tree; removed on drop.
pub struct FakeSystem {
    pub dir: PathBuf,
}

pub const POOL: &str = "hugepages/hugepages-2048kB";

impl Drop for FakeSystem {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl FakeSystem {
    /// An empty machine: root is running, memlock 8 MiB, no IOMMU, no pools, no mounts.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("userpci-setup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fake = Self { dir };
        fake.write("/proc/self/status", "Name:\tuserpci\nUid:\t0\t0\t0\t0\n");
        fake.write(
            "/proc/self/limits",
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max locked memory         8388608              8388608              bytes     \n",
        );
        fake.write(
            "/proc/cmdline",
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n",
        );
        fake.write(
            "/proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\n",
        );
        fake.write("/proc/mounts", "proc /proc proc rw 0 0\n");
        fake.mkdir("/sys/kernel/iommu_groups");
        fake.write(
            "/etc/passwd",
            &format!(
                "root:x:0:0:root:/root:/bin/sh\nalice:x:{}:{}::/home/alice:/bin/sh\n",
                alice_uid(),
                alice_uid()
            ),
        );
        fake.write(
            "/etc/group",
            &format!("root:x:0:\nvfio:x:{}:\n", alice_uid()),
        );
        fake
    }

    pub fn root(&self) -> SystemRoot {
        SystemRoot::at(&self.dir)
    }

    pub fn path(&self, system_path: &str) -> PathBuf {
        self.dir.join(system_path.trim_start_matches('/'))
    }

    pub fn write(&self, system_path: &str, text: &str) {
        let path = self.path(system_path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn read(&self, system_path: &str) -> String {
        fs::read_to_string(self.path(system_path)).unwrap()
    }

    pub fn mkdir(&self, system_path: &str) {
        fs::create_dir_all(self.path(system_path)).unwrap();
    }

    /// The machine-wide 2 MiB pool with `pages`.
    pub fn global_pool(&self, pages: u64) {
        let dir = format!("/sys/kernel/mm/{POOL}");
        self.write(&format!("{dir}/nr_hugepages"), &format!("{pages}\n"));
        self.write(&format!("{dir}/free_hugepages"), &format!("{pages}\n"));
    }

    /// NUMA nodes with these page counts (and the machine-wide pool, their sum).
    pub fn numa_pools(&self, pages: &[u64]) {
        for (node, pages) in pages.iter().enumerate() {
            let dir = format!("/sys/devices/system/node/node{node}/{POOL}");
            self.write(&format!("{dir}/nr_hugepages"), &format!("{pages}\n"));
            self.write(&format!("{dir}/free_hugepages"), &format!("{pages}\n"));
        }
        self.global_pool(pages.iter().sum());
    }

    /// The VFIO modules loaded, a hugetlbfs mount, and the shared nodes (/dev/iommu 0660,
    /// /dev/vfio/vfio 0666): a machine that only lacks pages and permissions.
    pub fn vfio_ready(&self) {
        for module in ["vfio_pci", "iommufd", "vfio_iommu_type1"] {
            self.mkdir(&format!("/sys/module/{module}"));
        }
        self.mkdir("/sys/bus/pci/drivers/vfio-pci");
        self.write(
            "/proc/mounts",
            "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n",
        );
        self.node("/dev/iommu", as_the_kernel_makes(0o660));
        self.node("/dev/vfio/vfio", 0o666);
    }

    /// A device node (a plain file standing for one) with `mode`, owned by root when we are.
    pub fn node(&self, system_path: &str, mode: u32) {
        self.write(system_path, "");
        fs::set_permissions(self.path(system_path), fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A function bound to `driver` in IOMMU group `group`, with the VFIO cdev `cdev` and
    /// their nodes (0600) when it is vfio-pci's.
    pub fn function(&self, bdf: &str, driver: &str, group: u32, cdev: Option<&str>) {
        let dir = self.path(&format!("/sys/bus/pci/devices/{bdf}"));
        fs::create_dir_all(&dir).unwrap();
        self.mkdir(&format!("/sys/bus/pci/drivers/{driver}"));
        self.mkdir(&format!("/sys/kernel/iommu_groups/{group}/devices"));
        symlink(
            format!("../../../bus/pci/drivers/{driver}"),
            dir.join("driver"),
        )
        .unwrap();
        symlink(
            format!("../../../kernel/iommu_groups/{group}"),
            dir.join("iommu_group"),
        )
        .unwrap();
        self.write(
            "/proc/cmdline",
            "BOOT_IMAGE=/vmlinuz intel_iommu=on iommu=pt\n",
        );
        if driver != "vfio-pci" {
            return;
        }
        let mode = as_the_kernel_makes(0o600);
        self.node(&format!("/dev/vfio/{group}"), mode);
        if let Some(cdev) = cdev {
            fs::create_dir_all(dir.join("vfio-dev").join(cdev)).unwrap();
            self.node(&format!("/dev/vfio/devices/{cdev}"), mode);
        }
    }

    /// Makes the tree say that an unprivileged user runs userpci.
    pub fn not_root(&self) {
        self.write(
            "/proc/self/status",
            "Name:\tuserpci\nUid:\t1000\t1000\t1000\t1000\n",
        );
    }

    /// (uid, gid, mode) of a node.
    pub fn owner(&self, system_path: &str) -> (u32, u32, u32) {
        let metadata = fs::metadata(self.path(system_path)).unwrap();
        (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777)
    }
}

/// A node's `mode` as the kernel makes it when the tests run as root; without the owner's
/// read and write otherwise, so that giving the node to alice (our own uid then) still
/// changes something.
pub fn as_the_kernel_makes(mode: u32) -> u32 {
    if alice_uid() == 1000 {
        mode
    } else {
        mode & !0o600
    }
}

/// alice's uid: 1000 when the tests run as root (chown to anyone works), else our own uid (an
/// unprivileged chown can only keep it), so the tests pass either way.
pub fn alice_uid() -> u32 {
    // Once per test binary: the tests run in parallel and would race on the probe file.
    static UID: OnceLock<u32> = OnceLock::new();
    *UID.get_or_init(|| {
        let probe = std::env::temp_dir().join(format!("userpci-uid-probe-{}", std::process::id()));
        fs::write(&probe, "").unwrap();
        let uid = fs::metadata(&probe).unwrap().uid();
        let _ = fs::remove_file(&probe);
        if uid == 0 {
            1000
        } else {
            uid
        }
    })
}

/// Records commands instead of running them; `mount`/`umount` edit the fake /proc/mounts;
/// a pool never gets more than `max_pages` (a kernel short of memory).
pub struct RecordingHost {
    pub root: PathBuf,
    pub commands: Vec<String>,
    pub max_pages: Option<u64>,
}

impl RecordingHost {
    pub fn new(fake: &FakeSystem) -> Self {
        Self {
            root: fake.dir.clone(),
            commands: Vec::new(),
            max_pages: None,
        }
    }

    fn system_path(&self, real: &str) -> String {
        format!(
            "/{}",
            Path::new(real).strip_prefix(&self.root).unwrap().display()
        )
    }
}

impl Host for RecordingHost {
    fn run(&mut self, program: &str, args: &[&str]) -> Result<()> {
        self.commands.push(command_line(program, args));
        let mounts = self.root.join("proc/mounts");
        let table = fs::read_to_string(&mounts).unwrap_or_default();
        match program {
            "mount" => {
                let target = self.system_path(args[args.len() - 1]);
                let line = format!("nodev {target} hugetlbfs rw,pagesize=2M 0 0\n");
                fs::write(&mounts, table + &line).unwrap();
            }
            "umount" => {
                let target = self.system_path(args[0]);
                let kept: String = table
                    .lines()
                    .filter(|line| line.split_whitespace().nth(1) != Some(target.as_str()))
                    .map(|line| format!("{line}\n"))
                    .collect();
                fs::write(&mounts, kept).unwrap();
            }
            _ => {}
        }
        Ok(())
    }

    fn write_attribute(&mut self, path: &Path, value: &str) -> std::io::Result<()> {
        let asked: u64 = value.parse().unwrap();
        let granted = self.max_pages.map_or(asked, |max| asked.min(max));
        fs::write(path, format!("{granted}\n"))
    }
}
