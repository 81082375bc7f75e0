//! The topology file's own types, as written: root ports and functions. Validation and the
//! groups computed from them are above, in `validate.rs`, `groups.rs` and [`Topology`].
//!
//! [`Topology`]: super::Topology

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::device::ResetMethod;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// The largest topology file read, far above any real machine's (a few KiB).
pub const MAX_TOPOLOGY_FILE_BYTES: u64 = 1 << 20;

/// Reads a regular file of at most [`MAX_TOPOLOGY_FILE_BYTES`] as text.
fn read_capped(path: &Path) -> Result<String> {
    let refuse = |reason: String| Error::TopologyFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| refuse(format!("cannot read: {e}")))?;
    if !metadata.is_file() {
        return Err(refuse(format!(
            "not a regular file ({}), expected a TOML topology file",
            file_kind(&metadata.file_type())
        )));
    }
    let too_big = |size: u64| {
        refuse(format!(
            "{size} bytes, more than the {MAX_TOPOLOGY_FILE_BYTES}-byte limit for a topology file"
        ))
    };
    if metadata.len() > MAX_TOPOLOGY_FILE_BYTES {
        return Err(too_big(metadata.len()));
    }
    // The file may grow after the check: read one byte past the cap to notice.
    let mut bytes = Vec::new();
    file.take(MAX_TOPOLOGY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_TOPOLOGY_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| refuse(format!("not UTF-8 text: {e}")))
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn yes() -> bool {
    true
}

fn default_reset_methods() -> Vec<ResetMethod> {
    vec![ResetMethod::Flr]
}

/// A whole simulated machine as a topology file describes it: root ports and functions.
///
/// Order is kept as written; [`Topology`](super::Topology) sorts by address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// PCIe root ports on bus 0, each opening one secondary bus.
    #[serde(default)]
    pub root_ports: Vec<RootPortSpec>,
    /// Endpoint functions, on bus 0 (root-complex integrated) or behind a root port.
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
}

/// A PCIe root port (a PCI-to-PCI bridge on bus 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootPortSpec {
    /// The port's own address, on bus 0 (e.g. `00:02.0`).
    pub address: PciAddress,
    /// The bus number behind the port, where its device sits.
    pub secondary_bus: u8,
    /// ACS isolation at the port (QEMU's `pcie-root-port` has it). Without it every function
    /// below the port joins the port's IOMMU group.
    #[serde(default = "yes")]
    pub acs: bool,
    /// The port has a hotplug slot with a working slot reset (pciehp `reset_slot`).
    #[serde(default)]
    pub hotplug_slot: bool,
    /// Secondary bus reset is allowed (false is the kernel's `PCI_DEV_FLAGS_NO_BUS_RESET`).
    #[serde(default = "yes")]
    pub bus_reset: bool,
}

impl RootPortSpec {
    /// A root port with ACS, secondary bus reset allowed and no hotplug slot.
    pub fn new(address: PciAddress, secondary_bus: u8) -> Self {
        RootPortSpec {
            address,
            secondary_bus,
            acs: true,
            hotplug_slot: false,
            bus_reset: true,
        }
    }
}

/// One endpoint PCI function and the device model that answers for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The function's address.
    pub address: PciAddress,
    /// The device-model name, looked up in a `ModelRegistry` by the bus.
    pub model: String,
    /// Model parameters, passed to the model's factory as written.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
    /// The function implements ACS, which isolates it from the other functions of its slot.
    #[serde(default)]
    pub acs: bool,
    /// How the function can be reset, as sysfs `reset_method` would list it (default `[flr]`).
    #[serde(default = "default_reset_methods")]
    pub reset_methods: Vec<ResetMethod>,
    /// Another owner (process) holds the function from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl FunctionSpec {
    /// A function with no parameters, no ACS, reset methods `[flr]` and no other owner.
    pub fn new(address: PciAddress, model: &str) -> Self {
        FunctionSpec {
            address,
            model: model.to_string(),
            params: toml::Table::new(),
            acs: false,
            reset_methods: default_reset_methods(),
            owner: None,
        }
    }
}

impl TopologySpec {
    /// Parses a topology from TOML. Syntax and type errors become [`Error::Topology`] carrying
    /// the parser's message (with line and column).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Topology(e.to_string()))
    }

    /// Writes the topology as TOML that [`TopologySpec::from_toml_str`] reads back equal.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Topology(format!("cannot write as TOML: {e}")))
    }

    /// Reads and parses a topology file (no validation; see
    /// [`Topology::load`](super::Topology::load)).
    ///
    /// Only a regular file of at most [`MAX_TOPOLOGY_FILE_BYTES`] is read: `/dev/zero` or a
    /// FIFO would otherwise be read without end.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_capped(path)?;
        toml::from_str(&text).map_err(|e| Error::TopologyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes the topology to a file as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_toml_string().map_err(|e| Error::TopologyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|e| Error::TopologyFile {
            path: path.to_path_buf(),
            reason: format!("cannot write: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(path: &Path) -> String {
        match TopologySpec::load(path) {
            Err(Error::TopologyFile {
                path: named,
                reason,
            }) => {
                assert_eq!(named, path);
                reason
            }
            other => panic!("expected a topology file error, got {other:?}"),
        }
    }

    #[test]
    fn device_nodes_and_directories_are_refused_without_reading() {
        assert_eq!(
            reason(Path::new("/dev/zero")),
            "not a regular file (a character device), expected a TOML topology file"
        );
        let dir = std::env::temp_dir();
        assert!(reason(&dir).starts_with("not a regular file (a directory)"));
    }

    #[test]
    fn a_file_over_the_cap_is_refused_naming_its_size_and_the_cap() {
        let path = std::env::temp_dir().join(format!("userpci-big-{}.toml", std::process::id()));
        let big = vec![b'#'; MAX_TOPOLOGY_FILE_BYTES as usize + 1];
        std::fs::write(&path, big).unwrap();
        let why = reason(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            why,
            "1048577 bytes, more than the 1048576-byte limit for a topology file"
        );
        let err = Error::TopologyFile {
            path: path.clone(),
            reason: why,
        };
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
