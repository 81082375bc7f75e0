//! `userpci setup`: what a machine needs before userpci drives a device, as SPDK's
//! `scripts/setup.sh` and DPDK's `dpdk-hugepages.py` do it: 2 MiB hugepages (per NUMA node),
//! a hugetlbfs mount, the VFIO modules, the IOMMU state explained, the memlock limit, and the
//! VFIO device nodes given to an unprivileged user or group. `setup status` reports all of it;
//! `setup reset` undoes what setup recorded in its state file, and nothing else.
//!
//! | module | contents |
//! |---|---|
//! | [`hugepages`] | the 2 MiB pools (per node or global), sizes, hugetlbfs mounts |
//! | [`modules`] | `vfio_pci`, `vfio_iommu_type1`, `iommufd`: loaded or not, `modprobe` |
//! | [`iommu`] | IOMMU groups and the kernel command line, with what to do when it is off |
//! | [`memlock`] | `RLIMIT_MEMLOCK` from `/proc/self/limits`, what is needed, how to raise it |
//! | [`accounts`] | users and groups from `/etc/passwd` and `/etc/group` |
//! | [`permissions`] | the device nodes of VFIO functions, their owner and mode |
//! | [`state`] | the state file (`/run/userpci/setup.json`): what setup changed, for reset |
//! | [`plan`] | the request, checked, turned into a list of changes |
//! | [`apply`] | carrying the changes out |
//! | [`reset`] | undoing them (only what setup changed, and only while it is as setup left it) |
//! | [`status`] | the `setup status` report |
//!
//! Every path goes through a [`SystemRoot`], so that all of this runs on a fake tree in a
//! temporary directory; commands go through a [`Host`], so that tests record them.

pub mod accounts;
pub mod apply;
pub mod hugepages;
pub mod iommu;
pub mod memlock;
pub mod modules;
pub mod permissions;
pub mod plan;
pub mod reset;
pub mod state;
pub mod status;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::error::{system, Result, ToolError};

/// Where the system's `/sys`, `/proc`, `/dev`, `/etc` and `/run` are: `/` on a real machine,
/// a temporary directory in the tests. Paths in reports and in the state file are the
/// system's own (`/dev/vfio/12`); [`SystemRoot::path`] turns one into a file to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRoot {
    root: PathBuf,
}

impl Default for SystemRoot {
    fn default() -> Self {
        Self::real()
    }
}

impl SystemRoot {
    /// This machine (`/`).
    pub fn real() -> Self {
        Self::at("/")
    }

    /// A tree that stands for the machine.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory standing for `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True for this machine's own `/` (commands run only there).
    pub fn is_real(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The file standing for the system path `system_path` (`/proc/mounts`).
    pub fn path(&self, system_path: impl AsRef<Path>) -> PathBuf {
        let system_path = system_path.as_ref();
        self.root
            .join(system_path.strip_prefix("/").unwrap_or(system_path))
    }

    /// The contents of `system_path`, or `None` when it does not exist.
    pub fn read_optional(&self, system_path: impl AsRef<Path>) -> Result<Option<String>> {
        let system_path = system_path.as_ref();
        match std::fs::read_to_string(self.path(system_path)) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(system("read", system_path)(err)),
        }
    }

    /// The contents of `system_path`, which must exist.
    pub fn read(&self, system_path: impl AsRef<Path>) -> Result<String> {
        let system_path = system_path.as_ref();
        std::fs::read_to_string(self.path(system_path)).map_err(system("read", system_path))
    }

    /// A number in `system_path` (a sysfs attribute such as `nr_hugepages`).
    pub fn read_number(&self, system_path: impl AsRef<Path>) -> Result<u64> {
        let system_path = system_path.as_ref();
        let text = self.read(system_path)?;
        text.trim().parse().map_err(|_| ToolError::Malformed {
            path: system_path.to_path_buf(),
            message: format!("'{}' is not a number", text.trim()),
        })
    }

    /// True when `system_path` exists (a directory, a node, a file).
    pub fn exists(&self, system_path: impl AsRef<Path>) -> bool {
        self.path(system_path).exists()
    }

    /// The last component of the symlink `system_path` points to (`driver` -> `vfio-pci`),
    /// or `None` when there is no such link.
    pub fn link_name(&self, system_path: impl AsRef<Path>) -> Result<Option<String>> {
        let system_path = system_path.as_ref();
        match std::fs::read_link(self.path(system_path)) {
            Ok(target) => Ok(target
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(system("read the link", system_path)(err)),
        }
    }

    /// The names in the directory `system_path`, sorted; empty when it does not exist.
    pub fn dir_names(&self, system_path: impl AsRef<Path>) -> Result<Vec<String>> {
        let system_path = system_path.as_ref();
        let entries = match std::fs::read_dir(self.path(system_path)) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(system("list", system_path)(err)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(system("list", system_path))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// The effective uid of this process, from `/proc/self/status` (no libc call: on a fake
    /// tree the tree says who we are, so the root check is testable).
    pub fn effective_uid(&self) -> Result<u32> {
        let path = Path::new("/proc/self/status");
        let text = self.read(path)?;
        text.lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|euid| euid.parse().ok())
            .ok_or_else(|| ToolError::Malformed {
                path: path.to_path_buf(),
                message: "no 'Uid:' line with an effective uid".into(),
            })
    }

    /// Refuses `action` unless this process is root.
    pub fn require_root(&self, action: &'static str, hint: &'static str) -> Result<()> {
        if self.effective_uid()? == 0 {
            Ok(())
        } else {
            Err(ToolError::NotRoot { action, hint })
        }
    }
}

/// What setup does to the machine besides plain file I/O: commands, and the writes of kernel
/// attributes whose read-back may differ (a hugepage count the kernel could not fully grant).
pub trait Host {
    /// Runs `program` with `args`; the error is what went wrong, for the message.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<()>;
    /// Writes `value` to the kernel attribute `path` (a real file path, already under the root).
    fn write_attribute(&mut self, path: &Path, value: &str) -> io::Result<()> {
        std::fs::write(path, value)
    }
}

/// The machine itself: commands run only when the root is `/`; under a fake tree they are
/// refused, so that `--root` can never `modprobe` or `mount` on the real system.
#[derive(Debug)]
pub struct RealHost {
    runs_commands: bool,
}

impl RealHost {
    /// The host for `root`.
    pub fn new(root: &SystemRoot) -> Self {
        Self {
            runs_commands: root.is_real(),
        }
    }
}

impl Host for RealHost {
    fn run(&mut self, program: &str, args: &[&str]) -> Result<()> {
        let command = command_line(program, args);
        if !self.runs_commands {
            return Err(ToolError::CommandFailed {
                command,
                message: "not run: the root is a tree other than /".into(),
            });
        }
        let output =
            Command::new(program)
                .args(args)
                .output()
                .map_err(|err| ToolError::CommandFailed {
                    command: command.clone(),
                    message: err.to_string(),
                })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(ToolError::CommandFailed {
            command,
            message: match stderr.trim() {
                "" => output.status.to_string(),
                text => text.to_string(),
            },
        })
    }
}

/// `program args…` as one line, for messages.
pub fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}
