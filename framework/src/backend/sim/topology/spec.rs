//! The topology file's own types, as written: root ports and functions. Validation and the
//! groups computed from them are above, in `validate.rs`, `groups.rs` and [`Topology`].
//!
//! [`Topology`]: super::Topology

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::device::ResetMethod;
use crate::error::{Error, Result};
use crate::pci::PciAddress;

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
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::TopologyFile {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
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
