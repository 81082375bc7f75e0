//! Device names from the system's `pci.ids`, read once on the first lookup.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::PathBuf;

/// Where distributions install `pci.ids`.
pub const DEFAULT_PATHS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

/// A lazily loaded `pci.ids`. A missing or unreadable file means no names, never an error:
/// names are a convenience, ids are always printed.
#[derive(Debug)]
pub struct PciIds {
    paths: Vec<PathBuf>,
    table: OnceCell<Table>,
}

#[derive(Debug, Default)]
struct Table {
    vendors: HashMap<u16, String>,
    devices: HashMap<(u16, u16), String>,
}

impl PciIds {
    /// Looks in `paths`, the first readable one wins.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        PciIds {
            paths,
            table: OnceCell::new(),
        }
    }

    /// `Vendor Device`, or just the vendor when pci.ids lacks the device; `None` when neither
    /// is known or there is no pci.ids.
    pub fn name(&self, vendor: u16, device: u16) -> Option<String> {
        let table = self.table.get_or_init(|| self.load());
        let vendor_name = table.vendors.get(&vendor)?;
        Some(match table.devices.get(&(vendor, device)) {
            Some(dev) => format!("{vendor_name} {dev}"),
            None => vendor_name.clone(),
        })
    }

    fn load(&self) -> Table {
        for path in &self.paths {
            match std::fs::read(path) {
                Ok(bytes) => return parse(&String::from_utf8_lossy(&bytes)),
                Err(e) => tracing::debug!(path = %path.display(), error = %e, "no pci.ids here"),
            }
        }
        Table::default()
    }
}

/// `xxxx  Vendor` lines, `\txxxx  Device` lines below them; subsystems (`\t\t`), comments and
/// the class section (`C xx`) are skipped. Malformed lines are skipped too.
fn parse(text: &str) -> Table {
    let mut table = Table::default();
    let mut vendor: Option<u16> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() || line.starts_with("\t\t") {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if let (Some(v), Some((id, name))) = (vendor, split_id(rest)) {
                table.devices.insert((v, id), name.to_string());
            }
            continue;
        }
        vendor = split_id(line).map(|(id, name)| {
            table.vendors.insert(id, name.to_string());
            id
        });
    }
    table
}

fn split_id(line: &str) -> Option<(u16, &str)> {
    let (id, name) = line.split_once("  ")?;
    if id.len() != 4 {
        return None;
    }
    Some((u16::from_str_radix(id, 16).ok()?, name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pciids_vendor_device_and_garbage() {
        let t = parse(
            "# comment\n1b36  Red Hat, Inc.\n\t0010  QEMU NVM Express Controller\n\t\t1af4 1100  \
             QEMU\nzzzz  bad\n\tffff  orphan\nC 01  Mass storage\n\t08  NVM\n",
        );
        assert_eq!(t.vendors[&0x1b36], "Red Hat, Inc.");
        assert_eq!(t.devices[&(0x1b36, 0x0010)], "QEMU NVM Express Controller");
        assert_eq!(t.devices.len(), 1);
    }

    #[test]
    fn pciids_absent_file_gives_no_names() {
        let ids = PciIds::new(vec![PathBuf::from("/nonexistent/pci.ids")]);
        assert_eq!(ids.name(0x8086, 0x10d3), None);
    }
}
