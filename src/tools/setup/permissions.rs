//! The device nodes through which a process drives a VFIO function, and who may open them.
//!
//! A function bound to vfio-pci appears as `/dev/vfio/<group>` (the group interface) and, on
//! kernels with VFIO cdev, `/dev/vfio/devices/vfioN`; iommufd adds `/dev/iommu`, the group
//! container `/dev/vfio/vfio` (usually 0666 already). Giving a user these nodes, and a memlock
//! limit, is all an unprivileged `userpci nvme perf --device` needs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::accounts::{Group, User};
use super::SystemRoot;
use crate::framework::backend::vfio::is_vfio_driver;
use crate::framework::pci::PciAddress;
use crate::tools::error::{invalid, system, Result};

/// The nodes every VFIO user shares (given only when not already open to everyone).
pub const SHARED_NODES: [&str; 2] = ["/dev/iommu", "/dev/vfio/vfio"];

/// Owner, group and permission bits of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o660`), written as an octal string (`"0660"`).
    #[serde(with = "octal")]
    pub mode: u32,
}

/// Who setup gives the nodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// `--user`: the user owns the nodes, with read and write.
    User(User),
    /// `--group`: the nodes' group, with read and write for it.
    Group(Group),
}

impl Grantee {
    /// The ownership of a node given to this grantee, from its `current` one.
    pub fn grant(&self, current: Ownership) -> Ownership {
        match self {
            Grantee::User(user) => Ownership {
                uid: user.uid,
                mode: current.mode | 0o600,
                ..current
            },
            Grantee::Group(group) => Ownership {
                gid: group.gid,
                mode: current.mode | 0o060,
                ..current
            },
        }
    }

    /// `user alice (uid 1000)`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Grantee::User(user) => format!("user {} (uid {})", user.name, user.uid),
            Grantee::Group(group) => format!("group {} (gid {})", group.name, group.gid),
        }
    }
}

/// The ownership of the node `system_path`.
pub fn ownership(root: &SystemRoot, system_path: &str) -> Result<Ownership> {
    let metadata =
        std::fs::metadata(root.path(system_path)).map_err(system("stat", system_path))?;
    Ok(Ownership {
        uid: metadata.uid(),
        gid: metadata.gid(),
        mode: metadata.mode() & 0o7777,
    })
}

/// Gives `system_path` the ownership `to` (chown, then chmod).
pub fn set_ownership(root: &SystemRoot, system_path: &str, to: Ownership) -> Result<()> {
    let path = root.path(system_path);
    std::os::unix::fs::chown(&path, Some(to.uid), Some(to.gid))
        .map_err(system("chown", system_path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(to.mode))
        .map_err(system("chmod", system_path))
}

fn device_dir(device: PciAddress) -> String {
    format!("/sys/bus/pci/devices/{device}")
}

/// The functions bound to vfio-pci (or a variant driver), ascending.
pub fn vfio_functions(root: &SystemRoot) -> Result<Vec<PciAddress>> {
    let mut functions = Vec::new();
    for name in root.dir_names("/sys/bus/pci/devices")? {
        let Ok(address) = name.parse::<PciAddress>() else {
            continue;
        };
        let driver = root.link_name(format!("{}/driver", device_dir(address)))?;
        if is_vfio_driver(driver.as_deref()) {
            functions.push(address);
        }
    }
    functions.sort();
    Ok(functions)
}

/// The IOMMU group of a function (its `iommu_group` link), `None` when the IOMMU is off.
pub fn iommu_group(root: &SystemRoot, device: PciAddress) -> Result<Option<String>> {
    root.link_name(format!("{}/iommu_group", device_dir(device)))
}

/// The nodes of one function bound to vfio-pci: its group node and its cdev, those that
/// exist. A function that is absent, not bound to vfio-pci, or in no IOMMU group is refused.
pub fn function_nodes(root: &SystemRoot, device: PciAddress) -> Result<Vec<String>> {
    let dir = device_dir(device);
    if !root.exists(&dir) {
        return Err(invalid(
            "--devices",
            device,
            "a PCI function of this machine (see `userpci list`)",
        ));
    }
    let driver = root.link_name(format!("{dir}/driver"))?;
    if !is_vfio_driver(driver.as_deref()) {
        return Err(invalid(
            "--devices",
            device,
            format!(
                "a function bound to vfio-pci (its driver is {}; run `sudo userpci bind \
                 {device}` first)",
                driver.as_deref().unwrap_or("none")
            ),
        ));
    }
    let group = iommu_group(root, device)?.ok_or_else(|| {
        invalid(
            "--devices",
            device,
            "a function in an IOMMU group (it has none: the IOMMU is off, see `userpci setup \
             status`)",
        )
    })?;
    let mut nodes = vec![format!("/dev/vfio/{group}")];
    for cdev in root.dir_names(format!("{dir}/vfio-dev"))? {
        nodes.push(format!("/dev/vfio/devices/{cdev}"));
    }
    nodes.retain(|node| root.exists(node));
    Ok(nodes)
}

/// The shared nodes that exist and are not already open to everyone.
pub fn shared_nodes(root: &SystemRoot) -> Result<Vec<String>> {
    let mut nodes = Vec::new();
    for node in SHARED_NODES {
        if root.exists(node) && ownership(root, node)?.mode & 0o006 != 0o006 {
            nodes.push(node.to_string());
        }
    }
    Ok(nodes)
}

/// Every VFIO node that exists (for `setup status`): the shared ones, the groups, the cdevs.
pub fn all_nodes(root: &SystemRoot) -> Result<Vec<String>> {
    let mut nodes: Vec<String> = SHARED_NODES
        .iter()
        .filter(|node| root.exists(node))
        .map(|node| node.to_string())
        .collect();
    for name in root.dir_names("/dev/vfio")? {
        if name.parse::<u32>().is_ok() {
            nodes.push(format!("/dev/vfio/{name}"));
        }
    }
    for name in root.dir_names("/dev/vfio/devices")? {
        nodes.push(format!("/dev/vfio/devices/{name}"));
    }
    Ok(nodes)
}

/// True when `path` is a system path setup may change (defence against a state file that
/// names something else: reset only touches VFIO and iommufd nodes).
pub fn is_vfio_node(path: &str) -> bool {
    let path = Path::new(path);
    path == Path::new("/dev/iommu") || path.starts_with("/dev/vfio/")
}

/// `"0660"` in JSON, `0o660` in memory.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let text = String::deserialize(deserializer)?;
        u32::from_str_radix(&text, 8)
            .map_err(|_| serde::de::Error::custom(format!("mode '{text}' is not octal")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_owner_read_write_and_a_group_group_read_write() {
        let current = Ownership {
            uid: 0,
            gid: 0,
            mode: 0o600,
        };
        let alice = Grantee::User(User {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
        });
        assert_eq!(
            alice.grant(current),
            Ownership {
                uid: 1000,
                gid: 0,
                mode: 0o600
            }
        );
        let kvm = Grantee::Group(Group {
            name: "kvm".into(),
            gid: 104,
        });
        assert_eq!(
            kvm.grant(current),
            Ownership {
                uid: 0,
                gid: 104,
                mode: 0o660
            }
        );
        let json = serde_json::to_value(kvm.grant(current)).unwrap();
        assert_eq!(json["mode"], "0660");
        let back: Ownership = serde_json::from_value(json).unwrap();
        assert_eq!(back.mode, 0o660);
        assert!(is_vfio_node("/dev/vfio/devices/vfio0"));
        assert!(!is_vfio_node("/etc/shadow"));
    }
}
