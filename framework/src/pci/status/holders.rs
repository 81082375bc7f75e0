//! Who holds VFIO files: a scan of `/proc/*/fd` (symlinks read, nothing opened).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use super::model::{HolderVisibility, ProcessHolder};
use crate::error::{Error, Result};

/// Holders by the file they hold (`/dev/vfio/devices/vfio0`, `/dev/vfio/6`).
#[derive(Clone, Debug, Default)]
pub struct FdScan {
    /// Every process holding each VFIO file, by pid.
    pub by_file: BTreeMap<String, Vec<ProcessHolder>>,
    /// How much could be seen.
    pub visibility: HolderVisibility,
}

impl FdScan {
    /// The holders of `file`.
    pub fn holders_of(&self, file: &str) -> &[ProcessHolder] {
        self.by_file.get(file).map_or(&[], Vec::as_slice)
    }
}

/// What reading one process's `fd` directory came to.
#[derive(Debug, PartialEq, Eq)]
enum FdDir {
    Read,
    /// Not ours to read (not root): holders may be missing.
    Denied,
    /// The process exited during the scan.
    Gone,
}

fn classify(error: &io::Error) -> FdDir {
    match error.kind() {
        io::ErrorKind::PermissionDenied => FdDir::Denied,
        _ => FdDir::Gone,
    }
}

/// Scans every numeric entry of `proc_root`.
///
/// # Errors
/// [`Error::Sysfs`] when `proc_root` itself cannot be read.
pub fn scan(proc_root: &Path) -> Result<FdScan> {
    let entries = fs::read_dir(proc_root).map_err(|source| Error::Sysfs {
        path: proc_root.to_path_buf(),
        source,
    })?;
    let mut out = FdScan::default();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        match scan_process(&dir, pid, &mut out) {
            FdDir::Read => out.visibility.processes_scanned += 1,
            FdDir::Denied => out.visibility.processes_unreadable += 1,
            FdDir::Gone => {}
        }
    }
    out.visibility.complete = out.visibility.processes_unreadable == 0;
    for holders in out.by_file.values_mut() {
        holders.sort_by_key(|h| h.pid);
        holders.dedup_by_key(|h| h.pid);
    }
    Ok(out)
}

fn scan_process(dir: &Path, pid: u32, out: &mut FdScan) -> FdDir {
    let fds = match fs::read_dir(dir.join("fd")) {
        Ok(fds) => fds,
        Err(e) => return classify(&e),
    };
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        let Some(file) = target.to_str().filter(|t| is_vfio_file(t)) else {
            continue;
        };
        let holder = ProcessHolder {
            pid,
            comm: read_text(&dir.join("comm")).trim().to_string(),
            cmdline: read_text(&dir.join("cmdline"))
                .split('\0')
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            file: file.to_string(),
        };
        out.by_file
            .entry(file.to_string())
            .or_default()
            .push(holder);
    }
    FdDir::Read
}

/// `/dev/vfio/devices/vfioN` or `/dev/vfio/<group number>` (not `/dev/vfio/vfio`, the
/// container).
fn is_vfio_file(target: &str) -> bool {
    if let Some(n) = target.strip_prefix("/dev/vfio/devices/vfio") {
        return !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    }
    target
        .strip_prefix("/dev/vfio/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A small text file of a process, lossy; empty when it vanished or is unreadable.
fn read_text(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_vfio_file_names() {
        assert!(is_vfio_file("/dev/vfio/devices/vfio0"));
        assert!(is_vfio_file("/dev/vfio/12"));
        assert!(!is_vfio_file("/dev/vfio/vfio"));
        assert!(!is_vfio_file("/dev/vfio/devices/vfio"));
        assert!(!is_vfio_file("/dev/iommu"));
        assert!(!is_vfio_file("/dev/vfio/1x"));
    }

    #[test]
    fn holders_permission_denied_counts_as_unreadable() {
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::PermissionDenied)),
            FdDir::Denied
        );
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::NotFound)),
            FdDir::Gone
        );
    }
}
