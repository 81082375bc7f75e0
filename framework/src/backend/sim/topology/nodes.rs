//! What a validated topology is made of: functions in place, IOMMU groups and reset groups.
//! Computed by `groups.rs`, held by [`Topology`].
//!
//! [`Topology`]: super::Topology

use serde::{Deserialize, Serialize};

use super::spec::FunctionSpec;
use crate::pci::PciAddress;

/// An endpoint function with its place in the topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionNode {
    /// The function's address.
    pub address: PciAddress,
    /// The root port above it; `None` on bus 0.
    pub parent_bridge: Option<PciAddress>,
    /// Its IOMMU group id (also the index into
    /// [`Topology::iommu_groups`](super::Topology::iommu_groups)).
    pub iommu_group: u32,
    /// Its reset group id (also the index into
    /// [`Topology::reset_groups`](super::Topology::reset_groups)).
    pub reset_group: usize,
    /// The function as the spec describes it.
    pub spec: FunctionSpec,
}

/// An IOMMU group: devices the IOMMU cannot isolate from each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IommuGroup {
    /// The group number, as `/sys/kernel/iommu_groups/N` names it.
    pub id: u32,
    /// Root ports and functions in the group, sorted by address.
    pub members: Vec<PciAddress>,
}

pub use crate::pci::devset::ResetScope;

/// A reset group (the kernel's vfio `dev_set`): endpoint functions one bus or slot reset hits
/// together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetGroup {
    /// The group's index in [`Topology::reset_groups`](super::Topology::reset_groups).
    pub id: usize,
    /// What reset the members share.
    pub scope: ResetScope,
    /// The root port whose slot or secondary bus reset hits the members; `None` for
    /// [`ResetScope::Function`].
    pub bridge: Option<PciAddress>,
    /// The endpoint functions in the group, sorted by address.
    pub members: Vec<PciAddress>,
}
