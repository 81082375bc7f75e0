//! A setup request, checked against the machine, turned into the list of changes it needs:
//! the same list is printed by `--dry-run` and carried out by [`apply`](super::apply).

use serde::Serialize;

use super::accounts;
use super::hugepages::{self, HUGEPAGE_BYTES};
use super::modules;
use super::permissions::{self, Grantee, Ownership};
use super::SystemRoot;
use crate::framework::pci::PciAddress;
use crate::tools::error::Result;

/// How many 2 MiB pages, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugepageRequest {
    pub pages: u64,
    /// A NUMA node; `None` is the machine-wide pool.
    pub node: Option<u32>,
}

/// Who gets the device nodes, by name (looked up in the root's `/etc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GranteeName {
    User(String),
    Group(String),
}

/// What `userpci setup` was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupRequest {
    pub hugepages: Option<HugepageRequest>,
    pub grantee: Option<GranteeName>,
    /// The functions whose nodes the grantee gets; empty is every function bound to vfio-pci.
    pub devices: Vec<PciAddress>,
    /// Only report what would change (allowed without root).
    pub dry_run: bool,
}

/// One change to the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// `modprobe <module>`.
    LoadModule { module: String, required: bool },
    /// Writes a pool's `nr_hugepages`.
    SetHugepages {
        path: String,
        #[serde(serialize_with = "hugepages::node_as_string")]
        node: Option<u32>,
        from_pages: u64,
        to_pages: u64,
    },
    /// Mounts hugetlbfs for 2 MiB pages (creating the directory when `create_dir`).
    MountHugetlbfs { target: String, create_dir: bool },
    /// Gives a device node to the grantee (`device`: the function it belongs to, if one).
    GiveNode {
        path: String,
        device: Option<String>,
        from: Ownership,
        to: Ownership,
    },
}

impl Change {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Change::LoadModule { module, .. } => format!("load module {module} (modprobe)"),
            Change::SetHugepages {
                path,
                from_pages,
                to_pages,
                ..
            } => format!(
                "2 MiB hugepages: {from_pages} -> {to_pages} ({} MiB) in {path}",
                to_pages * (HUGEPAGE_BYTES >> 20)
            ),
            Change::MountHugetlbfs { target, create_dir } => format!(
                "mount hugetlbfs (pagesize=2M) on {target}{}",
                if *create_dir { ", creating it" } else { "" }
            ),
            Change::GiveNode {
                path,
                device,
                from,
                to,
            } => format!(
                "{path}{}: owner {}:{} mode {:04o} -> {}:{} mode {:04o}",
                device
                    .as_deref()
                    .map_or(String::new(), |device| format!(" ({device})")),
                from.uid,
                from.gid,
                from.mode,
                to.uid,
                to.gid,
                to.mode
            ),
        }
    }
}

/// The checked request and its changes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub grantee: Option<Grantee>,
    /// The hugepage memory after the changes, all pools (what the memlock limit should cover).
    pub hugepage_bytes_after: u64,
    /// Things to tell that are not changes (no function bound to vfio-pci, say).
    pub notes: Vec<String>,
}

/// Checks `request` against the machine and lists its changes. Bad input (an unknown user or
/// node, a function not bound to vfio-pci) is an error naming the value; so is a request
/// that changes something, made by a user who is not root, without `dry_run`.
pub fn plan(root: &SystemRoot, request: &SetupRequest) -> Result<Plan> {
    let grantee = match &request.grantee {
        None => None,
        Some(GranteeName::User(name)) => Some(Grantee::User(accounts::user(root, name)?)),
        Some(GranteeName::Group(name)) => Some(Grantee::Group(accounts::group(root, name)?)),
    };
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for module in modules::missing(root) {
        changes.push(Change::LoadModule {
            module: module.name.to_string(),
            required: module.required,
        });
    }

    let pools = hugepages::pools(root)?;
    let mut hugepage_bytes_after: u64 = pools.iter().map(|pool| pool.total_bytes).sum();
    if let Some(request) = request.hugepages {
        let dir = hugepages::pool_dir_for(root, request.node)?;
        let file = hugepages::count_file(&dir);
        let current = root.read_number(&file)?;
        // A node's pool replaces that node's share; the machine-wide pool is the total.
        let others: u64 = pools
            .iter()
            .filter(|pool| request.node.is_some() && pool.path != dir)
            .map(|pool| pool.total_bytes)
            .sum();
        hugepage_bytes_after = others + request.pages * HUGEPAGE_BYTES;
        if current != request.pages {
            changes.push(Change::SetHugepages {
                path: file.display().to_string(),
                node: request.node,
                from_pages: current,
                to_pages: request.pages,
            });
        }
    }
    if !hugepages::mounts(root)?
        .iter()
        .any(hugepages::Mount::is_2mib)
    {
        changes.push(Change::MountHugetlbfs {
            target: hugepages::DEFAULT_MOUNT.to_string(),
            create_dir: !root.exists(hugepages::DEFAULT_MOUNT),
        });
    }

    if let Some(grantee) = &grantee {
        let devices = if request.devices.is_empty() {
            permissions::vfio_functions(root)?
        } else {
            request.devices.clone()
        };
        if devices.is_empty() {
            notes.push(format!(
                "no function is bound to vfio-pci: {} gets only the shared nodes; bind \
                 functions (sudo userpci bind BDF) and run setup again",
                grantee.describe()
            ));
        }
        let mut given: Vec<String> = Vec::new();
        let mut give = |path: String, device: Option<String>| -> Result<()> {
            if given.contains(&path) {
                return Ok(());
            }
            let from = permissions::ownership(root, &path)?;
            let to = grantee.grant(from);
            if from != to {
                changes.push(Change::GiveNode {
                    path: path.clone(),
                    device,
                    from,
                    to,
                });
            }
            given.push(path);
            Ok(())
        };
        for device in devices {
            for node in permissions::function_nodes(root, device)? {
                give(node, Some(device.to_string()))?;
            }
        }
        for node in permissions::shared_nodes(root)? {
            give(node, None)?;
        }
    }

    if !request.dry_run && !changes.is_empty() {
        root.require_root(
            "userpci setup",
            ", or add --dry-run to see what it would change",
        )?;
    }
    Ok(Plan {
        changes,
        grantee,
        hugepage_bytes_after,
        notes,
    })
}
