//! What a hot reset of one reset group needs and what blocks it, from the members' state.
//!
//! The kernel (`vfio_pci_dev_set_hot_reset()`) resets a set only when every function the
//! slot or bus reset hits is bound to vfio-pci and owned by the caller: in cdev mode opened
//! and bound to the caller's one iommufd context, in group mode covered by a group fd passed
//! in. Blocker lines use the words of [`crate::reset::bus_reset_blockers`] ("… is owned by …").

use std::collections::BTreeSet;

use super::model::{FunctionStatus, HeldBy, Verdict};
use crate::pci::devset::ResetScope;

/// The decision for one group.
pub struct GroupVerdict {
    pub verdict: Verdict,
    pub needs: Vec<String>,
    pub legacy_group_files: Vec<String>,
    pub blockers: Vec<String>,
}

/// Why no hot reset reaches a function-scope group's member.
pub fn no_hot_reset_reason(on_root_bus: bool) -> &'static str {
    if on_root_bus {
        "it sits on a root bus (no bridge to reset)"
    } else {
        "it is a virtual function"
    }
}

/// Decides for `members` sharing `scope`. `function_scope_reason` says why a
/// [`ResetScope::Function`] group has no hot reset.
pub fn decide(
    scope: ResetScope,
    members: &[FunctionStatus],
    iommu_present: bool,
    function_scope_reason: &str,
) -> GroupVerdict {
    let mut needs = Vec::new();
    let mut blockers = Vec::new();
    if !iommu_present {
        blockers.push(
            "no IOMMU: kernel/iommu_groups is empty, VFIO cannot take any function".to_string(),
        );
    }
    if scope == ResetScope::Function {
        if let Some(m) = members.first() {
            blockers.push(format!(
                "no slot or bus reset reaches {}: {function_scope_reason}",
                m.address
            ));
        }
    }
    let mut pids: BTreeSet<u32> = BTreeSet::new();
    let mut every_member_held = true;
    for m in members {
        match &m.held_by {
            HeldBy::KernelDriver { driver } => {
                needs.push(format!(
                    "unbind {} from {driver}, bind it to vfio-pci",
                    m.address
                ));
            }
            HeldBy::Unbound => needs.push(format!("bind {} to vfio-pci", m.address)),
            _ => {}
        }
        if m.processes.is_empty() {
            every_member_held = false;
            match &m.vfio_cdev {
                Some(cdev) => needs.push(format!(
                    "open /dev/vfio/devices/{cdev} ({}) and bind it to the caller's iommufd",
                    m.address
                )),
                None => needs.push(format!(
                    "open the cdev of {} (vfio-dev/vfioN in sysfs once on vfio-pci) and bind it to the \
                     caller's iommufd",
                    m.address
                )),
            }
        }
        for p in &m.processes {
            pids.insert(p.pid);
        }
    }
    let mut legacy_group_files: Vec<String> = members
        .iter()
        .filter_map(|m| m.iommu_group.map(|g| format!("/dev/vfio/{g}")))
        .collect();
    legacy_group_files.sort();
    legacy_group_files.dedup();

    let one_holder = pids.len() == 1
        && every_member_held
        && members
            .iter()
            .all(|m| m.processes.iter().any(|p| Some(&p.pid) == pids.first()));
    if !one_holder {
        for m in members {
            for p in &m.processes {
                blockers.push(format!(
                    "{} is owned by pid {} ({}) through {}",
                    m.address, p.pid, p.comm, p.file
                ));
            }
        }
    }
    let verdict = if !blockers.is_empty() {
        Verdict::Blocked
    } else if one_holder {
        needs.clear();
        Verdict::HeldByOne {
            pid: pids.first().copied().unwrap_or_default(),
        }
    } else if members.iter().any(|m| m.held_by == HeldBy::VfioUnknown) {
        Verdict::Unknown
    } else {
        Verdict::AfterSetup
    };
    GroupVerdict {
        verdict,
        needs,
        legacy_group_files,
        blockers,
    }
}
