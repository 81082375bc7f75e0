//! `userpci setup status`: hugepages, mounts, modules, IOMMU, memlock, device nodes and the
//! state file, read only (no root needed).
//!
//! JSON (`schema` 1): sizes carry their unit in the field name (`hugepage_bytes`,
//! `total_bytes`), PCI addresses, IOMMU groups, paths and modes are strings.

use serde::Serialize;

use super::accounts;
use super::hugepages::{self, Mount, Pool, HUGEPAGE_BYTES};
use super::iommu::{self, IommuState};
use super::memlock::{self, Memlock};
use super::modules::{self, ModuleStatus};
use super::permissions::{self, Ownership};
use super::state::{self, SetupState, STATE_FILE};
use super::SystemRoot;
use crate::tools::error::Result;
use crate::tools::run::SCHEMA_VERSION;

/// Everything `setup status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct SetupStatus {
    pub schema: u32,
    pub hugepages: HugepageStatus,
    pub modules: Vec<ModuleStatus>,
    pub iommu: IommuState,
    pub memlock: Memlock,
    pub vfio_functions: Vec<FunctionNodes>,
    pub device_nodes: Vec<NodeStatus>,
    pub state: StateStatus,
    pub warnings: Vec<String>,
}

/// The pools and the mounts.
#[derive(Debug, Clone, Serialize)]
pub struct HugepageStatus {
    pub hugepage_bytes: u64,
    pub pools: Vec<Pool>,
    pub total_pages: u64,
    pub free_pages: u64,
    pub total_bytes: u64,
    pub mounts: Vec<Mount>,
}

/// A function bound to vfio-pci and its nodes.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionNodes {
    pub address: String,
    pub iommu_group: Option<String>,
    pub nodes: Vec<String>,
}

/// A VFIO node and who may open it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub path: String,
    #[serde(flatten)]
    pub ownership: Ownership,
    pub user: Option<String>,
    pub group: Option<String>,
}

/// The state file.
#[derive(Debug, Clone, Serialize)]
pub struct StateStatus {
    pub path: String,
    pub present: bool,
    pub change_count: usize,
    pub recorded: Option<SetupState>,
}

/// Reads the whole report.
pub fn read(root: &SystemRoot) -> Result<SetupStatus> {
    let pools = hugepages::pools(root)?;
    let total_pages = pools.iter().map(|pool| pool.total_pages).sum();
    let hugepages = HugepageStatus {
        hugepage_bytes: HUGEPAGE_BYTES,
        free_pages: pools.iter().map(|pool| pool.free_pages).sum(),
        total_pages,
        total_bytes: total_pages * HUGEPAGE_BYTES,
        pools,
        mounts: hugepages::mounts(root)?,
    };
    let users = accounts::users(root)?;
    let groups = accounts::groups(root)?;
    let mut device_nodes = Vec::new();
    for path in permissions::all_nodes(root)? {
        let ownership = permissions::ownership(root, &path)?;
        device_nodes.push(NodeStatus {
            user: accounts::user_name(&users, ownership.uid),
            group: accounts::group_name(&groups, ownership.gid),
            path,
            ownership,
        });
    }
    let mut vfio_functions = Vec::new();
    for address in permissions::vfio_functions(root)? {
        vfio_functions.push(FunctionNodes {
            address: address.to_string(),
            iommu_group: permissions::iommu_group(root, address)?,
            nodes: permissions::function_nodes(root, address).unwrap_or_default(),
        });
    }
    let recorded = state::load(root)?;
    let mut warnings = Vec::new();
    if hugepages.total_pages == 0 {
        warnings.push(
            "no 2 MiB hugepages reserved: DMA memory falls back to 4 KiB pages (sudo userpci \
             setup --hugepages 512)"
                .to_string(),
        );
    }
    if !hugepages.mounts.iter().any(Mount::is_2mib) {
        warnings.push("no hugetlbfs mount for 2 MiB pages".to_string());
    }
    let iommu = iommu::read(root)?;
    warnings.extend(iommu::off_warning(&iommu));
    warnings.extend(modules::interface_warning(root));
    let memlock = memlock::read(root, hugepages.total_bytes, None)?;
    Ok(SetupStatus {
        schema: SCHEMA_VERSION,
        modules: modules::status(root),
        iommu,
        memlock,
        vfio_functions,
        device_nodes,
        state: StateStatus {
            path: STATE_FILE.to_string(),
            present: recorded.is_some(),
            change_count: recorded.as_ref().map_or(0, SetupState::change_count),
            recorded,
        },
        hugepages,
        warnings,
    })
}
